-- GCRA (generic cell rate algorithm): one number per partition, the theoretical arrival time (TAT, server ms).
-- Emission interval T = window / limit; a request is admitted when TAT + T - window <= now.
-- KEYS[1] TAT; ARGV: limit, window_ms, permits. Returns {allowed, remaining, reset_ms, retry_ms}.
local limit, window, permits = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local need = math.max(permits, 1)
local interval = window / limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epsilon = 0.001 -- T is fractional: tolerate rounding so exactly `limit` fit in a window

local tat = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now)
local allow_at = tat + interval * need - window

if allow_at <= now + epsilon then
  tat = tat + interval * permits
  if tat > now then
    redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now))
  end
  return {1, math.floor((window - (tat - now)) / interval + epsilon), math.ceil(tat - now), 0}
end
return {0, math.max(0, math.floor((window - (tat - now)) / interval + epsilon)), math.ceil(tat - now), math.ceil(allow_at - now)}
