-- Removes a cache entry and announces it in the same step, so every near cache drops its copy.
-- KEYS[1] entry; ARGV: channel, key name. Publishes "-1 {key}" (see Announcement.cs). Returns 1 removed, 0 absent.
local removed = redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], '-1 ' .. ARGV[2])
return removed
