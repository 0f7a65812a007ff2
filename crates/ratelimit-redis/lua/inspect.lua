-- inspect.lua: read one key's state for operators (`ratelimit inspect`);
-- never writes.
--
-- KEYS[1]  the state key (prefix|key)
-- ARGV     none
--
-- Reply: {tat (decimal ns text, '' when the key is missing), pttl_ms
--         (-2 missing, -1 no expiry), server_seconds, server_microseconds}
-- Time source: the server's TIME, returned for the caller to compare.

local v = redis.call('GET', KEYS[1])
local t = redis.call('TIME')
return { v or '', redis.call('PTTL', KEYS[1]), t[1], t[2] }
