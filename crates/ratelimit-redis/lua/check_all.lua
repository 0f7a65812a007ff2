-- check_all.lua: one request against several limits, all or nothing
-- (docs/semantics.md, "Several limits on one request"): allowed only if
-- every limit allows it, and only then is any limit charged. One script run:
-- atomic, so no other call sees a transient charge.
--
-- KEYS[1..n]  the state keys, one per limit, all different; in a cluster,
--             all in one slot
-- ARGV[1..2]  now and TTL margin, as in common.lua
-- ARGV[3 + 7 * (i - 1) ..] for limit i, 7 slots: its kind, 5 parameters, its
--             cost:
--             'bucket', T, tau, '', '', ''        (check.lua's T and tau)
--             'fixed' or 'sliding', L, W, g, 1 s / g, W / g   (window.lua's)
--             cost: 0 <= cost; a cost above the limit never passes
--
-- Reply: 5 * n integers, for each limit in order: allowed (0/1), remaining,
--        retry_after_ns (-1: none), reset_after_ns, repaired (0/1). When the
--        request is denied nothing is charged, and a limit that would have
--        allowed it answers allowed = 1 with what it has left, untouched.
-- Time source: one reading of the server's TIME when ARGV[1] is empty, else
-- ARGV[1].
-- Writes: each limit's state as check.lua and window.lua write it, only
-- when every limit allows (and repairs of corrupt states in any case).

local now_s, now_lo, client = clock()
local n = #KEYS

-- Each limit: its parameters, and whether it would allow its cost now.
local limits = {}
local all = true
for i = 1, n do
  local at = 3 + 7 * (i - 1)
  local kind = ARGV[at]
  local cost = tonumber(ARGV[at + 6])
  local l = { kind = kind, cost = cost }
  if kind == 'bucket' then
    l.T, l.tau = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
    l.cap = l.tau / l.T
    if cost <= l.cap then
      local rel = load_rel(KEYS[i], now_s, now_lo, l.tau)
      local base = rel
      if base < 0 then
        base = 0
      end
      -- As in `police`: allowed iff new - tau <= 0 and new fits in u64 ns.
      l.fits = (base - l.tau) + cost * l.T <= 0 and absolute(base + cost * l.T, now_s, now_lo) ~= nil
    else
      l.fits = false
    end
  else
    l.p = window_setup(kind, tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]),
      tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5]), now_s, now_lo, client)
    l.cap = l.p.L
    l.fits = cost <= l.cap and window_decide(l.p, KEYS[i], cost, true)[1] == 1
  end
  if not l.fits then
    all = false
  end
  limits[i] = l
end

-- Charge every limit, or none: a limit that allows is then asked for a
-- cost of zero (what it has left, untouched), one that denies for its cost
-- (denied: nothing written); one whose cost is above its limit never
-- passes.
local reply = {}
for i = 1, n do
  local l = limits[i]
  local cost = l.cost
  if not all and (l.fits or cost > l.cap) then
    cost = 0
  end
  local d
  if l.kind == 'bucket' then
    d = { police(KEYS[i], cost, l.T, l.tau, now_s, now_lo, client) }
  else
    d = window_decide(l.p, KEYS[i], cost, false)
  end
  if l.cost > l.cap then
    d[1], d[3] = 0, -1
  end
  for j = 1, 5 do
    reply[#reply + 1] = d[j]
  end
end
return reply
