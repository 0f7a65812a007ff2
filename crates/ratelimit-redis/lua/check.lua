-- check.lua: policing, `check(key, cost)` of docs/semantics.md, for one key.
--
-- KEYS[1]  the state key (prefix|key)
-- ARGV[1..4] the common arguments (common.lua): now, TTL margin, T, tau
-- ARGV[5]  cost, 0 <= cost <= C (a cost above C never reaches Redis)
-- ARGV[6]  optional: '1' for a refundable check (the reply's sixth slot)
-- ARGV[7]  optional: the quota tag the call decides under (gcra.lua, `TAG`;
--          '' or absent: the limiter's first quota, the fast path)
-- ARGV[8]  optional: the stored text the caller converted ('' for none)
-- ARGV[9]  optional: its conversion to ARGV[7], written only while the key
--          still holds ARGV[8] (see `adopt`)
--
-- Reply: {allowed (0/1), remaining, retry_after_ns (-1: none), reset_after_ns,
--         repaired (0/1: the stored state was corrupt and was rewritten as
--         fully consumed)}, and with ARGV[6] = '1' a sixth slot: the text
--         of the state this call stored ('' when none), which `cancel.lua`
--         takes to refund exactly this admission.
-- Or, when the key holds a state of another tag than ARGV[7] (and not
-- ARGV[8]): {'convert', stored text, now}, having decided and written
-- nothing: the caller converts and calls again.
-- Time source: the server's TIME when ARGV[1] is empty, else ARGV[1].
-- Writes: SET with PXAT (server time) or PX (client time) when allowed and
-- cost > 0, or when repairing a corrupt state; nothing otherwise.

local now_s, now_lo, client = clock()
TAG = ARGV[7] or ''
if TAG ~= '' or ARGV[8] then
  local ask = adopt(KEYS[1], ARGV[8], ARGV[9], now_s, now_lo, client)
  if ask then
    return ask
  end
end
local allowed, remaining, retry, reset, repaired, stored =
  police(KEYS[1], tonumber(ARGV[5]), tonumber(ARGV[3]), tonumber(ARGV[4]), now_s, now_lo, client)
if ARGV[6] == '1' then
  return { allowed, remaining, retry, reset, repaired, stored }
end
return { allowed, remaining, retry, reset, repaired }
