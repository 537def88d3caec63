/**
 * Redis coordination (REDIS_URL set): shared by any number of server processes. The only home
 * of ioredis. Two connections: one for commands, one in subscriber mode for pub/sub (a
 * subscribed connection cannot run other commands).
 *
 * Failing fast: commands are bounded by `commandTimeoutMs` and the offline queue is flushed on
 * every failed reconnect (`maxRetriesPerRequest: 0`), so while Redis is down calls reject within
 * about two seconds with `UnavailableError` (503) instead of piling up; reconnection continues
 * in the background with capped, jittered exponential backoff, and subscriptions are restored.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import type { ChainableCommander, RedisOptions } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { UnavailableError } from '../../core/index.ts';
import { silentLogger } from '../coordination.ts';
import type { Coordination, CoordinationLogger, PresenceEntry, PresenceWrite, PublishOptions, RateLimiterOptions, Unsubscribe } from '../coordination.ts';

/** Separates the publishing handle's id from the JSON body in pub/sub messages. */
const ORIGIN_SEP = '\u0001';
import { closedError, decode, encode, toInteger, toTtl } from '../shared.ts';
import { SCRIPTS } from './scripts.ts';
import type { ScriptCommands } from './scripts.ts';

export interface RedisCoordinationOptions {
  /** `redis://[user:pass@]host:port[/db]` or `rediss://…`. */
  url: string;
  /** Prepended to every key and channel, so several deployments (or tests) can share a Redis. Default `mcp:`. */
  keyPrefix?: string;
  logger?: CoordinationLogger;
  /** Upper bound for one command, queued time included. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** Upper bound for establishing a TCP connection. Default 2000 ms. */
  connectTimeoutMs?: number;
  /** Cap of the reconnect backoff. Default 2000 ms. */
  maxReconnectDelayMs?: number;
}

interface ResolvedRedisCoordinationOptions {
  readonly url: string;
  readonly keyPrefix: string;
  readonly logger: CoordinationLogger;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxReconnectDelayMs: number;
}

type ScriptedRedis = Redis & ScriptCommands;
/** Presence writes sent in one pipeline by `setPresenceMany`: bounds the synchronous work of building one (a few ms). */
const PRESENCE_WRITES_PER_PIPELINE = 500;
type Handler = (message: unknown) => void;

