/**
 * Notices when the coordination store lost its state — Redis restarted empty, was flushed, or
 * was unreachable for a while (pub/sub messages published meanwhile are gone) — so the process
 * can rebuild what it owns from PostgreSQL and its own memory (presence of its sockets, a
 * dispatch round for work whose wake-up was lost).
 *
 * How: a shared `epoch` key is created once (setIfAbsent) and remembered. Every `intervalMs`
 * the watcher reads it; missing or different → the store was reset. A failed read marks an
 * outage; the first successful read after it also counts as a reset. `onReset` may run twice
 * for one event when two processes recreate the epoch at the same moment — it must be
 * idempotent.
 */
import { randomUUID } from 'node:crypto';
import type { Coordination, CoordinationLogger } from './coordination.ts';
import { silentLogger } from './coordination.ts';

export interface StoreWatchOptions {
  intervalMs: number;
  /** Called after the store was found reset or back from an outage. */
  onReset: (why: 'lost' | 'outage') => void | Promise<void>;
  /** Called once when the store stops answering. */
  onOutage?: () => void;
  logger?: CoordinationLogger;
}

const EPOCH_KEY = 'coordination:epoch';
const EPOCH_TTL_MS = 365 * 24 * 3600 * 1000;

export class StoreWatch {
  #epoch: string | null = null;
  #down = false;
  #timer: NodeJS.Timeout | null = null;
  #tick: Promise<boolean> = Promise.resolve(true);
  #running = false;

  constructor(private readonly coord: Coordination, private readonly opts: StoreWatchOptions) {}

  /** Reads (or creates) the epoch once, then checks every `intervalMs`. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#epoch = await this.#current().catch(() => null);
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#tick;
  }

  /**
   * Runs one check now (the leader's sweep, before and after it reads presence; tests). True
   * when the store answered with the state it had at the previous check: not unreachable, not
   * reset. A caller that read the store between two true checks read a store that kept its
   * state — a command queued while Redis was down runs against whatever Redis comes back.
   */
  check(): Promise<boolean> {
    this.#tick = this.#check();
    return this.#tick;
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      void this.check().finally(() => this.#schedule());
    }, this.opts.intervalMs);
    this.#timer.unref();
  }

  async #current(): Promise<string> {
    const existing = await this.coord.get<string>(EPOCH_KEY);
    if (existing) return existing;
    const mine = randomUUID();
    if (await this.coord.setIfAbsent(EPOCH_KEY, mine, EPOCH_TTL_MS)) return mine;
    return (await this.coord.get<string>(EPOCH_KEY)) ?? mine;
  }

  async #check(): Promise<boolean> {
    const log = this.opts.logger ?? silentLogger;
    let epoch: string;
    try {
      epoch = await this.#current();
    } catch {
      if (!this.#down) {
        this.#down = true;
        log.warn({}, 'coordination store unreachable');
        this.opts.onOutage?.();
      }
      return false;
    }
    let why: 'lost' | 'outage' | null = null;
    if (this.#down) why = 'outage';
    if (this.#epoch !== null && epoch !== this.#epoch) why = 'lost';
    this.#down = false;
    this.#epoch = epoch;
    if (!why) return true;
    log.warn({ why }, 'coordination store was reset or unreachable; rebuilding coordination state');
    try {
      await this.opts.onReset(why);
    } catch (err) {
      log.error({ err }, 'coordination rebuild failed');
    }
    return false;
  }
}
