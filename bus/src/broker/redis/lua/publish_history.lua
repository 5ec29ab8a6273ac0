-- Publishes messages of one topic and keeps them in its history, in one
-- step: no subscriber can see a message the history lacks, nor the
-- reverse. One call takes every message of the topic a publish batch holds,
-- so the topic's meta is read and written once per batch, not per message.
-- KEYS[1] the topic's channel; KEYS[2] its stream; KEYS[3] its meta hash
-- (all three in the topic's slot on a cluster).
-- ARGV[1] most messages kept; ARGV[2] most age kept, ms (0: no bound);
-- ARGV[3] the epoch to start if the topic has none; ARGV[4] 'c' on a
-- cluster (sharded publish, plus a classic one when this shard has pattern
-- subscribers), 's' on one Redis; ARGV[5..] the messages, in order.
-- Returns {epoch, receivers1, offset1, receivers2, offset2, ...}; offsets
-- are '<ms>-<n>', n counting the epoch's messages without a gap, and are
-- the stream's entry ids.
local function int(x) return string.format('%.0f', x) end
local meta = redis.call('HMGET', KEYS[3], 'e', 'n', 'ms')
local epoch, n, last = meta[1], tonumber(meta[2]), tonumber(meta[3])
if not epoch then
  -- First message, or the history was lost: whatever the stream holds
  -- belongs to no epoch any more.
  epoch, n, last = ARGV[3], 0, 0
  redis.call('DEL', KEYS[2])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = math.max(now, last)
local patterns = ARGV[4] == 'c' and redis.call('PUBSUB', 'NUMPAT') > 0
local out = {epoch}
for i = 5, #ARGV do
  n = n + 1
  local offset = int(ms) .. '-' .. int(n)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], offset, 'm', ARGV[i])
  local framed = '\0H' .. offset .. ' ' .. epoch .. '\n' .. ARGV[i]
  local receivers
  if ARGV[4] == 'c' then
    receivers = redis.call('SPUBLISH', KEYS[1], framed)
    if patterns then
      receivers = receivers + redis.call('PUBLISH', KEYS[1], framed)
    end
  else
    receivers = redis.call('PUBLISH', KEYS[1], framed)
  end
  out[#out + 1] = receivers
  out[#out + 1] = offset
end
redis.call('HSET', KEYS[3], 'e', epoch, 'n', int(n), 'ms', int(ms))
if tonumber(ARGV[2]) > 0 then
  redis.call('XTRIM', KEYS[2], 'MINID', '~', int(now - tonumber(ARGV[2])))
end
return out
