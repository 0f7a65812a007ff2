-- window_lib.lua: the window algorithms' arithmetic, shared by window.lua
-- and check_all.lua (prepended after common.lua; not a script on its own).
-- See window.lua for the state format and why every step is exact. The
-- functions read ARGV[2] (the TTL margin) of the script that includes them.

-- A window algorithm's parameters and now's place in its windows:
-- {sliding, L, W, g, per_s = 1 s / g, Wg = W / g, client, k_now, e_now}.
local function window_setup(kind, L, W, g, per_s, Wg, now_s, now_lo, client)
  local p = { sliding = kind == 'sliding', L = L, W = W, g = g, per_s = per_s, Wg = Wg, client = client }
  local lo_q = idiv(now_lo, g)
  local N = now_s * per_s + lo_q
  if N + 2 * Wg >= LIMIT then
    error('ratelimit: now / gcd(W, 1 s) is beyond 2^53: the window arithmetic would not be exact')
  end
  p.k_now = idiv(N, Wg)
  p.e_now = (N - p.k_now * Wg) * g + (now_lo - lo_q * g)
  return p
end

-- Under a changed quota (docs/redis.md, "Changing quotas"): a call with a
-- tag spec (window.lua) has p.tag (the tag it stores: '' for the limiter's
-- first quota, 'v<n>' for its version n, 'q<L>x<W>' for a key's own
-- quota), p.version (the limiter's version n) and p.base (the oldest
-- version whose counts still hold: every change since has kept W). A
-- stored state `<counts>:<tag>` keeps its counts when its tag is p.tag, a
-- version s with p.base <= s <= n, or an own quota of the same W;
-- otherwise it is gone (a new W starts every key afresh). A state kept
-- under another tag is stored again under p.tag (KEEPTTL), one dropped is
-- deleted, so that a later change of W cannot bring old counts back. A
-- version above n, or any tag under a call without a spec, is an error:
-- the caller has not seen that change and must not decide the key with
-- an older quota (it reads the quota record and calls again).
-- Returns the untagged text to parse, or nil for a missing state.
local function window_classify(p, v)
  local body, tag = string.match(v, '^([%d:]+):(%a%w*)$')
  if not body then
    body, tag = v, ''
  end
  if p.tag == nil or tag == p.tag then
    if tag ~= (p.tag or '') then
      error('ratelimit: the state of this key was converted to another quota (' .. tag ..
        '); this call runs under the first quota')
    end
    return body, true, true
  end
  local s = string.match(tag, '^v(%d+)$')
  if tag == '' then
    s = '0'
  end
  if s then
    if #s > 15 or tonumber(s) > p.version then
      error('ratelimit: the state of this key was converted to another quota (' .. tag ..
        '); this call runs under ' .. (p.tag == '' and 'the first quota' or p.tag))
    end
    return body, tonumber(s) >= p.base, false
  end
  local w = string.match(tag, '^q%d+x(%d+)$')
  if not w then
    -- Not a tag of ours: corrupt, as any other unreadable text.
    return v, true, true
  end
  return body, #w <= 16 and tonumber(w) == p.W, false
end

-- Raises window_classify's error for any of `keys` before anything is
-- written (a batch: one key of a newer quota fails the call, and no key
-- before it is charged).
local function window_check_tags(p, keys)
  for i = 1, #keys do
    local v = redis.pcall('GET', keys[i])
    if type(v) == 'string' and #v <= 100 then
      window_classify(p, v)
    end
  end
end

local function window_untag(p, key, v)
  local body, keep, same = window_classify(p, v)
  if same then
    return body
  end
  if not keep then
    redis.call('DEL', key)
    return nil
  end
  if p.tag == '' then
    redis.call('SET', key, body, 'KEEPTTL')
  else
    redis.call('SET', key, body .. ':' .. p.tag, 'KEEPTTL')
  end
  return body
end

-- The state under `key` as (k, cur, prev, corrupt), viewed at now.
local function window_load(p, key)
  local v = redis.pcall('GET', key)
  if not v then
    return p.k_now, 0, 0, false
  end
  if type(v) == 'string' and #v <= 100 then
    v = window_untag(p, key, v)
    if not v then
      return p.k_now, 0, 0, false
    end
  end
  local sk, sc, sp
  if type(v) == 'string' and #v <= 50 then
    if p.sliding then
      sk, sc, sp = string.match(v, '^(%d+):(%d+):(%d+)$')
    else
      sk, sc = string.match(v, '^(%d+):(%d+)$')
      sp = '0'
    end
  end
  if not sk or #sk > 16 or #sc > 16 or #sp > 16 then
    return p.k_now, p.L, 0, true
  end
  local k, cur, prev = tonumber(sk), tonumber(sc), tonumber(sp)
  if k >= LIMIT or cur >= LIMIT or prev >= LIMIT then
    return p.k_now, p.L, 0, true
  end
  if k >= p.k_now then
    -- The current window, or a later one (time went backwards): it stands.
    return k, cur, prev, false
  end
  if p.sliding and k + 1 == p.k_now then
    return p.k_now, 0, cur, false
  end
  return p.k_now, 0, 0, false
