-- inspect.lua: read one key's state for operators (`ratelimit inspect`);
-- never writes.
--
-- KEYS[1]  the state key (prefix|key)
-- ARGV     none
--
-- Reply: {tat (the stored text, '' when the key is missing or not a string),
--         pttl_ms (-2 missing, -1 no expiry), server_seconds,
--         server_microseconds, type (TYPE: 'string', 'none', or another type,
--         which makes the state corrupt)}
-- Time source: the server's TIME, returned for the caller to compare.

local kind = redis.call('TYPE', KEYS[1])['ok']
local v = ''
if kind == 'string' then
  v = redis.call('GET', KEYS[1])
end
local t = redis.call('TIME')
return { v, redis.call('PTTL', KEYS[1]), t[1], t[2], kind }
