-- common.lua: the helpers every script of ratelimit-redis starts with
-- (prepended by script.rs; not a script on its own): time and exact integer
-- arithmetic. The bucket scripts add gcra.lua, the window scripts
-- window_lib.lua.
--
-- Units: nanoseconds, as in docs/semantics.md. A stored state is the decimal text
-- of `tat` (nanoseconds since the epoch of the clock in use). Lua numbers are
-- doubles, exact only below 2^53, and `tat` since 1970 is about 2^61: so an
-- absolute time is always handled as two exact parts, whole seconds and
-- nanoseconds within the second, and every GCRA quantity is taken relative to
-- `now` (`tat - now`, `T`, `tau`, waits), where it is far below 2^53.
-- script.rs refuses quotas with tau >= 2^53 ns (about 104 days). No script
-- writes a state more than 2^53 ns ahead of its `now` (the horizon): one
-- found beyond it is corrupt, like a value that is not a decimal state, and
-- is rewritten as fully consumed (see `load_rel` and `settle`).
--
-- Common ARGV of every script:
--   ARGV[1] now: '' = the server's TIME (microseconds), or the caller's time
--           as decimal nanoseconds (client time)
--   ARGV[2] TTL margin in milliseconds added under client time
--   ARGV[3] T, the emission interval in ns   (1 <= T < 2^53)
--   ARGV[4] tau = C * T in ns                 (T <= tau < 2^53)
-- Reply integers: -1 stands for "none" (retry_after: None); `repaired` is 1
-- when the stored state was corrupt and was rewritten as fully consumed.

local LIMIT = 9007199254740992 -- 2^53
local NS = 1000000000
local MAX_S, MAX_LO = 18446744073, 709551615 -- u64::MAX ns as (s, ns)

-- A decimal nanosecond text as (seconds, nanoseconds), or nil.
local function split(text)
  if type(text) ~= 'string' or #text == 0 or #text > 20 or string.find(text, '%D') then
    return nil
  end
  if #text <= 9 then
    return 0, tonumber(text)
  end
  return tonumber(string.sub(text, 1, -10)), tonumber(string.sub(text, -9))
end

-- floor(a / b), exact for integers 0 <= a, 0 < b below 2^53.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

-- The clock: now as (seconds, nanoseconds) and whether it is the caller's.
local function clock()
  if ARGV[1] == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]), tonumber(t[2]) * 1000, false
  end
  local s, lo = split(ARGV[1])
  if not s then
    error('ratelimit: ARGV[1] must be empty or decimal nanoseconds')
  end
  return s, lo, true
end
