-- ARGV: wake channel, publish command (PUBLISH, or SPUBLISH on a cluster,
-- where the wake channel shares this queue's hash tag), max length, then
-- (id, priority, body) triples.
-- A message whose id is already stored is skipped, so a retried batch does
-- not enqueue twice. Stops at `max length` messages held in any state
-- (dead letters included) and reports that the queue is full.
-- Wakes waiting workers with the number added. Returns {added, full}.
local held = redis.call('ZCARD', READY) + redis.call('ZCARD', DELAYED)
  + redis.call('ZCARD', PROCESSING) + redis.call('ZCARD', DEAD)
local max_len = tonumber(ARGV[3])
local added, full = 0, 0
for i = 4, #ARGV, 3 do
  local id = ARGV[i]
  if held >= max_len then
    full = 1
    break
  end
  if redis.call('HSETNX', MSGS, id, ARGV[i + 2]) == 1 then
    redis.call('HSET', PRIO, id, ARGV[i + 1])
    redis.call('HSET', ATTEMPTS, id, 0)
    make_ready(id)
    added = added + 1
    held = held + 1
  end
end
if added > 0 then
  redis.call(ARGV[2], ARGV[1], added)
end
return {added, full}
