-- extend.lua: one step of a walk over a prefix's state keys after a change
-- of quota, raising each key's expiry to at least ARGV[3] ms, so that no
-- state expires before the state it converts to would (a change can make a
-- state last longer than the expiry it was written with). Standalone Redis
-- only: the keys come from SCAN, not from KEYS.
--
-- KEYS     none
-- ARGV[1]  the SCAN cursor ('0' to start)
-- ARGV[2]  the MATCH pattern (`<prefix>|*`, glob characters escaped)
-- ARGV[3]  the least expiry, in milliseconds
-- ARGV[4]  the SCAN COUNT hint
--
-- Reply: the next cursor ('0' when the walk is done).
-- Time source: none (PTTL and PEXPIRE are relative to the server's clock).
-- Writes: PEXPIRE on keys whose expiry is sooner than ARGV[3] ms; keys
--         without an expiry (none of ours) are left alone.

local step = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[4])
local least = tonumber(ARGV[3])
for _, key in ipairs(step[2]) do
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 and ttl < least then
    redis.call('PEXPIRE', key, least)
  end
end
return step[1]
