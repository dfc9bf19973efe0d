-- Applies the parts of a batch of events that fall in one partition, each part at most once: a part whose event is
-- already in the partition's dedupe set (a redelivery after a crash, or an event published twice) changes nothing.
-- The dedupe mark and the counts are one atomic step. Every key arrives in KEYS and all of them share the partition's
-- hash tag, so the call is valid in a cluster.
-- KEYS: the keys the parts touch, each once. ARGV[1..#KEYS]: each key's time to live in seconds (0: none).
-- Then per part: index of its dedupe set in KEYS (0: none, for operations that may repeat, such as PFADD), its member
-- ('{type}|{id}'), its operation count n,
-- then n x (operation, key index, member, amount) with operation 'z' ZINCRBY, 'n' INCRBY, 'p' PFADD, 'h' HINCRBY.
-- Returns one flag per part: 1 applied, 0 a duplicate (a part without a dedupe set answers 2: applied, but proves nothing).
local touched, flags = {}, {}
local i = #KEYS + 1
while i <= #ARGV do
  local seen, member, n = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  if seen == 0 or redis.call('SADD', KEYS[seen], member) == 1 then
    if seen > 0 then touched[seen] = true end
    for _ = 1, n do
      local op, k, m, amount = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
      if op == 'z' then redis.call('ZINCRBY', KEYS[k], amount, m)
      elseif op == 'n' then redis.call('INCRBY', KEYS[k], amount)
      elseif op == 'p' then redis.call('PFADD', KEYS[k], m)
      elseif op == 'h' then redis.call('HINCRBY', KEYS[k], m, amount)
      else return redis.error_reply('unknown operation ' .. op) end
      touched[k] = true
      i = i + 4
    end
    flags[#flags + 1] = seen == 0 and 2 or 1
  else
    i = i + 4 * n
    flags[#flags + 1] = 0
  end
end
for k in pairs(touched) do
  if ARGV[k] ~= '0' then redis.call('EXPIRE', KEYS[k], ARGV[k]) end
end
return flags
