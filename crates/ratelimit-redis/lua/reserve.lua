-- reserve.lua: shaping, `reserve(key, cost, max_wait)` of docs/semantics.md.
--
-- KEYS[1]  the state key (prefix|key)
-- ARGV[1..4] the common arguments (common.lua): now, TTL margin, T, tau
-- ARGV[5]  'token' (borrow from the future) or 'leaky' (bounded queue)
-- ARGV[6]  cost, 0 <= cost <= C
-- ARGV[7]  max_wait in ns, '' for unbounded (the caller sends '' for any
--          max_wait >= 2^53, which no wait here can reach)
--
-- Reply: {allowed (0/1), wait_ns, retry_after_ns (-1: none), reset_after_ns,
--         tat}: the last slot is the text of the state this call stored
--         (the canonical decimal of the new tat in ns), '' when it stored
--         nothing; `cancel.lua` takes it to undo exactly this reservation.
-- Time source: the server's TIME when ARGV[1] is empty, else ARGV[1].
-- Writes: SET with PXAT (server time) or PX (client time) when admitted and
-- cost > 0; nothing otherwise.

local now_s, now_lo, client = clock()
local T, tau = tonumber(ARGV[3]), tonumber(ARGV[4])
local leaky = ARGV[5] == 'leaky'
local cost = tonumber(ARGV[6])
local max_wait = nil
if ARGV[7] ~= '' then
  max_wait = tonumber(ARGV[7])
end
local key = KEYS[1]

local rel = load_rel(key, now_s, now_lo)
local base = rel
if base < 0 then
  base = 0
end
local new = base + cost * T
local s, lo = nil, nil
if new <= LIMIT then
  s, lo = absolute(new, now_s, now_lo)
end
if not s then
  -- The state would not fit: refused, as the core does.
  return { 0, 0, -1, base, '' }
end

local wait, retry
if leaky then
  -- The request departs once the queue ahead of it has drained.
  wait = base
  local over_queue = new - tau
  if over_queue < 0 then
    over_queue = 0
  end
  local over_wait = 0
  if max_wait and wait > max_wait then
    over_wait = wait - max_wait
  end
  retry = math.max(over_queue, over_wait)
else
  wait = new - tau
  if wait < 0 then
    wait = 0
  end
  retry = 0
  if max_wait and wait > max_wait then
    retry = wait - max_wait
  end
end

if retry > 0 then
  return { 0, 0, retry, base, '' }
end
local stored = ''
if cost > 0 then
  stored = store(key, new, s, lo, client)
end
return { 1, wait, -1, new, stored }
