-- check_batch.lua: `check(key, cost)` for many keys in one round trip,
-- decided in order (a key given twice sees its first decision).
--
-- KEYS[1..n]  the state keys (prefix|key); in a cluster, all in one slot
-- ARGV[1..4]  the common arguments (common.lua): now, TTL margin, T, tau
-- ARGV[4+i]   the cost for KEYS[i], 0 <= cost <= C
--
-- Reply: 5 * n integers, for each key in order: allowed (0/1), remaining,
--        retry_after_ns (-1: none), reset_after_ns, repaired (0/1)
-- Time source: one reading of the server's TIME for the whole batch when
-- ARGV[1] is empty, else ARGV[1].

local now_s, now_lo, client = clock()
local T, tau = tonumber(ARGV[3]), tonumber(ARGV[4])
local reply = {}
local n = 0
for i = 1, #KEYS do
  -- A running count, not `#reply` (a length search per slot), and the
  -- decision's values straight into the reply (no table per key).
  reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4], reply[n + 5] =
    police(KEYS[i], tonumber(ARGV[4 + i]), T, tau, now_s, now_lo, client)
  n = n + 5
end
return reply
