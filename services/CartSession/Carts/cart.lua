-- A cart is one hash per session: field "s" marks a live session, "p:{productId}" holds a quantity. Every operation
-- renews the session's sliding expiry in the same step, and refuses to work on a session that does not exist
-- (expired, or never issued by us) so a client can never adopt an id of its own choosing.
-- A change answers with the whole cart after it, so a request that changes the cart and shows it costs one round trip.
-- KEYS[1] session hash. ARGV: op, ttl_ms, then per op:
--   create                                  -> 1
--   get                                     -> flat list {field, value, ...} of the lines
--   add  product_id delta max_qty max_lines -> {new quantity | -1 over max_qty | -2 over max_lines, field, value, ...}
--   set  product_id qty max_qty max_lines   -> {qty | -1 | -2, field, value, ...}   (qty 0 removes the line)
--   remove product_id                       -> {1 removed | 0 absent, field, value, ...}
-- Any op but create on a missing session -> -3.
local op, ttl = ARGV[1], tonumber(ARGV[2])
if op == 'create' then
  redis.call('HSET', KEYS[1], 's', 1)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -3
end
redis.call('PEXPIRE', KEYS[1], ttl)

-- The lines of the cart, without the session marker, after an optional result code.
local function lines(code)
  local all = redis.call('HGETALL', KEYS[1])
  local out = {}
  if code then out[1] = code end
  for i = 1, #all, 2 do
    if all[i] ~= 's' then
      out[#out + 1] = all[i]
      out[#out + 1] = all[i + 1]
    end
  end
  return out
end

if op == 'get' then
  return lines(nil)
end

local field = 'p:' .. ARGV[3]
if op == 'remove' then
  return lines(redis.call('HDEL', KEYS[1], field))
end

local max_qty, max_lines = tonumber(ARGV[5]), tonumber(ARGV[6])
local current = tonumber(redis.call('HGET', KEYS[1], field) or '0')
local target = op == 'add' and current + tonumber(ARGV[4]) or tonumber(ARGV[4])
if target > max_qty then
  return lines(-1)
end
if target <= 0 then
  redis.call('HDEL', KEYS[1], field)
  return lines(0)
end
if current == 0 and redis.call('HLEN', KEYS[1]) - 1 >= max_lines then
  return lines(-2)
end
redis.call('HSET', KEYS[1], field, target)
return lines(target)
