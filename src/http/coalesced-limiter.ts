/**
 * CoalescedLimiter: the consumes of one key that arrive in the same turn of the event loop go
 * to the limiter as one consume of their summed cost.
 *
 * Behind Redis every consume is a script call (`rlflxIncr`: INCRBY plus a TTL), and a client
 * sending many requests at once (a service principal, a dashboard) made one call per request:
 * ioredis's and rate-limiter-flexible's work per command was a measurable share of a REST read.
 * One INCRBY of the sum is what the same consumes made in a row would have done, so every
 * request gets the answer it would have had in that order: request i of a group whose costs sum
 * to S, with its own and the earlier requests' costs summing to c(i), sees
 * `consumed = total − S + c(i)` — allowed while that is within the limit, as with separate
 * consumes (rate-limiter-flexible counts rejected points too, so the total is the same either
 * way). The limiter must not block keys for longer than its window (no `blockDuration`) or keep
 * an in-memory block: a group's answer is derived from its total only.
 */
import type { RateLimiterAbstract, RateLimiterRes } from 'rate-limiter-flexible';
import { MicroBatcher } from '../core/index.ts';

/** One request's share of a coalesced consume. */
export interface ConsumeOutcome {
  allowed: boolean;
  /** Points left in the window after this request (0 when refused). */
  remaining: number;
  /** Milliseconds until the window resets. */
  msBeforeNext: number;
}

interface Item { key: string; cost: number }

function isLimiterRes(v: unknown): v is RateLimiterRes {
  return typeof v === 'object' && v !== null && 'consumedPoints' in v && 'msBeforeNext' in v;
}

export class CoalescedLimiter {
  readonly #limiter: RateLimiterAbstract;
  readonly #points: number;
  readonly #batcher: MicroBatcher<Item, ConsumeOutcome | Error>;

  constructor(limiter: RateLimiterAbstract, points: number) {
    this.#limiter = limiter;
    this.#points = points;
    // Many batches may be in flight: grouping is per turn, no request waits for another's call.
    this.#batcher = new MicroBatcher((items) => this.#consumeGroups(items), { maxSize: 10_000, maxInFlight: 1_000 });
  }

  /**
   * Consumes `cost` points for `key`. Resolves with the request's outcome; rejects with the
   * limiter's error when it cannot answer (e.g. Redis unreachable).
   */
  async consume(key: string, cost: number): Promise<ConsumeOutcome> {
    const out = await this.#batcher.submit({ key, cost });
    if (out instanceof Error) throw out;
    return out;
  }

  async #consumeGroups(items: Item[]): Promise<Array<ConsumeOutcome | Error>> {
    const groups = new Map<string, number[]>();
    items.forEach((it, i) => {
      const g = groups.get(it.key);
      if (g) g.push(i);
      else groups.set(it.key, [i]);
    });
    const out = new Array<ConsumeOutcome | Error>(items.length);
    await Promise.all([...groups].map(async ([key, idx]) => {
      const sum = idx.reduce((s, i) => s + items[i]!.cost, 0);
      let res: RateLimiterRes;
      try {
        res = await this.#limiter.consume(key, sum);
      } catch (rej) {
        if (!isLimiterRes(rej)) {
          const err = rej instanceof Error ? rej : new Error(String(rej));
          for (const i of idx) out[i] = err;
          return;
        }
        res = rej;
      }
      let consumed = res.consumedPoints - sum;
      for (const i of idx) {
        consumed += items[i]!.cost;
        const allowed = consumed <= this.#points;
        out[i] = { allowed, remaining: allowed ? this.#points - consumed : 0, msBeforeNext: res.msBeforeNext };
      }
    }));
    return out;
  }
}
