-- gcra.lua: the GCRA helpers of the bucket scripts (check, check_batch,
-- reserve, cancel, check_all), prepended after common.lua by script.rs; not
-- a script on its own. The window scripts do without them (less to set up
-- on every call).

-- The state under `key` as (tat - now, corrupt). tat - now is exact when
-- below 2^53 in magnitude; a state 2^53 ns or more in the past is read as
-- -2^53 (equivalent to a missing key, which has tat = 0). A corrupt state
-- reads as fully consumed (tat - now = tau) with corrupt = true, and the
-- caller rewrites it so (see `settle`): a value that is not a decimal
-- state, a key of another type (GET fails), or a tat more than 2^53 ns
-- ahead of now, which no script ever writes (the horizon).
local function load_rel(key, now_s, now_lo, tau)
  local v = redis.pcall('GET', key)
  if not v then
    return -LIMIT, false
  end
  local s, lo = split(v)
  if not s then
    return tau, true
  end
  local ds = s - now_s
  if ds > 9007199 then
    return tau, true
  elseif ds < -9007198 then
    return -LIMIT, false
  end
  local rel = ds * NS + (lo - now_lo)
  if rel > LIMIT then
    return tau, true
  end
  return rel, false
end

-- now + rel as (seconds, nanoseconds), or nil when past u64::MAX ns
-- (0 < rel <= 2^53).
local function absolute(rel, now_s, now_lo)
  local lo = now_lo + rel
  local carry = idiv(lo, NS)
  local s = now_s + carry
  lo = lo - carry * NS
  if s > MAX_S or (s == MAX_S and lo > MAX_LO) then
    return nil
  end
  return s, lo
end

-- Stores tat = (s, lo) = now + rel (0 < rel), expiring exactly when it
-- becomes equivalent to a missing key: server time: at the first
-- millisecond at or after tat (PXAT, the server's clock); client time: after
-- rel rounded up to a millisecond plus the margin (PX), since the server
-- cannot know when the caller's clock will pass tat. Returns the text
-- stored (the canonical decimal of tat).
local function store(key, rel, s, lo, client)
  local text
  if s > 0 then
    text = string.format('%d%09d', s, lo)
  else
    text = string.format('%d', lo)
  end
  if client then
    redis.call('SET', key, text, 'PX', idiv(rel + 999999, 1000000) + tonumber(ARGV[2]))
  else
    redis.call('SET', key, text, 'PXAT', s * 1000 + idiv(lo + 999999, 1000000))
  end
  return text
end

-- Writes what a call decided: the admitted state (admitted, cost > 0),
-- else the repaired one when the stored state was corrupt (fully consumed,
-- tat = now + tau, expiring as any state does: it heals within tau). Returns
-- the text stored, or '' when nothing was stored.
local function settle(key, admitted, new, s, lo, corrupt, tau, now_s, now_lo, client)
  if admitted then
    return store(key, new, s, lo, client)
  end
  if corrupt then
    local rs, rlo = absolute(tau, now_s, now_lo)
    if rs then
      store(key, tau, rs, rlo, client)
    else
      redis.call('DEL', key)
    end
  end
  return ''
end

-- check(key, cost): policing. Returns {allowed, remaining, retry_after,
-- reset_after, repaired, stored}: `stored` is the text of the state this
-- call stored ('' when it stored none), the receipt of a refundable check.
local function police(key, cost, T, tau, now_s, now_lo, client)
  local rel, corrupt = load_rel(key, now_s, now_lo, tau)
  local base = rel
  if base < 0 then
    base = 0
  end
  -- new - tau, exact: base <= 2^53 and cost * T <= tau < 2^53, so it is at
  -- most base; new itself is only formed when it is at most tau.
  local over = (base - tau) + cost * T
  local allowed, state, retry = 0, base, over
  local s, lo = nil, nil
  if over <= 0 then
    s, lo = absolute(base + cost * T, now_s, now_lo)
    if s then
      allowed, state, retry = 1, base + cost * T, -1
    else
      -- The state would pass u64::MAX ns: refused, as the core does.
      retry = -1
    end
  end
  local stored = settle(key, allowed == 1 and cost > 0, state, s, lo, corrupt, tau, now_s, now_lo, client)
  local remaining = 0
  if state < tau then
    remaining = idiv(tau - state, T)
  end
  local repaired = 0
  if corrupt then
    repaired = 1
  end
  return { allowed, remaining, retry, state, repaired, stored }
end
