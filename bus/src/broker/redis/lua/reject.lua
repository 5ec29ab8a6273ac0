-- ARGV: id, now (ms), requeue (1/0), max attempts, base backoff (ms),
-- max backoff (ms), reason.
-- Returns {0} when not claimed, {1, delay, attempts} when requeued,
-- {2, 0, attempts} when dead-lettered.
local id = ARGV[1]
local now = tonumber(ARGV[2])
if redis.call('ZREM', PROCESSING, id) == 0 then
  return {0, 0, 0}
end
local attempts = tonumber(redis.call('HGET', ATTEMPTS, id) or '0')
if ARGV[3] == '1' and attempts < tonumber(ARGV[4]) then
  local exp = math.max(0, math.min(attempts - 1, 30))
  local delay = math.min(tonumber(ARGV[5]) * 2 ^ exp, tonumber(ARGV[6]))
  redis.call('ZADD', DELAYED, int(now + delay), id)
  return {1, delay, attempts}
end
make_dead(id, ARGV[7], now)
return {2, 0, attempts}
