-- ARGV: id, now (ms), how long acks are remembered (ms).
-- Removes the message wherever it waits; dead letters stay. An ack repeated
-- within the memory window (a client retrying after a lost reply) is
-- answered like the first one.
local id = ARGV[1]
local now = tonumber(ARGV[2])
local removed = redis.call('ZREM', PROCESSING, id)
  + redis.call('ZREM', READY, id)
  + redis.call('ZREM', DELAYED, id)
local memory = tonumber(ARGV[3])
if removed == 0 then
  local acked_at = redis.call('ZSCORE', ACKED, id)
  if acked_at and tonumber(acked_at) >= now - memory then
    return 1
  end
  return 0
end
redis.call('HDEL', MSGS, id)
redis.call('HDEL', PRIO, id)
redis.call('HDEL', ATTEMPTS, id)
redis.call('ZADD', ACKED, int(now), id)
redis.call('ZREMRANGEBYSCORE', ACKED, '-inf', '(' .. int(now - memory))
return 1
