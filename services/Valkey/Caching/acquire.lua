-- Takes the load lock of one cache entry and, in the same step, a fencing token whose expiry is set with it (a fence
-- left without one would live forever).
-- KEYS[1] lock, KEYS[2] fencing counter. ARGV[1] token, ARGV[2] lease ms, ARGV[3] fence ttl ms.
-- Returns the fence (>= 1) when the lock was taken, 0 when another holder has it.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
local fence = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return fence
