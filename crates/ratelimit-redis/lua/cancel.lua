-- cancel.lua: undoes one admitted reservation of `reserve.lua`, or one
-- admission of a refundable `check.lua`, exactly, if nothing has changed the
-- key since (the async limiter's `acquire` calls it when its caller gives up
-- before the wait is over; `refund` calls it with a check's receipt).
--
-- KEYS[1]  the state key (prefix|key)
-- ARGV[1..4] the common arguments (common.lua): now, TTL margin, T, tau
-- ARGV[5]  the state text the reservation stored (reserve.lua's last slot)
-- ARGV[6]  the reservation's cost, 0 < cost <= C
--
-- Reply: 1 when the reservation was undone, 0 when the key no longer holds
-- ARGV[5] (another admission, an expiry or a restart came in between: the
-- state is left alone, so a cancel can never return capacity twice).
-- Time source: the server's TIME when ARGV[1] is empty, else ARGV[1] (only
-- for the expiry of the restored state).
-- Writes: SET with PXAT (server time) or PX (client time) of
-- tat - cost * T when that is still ahead of now, DEL otherwise (a state at
-- or before now is equivalent to a missing key).
--
-- Exactness: the reservation stored tat' = max(tat, now_r) + cost * T, so
-- tat' - cost * T = max(tat, now_r): the previous state when it was ahead of
-- the reservation's now, else a time already past, equivalent to the
-- previous state. Every admission moves tat strictly forward, so the key
-- still holding tat' means no admission happened in between.

local now_s, now_lo, client = clock()
local T = tonumber(ARGV[3])
local key = KEYS[1]
local expected = ARGV[5]
local cost = tonumber(ARGV[6])
if redis.call('GET', key) ~= expected then
  return 0
end
local s, lo = split(expected)
if not s then
  error('ratelimit: ARGV[5] must be a decimal state')
end
-- (s, lo) - cost * T, with cost * T <= tau < 2^53 exact.
local back = cost * T
local back_s = idiv(back, NS)
s = s - back_s
lo = lo - (back - back_s * NS)
if lo < 0 then
  lo = lo + NS
  s = s - 1
end
local ds = s - now_s
local rel
if s < 0 or ds < -9007198 then
  rel = -LIMIT
elseif ds > 9007198 then
  rel = LIMIT
else
  rel = ds * NS + (lo - now_lo)
end
if rel <= 0 then
  redis.call('DEL', key)
else
  store(key, rel, s, lo, client)
end
return 1
