-- time.lua: the server's clock, the time of a quota change made under the
-- server's time (`RedisLimiter::reconfigure`); never writes.
--
-- KEYS     none
-- ARGV     none
--
-- Reply: {seconds, microseconds} as TIME answers them.
-- Time source: the server's TIME.

return redis.call('TIME')