end

-- Stores the state of window k, expiring at the start of window k + ahead
-- (rel ns from now).
local function window_save(p, key, k, cur, prev, ahead, rel)
  local text
  if p.sliding then
    text = string.format('%d:%d:%d', k, cur, prev)
  else
    text = string.format('%d:%d', k, cur)
  end
  if p.tag and p.tag ~= '' then
    text = text .. ':' .. p.tag
  end
  if p.client then
    redis.call('SET', key, text, 'PX', idiv(rel + 999999, 1000000) + tonumber(ARGV[2]))
  else
    -- (k + ahead) * p.W as (seconds, ns): M units of p.g.
    local M = (k + ahead) * p.Wg
    local s = idiv(M, p.per_s)
    local lo = (M - s * p.per_s) * p.g
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
local function window_decide(p, key, cost, dry)
  local k, cur, prev, corrupt = window_load(p, key)
  -- Window k starts d * p.W - p.e_now from now (d > 0 only when time went
  -- backwards); the view's time within it is e (0 in that case).
  local d = k - p.k_now
  local e = p.e_now
  if d > 0 then
    e = 0
  end
  local base = d * p.W - p.e_now
  local allowed, retry = 0, -1
  if p.sliding then
    local room = p.L - cur - cost
    local carried = prev * (p.W - e)
    if room >= 0 and carried <= room * p.W then
      allowed = 1
    else
      local wait = nil
      if prev > 0 and room >= 0 then
        local e1 = p.W - idiv(room * p.W, prev)
        if e1 < p.W then
          wait = floor0(base + e1)
        end
      end
      if not wait then
        local e2 = 0
        if cur > 0 then
          e2 = floor0(p.W - idiv((p.L - cost) * p.W, cur))
        end
        wait = floor0(base + p.W + e2)
      end
      retry = wait
    end
  else
    if cur + cost <= p.L then
      allowed = 1
    else
      retry = floor0(base + p.W)
    end
  end
  if allowed == 1 then
    cur = cur + cost
  end
  if not dry and ((allowed == 1 and cost > 0) or corrupt) then
    if p.sliding then
      window_save(p, key, k, cur, prev, 2, base + 2 * p.W)
    else
      window_save(p, key, k, cur, prev, 1, base + p.W)
    end
  end
  local remaining, reset = 0, 0
  if p.sliding then
    local room = p.L - cur
    if room > 0 then
      remaining = floor0(room - idiv(prev * (p.W - e) + p.W - 1, p.W))
    end
    if cur > 0 then
      reset = floor0(base + 2 * p.W)
    elseif prev > 0 then
      reset = floor0(base + p.W)
    end
  else
    remaining = floor0(p.L - cur)
    if cur > 0 then
      reset = floor0(base + p.W)
    end
  end
  local repaired = 0
  if corrupt then
    repaired = 1
  end
  local admitted = -1
  if allowed == 1 and cost > 0 then
    admitted = k
  end
  return { allowed, remaining, retry, reset, repaired, admitted }
end

-- Gives `cost` back off the count of window `k`: 1 when done, else 0.
local function window_refund(p, key, cost, k)
  local v = redis.pcall('GET', key)
  if type(v) ~= 'string' or #v > 50 then
    return 0
  end
  local sk, sc, sp
  if p.sliding then
    sk, sc, sp = string.match(v, '^(%d+):(%d+):(%d+)$')
  else
    sk, sc = string.match(v, '^(%d+):(%d+)$')
    sp = '0'
  end
  if not sk or #sk > 16 or #sc > 16 or #sp > 16 or cost <= 0 then
    return 0
  end
  sk, sc, sp = tonumber(sk), tonumber(sc), tonumber(sp)
  if p.sliding then
    if k + 1 < p.k_now then
      return 0
    end
    if sk == k and sc >= cost then
      sc = sc - cost
    elseif sk == k + 1 and sp >= cost then
      sp = sp - cost
    else
      return 0
    end
    redis.call('SET', key, string.format('%d:%d:%d', sk, sc, sp), 'KEEPTTL')
  else
    if sk ~= k or sk < p.k_now or sc < cost then
      return 0
    end
    redis.call('SET', key, string.format('%d:%d', sk, sc - cost), 'KEEPTTL')
  end
  return 1
end

