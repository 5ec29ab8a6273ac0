-- ARGV: now (ms), how long acks are remembered (ms), then the ids to ack.
-- Returns 1 or 0 per id, in order. Removes each message wherever it waits;
-- dead letters stay. An ack repeated within the memory window (a client
-- retrying after a lost reply) is answered like the first one.
local now = tonumber(ARGV[1])
local memory = tonumber(ARGV[2])
local answers = {}
local any = false
for i = 3, #ARGV do
  local id = ARGV[i]
  local removed = redis.call('ZREM', PROCESSING, id)
    + redis.call('ZREM', READY, id)
    + redis.call('ZREM', DELAYED, id)
  if removed == 0 then
    local acked_at = redis.call('ZSCORE', ACKED, id)
    if acked_at and tonumber(acked_at) >= now - memory then
      answers[#answers + 1] = 1
    else
      answers[#answers + 1] = 0
    end
  else
    redis.call('HDEL', MSGS, id)
    redis.call('HDEL', PRIO, id)
    redis.call('HDEL', ATTEMPTS, id)
    redis.call('ZADD', ACKED, int(now), id)
    answers[#answers + 1] = 1
    any = true
  end
end
if any then
  redis.call('ZREMRANGEBYSCORE', ACKED, '-inf', '(' .. int(now - memory))
end
return answers
