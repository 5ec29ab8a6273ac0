-- Publishes a message and keeps it in its topic's history, in one step: no
-- subscriber can see a message the history lacks, nor the reverse.
-- KEYS[1] the topic's channel; KEYS[2] its stream; KEYS[3] its meta hash
-- (all three in the topic's slot on a cluster).
-- ARGV[1] the message; ARGV[2] most messages kept; ARGV[3] most age kept,
-- ms (0: no bound); ARGV[4] the epoch to start if the topic has none;
-- ARGV[5] 'c' on a cluster (sharded publish, plus a classic one when this
-- shard has pattern subscribers), 's' on one Redis.
-- Returns {receivers, offset, epoch}; offsets are '<ms>-<n>', n counting
-- the epoch's messages without a gap, and are the stream's entry ids.
local function int(x) return string.format('%.0f', x) end
local meta = redis.call('HMGET', KEYS[3], 'e', 'n', 'ms')
local epoch, n, last = meta[1], tonumber(meta[2]), tonumber(meta[3])
if not epoch then
  -- First message, or the history was lost: whatever the stream holds
  -- belongs to no epoch any more.
  epoch, n, last = ARGV[4], 0, 0
  redis.call('DEL', KEYS[2])
end
n = n + 1
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = math.max(now, last)
local offset = int(ms) .. '-' .. int(n)
redis.call('HSET', KEYS[3], 'e', epoch, 'n', int(n), 'ms', int(ms))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], offset, 'm', ARGV[1])
if tonumber(ARGV[3]) > 0 then
  redis.call('XTRIM', KEYS[2], 'MINID', '~', int(now - tonumber(ARGV[3])))
end
local framed = '\0H' .. offset .. ' ' .. epoch .. '\n' .. ARGV[1]
local receivers
if ARGV[5] == 'c' then
  receivers = redis.call('SPUBLISH', KEYS[1], framed)
  if redis.call('PUBSUB', 'NUMPAT') > 0 then
    receivers = receivers + redis.call('PUBLISH', KEYS[1], framed)
  end
else
  receivers = redis.call('PUBLISH', KEYS[1], framed)
end
return {receivers, offset, epoch}
