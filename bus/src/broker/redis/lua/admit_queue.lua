-- Admits a queue into its workspace's budget, atomically: a queue already
-- counted is admitted; a new one only while the workspace holds fewer than
-- the budget.
-- KEYS[1] the workspace's queue set; ARGV[1] the queue; ARGV[2] the budget.
-- Returns 1 (admitted) or 0 (refused).
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 1
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
