-- Sliding window counter: the current and previous fixed windows' counts, weighted by how much of the previous
-- window still overlaps the sliding one. Memory O(1) per partition; an approximation (see docs/ratelimit.md).
-- KEYS[1] state hash {w, c, p}; ARGV: limit, window_ms, permits. Returns {allowed, remaining, reset_ms, retry_ms}.
local limit, window, permits = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local need = math.max(permits, 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local index = math.floor(now / window)
local elapsed = now - index * window
local state = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w, curr, prev = tonumber(state[1]), 0, 0
if w == index then
  curr, prev = tonumber(state[2]), tonumber(state[3])
elseif w == index - 1 then
  prev = tonumber(state[2])
end
local estimate = prev * (window - elapsed) / window + curr

if estimate + need <= limit then
  curr = curr + permits
  redis.call('HSET', KEYS[1], 'w', index, 'c', curr, 'p', prev)
  redis.call('PEXPIRE', KEYS[1], 2 * window - elapsed)
  return {1, math.floor(limit - estimate - permits), window - elapsed, 0}
end

-- When will estimate + need <= limit hold? Still in this window if the previous window's weight can fall far
-- enough; otherwise in the next one, where this window's count becomes the weighted one.
local wait
if prev > 0 and curr + need <= limit then
  wait = math.ceil(window - (limit - need - curr) * window / prev) - elapsed
else
  wait = (window - elapsed) + math.max(0, math.ceil(window - (limit - need) * window / curr))
end
return {0, math.max(0, math.floor(limit - estimate)), window - elapsed, math.max(1, wait + 1)}
