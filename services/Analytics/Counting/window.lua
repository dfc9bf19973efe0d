-- The expensive aggregate: a leaderboard over a window of hourly buckets. ZUNIONSTORE sums the buckets into a scratch
-- key, each with its weight (the oldest bucket is only partly inside a sliding window, so it counts in part), then
-- the top N are read with every member tied with the N-th (so the caller can break ties by product id
-- deterministically), and the scratch key is dropped. One atomic step, one round trip.
-- KEYS[1] scratch key, KEYS[2..] bucket keys. ARGV[1] top N, ARGV[2..] one weight per bucket.
-- Returns a flat list {member, score, ...}.
local n = tonumber(ARGV[1])
local args = {}
for i = 2, #KEYS do args[#args + 1] = KEYS[i] end
args[#args + 1] = 'WEIGHTS'
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
if redis.call('ZUNIONSTORE', KEYS[1], #KEYS - 1, unpack(args)) == 0 then
  return {}
end
local top = redis.call('ZREVRANGE', KEYS[1], 0, n - 1, 'WITHSCORES')
if #top == 2 * n then
  top = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', top[#top], 'WITHSCORES')
end
redis.call('DEL', KEYS[1])
return top
