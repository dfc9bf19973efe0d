-- Settles a batch on the stream once every partition has applied its counts: invalid entries are copied to the
-- dead-letter stream with their reason, and every entry of the batch is acknowledged, in one atomic step. Both keys
-- share the stream's hash tag.
-- KEYS[1] stream, KEYS[2] dead-letter stream. ARGV[1] consumer group, ARGV[2] dead-letter max length,
-- ARGV[3] number of dead entries D, then D x (entry id, reason), then the ids of the other entries.
local dead = tonumber(ARGV[3])
local acks = {}
local i = 4
for _ = 1, dead do
  local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  local fields = entry[1] and entry[1][2] or {}
  table.insert(fields, 'reason'); table.insert(fields, ARGV[i + 1])
  table.insert(fields, 'entry'); table.insert(fields, ARGV[i])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
  acks[#acks + 1] = ARGV[i]
  i = i + 2
end
for j = i, #ARGV do acks[#acks + 1] = ARGV[j] end
for j = 1, #acks, 1000 do
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acks, j, math.min(j + 999, #acks)))
end
return #acks
