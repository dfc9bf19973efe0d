-- Fills a cache entry only if nothing newer could be lost, then tells every waiting process, in one step.
-- KEYS[1] entry: one string "{version}:{soft_expiry_ms}:{flag}:{payload}" (flag 0 value, 1 not found, 2 deleted;
--         see CacheEnvelope.cs)
-- KEYS[2] fencing counter (INCR'd by each lock holder)
-- ARGV: envelope, version, ttl_ms, fence ('' = not a lock holder), channel, key name, mode
-- Publishes "{version} {key}" on the channel ("-1 {key}" for a deletion; see Announcement.cs).
--   mode 'load'   an origin load or write-through: refused by a newer version and by a deletion
--   mode 'insert' a row (re)created at the origin: may replace a deletion, not a newer version
--   mode 'delete' the deletion itself: always wins
-- Returns 1 filled, 0 refused (a newer lock holder exists), -1 refused (a newer version is cached),
-- -2 refused (the entry was deleted at the origin after this value was read).
local mode = ARGV[7]
if ARGV[4] ~= '' and tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[4]) then
  return 0 -- our lease expired and a successor took the lock: its value wins
end
local current = redis.call('GET', KEYS[1])
if current and mode ~= 'delete' then
  local cached, flag = string.match(current, '^(%-?%d+):%-?%d+:(%d):')
  if flag == '2' then
    if mode ~= 'insert' then
      return -2 -- a load that read the row before it was deleted must not bring it back
    end
  elseif cached and tonumber(cached) > tonumber(ARGV[2]) then
    return -1 -- a write-through or change-data capture already stored a newer version
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[5], (mode == 'delete' and '-1' or ARGV[2]) .. ' ' .. ARGV[6])
return 1
