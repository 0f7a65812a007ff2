-- reserve.lua: shaping, `reserve(key, cost, max_wait)` of docs/semantics.md.
--
-- KEYS[1]  the state key (prefix|key)
-- ARGV[1..4] the common arguments (common.lua): now, TTL margin, T, tau
-- ARGV[5]  'token' (borrow from the future) or 'leaky' (bounded queue)
-- ARGV[6]  cost, 0 <= cost <= C
-- ARGV[7]  max_wait in ns, '' for unbounded (the caller sends '' for any
--          max_wait >= 2^53, which no wait here can reach)
-- ARGV[8..10] optional: the quota tag, the stored text converted and its
--          conversion, as ARGV[7..9] of check.lua
--
-- Reply: {allowed (0/1), wait_ns, retry_after_ns (-1: none), reset_after_ns,
--         repaired (0/1), tat}: the last slot is the text of the state this
--         call stored (the canonical decimal of the new tat in ns), '' when
--         it stored nothing; `cancel.lua` takes it to undo exactly this
--         reservation. `repaired` as in check.lua.
-- Or {'convert', stored text, now}, as check.lua answers.
-- Time source: the server's TIME when ARGV[1] is empty, else ARGV[1].
-- Writes: SET with PXAT (server time) or PX (client time) when admitted and
-- cost > 0, or when repairing a corrupt state; nothing otherwise.

local now_s, now_lo, client = clock()
local T, tau = tonumber(ARGV[3]), tonumber(ARGV[4])
local leaky = ARGV[5] == 'leaky'
local cost = tonumber(ARGV[6])
local max_wait = nil
if ARGV[7] ~= '' then
  max_wait = tonumber(ARGV[7])
end
local key = KEYS[1]
TAG = ARGV[8] or ''
if TAG ~= '' or ARGV[9] then
  local ask = adopt(key, ARGV[9], ARGV[10], now_s, now_lo, client)
  if ask then
    return ask
  end
end

local rel, corrupt = load_rel(key, now_s, now_lo, tau)
local repaired = 0
if corrupt then
  repaired = 1
end
local base = rel
if base < 0 then
  base = 0
end
-- new - tau, exact (see `police`).
local over = (base - tau) + cost * T

local wait, retry
if leaky then
  -- The request departs once the queue ahead of it has drained.
  wait = base
  local over_queue = over
  if over_queue < 0 then
    over_queue = 0
  end
  local over_wait = 0
  if max_wait and wait > max_wait then
    over_wait = wait - max_wait
  end
  retry = math.max(over_queue, over_wait)
else
  wait = over
  if wait < 0 then
    wait = 0
  end
  retry = 0
  if max_wait and wait > max_wait then
    retry = wait - max_wait
  end
end

local s, lo = nil, nil
if retry == 0 and over <= LIMIT - tau then
  s, lo = absolute(base + cost * T, now_s, now_lo)
end
if retry > 0 or not s then
  settle(key, false, 0, nil, nil, corrupt, tau, now_s, now_lo, client)
  if retry > 0 then
    return { 0, 0, retry, base, repaired, '' }
  end
  -- The state would not fit (beyond 2^53 ns ahead, or past u64::MAX ns):
  -- refused, as the core does at the end of time.
  return { 0, 0, -1, base, repaired, '' }
end
local new = base + cost * T
local stored = settle(key, cost > 0, new, s, lo, corrupt, tau, now_s, now_lo, client)
return { 1, wait, -1, new, repaired, stored }
