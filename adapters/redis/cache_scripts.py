"""The cache's Lua scripts (adapters/redis/cache.py says how they are used),
and the budget that bounds what one workspace keeps cached.

A workspace's documents are as many as its members write, and every read of
one fills the cache: without a bound, reading them all would hold them all in
Redis for their TTL, and a full `noeviction` Redis refuses every tenant's
writes. So every fill is charged to its workspace, in three keys beside its
values (the same hash tag, so one script over them works on Redis Cluster):

    keel:{ws:<uuid>}:cache-ledger   sorted set: value key → when it expires (ms)
    keel:{ws:<uuid>}:cache-bytes    hash: value key → the bytes it is charged
    keel:{ws:<uuid>}:cache-total    the sum of those charges

A fill prunes the ledger of what expired (by Redis' own clock), and stores
only if the workspace's total stays within its budget; over it, the read is
answered from Postgres, uncached. A value stays charged until it expires,
invalidated or not: it takes memory until then.
"""

# What Redis spends on a value beyond its envelope and key: the key objects,
# its expiry, and its members in the ledger and the charges.
VALUE_OVERHEAD_BYTES = 200
STORED, STALE, OVER_BUDGET = 1, 0, 2

# Releases the fill lock (KEYS[3]) if it still holds this filler's token (ARGV[6],
# '' when the filler holds none), then stores the value if the generation is still
# current and the workspace's budget allows. KEYS: generation, value, lock,
# ledger, charges, total. ARGV: generation read before loading ('' if none),
# envelope, value TTL ms, generation TTL ms, the token the envelope carries (a
# fresh one if none was read), the lock token, the workspace's budget in bytes.
# Returns STORED, STALE or OVER_BUDGET. One round trip for the store and the
# unlock. A full Redis refuses it at the first line (a memory-using command that
# changes nothing: the unlock is a write, after which Redis would let the SET
# through).
SET_IF_CURRENT = f"""
redis.call('SETRANGE', KEYS[2], 0, '')
if ARGV[6] ~= '' and redis.call('GET', KEYS[3]) == ARGV[6] then
  redis.call('DEL', KEYS[3])
end
local current = redis.call('GET', KEYS[1])
if (current and current ~= ARGV[1]) or (not current and ARGV[1] ~= '') then
  return {STALE}
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
if #gone > 0 then
  local freed = 0
  for i = 1, #gone, 500 do
    local chunk = {{unpack(gone, i, math.min(i + 499, #gone))}}
    for _, size in ipairs(redis.call('HMGET', KEYS[5], unpack(chunk))) do
      freed = freed + (tonumber(size) or 0)
    end
    redis.call('HDEL', KEYS[5], unpack(chunk))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  redis.call('DECRBY', KEYS[6], freed)
end
local size = #ARGV[2] + #KEYS[2] + {VALUE_OVERHEAD_BYTES}
local old = tonumber(redis.call('HGET', KEYS[5], KEYS[2])) or 0
local total = tonumber(redis.call('GET', KEYS[6])) or 0
if total - old + size > tonumber(ARGV[7]) then return {OVER_BUDGET} end
if current then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[4])
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), KEYS[2])
redis.call('HSET', KEYS[5], KEYS[2], size)
redis.call('INCRBY', KEYS[6], size - old)
local longest = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
for i = 4, 6 do redis.call('PEXPIREAT', KEYS[i], longest[2]) end
return {STORED}
"""

# The generation (KEYS[1]) and the value (KEYS[2]); when there is no value, also
# tries to take the fill lock (KEYS[3]) with token ARGV[1] for ARGV[2] ms.
READ_OR_LOCK = """
local values = redis.call('MGET', KEYS[1], KEYS[2])
local locked = 0
if not values[2] and redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
  locked = 1
end
return {values[1], values[2], locked}
"""

UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
