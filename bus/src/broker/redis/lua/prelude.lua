-- Shared by every queue script. All scripts take the same ten keys, which
-- share one hash tag so a Redis Cluster keeps a queue in one slot.
local READY, DELAYED, PROCESSING, DEAD = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local MSGS, PRIO, ATTEMPTS, REASONS, SEQ = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local ACKED = KEYS[10]

-- Scores are doubles; format integers in full (Lua's default keeps only 14
-- significant digits).
local function int(n)
  return string.format('%.0f', n)
end

-- Higher priority first, FIFO inside one priority: the score is
-- (255 - priority) * 2^45 + sequence, an integer below 2^53.
local function make_ready(id)
  local p = tonumber(redis.call('HGET', PRIO, id) or '0')
  local seq = redis.call('INCR', SEQ)
  redis.call('ZADD', READY, int((255 - p) * 35184372088832 + seq), id)
end

local function make_dead(id, reason, now)
  redis.call('ZADD', DEAD, int(now), id)
  redis.call('HSET', REASONS, id, reason)
end

-- Claims whose visibility deadline has passed go back to ready, or to the
-- dead-letter queue once they have used their attempts.
local function reclaim_expired(now, max_attempts, limit)
  local expired = redis.call('ZRANGEBYSCORE', PROCESSING, '-inf', int(now), 'LIMIT', 0, limit)
  local requeued, dead = 0, 0
  for _, id in ipairs(expired) do
    redis.call('ZREM', PROCESSING, id)
    local attempts = tonumber(redis.call('HGET', ATTEMPTS, id) or '0')
    if attempts >= max_attempts then
      make_dead(id, 'visibility timeout expired after ' .. attempts .. ' attempts', now)
      dead = dead + 1
    else
      make_ready(id)
      requeued = requeued + 1
    end
  end
  return requeued, dead
end

-- Rejected messages whose backoff has passed become ready again.
local function promote_delayed(now, limit)
  local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', int(now), 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', DELAYED, id)
    make_ready(id)
  end
end
