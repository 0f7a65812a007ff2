-- window.lua: policing, `check(key, cost)` of docs/semantics.md ("Window
-- algorithms"), for the fixed window and the sliding window counter, for
-- one key or many (a batch), decided in order.
--
-- KEYS[1..n]  the state keys (prefix|key); in a cluster, all in one slot
-- ARGV[1..2]  now and TTL margin, as in common.lua
-- ARGV[3]     'fixed' or 'sliding'
-- ARGV[4]     L, the limit (1 <= L; L < 2^53, sliding: (L + 1) * W < 2^53)
-- ARGV[5]     W, the window in ns (fixed: W < 2^52)
-- ARGV[6]     g = gcd(W, 1 s) in ns, the unit of the window arithmetic
-- ARGV[7]     1 s / g
-- ARGV[8]     W / g
-- ARGV[8+i]   the cost for KEYS[i], 0 <= cost <= L
--
-- Reply: 5 * n integers, for each key in order: allowed (0/1), remaining,
--        retry_after_ns (-1: none), reset_after_ns, repaired (0/1: the
--        stored state was corrupt and was rewritten as fully consumed)
-- Time source: one reading of the server's TIME for the whole call when
-- ARGV[1] is empty, else ARGV[1].
-- Writes: SET with PXAT (server time) or PX (client time) when allowed and
-- cost > 0, or when repairing a corrupt state; nothing otherwise. The key
-- expires exactly when it becomes equivalent to a missing key: a fixed
-- window at its window's end, a sliding window at the end of the next
-- window (after that both of its counts have slid out).
--
-- State text: 'k:count' (fixed), 'k:count:previous' (sliding), decimal:
-- the window index k = floor(now / W) of the last admission and its counts.
--
-- Exactness: now is split as (seconds, ns) (common.lua). With g dividing
-- both W and 1 s, N = floor(now / g) = s * (1 s / g) + floor(ns / g) and
-- k = floor(N / (W / g)) = floor(now / W); e = now - k * W is
-- (N mod (W / g)) * g + (ns mod g). script.rs refuses windows whose N can
-- reach 2^53 under server time (gcd(W, 1 s) < 512 ns), and client times
-- that would; here N is checked once more. Every product is at most
-- (L + 1) * W < 2^53, so doubles hold it exactly.

local now_s, now_lo, client = clock()
local sliding = ARGV[3] == 'sliding'
local L, W = tonumber(ARGV[4]), tonumber(ARGV[5])
local g, per_s, Wg = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

local lo_q = idiv(now_lo, g)
local N = now_s * per_s + lo_q
if N + 2 * Wg >= LIMIT then
  error('ratelimit: now / gcd(W, 1 s) is beyond 2^53: the window arithmetic would not be exact')
end
local k_now = idiv(N, Wg)
local e_now = (N - k_now * Wg) * g + (now_lo - lo_q * g)

-- The state under `key` as (k, cur, prev, corrupt), viewed at now.
local function load(key)
  local v = redis.pcall('GET', key)
  if not v then
    return k_now, 0, 0, false
  end
  local sk, sc, sp
  if type(v) == 'string' and #v <= 50 then
    if sliding then
      sk, sc, sp = string.match(v, '^(%d+):(%d+):(%d+)$')
    else
      sk, sc = string.match(v, '^(%d+):(%d+)$')
      sp = '0'
    end
  end
  if not sk or #sk > 16 or #sc > 16 or #sp > 16 then
    return k_now, L, 0, true
  end
  local k, cur, prev = tonumber(sk), tonumber(sc), tonumber(sp)
  if k >= LIMIT or cur >= LIMIT or prev >= LIMIT then
    return k_now, L, 0, true
  end
  if k >= k_now then
    -- The current window, or a later one (time went backwards): it stands.
    return k, cur, prev, false
  end
  if sliding and k + 1 == k_now then
    return k_now, 0, cur, false
  end
  return k_now, 0, 0, false
end

-- Stores the state of window k, expiring at the start of window k + ahead
-- (rel ns from now).
local function save(key, k, cur, prev, ahead, rel)
  local text
  if sliding then
    text = string.format('%d:%d:%d', k, cur, prev)
  else
    text = string.format('%d:%d', k, cur)
  end
  if client then
    redis.call('SET', key, text, 'PX', idiv(rel + 999999, 1000000) + tonumber(ARGV[2]))
  else
    -- (k + ahead) * W as (seconds, ns): M units of g.
    local M = (k + ahead) * Wg
    local s = idiv(M, per_s)
    local lo = (M - s * per_s) * g
    redis.call('SET', key, text, 'PXAT', s * 1000 + idiv(lo + 999999, 1000000))
  end
end

local function floor0(x)
  if x < 0 then
    return 0
  end
  return x
end

-- check(key, cost) of one key: {allowed, remaining, retry, reset, repaired}.
local function decide(key, cost)
  local k, cur, prev, corrupt = load(key)
  -- Window k starts d * W - e_now from now (d > 0 only when time went
  -- backwards); the view's time within it is e (0 in that case).
  local d = k - k_now
  local e = e_now
  if d > 0 then
    e = 0
  end
  local base = d * W - e_now
  local allowed, retry = 0, -1
  if sliding then
    local room = L - cur - cost
    local carried = prev * (W - e)
    if room >= 0 and carried <= room * W then
      allowed = 1
    else
      local wait = nil
      if prev > 0 and room >= 0 then
        local e1 = W - idiv(room * W, prev)
        if e1 < W then
          wait = floor0(base + e1)
        end
      end
      if not wait then
        local e2 = 0
        if cur > 0 then
          e2 = floor0(W - idiv((L - cost) * W, cur))
        end
        wait = floor0(base + W + e2)
      end
      retry = wait
    end
  else
    if cur + cost <= L then
      allowed = 1
    else
      retry = floor0(base + W)
    end
  end
  if allowed == 1 then
    cur = cur + cost
  end
  if (allowed == 1 and cost > 0) or corrupt then
    if sliding then
      save(key, k, cur, prev, 2, base + 2 * W)
    else
      save(key, k, cur, prev, 1, base + W)
    end
  end
  local remaining, reset = 0, 0
  if sliding then
    local room = L - cur
    if room > 0 then
      remaining = floor0(room - idiv(prev * (W - e) + W - 1, W))
    end
    if cur > 0 then
      reset = floor0(base + 2 * W)
    elseif prev > 0 then
      reset = floor0(base + W)
    end
  else
    remaining = floor0(L - cur)
    if cur > 0 then
      reset = floor0(base + W)
    end
  end
  local repaired = 0
  if corrupt then
    repaired = 1
  end
  return { allowed, remaining, retry, reset, repaired }
end

local reply = {}
for i = 1, #KEYS do
  local answer = decide(KEYS[i], tonumber(ARGV[8 + i]))
  for j = 1, 5 do
    reply[#reply + 1] = answer[j]
  end
end
return reply
