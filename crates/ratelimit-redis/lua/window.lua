-- window.lua: policing, `check(key, cost)` of docs/semantics.md ("Window
-- algorithms"), for the fixed window and the sliding window counter, for
-- one key or many (a batch), decided in order.
--
-- KEYS[1..n]  the state keys (prefix|key); in a cluster, all in one slot
-- ARGV[1..2]  now and TTL margin, as in common.lua
-- ARGV[3]     'fixed' or 'sliding', then optionally a mode: ' receipt' (a
--             refundable check: a sixth slot per key) or ' refund' (see
--             below)
-- ARGV[4]     L, the limit (1 <= L; L < 2^53, sliding: (L + 1) * W < 2^53)
-- ARGV[5]     W, the window in ns (fixed: W < 2^52)
-- ARGV[6]     g = gcd(W, 1 s) in ns, the unit of the window arithmetic
-- ARGV[7]     1 s / g
-- ARGV[8]     W / g
-- ARGV[8+i]   the cost for KEYS[i], 0 <= cost <= L
-- ARGV[9+n]   optional (not with ' refund'), under a changed quota: the
--             tag spec `<version> <base> <tag>` (see window_untag in
--             window_lib.lua); without it a tagged state is an error
--
-- Reply: 5 * n integers, for each key in order: allowed (0/1), remaining,
--        retry_after_ns (-1: none), reset_after_ns, repaired (0/1: the
--        stored state was corrupt and was rewritten as fully consumed);
--        mode ' receipt': 6 per key, the sixth the window index k the
--        admission counted in (-1 when nothing was admitted).
-- Mode ' refund': KEYS[1], ARGV[9] a cost and ARGV[10] the window index k of
--        its admission: takes the cost off that window's count (counts add
--        up: exact whatever was admitted since), while that window still
--        counts at now (fixed: it is the current one; sliding: the current
--        or the previous one). Reply: 1 when given back, 0 otherwise. The
--        key keeps its expiry (KEEPTTL).
-- Time source: one reading of the server's TIME for the whole call when
-- ARGV[1] is empty, else ARGV[1].
-- Writes: SET with PXAT (server time) or PX (client time) when allowed and
-- cost > 0, or when repairing a corrupt state; nothing otherwise. The key
-- expires exactly when it becomes equivalent to a missing key: a fixed
-- window at its window's end, a sliding window at the end of the next
-- window (after that both of its counts have slid out).
--
-- State text: 'k:count' (fixed), 'k:count:previous' (sliding), decimal:
-- the window index k = floor(now / W) of the last admission and its counts;
-- under a changed quota followed by ':' and the quota's tag ('v<n>',
-- 'q<L>x<W>').
--
-- Exactness: now is split as (seconds, ns) (common.lua). With g dividing
-- both W and 1 s, N = floor(now / g) = s * (1 s / g) + floor(ns / g) and
-- k = floor(N / (W / g)) = floor(now / W); e = now - k * W is
-- (N mod (W / g)) * g + (ns mod g). script.rs refuses windows whose N can
-- reach 2^53 under server time (gcd(W, 1 s) < 512 ns), and client times
-- that would; here N is checked once more. Every product is at most
-- (L + 1) * W < 2^53, so doubles hold it exactly.

local now_s, now_lo, client = clock()
local kind, mode = string.match(ARGV[3], '^(%a+) ?(%a*)$')
local p = window_setup(kind, tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7]), tonumber(ARGV[8]), now_s, now_lo, client)

if mode ~= 'refund' and ARGV[9 + #KEYS] then
  local n, base, tag = string.match(ARGV[9 + #KEYS], '^(%d+) (%d+) (%w*)$')
  if not n then
    error('ratelimit: a window tag spec is `<version> <base> <tag>`')
  end
  p.version, p.base, p.tag = tonumber(n), tonumber(base), tag
end
if mode == 'refund' then
  return window_refund(p, KEYS[1], tonumber(ARGV[9]), tonumber(ARGV[10]))
end
local slots = 5
if mode == 'receipt' then
  slots = 6
end
if #KEYS == 1 then
  local answer = window_decide(p, KEYS[1], tonumber(ARGV[9]), false)
  if slots == 5 then
    answer[6] = nil
  end
  return answer
end
window_check_tags(p, KEYS)
local reply = {}
for i = 1, #KEYS do
  local answer = window_decide(p, KEYS[i], tonumber(ARGV[8 + i]), false)
  for j = 1, slots do
    reply[#reply + 1] = answer[j]
  end
end
return reply
