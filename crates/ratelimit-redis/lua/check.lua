-- check.lua: policing, `check(key, cost)` of docs/semantics.md, for one key.
--
-- KEYS[1]  the state key (prefix|key)
-- ARGV[1..4] the common arguments (common.lua): now, TTL margin, T, tau
-- ARGV[5]  cost, 0 <= cost <= C (a cost above C never reaches Redis)
-- ARGV[6]  optional: '1' for a refundable check (the reply's sixth slot)
--
-- Reply: {allowed (0/1), remaining, retry_after_ns (-1: none), reset_after_ns,
--         repaired (0/1: the stored state was corrupt and was rewritten as
--         fully consumed)}, and with ARGV[6] = '1' a sixth slot: the text
--         of the state this call stored ('' when none), which `cancel.lua`
--         takes to refund exactly this admission.
-- Time source: the server's TIME when ARGV[1] is empty, else ARGV[1].
-- Writes: SET with PXAT (server time) or PX (client time) when allowed and
-- cost > 0, or when repairing a corrupt state; nothing otherwise.

local now_s, now_lo, client = clock()
local d = police(KEYS[1], tonumber(ARGV[5]), tonumber(ARGV[3]), tonumber(ARGV[4]), now_s, now_lo, client)
if ARGV[6] == '1' then
  return d
end
return { d[1], d[2], d[3], d[4], d[5] }
