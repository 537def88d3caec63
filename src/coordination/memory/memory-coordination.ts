/**
 * In-process coordination for a single server process (REDIS_URL unset). Same contract as the
 * Redis adapter: values are stored as JSON text (callers never share references with the
 * store), expiry is checked on every read and swept periodically so memory stays bounded.
 */
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { systemClock } from '../../core/index.ts';
import type { Clock } from '../../core/index.ts';
import { silentLogger } from '../coordination.ts';
import type { Coordination, CoordinationLogger, PresenceEntry, PresenceWrite, PublishOptions, RateLimiterOptions, Unsubscribe } from '../coordination.ts';
import { closedError, decode, encode, nextFencingToken, toInteger, toTtl } from '../shared.ts';

export interface MemoryCoordinationOptions {
  logger?: CoordinationLogger;
  clock?: Clock;
  /** How often expired entries are swept (ms). Default 30 s. */
  sweepIntervalMs?: number;
}

interface Expiring {
  /** Epoch ms after which the entry is gone; null = no expiry. */
  expiresAt: number | null;
}
interface TextEntry extends Expiring {
  text: string;
}
interface CounterEntry extends Expiring {
  count: number;
}
interface LockEntry extends Expiring {
  owner: string;
  token: number;
}

type Handler = (message: unknown) => void;

export class MemoryCoordination implements Coordination {
  readonly kind = 'memory' as const;

  readonly #logger: CoordinationLogger;
  readonly #clock: Clock;
  readonly #sweeper: NodeJS.Timeout;
  #closed = false;

  readonly #channels = new Map<string, Set<Handler>>();
  readonly #presence = new Map<string, Map<string, TextEntry>>();
  readonly #kv = new Map<string, TextEntry>();
  readonly #counters = new Map<string, CounterEntry>();
  readonly #hashes = new Map<string, Map<string, number>>();
  readonly #locks = new Map<string, LockEntry>();
  /** Last token issued per lock name; outlives the lock itself. */
  readonly #fences = new Map<string, number>();
  readonly #limiters = new Map<string, RateLimiterAbstract>();

  constructor(options: MemoryCoordinationOptions = {}) {
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
    this.#sweeper = setInterval(() => this.#sweep(), options.sweepIntervalMs ?? 30_000);
    this.#sweeper.unref();
  }

  async publish(channel: string, message: unknown, options?: PublishOptions): Promise<number> {
    this.#assertOpen();
    if (options?.echo === false) return 0; // every subscriber is this handle's own
    const text = encode(message);
    const handlers = this.#channels.get(channel);
    if (!handlers || handlers.size === 0) return 0;
    // Delivered after publish resolves, each handler with its own copy, as with Redis.
    for (const handler of [...handlers]) {
      setImmediate(() => {
        if (this.#closed || !this.#channels.get(channel)?.has(handler)) return;
        try {
          handler(decode(text));
        } catch (err) {
          this.#logger.error({ err, channel }, 'coordination subscriber threw');
        }
      });
    }
    return 0; // in-process, no other handle
  }

  async subscribe(channel: string, handler: Handler): Promise<Unsubscribe> {
    this.#assertOpen();
    // Wrap so the same function subscribed twice counts twice, like two subscriptions.
    const entry: Handler = (m) => handler(m);
    let set = this.#channels.get(channel);
    if (!set) {
      set = new Set();
      this.#channels.set(channel, set);
    }
    set.add(entry);
    return async () => {
      const current = this.#channels.get(channel);
      if (!current) return;
      current.delete(entry);
      if (current.size === 0) this.#channels.delete(channel);
    };
  }

  async setPresence(kind: string, id: string, data: Record<string, unknown>, ttlMs: number): Promise<void> {
    this.#writePresence([{ kind, id, data }], ttlMs);
  }

  async setPresenceMany(writes: readonly PresenceWrite[], ttlMs: number): Promise<void> {
    this.#writePresence(writes, ttlMs);
  }

  #writePresence(writes: readonly PresenceWrite[], ttlMs: number): void {
    this.#assertOpen();
    const expiresAt = this.#clock.now() + toTtl(ttlMs);
    for (const { kind, id, data } of writes) {
      let records = this.#presence.get(kind);
      if (!records) {
        records = new Map();
        this.#presence.set(kind, records);
      }
      records.set(id, { text: encode(data), expiresAt });
    }
  }

  async getPresence(kind: string, id: string): Promise<Record<string, unknown> | null> {
    this.#assertOpen();
    const records = this.#presence.get(kind);
    const entry = records?.get(id);
    if (!records || !entry) return null;
    if (this.#expired(entry)) {
      records.delete(id);
      return null;
    }
    return decode(entry.text) as Record<string, unknown>;
  }

  async getPresenceMany(kind: string, ids: readonly string[]): Promise<Array<Record<string, unknown> | null>> {
    const out: Array<Record<string, unknown> | null> = [];
    for (const id of ids) out.push(await this.getPresence(kind, id));
    return out;
  }

