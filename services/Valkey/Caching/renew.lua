-- Extends a load lock's lease, only while we still hold it (servers without SET … IFEQ).
-- KEYS[1] lock. ARGV[1] our token, ARGV[2] lease ms. Returns 1 renewed, 0 lost.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
