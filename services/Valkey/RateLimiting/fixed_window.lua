-- Fixed window: one hash per partition {w = window index, c = count}. Time is the server's (TIME), never the caller's.
-- KEYS[1] state hash; ARGV: limit, window_ms, permits. Returns {allowed, remaining, reset_ms, retry_ms}.
local limit, window, permits = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local need = math.max(permits, 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local index = math.floor(now / window)
local reset = (index + 1) * window - now
local state = redis.call('HMGET', KEYS[1], 'w', 'c')
local count = 0
if tonumber(state[1]) == index then count = tonumber(state[2]) end

if count + need <= limit then
  count = count + permits
  redis.call('HSET', KEYS[1], 'w', index, 'c', count)
  redis.call('PEXPIRE', KEYS[1], reset)
  return {1, limit - count, reset, 0}
end
return {0, limit - count, reset, reset}
