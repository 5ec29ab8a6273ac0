-- ARGV: now (ms), max, visibility (ms), max attempts.
-- Returns {{id, body, attempts}, ...}: popping and moving to processing in one
-- script is what makes a claim atomic.
local now = tonumber(ARGV[1])
reclaim_expired(now, tonumber(ARGV[4]), 1000)
promote_delayed(now, 1000)
local popped = redis.call('ZPOPMIN', READY, tonumber(ARGV[2]))
local deadline = int(now + tonumber(ARGV[3]))
local out = {}
for i = 1, #popped, 2 do
  local id = popped[i]
  local body = redis.call('HGET', MSGS, id)
  if body then
    local attempts = redis.call('HINCRBY', ATTEMPTS, id, 1)
    redis.call('ZADD', PROCESSING, deadline, id)
    out[#out + 1] = {id, body, attempts}
  end
end
return out
