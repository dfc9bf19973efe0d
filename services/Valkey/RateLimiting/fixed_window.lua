-- Fixed window: one counter per partition that expires when its window ends, so an existing key always belongs to
-- the current window. Time is the server's (TIME), never the caller's.
-- KEYS[1] counter; ARGV: limit, window_ms, permits. Returns {allowed, remaining, reset_ms, retry_ms}.
local limit, window, permits = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local need = math.max(permits, 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local reset = window - now % window

local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count + need <= limit then
  if permits > 0 then
    count = redis.call('INCRBY', KEYS[1], permits)
    if count == permits then redis.call('PEXPIRE', KEYS[1], reset) end
  end
  return {1, limit - count, reset, 0}
end
return {0, limit - count, reset, reset}
