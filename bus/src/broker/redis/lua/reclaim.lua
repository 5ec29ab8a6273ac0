-- ARGV: now (ms), max attempts. Returns {requeued, dead-lettered}.
local requeued, dead = reclaim_expired(tonumber(ARGV[1]), tonumber(ARGV[2]), 10000)
return {requeued, dead}
