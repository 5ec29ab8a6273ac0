-- KEYS[1]: a topic channel (a key only so the cluster routes the script to
-- the shard owning its slot); ARGV[1]: the payload.
-- Exact subscribers are sharded; pattern subscribers only receive classic
-- publishes, which a cluster broadcasts to every node, so those are sent only
-- when this shard has pattern subscribers. Returns the receivers on this
-- shard, which holds every subscription of the topic's workspace.
local receivers = redis.call('SPUBLISH', KEYS[1], ARGV[1])
if redis.call('PUBSUB', 'NUMPAT') > 0 then
  receivers = receivers + redis.call('PUBLISH', KEYS[1], ARGV[1])
end
return receivers