  async listPresence(kind: string): Promise<PresenceEntry[]> {
    this.#assertOpen();
    const records = this.#presence.get(kind);
    if (!records) return [];
    const out: PresenceEntry[] = [];
    for (const [id, entry] of records) {
      if (this.#expired(entry)) records.delete(id);
      else out.push({ id, data: decode(entry.text) as Record<string, unknown> });
    }
    return out;
  }

  async removePresence(kind: string, id: string): Promise<void> {
    this.#assertOpen();
    this.#presence.get(kind)?.delete(id);
  }

  async get<T = unknown>(key: string): Promise<T | null> {
    this.#assertOpen();
    const entry = this.#kv.get(key);
    if (!entry) return null;
    if (this.#expired(entry)) {
      this.#kv.delete(key);
      return null;
    }
    return decode(entry.text) as T;
  }

  async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
    this.#assertOpen();
    const expiresAt = ttlMs === undefined ? null : this.#clock.now() + toTtl(ttlMs);
    this.#kv.set(key, { text: encode(value), expiresAt });
  }

  async setIfAbsent(key: string, value: unknown, ttlMs: number): Promise<boolean> {
    this.#assertOpen();
    const ttl = toTtl(ttlMs);
    const existing = this.#kv.get(key);
    if (existing && !this.#expired(existing)) return false;
    this.#kv.set(key, { text: encode(value), expiresAt: this.#clock.now() + ttl });
    return true;
  }

  async del(key: string): Promise<void> {
    this.#assertOpen();
    this.#kv.delete(key);
  }

  async incr(key: string, windowMs: number, by = 1): Promise<number> {
    this.#assertOpen();
    const window = toTtl(windowMs, 'windowMs');
    toInteger(by, 'by');
    const entry = this.#counters.get(key);
    if (!entry || this.#expired(entry)) {
      this.#counters.set(key, { count: by, expiresAt: this.#clock.now() + window });
      return by;
    }
    entry.count += by;
    return entry.count;
  }

  async incrMany(keys: readonly string[], windowMs: number): Promise<number[]> {
    const out: number[] = [];
    for (const k of keys) out.push(await this.incr(k, windowMs));
    return out;
  }

  async hincr(hash: string, field: string, by: number): Promise<number> {
    this.#assertOpen();
    toInteger(by, 'by');
    let fields = this.#hashes.get(hash);
    if (!fields) {
      fields = new Map();
      this.#hashes.set(hash, fields);
    }
    const next = (fields.get(field) ?? 0) + by;
    fields.set(field, next);
    return next;
  }

  async hgetall(hash: string): Promise<Record<string, number>> {
    this.#assertOpen();
    return Object.fromEntries(this.#hashes.get(hash) ?? []);
  }

  async hdel(hash: string, field: string): Promise<void> {
    this.#assertOpen();
    const fields = this.#hashes.get(hash);
    if (!fields) return;
    fields.delete(field);
    if (fields.size === 0) this.#hashes.delete(hash);
  }

  async tryAcquireLock(name: string, ownerId: string, ttlMs: number): Promise<{ fencingToken: number } | null> {
    this.#assertOpen();
    const ttl = toTtl(ttlMs);
    const now = this.#clock.now();
    const held = this.#locks.get(name);
    if (held && !this.#expired(held)) {
      if (held.owner !== ownerId) return null;
      held.expiresAt = now + ttl;
      return { fencingToken: held.token };
    }
    const token = nextFencingToken(this.#fences.get(name) ?? 0, now);
    this.#fences.set(name, token);
    this.#locks.set(name, { owner: ownerId, token, expiresAt: now + ttl });
    return { fencingToken: token };
  }

  async extendLock(name: string, ownerId: string, ttlMs: number): Promise<boolean> {
    this.#assertOpen();
    const ttl = toTtl(ttlMs);
    const held = this.#locks.get(name);
    if (!held || this.#expired(held) || held.owner !== ownerId) return false;
    held.expiresAt = this.#clock.now() + ttl;
    return true;
  }

  async releaseLock(name: string, ownerId: string): Promise<void> {
    this.#assertOpen();
    const held = this.#locks.get(name);
    if (held && held.owner === ownerId) this.#locks.delete(name);
  }

  /** Limiters with the same options share their counters, as they do through Redis. */
  createRateLimiter(opts: RateLimiterOptions): RateLimiterAbstract {
    const id = JSON.stringify([opts.keyPrefix, opts.points, opts.durationSec, opts.blockDurationSec ?? 0]);
    let limiter = this.#limiters.get(id);
    if (!limiter) {
      limiter = this.#newLimiter(opts);
      this.#limiters.set(id, limiter);
    }
    return limiter;
  }

  #newLimiter(opts: RateLimiterOptions): RateLimiterAbstract {
    return new RateLimiterMemory({
      keyPrefix: opts.keyPrefix,
      points: opts.points,
      duration: opts.durationSec,
      ...(opts.blockDurationSec === undefined ? {} : { blockDuration: opts.blockDurationSec }),
    });
  }

  async ping(): Promise<number> {
    this.#assertOpen();
    return 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#channels.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw closedError(this.kind);
  }

  #expired(entry: Expiring): boolean {
    return entry.expiresAt !== null && entry.expiresAt <= this.#clock.now();
  }

  #sweep(): void {
    const drop = <V extends Expiring>(map: Map<string, V>): void => {
      for (const [k, v] of map) if (this.#expired(v)) map.delete(k);
    };
    drop(this.#kv);
    drop(this.#counters);
    drop(this.#locks);
    for (const [kind, records] of this.#presence) {
      drop(records);
      if (records.size === 0) this.#presence.delete(kind);
    }
  }
}