/** Reply errors that mean "the server cannot serve now", not "the command is wrong". */
const UNAVAILABLE_REPLY = /^(LOADING|READONLY|MASTERDOWN|OOM|BUSY|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;

function resolveOptions(options: RedisCoordinationOptions): ResolvedRedisCoordinationOptions {
  return Object.freeze({
    url: options.url,
    keyPrefix: options.keyPrefix ?? 'mcp:',
    logger: options.logger ?? silentLogger,
    commandTimeoutMs: options.commandTimeoutMs ?? 2000,
    connectTimeoutMs: options.connectTimeoutMs ?? 2000,
    maxReconnectDelayMs: options.maxReconnectDelayMs ?? 2000,
  });
}

/** Strips credentials so a URL can be logged. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid redis url>';
  }
}

export class RedisCoordination implements Coordination {
  readonly kind = 'redis' as const;

  readonly #opts: ResolvedRedisCoordinationOptions;
  readonly #client: ScriptedRedis;
  readonly #subscriber: Redis;
  /** Full channel name → handlers registered in this process. */
  readonly #handlers = new Map<string, Set<Handler>>();
  #closed = false;
  #subscriberConnecting: Promise<void> | null = null;
  /** Names this handle in messages it publishes with `echo: false`. */
  readonly #origin = randomUUID();
  /** Extra connections handed out by `duplicateConnections` (closed with this adapter). */
  readonly #extra: Redis[] = [];

  /** Builds the adapter without connecting; prefer `createRedisCoordination`, which waits for readiness. */
  constructor(options: RedisCoordinationOptions) {
    this.#opts = resolveOptions(options);
    const { logger, maxReconnectDelayMs } = this.#opts;
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      connectTimeout: this.#opts.connectTimeoutMs,
      commandTimeout: this.#opts.commandTimeoutMs,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: true,
      connectionName: 'mcp',
      // No auto-pipelining: the hot paths already batch their calls (one seq INCR script per
      // fan-out flush, one rate-limit consume per principal per turn, PHI read counts every
      // 100 ms), and ioredis's auto-pipeline cost more than it saved — a Pipeline object per
      // tick carrying a copy of every script, and commands of a tick waiting for the previous
      // pipeline's reply. Measured off against on, alternating runs: create->delegate at 500/s
      // p99 15.8 / 16.1 / 16.6 against 19.6 / 16.3 / 19.8 ms; two processes p50 8.8 / 8.8
      // against 9.7 / 9.8 ms and 5-7 % less server CPU; 10,000 heartbeating sockets: heartbeat ack
      // p99 11.9 against 97.9 ms, peak RSS 526 against 769 MB; throughput and REST within noise.
      enableAutoPipelining: false,
      retryStrategy: (times) => Math.min(maxReconnectDelayMs, 50 * 2 ** Math.min(times, 10)) + Math.floor(Math.random() * 100),
    };
    this.#client = new Redis(this.#opts.url, redisOptions) as ScriptedRedis;
    for (const [name, def] of Object.entries(SCRIPTS)) this.#client.defineCommand(name, def);
    this.#subscriber = this.#client.duplicate({ connectionName: 'mcp-sub' });

    let warned = false;
    const onError = (which: string) => (err: Error) => {
      // ioredis emits on every failed reconnect; one line per outage is enough.
      if (!warned && !this.#closed) logger.warn({ err: { message: err.message }, redis: redactUrl(this.#opts.url), connection: which }, 'redis connection error');
      warned = true;
    };
    this.#client.on('error', onError('command'));
    this.#subscriber.on('error', onError('subscriber'));
    this.#client.on('ready', () => {
      warned = false;
    });
    this.#subscriber.on('message', (channel: string, text: string) => this.#dispatch(channel, text));
  }

  /** Connects the command connection; rejects with `UnavailableError` if Redis cannot be reached. */
  async connect(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    // connectTimeout only covers TCP; a peer that accepts but never answers would stall the
    // ready check, so the whole handshake gets the same bound.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis not ready within ${this.#opts.connectTimeoutMs} ms`)), this.#opts.connectTimeoutMs);
    });
    try {
      await Promise.race([this.#client.connect(), timeout]);
    } catch (err) {
      this.#client.disconnect();
      throw new UnavailableError('Coordination store (Redis) is unreachable', 5, err);
    } finally {
      clearTimeout(timer);
    }
  }

  async publish(channel: string, message: unknown, options?: PublishOptions): Promise<number> {
    // Wire format: `<origin>\u0001<json>`, origin empty unless the publisher skips its own
    // subscribers. JSON text never holds a raw U+0001 (control characters are escaped).
    const full = this.#channel(channel);
    const text = `${options?.echo === false ? this.#origin : ''}${ORIGIN_SEP}${encode(message)}`;
    const receivers = await this.#run(() => this.#client.publish(full, text));
    // Redis counts subscribed connections, this handle's own subscriber among them.
    return Math.max(0, receivers - (this.#handlers.get(full)?.size ? 1 : 0));
  }

  async subscribe(channel: string, handler: Handler): Promise<Unsubscribe> {
    this.#assertOpen();
    const full = this.#channel(channel);
    const entry: Handler = (m) => handler(m);
    let set = this.#handlers.get(full);
    if (!set) {
      set = new Set();
      this.#handlers.set(full, set);
    }
    set.add(entry);
    try {
      await this.#ensureSubscriberConnected();
      // SUBSCRIBE is idempotent; sending it every time makes concurrent subscribe/unsubscribe
      // on one channel settle in call order on the single subscriber connection.
      await this.#subscriber.subscribe(full);
    } catch (err) {
      await this.#removeHandler(full, entry);
      throw this.#mapError(err);
    }
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      await this.#removeHandler(full, entry);
    };
  }

  async setPresence(kind: string, id: string, data: Record<string, unknown>, ttlMs: number): Promise<void> {
    const ttl = toTtl(ttlMs);
    const [idx, hash] = this.#presenceKeys(kind);
    await this.#run(() => this.#client.mcpPresenceSet(idx, hash, id, encode(data), ttl));
  }

  async setPresenceMany(records: readonly PresenceWrite[], ttlMs: number): Promise<void> {
    const ttl = toTtl(ttlMs);
    for (let i = 0; i < records.length; i += PRESENCE_WRITES_PER_PIPELINE) {
      const pipe = this.#client.pipeline() as unknown as Pick<ScriptCommands, 'mcpPresenceSet'> & ChainableCommander;
      for (const r of records.slice(i, i + PRESENCE_WRITES_PER_PIPELINE)) {
        const [idx, hash] = this.#presenceKeys(r.kind);
        void pipe.mcpPresenceSet(idx, hash, r.id, encode(r.data), ttl);
      }
      const replies = await this.#run(() => pipe.exec());
      const failed = replies?.find(([err]) => err);
      if (failed?.[0]) throw this.#mapError(failed[0]);
    }
  }

  async getPresence(kind: string, id: string): Promise<Record<string, unknown> | null> {
    const [idx, hash] = this.#presenceKeys(kind);
    const text = await this.#run(() => this.#client.mcpPresenceGet(idx, hash, id));
    return text === null ? null : (decode(text) as Record<string, unknown>);
  }

  async getPresenceMany(kind: string, ids: readonly string[]): Promise<Array<Record<string, unknown> | null>> {
    if (ids.length === 0) return [];
    const [idx, hash] = this.#presenceKeys(kind);
    const texts = await this.#run(() => this.#client.mcpPresenceGetMany(idx, hash, ...ids));
    return ids.map((_, i) => (typeof texts[i] === 'string' ? (decode(texts[i]) as Record<string, unknown>) : null));
  }

  async listPresence(kind: string): Promise<PresenceEntry[]> {
    const [idx, hash] = this.#presenceKeys(kind);
    const flat = await this.#run(() => this.#client.mcpPresenceList(idx, hash));
    const out: PresenceEntry[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      out.push({ id: flat[i] as string, data: decode(flat[i + 1] as string) as Record<string, unknown> });
    }
    return out;
  }

  async removePresence(kind: string, id: string): Promise<void> {
    const [idx, hash] = this.#presenceKeys(kind);
    await this.#run(() => this.#client.mcpPresenceRemove(idx, hash, id));
  }

  async get<T = unknown>(key: string): Promise<T | null> {
    const text = await this.#run(() => this.#client.get(this.#key('kv', key)));
    return text === null ? null : (decode(text) as T);
  }

  async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
    const k = this.#key('kv', key);
    const text = encode(value);
    if (ttlMs === undefined) await this.#run(() => this.#client.set(k, text));
    else {
      const ttl = toTtl(ttlMs);
      await this.#run(() => this.#client.set(k, text, 'PX', ttl));
    }
  }

  async setIfAbsent(key: string, value: unknown, ttlMs: number): Promise<boolean> {
    const ttl = toTtl(ttlMs);
    const reply = await this.#run(() => this.#client.set(this.#key('kv', key), encode(value), 'PX', ttl, 'NX'));
    return reply === 'OK';
  }

  async del(key: string): Promise<void> {
    await this.#run(() => this.#client.del(this.#key('kv', key)));
  }

  async incr(key: string, windowMs: number, by = 1): Promise<number> {
    const window = toTtl(windowMs, 'windowMs');
    toInteger(by, 'by');
    const n = await this.#run(() => this.#client.mcpIncrWindow(this.#key('ctr', key), by, window));
    return Number(n);
  }

  async incrMany(keys: readonly string[], windowMs: number): Promise<number[]> {
    const window = toTtl(windowMs, 'windowMs');
    if (keys.length === 0) return [];
    const full = keys.map((k) => this.#key('ctr', k));
    const out = await this.#run(() => this.#client.mcpIncrWindowMany(full.length, ...full, window));
    return out.map(Number);
  }

  async hincr(hash: string, field: string, by: number): Promise<number> {
    toInteger(by, 'by');
    return this.#run(() => this.#client.hincrby(this.#key('h', hash), field, by));
  }

  async hgetall(hash: string): Promise<Record<string, number>> {
    const raw = await this.#run(() => this.#client.hgetall(this.#key('h', hash)));
    const out: Record<string, number> = {};
    for (const [field, value] of Object.entries(raw)) out[field] = Number(value);
    return out;
  }

  async hdel(hash: string, field: string): Promise<void> {
    await this.#run(() => this.#client.hdel(this.#key('h', hash), field));
  }

  async tryAcquireLock(name: string, ownerId: string, ttlMs: number): Promise<{ fencingToken: number } | null> {
    const ttl = toTtl(ttlMs);
    const [lock, fence] = this.#lockKeys(name);
    const token = await this.#run(() => this.#client.mcpLockAcquire(lock, fence, ownerId, ttl));
    return token === null ? null : { fencingToken: Number(token) };
  }

  async extendLock(name: string, ownerId: string, ttlMs: number): Promise<boolean> {
    const ttl = toTtl(ttlMs);
    const [lock] = this.#lockKeys(name);
    return (await this.#run(() => this.#client.mcpLockExtend(lock, ownerId, ttl))) === 1;
  }

  async releaseLock(name: string, ownerId: string): Promise<void> {
    const [lock] = this.#lockKeys(name);
    await this.#run(() => this.#client.mcpLockRelease(lock, ownerId));
  }

  createRateLimiter(opts: RateLimiterOptions): RateLimiterAbstract {
    return new RateLimiterRedis({
      storeClient: this.#client,
      keyPrefix: this.#key('rl', opts.keyPrefix),
      points: opts.points,
      duration: opts.durationSec,
      ...(opts.blockDurationSec === undefined ? {} : { blockDuration: opts.blockDurationSec }),
      // Reject at once while disconnected instead of waiting for the command timeout.
      rejectIfRedisNotReady: true,
    });
  }

  async ping(): Promise<number> {
    const started = performance.now();
    await this.#run(() => this.#client.ping());
    return performance.now() - started;
  }

  /** The key/channel prefix every name of this adapter carries. */
  get keyPrefix(): string {
    return this.#opts.keyPrefix;
  }

  /**
   * Opens `count` more connections with this adapter's options (fail-fast timeouts, reconnect
   * backoff), connected and ready, for libraries that need their own clients (the Socket.IO
   * Redis adapter needs a publisher and a subscriber). They are closed by `close()`.
   */
  async duplicateConnections(count: number, name: string): Promise<Redis[]> {
    this.#assertOpen();
    const conns: Redis[] = [];
    for (let i = 0; i < count; i++) {
      const conn = this.#client.duplicate({ connectionName: `${name}-${i}` });
      let warned = false;
      conn.on('error', (err: Error) => {
        if (!warned && !this.#closed) this.#opts.logger.warn({ err: { message: err.message }, connection: `${name}-${i}` }, 'redis connection error');
        warned = true;
      });
      conn.on('ready', () => {
        warned = false;
      });
      conns.push(conn);
      this.#extra.push(conn);
    }
    try {
      await Promise.all(conns.map((c) => c.connect()));
    } catch (err) {
      throw this.#mapError(err);
    }
    return conns;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#handlers.clear();
    await Promise.all([this.#client, this.#subscriber, ...this.#extra].map((c) => RedisCoordination.#shutdown(c)));
  }

  static async #shutdown(conn: Redis): Promise<void> {
    if (conn.status !== 'ready') {
      conn.disconnect();
      return;
    }
    try {
      await conn.quit();
    } catch {
      conn.disconnect();
    }
  }

  #key(space: string, key: string): string {
    return `${this.#opts.keyPrefix}${space}:${key}`;
  }

  #channel(channel: string): string {
    return `${this.#opts.keyPrefix}ch:${channel}`;
  }

  /** Braces keep a kind's keys in one hash slot, so the scripts stay valid on a cluster. */
  #presenceKeys(kind: string): [string, string] {
    const base = `${this.#opts.keyPrefix}presence:{${kind}}`;
    return [`${base}:idx`, `${base}:data`];
  }

  #lockKeys(name: string): [string, string] {
    const base = `${this.#opts.keyPrefix}lock:{${name}}`;
    return [base, `${base}:fence`];
  }

  #dispatch(channel: string, raw: string): void {
    const handlers = this.#handlers.get(channel);
    if (!handlers) return;
    const sep = raw.indexOf(ORIGIN_SEP);
    if (sep > 0 && raw.slice(0, sep) === this.#origin) return; // published here with echo: false
    const text = sep >= 0 ? raw.slice(sep + 1) : raw;
    for (const handler of [...handlers]) {
      try {
        handler(decode(text));
      } catch (err) {
        this.#opts.logger.error({ err, channel }, 'coordination subscriber threw');
      }
    }
  }

  async #removeHandler(full: string, entry: Handler): Promise<void> {
    const set = this.#handlers.get(full);
    if (!set) return;
    set.delete(entry);
    if (set.size > 0) return;
    this.#handlers.delete(full);
    if (this.#closed || this.#subscriber.status !== 'ready') return;
    try {
      await this.#subscriber.unsubscribe(full);
    } catch (err) {
      // Harmless: with no local handler, stray messages are dropped by #dispatch.
      this.#opts.logger.warn({ err: { message: (err as Error).message }, channel: full }, 'redis unsubscribe failed');
    }
  }

  /** The subscriber connects on first use; concurrent first subscriptions share one connect. */
  #ensureSubscriberConnected(): Promise<void> {
    if (this.#subscriber.status !== 'wait') return Promise.resolve();
    this.#subscriberConnecting ??= this.#subscriber.connect().finally(() => {
      this.#subscriberConnecting = null;
    });
    return this.#subscriberConnecting;
  }

  #assertOpen(): void {
    if (this.#closed) throw closedError(this.kind);
  }

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    this.#assertOpen();
    try {
      return await fn();
    } catch (err) {
      throw this.#mapError(err);
    }
  }

  #mapError(err: unknown): Error {
    if (this.#closed) return closedError(this.kind);
    const e = err instanceof Error ? err : new Error(String(err));
    // A reply error is Redis refusing the command itself: a bug, not an outage — keep it as is.
    if (e.name === 'ReplyError' && !UNAVAILABLE_REPLY.test(e.message)) return e;
    return new UnavailableError('Coordination store (Redis) is unavailable', 5, e);
  }
}

/** Creates the Redis adapter and waits until its command connection is ready. */
export async function createRedisCoordination(options: RedisCoordinationOptions): Promise<RedisCoordination> {
  const coordination = new RedisCoordination(options);
  await coordination.connect();
  return coordination;
}
