-- Concurrency limiter: a sorted set of held leases scored by their expiry (server ms). Expired leases (holders that
-- crashed) are dropped, live ones are renewed by their holder. KEYS[1] leases.
-- ARGV: op ('acquire' | 'renew' | 'release'), limit, lease_ms, permits, lease_id.
-- acquire returns {allowed, remaining, reset_ms, retry_ms}; renew returns 1 while the lease is still held; release 1.
local op, limit, lease, permits, id = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if op == 'release' then
  for i = 1, math.max(permits, 1) do redis.call('ZREM', KEYS[1], id .. ':' .. i) end
  return 1
end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)

if op == 'renew' then
  local held = 0
  for i = 1, permits do
    held = held + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, id .. ':' .. i)
  end
  if held > 0 then redis.call('PEXPIRE', KEYS[1], lease) end
  return held == permits and 1 or 0
end

local count = redis.call('ZCARD', KEYS[1])
if count + math.max(permits, 1) <= limit then
  for i = 1, permits do redis.call('ZADD', KEYS[1], now + lease, id .. ':' .. i) end
  if permits > 0 then redis.call('PEXPIRE', KEYS[1], lease) end
  return {1, limit - count - permits, lease, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = math.max(1, math.ceil(tonumber(first[2]) - now))
return {0, limit - count, wait, wait}
