/**
 * Lua scripts behind the Redis adapter's multi-key and read-modify-write operations. Each runs
 * atomically on the server and reads time from Redis `TIME`, so every process agrees on expiry
 * regardless of local clock skew. Every key a script touches is passed in KEYS.
 */

/** Lua prelude: `now` = Redis server time in epoch ms. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** Drops expired ids from the presence index (KEYS[1], zset id→expiresAt) and data (KEYS[2], hash). Bounded per call. */
const PRUNE = `local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 500)
if #dead > 0 then
  redis.call('ZREM', KEYS[1], unpack(dead))
  redis.call('HDEL', KEYS[2], unpack(dead))
end
`;

export interface ScriptDefinition {
  /** Omitted for variadic scripts: the call then passes the number of keys first. */
  numberOfKeys?: number;
  lua: string;
}

export const SCRIPTS = {
  /** KEYS: idx, data. ARGV: id, json, ttlMs. */
  mcpPresenceSet: {
    numberOfKeys: 2,
    lua: `${NOW}${PRUNE}
local expiresAt = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], string.format('%.0f', expiresAt), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local keep = math.max(1, tonumber(last[2]) - now)
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', keep))
redis.call('PEXPIRE', KEYS[2], string.format('%.0f', keep))
return 1`,
  },
  /** KEYS: idx, data. ARGV: id. Returns the JSON or nil. */
  mcpPresenceGet: {
    numberOfKeys: 2,
    lua: `${NOW}
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) <= now then return false end
return redis.call('HGET', KEYS[2], ARGV[1])`,
  },
  /** KEYS: idx, data. ARGV: ids. Returns one JSON or false per id, in order. */
  mcpPresenceGetMany: {
    numberOfKeys: 2,
    lua: `${NOW}
local out = {}
for i, id in ipairs(ARGV) do
  local s = redis.call('ZSCORE', KEYS[1], id)
  if s and tonumber(s) > now then out[i] = redis.call('HGET', KEYS[2], id) or false else out[i] = false end
end
return out`,
  },
  /** KEYS: idx, data. Returns a flat array id, json, id, json, … of live records. */
  mcpPresenceList: {
    numberOfKeys: 2,
    lua: `${NOW}${PRUNE}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.0f', now), '+inf')
if #ids == 0 then return {} end
local out = {}
for i = 1, #ids, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #ids) do chunk[#chunk + 1] = ids[j] end
  local values = redis.call('HMGET', KEYS[2], unpack(chunk))
  for k = 1, #chunk do
    if values[k] then
      out[#out + 1] = chunk[k]
      out[#out + 1] = values[k]
    end
  end
end
return out`,
  },
  /** KEYS: idx, data. ARGV: id. */
  mcpPresenceRemove: {
    numberOfKeys: 2,
    lua: `redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1`,
  },
  /** KEYS: counter. ARGV: by, windowMs. Fixed window starting at the first increment. */
  mcpIncrWindow: {
    numberOfKeys: 1,
    lua: `local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`,
  },
  /** KEYS: counters (any number). ARGV: windowMs. `mcpIncrWindow` by 1 for each key, in order. */
  mcpIncrWindowMany: {
    lua: `local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('INCR', k)
  if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, ARGV[1]) end
  out[i] = v
end
return out`,
  },
  /**
   * KEYS: lock (hash owner/token), fence (last token issued, no expiry). ARGV: owner, ttlMs.
   * Returns the token as a string, or nil when another owner holds the lock. The token is
   * max(last + 1, server time ms), so it keeps rising even after the fence key is lost.
   */
  mcpLockAcquire: {
    numberOfKeys: 2,
    lua: `local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return redis.call('HGET', KEYS[1], 'token')
  end
  return false
end
${NOW}
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = string.format('%.0f', math.max(prev + 1, now))
redis.call('SET', KEYS[2], token)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return token`,
  },
  /** KEYS: lock. ARGV: owner, ttlMs. 1 when extended. */
  mcpLockExtend: {
    numberOfKeys: 1,
    lua: `if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`,
  },
  /** KEYS: lock. ARGV: owner. 1 when released. */
  mcpLockRelease: {
    numberOfKeys: 1,
    lua: `if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`,
  },
} as const satisfies Record<string, ScriptDefinition>;

/** The commands `defineCommand` adds to the client, typed. */
export interface ScriptCommands {
  mcpPresenceSet(idx: string, data: string, id: string, json: string, ttlMs: number): Promise<unknown>;
  mcpPresenceGet(idx: string, data: string, id: string): Promise<string | null>;
  mcpPresenceGetMany(idx: string, data: string, ...ids: string[]): Promise<Array<string | null>>;
  mcpPresenceList(idx: string, data: string): Promise<string[]>;
  mcpPresenceRemove(idx: string, data: string, id: string): Promise<unknown>;
  mcpIncrWindow(key: string, by: number, windowMs: number): Promise<number>;
  /** Variadic keys: `(numberOfKeys, ...keys, windowMs)`. */
  mcpIncrWindowMany(numberOfKeys: number, ...keysThenWindow: Array<string | number>): Promise<number[]>;
  mcpLockAcquire(lock: string, fence: string, owner: string, ttlMs: number): Promise<string | null>;
  mcpLockExtend(lock: string, owner: string, ttlMs: number): Promise<number>;
  mcpLockRelease(lock: string, owner: string): Promise<number>;
}
