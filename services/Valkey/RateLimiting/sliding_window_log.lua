-- Sliding window log: a sorted set of admitted requests scored by server time (ms). Exact, memory O(limit).
-- KEYS[1] log; ARGV: limit, window_ms, permits, request_id. Returns {allowed, remaining, reset_ms, retry_ms}.
local limit, window, permits, id = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local need = math.max(permits, 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- An entry scored s counts while now < s + window.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])

local function leaves(rank) -- ms until the entry at this rank (oldest first) leaves the window
  local entry = redis.call('ZRANGE', KEYS[1], rank, rank, 'WITHSCORES')
  if entry[2] == nil then return window end
  return tonumber(entry[2]) + window - now
end

if count + need <= limit then
  for i = 1, permits do
    redis.call('ZADD', KEYS[1], now, id .. ':' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], window)
  count = count + permits
  return {1, limit - count, leaves(0), 0}
end
-- `need` slots free up when the entry at rank count - limit + need - 1 leaves.
local wait = leaves(count - limit + need - 1)
return {0, limit - count, leaves(0), wait}
