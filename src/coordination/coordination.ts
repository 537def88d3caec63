/**
 * The coordination port: the hot path shared by every server process — pub/sub, presence,
 * caches, counters, load gauges, leader locks and rate limits. Two adapters implement it
 * (in-process for one process, Redis for many) and both pass `coordination.contract.ts`.
 *
 * Everything behind this port is rebuildable from PostgreSQL: losing it (a Redis flush, a
 * restart of the in-process adapter) costs latency and freshness, never acknowledged data.
 * Nothing stored here may carry PHI in clear — keys and values are visible to whoever can
 * read Redis.
 *
 * Failure contract: when the store cannot be reached, every async method rejects promptly
 * (within about two seconds) with a core `UnavailableError` (`SERVICE_UNAVAILABLE`, 503,
 * retryable) instead of hanging. A closed coordination rejects the same way.
 */
import type { RateLimiterAbstract } from 'rate-limiter-flexible';

export type CoordinationKind = 'memory' | 'redis';

/** One record for `setPresenceMany`. */
export interface PresenceWrite {
  kind: string;
  id: string;
  data: Record<string, unknown>;
}

/** A presence record as listed: the id plus the data last written by `setPresence`. */
export interface PublishOptions {
  /** False: do not deliver to this handle's own subscribers (default true). */
  echo?: boolean;
}

export interface PresenceEntry {
  id: string;
  data: Record<string, unknown>;
}

export interface RateLimiterOptions {
  /** Namespace of the limiter (e.g. `http:task_create`); the store prefix is added on top. */
  keyPrefix: string;
  /** Points allowed per `durationSec`. */
  points: number;
  durationSec: number;
  /** When set, a key that exceeds its points is blocked for this long. */
  blockDurationSec?: number;
}

/** Removes the handler it was returned for. Idempotent. */
export type Unsubscribe = () => Promise<void>;

export interface Coordination {
  readonly kind: CoordinationKind;

  /**
   * Publishes a JSON-serialisable message to every subscriber of `channel` in every process.
   * Delivery is at-most-once and fire-and-forget (no persistence, no replay): use it to
   * nudge, never as the only record of a fact. With `{ echo: false }` the subscribers of this
   * handle itself are skipped (the publisher already acted on the message locally) and only
   * other processes' handles get it — without decoding it here.
   *
   * Resolves to how many other handles (processes) subscribe to `channel`, as counted when the
   * message was delivered: 0 in-process, where every `open()` is one handle. A publisher may use
   * it to learn that nobody else listens.
   */
  publish(channel: string, message: unknown, options?: PublishOptions): Promise<number>;
  /**
   * Registers `handler` for `channel`. Once the returned promise resolves, messages published
   * afterwards (from any process) reach the handler, each as a fresh deserialised copy.
   * Handler exceptions are logged and do not affect other handlers.
   */
  subscribe(channel: string, handler: (message: unknown) => void): Promise<Unsubscribe>;

  /**
   * Upserts the presence record `kind`/`id`, live for `ttlMs` from now. Heartbeats call this
   * again to keep the record alive; nothing is written to PostgreSQL.
   */
  setPresence(kind: string, id: string, data: Record<string, unknown>, ttlMs: number): Promise<void>;
  /**
   * `setPresence` for many records, of any kinds, all live for `ttlMs` from now: one round trip
   * per few thousand records instead of one each (a process keeping 10,000 sockets alive).
   * Not atomic as a whole; each record is written as `setPresence` writes it.
   */
  setPresenceMany(records: readonly PresenceWrite[], ttlMs: number): Promise<void>;
  /** The live record, or null if it never existed, expired or was removed. */
  getPresence(kind: string, id: string): Promise<Record<string, unknown> | null>;
  /** `getPresence` for many ids in one round trip; null for each id without a live record. */
  getPresenceMany(kind: string, ids: readonly string[]): Promise<Array<Record<string, unknown> | null>>;
  /** Every live (unexpired) record of `kind`, in no particular order. */
  listPresence(kind: string): Promise<PresenceEntry[]>;
  removePresence(kind: string, id: string): Promise<void>;

  /** Cached JSON value, or null when missing or expired. */
  get<T = unknown>(key: string): Promise<T | null>;
  /** Stores a JSON value; without `ttlMs` it lives until deleted (or the store is lost). */
  set(key: string, value: unknown, ttlMs?: number): Promise<void>;
  /** Stores the value only if the key is absent; true when this call stored it. Atomic. */
  setIfAbsent(key: string, value: unknown, ttlMs: number): Promise<boolean>;
  del(key: string): Promise<void>;

  /**
   * Fixed-window counter: adds `by` (default 1) and returns the new count. The window starts at
   * the first increment and the counter disappears `windowMs` later.
   */
  incr(key: string, windowMs: number, by?: number): Promise<number>;
  /**
   * `incr(key, windowMs)` for each key in order, in one round trip; returns the new counts in
   * the same order (a key listed twice is incremented twice).
   */
  incrMany(keys: readonly string[], windowMs: number): Promise<number[]>;

  /** Atomically adds `by` (may be negative) to `hash[field]` and returns the new value. */
  hincr(hash: string, field: string, by: number): Promise<number>;
  /** All fields of `hash` as numbers; `{}` when the hash does not exist. */
  hgetall(hash: string): Promise<Record<string, number>>;
  hdel(hash: string, field: string): Promise<void>;

  /**
   * Takes the lock `name` for `ownerId` for `ttlMs`. Returns a fencing token that is strictly
   * greater than any token previously issued for this lock name (also across a store flush or
   * restart: tokens are at least the store's clock in ms), or null while another owner holds
   * it. Called again by the current owner it refreshes the TTL and returns the same token.
   */
  tryAcquireLock(name: string, ownerId: string, ttlMs: number): Promise<{ fencingToken: number } | null>;
  /** Pushes the lock's expiry to `ttlMs` from now; false when `ownerId` no longer holds it. */
  extendLock(name: string, ownerId: string, ttlMs: number): Promise<boolean>;
  /** Releases the lock if `ownerId` holds it; a no-op otherwise. */
  releaseLock(name: string, ownerId: string): Promise<void>;

  /**
   * A rate-limiter-flexible limiter backed by this store (shared by all processes for Redis).
   * Note: when the store is unreachable the limiter's promises reject with an `Error` rather
   * than a `RateLimiterRes`; callers decide between failing open and answering 503.
   */
  createRateLimiter(opts: RateLimiterOptions): RateLimiterAbstract;

  /** Round-trip time in ms; rejects with `UnavailableError` when the store is unreachable. */
  ping(): Promise<number>;
  /** Unsubscribes everything and releases connections and timers. Idempotent. */
  close(): Promise<void>;
}

/** The minimal logger the adapters need (pino satisfies it). */
export interface CoordinationLogger {
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

export const silentLogger: CoordinationLogger = { warn: () => undefined, error: () => undefined };
