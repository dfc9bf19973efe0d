-- Fills a cache entry only if nothing newer could be lost, then tells every waiting process, in one step.
-- KEYS[1] entry: one string "{version}:{soft_expiry_ms}:{negative}:{payload}" (see CacheEnvelope.cs)
-- KEYS[2] fencing counter (INCR'd by each lock holder)
-- ARGV: envelope, version, ttl_ms, fence ('' = not a lock holder), channel, key name
-- Returns 1 filled, 0 refused (a newer lock holder exists), -1 refused (a newer version is cached).
if ARGV[4] ~= '' and tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[4]) then
  return 0 -- our lease expired and a successor took the lock: its value wins
end
local current = redis.call('GET', KEYS[1])
if current then
  local cached = tonumber(string.match(current, '^(%-?%d+):'))
  if cached and cached > tonumber(ARGV[2]) then
    return -1 -- a write-through or change-data capture already stored a newer version
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
