-- gcra.lua: the GCRA helpers of the bucket scripts (check, check_batch,
-- reserve, cancel, check_all), prepended after common.lua by script.rs; not
-- a script on its own. The window scripts do without them (less to set up
-- on every call).
--
-- Quota versions (docs/redis.md, "Changing quotas"): a state stored under a
-- quota other than the limiter's first one carries a tag, `tat:tag`, where
-- tag is `v<n>` (version n of the limiter's quota) or `q<C>x<T>` (a key's
-- own quota of capacity C and interval T ns). `TAG` is the tag the caller
-- decides under ('' = none: the limiter's first quota, the plain `tat`
-- form). check.lua and reserve.lua set it from their ARGV and bring a state
-- of another tag to it first (`adopt`); every other script leaves it ''
-- and refuses a tagged state with an error rather than misread it.
local TAG = ''

-- A stored text as (tat text, tag): `tat:tag` or the plain `tat`.
local function untag(v)
  local i = string.find(v, ':', 1, true)
  if i then
    return string.sub(v, 1, i - 1), string.sub(v, i + 1)
  end
  return v, ''
end

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
  if type(v) == 'string' then
    local text, tag = untag(v)
    if tag ~= TAG then
      error('ratelimit: the state of this key was converted to another quota (' .. tag ..
        '); this call runs under ' .. (TAG == '' and 'the first quota' or TAG))
    end
    v = text
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
  if lo < NS then
    -- Within now's second (the usual case): no carry to divide out.
    if now_s > MAX_S or (now_s == MAX_S and lo > MAX_LO) then
      return nil
    end
    return now_s, lo
  end
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
  if TAG ~= '' then
    text = text .. ':' .. TAG
  end
  if client then
    redis.call('SET', key, text, 'PX', idiv(rel + 999999, 1000000) + tonumber(ARGV[2]))
  else
    -- ceil(lo / 10^6) in one division: exact for 0 <= lo < 10^9 (a
    -- quotient at least 10^-6 above an integer stays above it in doubles).
    redis.call('SET', key, text, 'PXAT', s * 1000 + math.ceil(lo / 1000000))
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

-- check(key, cost): policing. Returns allowed, remaining, retry_after,
-- reset_after, repaired, stored (six values, no table: a batch copies them
-- straight into its reply): `stored` is the text of the state this call
-- stored ('' when it stored none), the receipt of a refundable check.
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
  return allowed, remaining, retry, state, repaired, stored
end

-- Brings the state under `key` to the caller's quota `TAG` (check.lua and
-- reserve.lua): returns nil to go on deciding, or the reply
-- {'convert', stored text, now} asking the caller to convert that state
-- (the Rust side converts exactly, change by change, in u128) and to send
-- the call again with `expected` = that text and `converted` = the
-- result. The converted state is written only while the key still holds
-- `expected` (compare and set), so a state changed in between is never
-- overwritten: the caller is asked again. A missing key, or one that is
-- not a string (corrupt: `load_rel` repairs it), needs no conversion.
local function adopt(key, expected, converted, now_s, now_lo, client)
  local v = redis.pcall('GET', key)
  if type(v) ~= 'string' then
    return nil
  end
  local _, tag = untag(v)
  if tag == TAG then
    return nil
  end
  if expected == nil or expected == '' or v ~= expected then
    local now
    if now_s > 0 then
      now = string.format('%d%09d', now_s, now_lo)
    else
      now = string.format('%d', now_lo)
    end
    return { 'convert', v, now }
  end
  local text, new_tag = untag(converted or '')
  local s, lo = split(text)
  if not s or new_tag ~= TAG then
    error('ratelimit: the converted state must be decimal nanoseconds tagged ' .. TAG)
  end
  local ds = s - now_s
  if ds < -9007198 then
    redis.call('DEL', key)
    return nil
  end
  local rel = LIMIT + 1
  if ds <= 9007199 then
    rel = ds * NS + (lo - now_lo)
  end
  if rel <= 0 then
    -- Back to the initial state: the same as a missing key.
    redis.call('DEL', key)
  elseif rel > LIMIT then
    -- Beyond the horizon (2^53 ns, about 104 days, ahead): stored at the
    -- horizon, refusing everything for as long as the scripts can count.
    local rs, rlo = absolute(LIMIT, now_s, now_lo)
    if rs then
      store(key, LIMIT, rs, rlo, client)
    else
      redis.call('DEL', key)
    end
  else
    store(key, rel, s, lo, client)
  end
  return nil
end
