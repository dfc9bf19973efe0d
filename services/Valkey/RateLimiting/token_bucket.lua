-- Token bucket: capacity `limit`, refilled continuously at limit/window tokens per ms (server time).
-- KEYS[1] state hash {tokens, ts}; ARGV: limit, window_ms, permits. Returns {allowed, remaining, reset_ms, retry_ms}.
local limit, window, permits = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local need = math.max(permits, 1)
local rate = limit / window
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil or ts == nil then
  tokens, ts = limit, now
end
tokens = math.min(limit, tokens + math.max(0, now - ts) * rate)

if tokens >= need then
  tokens = tokens - permits
  local full = math.ceil((limit - tokens) / rate)
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], full + 1000)
  return {1, math.floor(tokens), full, 0}
end
return {0, math.floor(tokens), math.ceil((limit - tokens) / rate), math.ceil((need - tokens) / rate)}
