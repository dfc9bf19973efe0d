-- The Valkey half of an idempotent checkout. The claim key lives in the session's hash slot, so one script can touch
-- both. A claim's value is "pending:{fingerprint}:{token}" while one request works on it, then
-- "done:{fingerprint}:{orderId}". The fingerprint is a hash of the request body: the same key with another body is
-- refused by the caller. PostgreSQL's unique constraint is the backstop if a claim is lost (expiry, flush, failover).
-- KEYS[1] session hash, KEYS[2] claim, KEYS[3] the set of orders already taken out of this cart (same slot).
-- ARGV[1] op, then per op:
--   claim    fingerprint token pending_ttl_ms -> {'claimed'} | {state, fingerprint, token_or_order_id}
--   complete fingerprint order_id done_ttl_ms session_ttl_ms product qty [product qty ...]
--            -> 1 settled now, 0 settled before; subtracts exactly the quantities ordered (an add made meanwhile
--            survives), once per order however often it runs, and records the order under the key
--   release  fingerprint token -> 1 if our pending claim was deleted, 0 otherwise
local op = ARGV[1]
if op == 'claim' then
  local value = 'pending:' .. ARGV[2] .. ':' .. ARGV[3]
  if redis.call('SET', KEYS[2], value, 'NX', 'PX', ARGV[4]) then
    return {'claimed'}
  end
  local current = redis.call('GET', KEYS[2])
  if not current then
    -- Expired between SET and GET: claim it now.
    redis.call('SET', KEYS[2], value, 'PX', ARGV[4])
    return {'claimed'}
  end
  local state, fingerprint, rest = string.match(current, '^(%a+):(%x+):(.+)$')
  return {state, fingerprint, rest}
end

if op == 'complete' then
  local first = redis.call('SADD', KEYS[3], ARGV[3]) == 1
  redis.call('PEXPIRE', KEYS[3], ARGV[5]) -- lives as long as the cart it describes
  if first and redis.call('EXISTS', KEYS[1]) == 1 then
    for i = 6, #ARGV, 2 do
      local field = 'p:' .. ARGV[i]
      if redis.call('HINCRBY', KEYS[1], field, -tonumber(ARGV[i + 1])) <= 0 then
        redis.call('HDEL', KEYS[1], field)
      end
    end
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
  end
  redis.call('SET', KEYS[2], 'done:' .. ARGV[2] .. ':' .. ARGV[3], 'PX', ARGV[4])
  return first and 1 or 0
end

if op == 'release' then
  if redis.call('GET', KEYS[2]) == 'pending:' .. ARGV[2] .. ':' .. ARGV[3] then
    return redis.call('DEL', KEYS[2])
  end
  return 0
end
return redis.error_reply('unknown op ' .. tostring(op))
