-- Reads a topic's history. KEYS[1] its stream; KEYS[2] its meta hash.
-- ARGV[1] the epoch to start if the topic has none; ARGV[2] 'head',
-- 'after', 'between' or 'last'; ARGV[3] most messages; ARGV[4] most
-- message bytes; after and between: ARGV[5] the reader's epoch, ARGV[6]
-- its offset '<ms>-<n>', ARGV[7] that offset's n; between: ARGV[8] the
-- offset to stop before, ARGV[9] its n; last: ARGV[5] how many.
-- Returns {epoch, head offset, outcome, count, id1, msg1, id2, msg2, ...};
-- outcome is 'complete', 'epoch_changed', 'window_exceeded' (count: how
-- many were missed), 'too_far_behind' (count: how many are after the
-- offset), 'unknown_offset' or 'truncated'.
local function int(x) return string.format('%.0f', x) end
-- A message's length as agents receive it: a compressed one ('\0Z<len>\n'
-- and a zstd frame) counts at its original length.
local function size(m)
  if string.byte(m, 1) == 0 and string.byte(m, 2) == 90 then
    local nl = string.find(m, '\n', 3, true)
    local len = nl and tonumber(string.sub(m, 3, nl - 1))
    if len then return len end
  end
  return #m
end
local meta = redis.call('HMGET', KEYS[2], 'e', 'n', 'ms')
local epoch, n, ms = meta[1], tonumber(meta[2] or 0), tonumber(meta[3] or 0)
if not epoch then
  epoch, n, ms = ARGV[1], 0, 0
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 'n', 0, 'ms', 0)
end
local out = {epoch, int(ms) .. '-' .. int(n), 'complete', 0}
local max, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[2] == 'after' or ARGV[2] == 'between' then
  local from = tonumber(ARGV[7])
  if ARGV[5] ~= epoch then out[3] = 'epoch_changed'; return out end
  if from > n then out[3] = 'unknown_offset'; return out end
  local upto, stop = n, '+'
  if ARGV[2] == 'between' then
    upto, stop = math.min(n, tonumber(ARGV[9]) - 1), '(' .. ARGV[8]
  end
  if from >= upto then return out end
  if upto - from > max then out[3] = 'too_far_behind'; out[4] = upto - from; return out end
  local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[6], stop, 'COUNT', upto - from)
  local first = upto + 1
  if entries[1] then first = tonumber(string.match(entries[1][1], '%-(%d+)$')) end
  if first ~= from + 1 then
    out[3] = 'window_exceeded'; out[4] = first - from - 1; return out
  end
  local bytes = 0
  for _, e in ipairs(entries) do bytes = bytes + size(e[2][2]) end
  if bytes > max_bytes then out[3] = 'too_far_behind'; out[4] = upto - from; return out end
  for _, e in ipairs(entries) do out[#out + 1] = e[1]; out[#out + 1] = e[2][2] end
  out[4] = #entries
elseif ARGV[2] == 'last' then
  local count = math.min(tonumber(ARGV[5]), max)
  local entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', count)
  local budget, taken = max_bytes, {}
  for _, e in ipairs(entries) do
    budget = budget - size(e[2][2])
    if budget < 0 then out[3] = 'truncated'; break end
    taken[#taken + 1] = e
  end
  -- Oldest first.
  for i = #taken, 1, -1 do out[#out + 1] = taken[i][1]; out[#out + 1] = taken[i][2][2] end
  out[4] = #taken
end
return out
