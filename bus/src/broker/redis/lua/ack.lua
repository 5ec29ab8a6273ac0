-- ARGV: id. Removes the message wherever it waits; dead letters stay.
local id = ARGV[1]
local removed = redis.call('ZREM', PROCESSING, id)
  + redis.call('ZREM', READY, id)
  + redis.call('ZREM', DELAYED, id)
if removed == 0 then
  return 0
end
redis.call('HDEL', MSGS, id)
redis.call('HDEL', PRIO, id)
redis.call('HDEL', ATTEMPTS, id)
return 1
