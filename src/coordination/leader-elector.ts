/**
 * Leader election over a coordination lock, so periodic jobs (sweepers, retention, rollups)
 * run on exactly one server process at a time.
 *
 * The elector tries to take the lock `name` every ttl/3 while a follower, and renews it every
 * ttl/3 while leader. A failed renewal (lost lock or unreachable store) demotes it at once.
 * `isLeader` additionally turns false on its own once the last successful acquire/renew is
 * older than the TTL, so a stalled event loop cannot keep acting as leader past its lease.
 * Work done as leader should carry `fencingToken` so stale leaders can be refused downstream.
 */
import type { Coordination, CoordinationLogger } from './coordination.ts';
import { silentLogger } from './coordination.ts';

export interface LeaderElectorOptions {
  /** Lock name, e.g. `leader:periodic-jobs`. */
  name: string;
  /** Unique per process (and per elector), e.g. `${hostname}:${pid}:${uuid}`. */
  ownerId: string;
  /** Lease length. Renewed every ttlMs/3. */
  ttlMs: number;
  /** Called when this elector becomes leader, with the lease's fencing token. */
  onElected?: (fencingToken: number) => void | Promise<void>;
  /** Called when leadership is lost (failed renewal) or given up (`stop`). */
  onDemoted?: () => void | Promise<void>;
  logger?: CoordinationLogger;
}

export class LeaderElector {
  readonly #coord: Coordination;
  readonly #opts: Readonly<Required<Omit<LeaderElectorOptions, 'onElected' | 'onDemoted'>>> & Pick<LeaderElectorOptions, 'onElected' | 'onDemoted'>;
  readonly #intervalMs: number;
  #leader = false;
  #token: number | null = null;
  /** Monotonic deadline (ms) of the current lease as this process knows it; wall-clock jumps cannot extend it. */
  #leaseUntil = 0;
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #tick: Promise<void> = Promise.resolve();

  constructor(coord: Coordination, options: LeaderElectorOptions) {
    if (!(options.ttlMs > 0)) throw new RangeError('ttlMs must be positive');
    this.#coord = coord;
    this.#opts = Object.freeze({ ...options, logger: options.logger ?? silentLogger });
    this.#intervalMs = Math.max(1, Math.floor(options.ttlMs / 3));
  }

  /** True while this elector holds an unexpired lease. */
  get isLeader(): boolean {
    return this.#leader && monotonicMs() < this.#leaseUntil;
  }

  /** The token of the current lease, or null when not leader. */
  get fencingToken(): number | null {
    return this.isLeader ? this.#token : null;
  }

  /** Starts campaigning; resolves after the first attempt, so `isLeader` is meaningful right away. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.#runTick();
  }

  /** Stops campaigning and, if leader, releases the lock (so another process takes over at once) and calls `onDemoted`. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#tick;
    if (!this.#leader) return;
    try {
      await this.#coord.releaseLock(this.#opts.name, this.#opts.ownerId);
    } catch (err) {
      // The lease will simply expire.
      this.#opts.logger.warn({ err, lock: this.#opts.name }, 'leader lock release failed');
    }
    await this.#demote();
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => void this.#runTick(), this.#intervalMs);
  }

  #runTick(): Promise<void> {
    this.#tick = this.#campaign().finally(() => this.#schedule());
    return this.#tick;
  }

  async #campaign(): Promise<void> {
    const { name, ownerId, ttlMs } = this.#opts;
    const started = monotonicMs();
    if (this.#leader) {
      let renewed = false;
      try {
        renewed = await this.#coord.extendLock(name, ownerId, ttlMs);
      } catch (err) {
        this.#opts.logger.warn({ err, lock: name }, 'leader lock renewal failed');
      }
      if (renewed && started + ttlMs > monotonicMs()) {
        this.#leaseUntil = started + ttlMs;
        return;
      }
      await this.#demote();
      return;
    }
    let acquired: { fencingToken: number } | null = null;
    try {
      acquired = await this.#coord.tryAcquireLock(name, ownerId, ttlMs);
    } catch (err) {
      this.#opts.logger.warn({ err, lock: name }, 'leader lock acquisition failed');
    }
    if (!acquired || !this.#running) {
      if (acquired) await this.#coord.releaseLock(name, ownerId).catch(() => undefined);
      return;
    }
    this.#leader = true;
    this.#token = acquired.fencingToken;
    this.#leaseUntil = started + ttlMs;
    await this.#callback(() => this.#opts.onElected?.(acquired.fencingToken), 'onElected');
  }

  async #demote(): Promise<void> {
    if (!this.#leader) return;
    this.#leader = false;
    this.#token = null;
    this.#leaseUntil = 0;
    await this.#callback(() => this.#opts.onDemoted?.(), 'onDemoted');
  }

  async #callback(fn: () => void | Promise<void> | undefined, which: string): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.#opts.logger.error({ err, lock: this.#opts.name }, `leader elector ${which} threw`);
    }
  }
}

function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}
