-- Fills a cache entry only if nothing newer could be lost, then tells every waiting process, in one step.
-- KEYS[1] entry hash {d = payload, ver = version, soft = soft expiry (ms), neg = 1 for "does not exist"}
-- KEYS[2] fencing counter (INCR'd by each lock holder)
-- ARGV: payload, version, negative (0|1), soft_expiry_ms, ttl_ms, fence ('' = not a lock holder), channel, key name
-- Returns 1 filled, 0 refused (a newer lock holder exists), -1 refused (a newer version is cached).
if ARGV[6] ~= '' and tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[6]) then
  return 0 -- our lease expired and a successor took the lock: its value wins
end
local cached = tonumber(redis.call('HGET', KEYS[1], 'ver') or '-1')
if cached > tonumber(ARGV[2]) then
  return -1 -- a write-through or CDC refresh already stored a newer version
end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'ver', ARGV[2], 'neg', ARGV[3], 'soft', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 1
