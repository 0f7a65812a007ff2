-- quota.lua: the quota record of a prefix, `<prefix>#quota`: the list of
-- the bucket quota's changes, oldest first (entry n is version n + 1), each
-- `<capacity> <interval_ns> <strategy> <at_ns>`. Every limiter on the
-- prefix appends its changes here and reloads the ones it has not seen
-- (docs/redis.md, "Changing quotas").
--
-- KEYS[1]  the record (prefix#quota)
-- ARGV[1]  the version the caller is at (how many changes it knows)
-- ARGV[2]  a change to append ('' to only read)
--
-- Reply: {1} when the change was appended (the caller's version was the
--        record's: the change is version ARGV[1] + 1); else {0, the
--        entries from version ARGV[1] + 1 on} (the caller is behind, or
--        only read): the caller adopts them and, to append, tries again.
-- Time source: none (the change's time is in the entry).
-- Writes: RPUSH when appending; nothing otherwise.

local known = tonumber(ARGV[1])
local len = redis.call('LLEN', KEYS[1])
if ARGV[2] ~= '' and len == known then
  redis.call('RPUSH', KEYS[1], ARGV[2])
  return { 1 }
end
local reply = { 0 }
if len > known then
  for _, e in ipairs(redis.call('LRANGE', KEYS[1], known, -1)) do
    reply[#reply + 1] = e
  end
end
return reply
