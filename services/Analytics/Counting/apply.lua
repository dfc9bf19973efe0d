-- Applies a batch of analytics events and acknowledges their stream entries, in one atomic step: an event is either
-- counted and marked applied and acked, or none of that. A redelivered or re-published event finds its id in the
-- dedupe set of its hour and is skipped (still acked). Invalid entries (checked by the caller) are moved to the
-- dead-letter stream and acked in the same step. Every key shares the hash tag, so this holds in a cluster too.
-- KEYS[1] stream, KEYS[2] dead-letter stream, KEYS[3] dirty-hours hash.
-- ARGV[1] consumer group, ARGV[2] key prefix 'analytics:', ARGV[3] tag '{shop}',
-- ARGV[4] dedupe ttl s, ARGV[5] bucket ttl s, ARGV[6] day ttl s, ARGV[7] minute ttl s, ARGV[8] dead-letter max length,
-- ARGV[9] number of dead entries D, then D x (entry id, reason), then per event 9 values:
--   entry id, event id, type, hour id, day id, minute id, visitor ('' if none), product/qty ('' if none), lines ('' if none)
-- Returns {applied, duplicates, dead}.
local group, p, t = ARGV[1], ARGV[2], ARGV[3]
local dedupe_ttl, bucket_ttl, day_ttl, minute_ttl = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local expiries = {}
local acks = {}
local applied, duplicates = 0, 0

local dead = tonumber(ARGV[9])
local i = 10
for _ = 1, dead do
  local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  local fields = entry[1] and entry[1][2] or {}
  table.insert(fields, 'reason'); table.insert(fields, ARGV[i + 1])
  table.insert(fields, 'entry'); table.insert(fields, ARGV[i])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', unpack(fields))
  acks[#acks + 1] = ARGV[i]
  i = i + 2
end

local function bump(key, member, by, ttl)
  if member then redis.call('ZINCRBY', key, by, member) else redis.call('INCRBY', key, by) end
  expiries[key] = ttl
end

while i <= #ARGV do
  local entry, id, kind, hour, day, minute = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local visitor, amount, lines = ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  acks[#acks + 1] = entry
  local seen = p .. 'applied:' .. t .. ':' .. hour
  -- The dedupe member names the type too: an event of one type can never pass for, or hide, one of another.
  if redis.call('SADD', seen, kind .. '|' .. id) == 0 then
    duplicates = duplicates + 1
  else
    expiries[seen] = dedupe_ttl
    if visitor ~= '' then
      local uniques = p .. 'uniques:' .. t .. ':' .. day
      redis.call('PFADD', uniques, visitor)
      expiries[uniques] = day_ttl
    end
    if kind == 'product.viewed' then
      bump(p .. 'lb:' .. t .. ':views:' .. hour, amount, 1, bucket_ttl)
      bump(p .. 'ts:' .. t .. ':views:' .. minute, nil, 1, minute_ttl)
    elseif kind == 'cart.item_added' then
      bump(p .. 'ts:' .. t .. ':cart_adds:' .. minute, nil, tonumber(amount), minute_ttl)
    elseif kind == 'order.placed' then
      local units = 0
      for product, quantity in string.gmatch(lines, '(%d+):(%d+)') do
        bump(p .. 'lb:' .. t .. ':sold:' .. hour, product, tonumber(quantity), bucket_ttl)
        units = units + tonumber(quantity)
      end
      bump(p .. 'ts:' .. t .. ':orders:' .. minute, nil, 1, minute_ttl)
      bump(p .. 'ts:' .. t .. ':units:' .. minute, nil, units, minute_ttl)
    end
    redis.call('HINCRBY', KEYS[3], hour, 1)
    applied = applied + 1
  end
  i = i + 9
end

for key, ttl in pairs(expiries) do
  redis.call('EXPIRE', key, ttl)
end
for j = 1, #acks, 1000 do
  redis.call('XACK', KEYS[1], group, unpack(acks, j, math.min(j + 999, #acks)))
end
return {applied, duplicates, dead}
