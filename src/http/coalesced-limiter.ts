/**
 * CoalescedLimiter: rate-limit consumes with fewer round trips to the limiter, and the same
 * answers.
 *
 * 1. The consumes of one key that arrive in the same turn of the event loop go to the limiter as
 *    one consume of their summed cost. Behind Redis every consume is a script call (`rlflxIncr`:
 *    INCRBY plus a TTL); one INCRBY of the sum is what the same consumes made in a row would have
 *    done, so request i of a group whose costs sum to S, with its own and the earlier requests'
 *    costs summing to c(i), sees `consumed = total − S + c(i)` — allowed while that is within
 *    the limit, as with separate consumes (rate-limiter-flexible counts refused points too).
 * 2. A key with a high limit (`ALLOWANCE_MIN_POINTS` a window or more: system principals, large
 *    quotas) also claims an allowance: a consume that goes to the limiter takes `chunk` points
 *    more (1 % of the limit, at most 100), which this process then grants to that key's next
 *    requests without a round trip — a request no longer waits on Redis before its work starts —
 *    claiming the next allowance in the background once half is used. Every request admitted is
 *    still backed by a point the limiter counted in the same window, so the limit holds across
 *    processes; an allowance is dropped when its window ends. The price: points claimed and not
 *    used before the window ends are lost (at most `chunk` per process and key), so a key may be
 *    refused slightly before its limit when several processes serve it.
 *
 * The limiter must not block keys for longer than its window (no `blockDuration`) or keep an
 * in-memory block: a group's answer is derived from its total only.
 */
import type { RateLimiterAbstract, RateLimiterRes } from 'rate-limiter-flexible';
import { MicroBatcher } from '../core/index.ts';

/** One request's share of a consume. */
export interface ConsumeOutcome {
  allowed: boolean;
  /** Points left in the window after this request (0 when refused). */
  remaining: number;
  /** Milliseconds until the window resets. */
  msBeforeNext: number;
}

/** Limits (points per window) from which a key claims allowances ahead of its requests. */
const ALLOWANCE_MIN_POINTS = 1000;
/** An allowance ends this long before the limiter's window, whose end it learns a round trip late. */
const ALLOWANCE_MARGIN_MS = 100;
/** Allowances kept before the expired ones are first swept. */
const ALLOWANCE_SWEEP_AT = 10_000;

interface Item { key: string; cost: number; claim: number }

/** Points this process was granted ahead for a key, usable until `resetAt`. */
interface Allowance { points: number; resetAt: number; remaining: number; refilling: boolean }

function isLimiterRes(v: unknown): v is RateLimiterRes {
  return typeof v === 'object' && v !== null && 'consumedPoints' in v && 'msBeforeNext' in v;
}

export class CoalescedLimiter {
  readonly #limiter: RateLimiterAbstract;
  readonly #points: number;
  readonly #chunk: number;
  readonly #batcher: MicroBatcher<Item, ConsumeOutcome | Error>;
  readonly #allowances = new Map<string, Allowance>();
  /** Size at which the next sweep runs: twice what the last one left, so sweeps stay rare however many keys are live. */
  #sweepAt = ALLOWANCE_SWEEP_AT;

  constructor(limiter: RateLimiterAbstract, points: number) {
    this.#limiter = limiter;
    this.#points = points;
    this.#chunk = points >= ALLOWANCE_MIN_POINTS ? Math.min(100, Math.floor(points / 100)) : 0;
    // Many batches may be in flight: grouping is per turn, no request waits for another's call.
    this.#batcher = new MicroBatcher((items) => this.#consumeGroups(items), { maxSize: 10_000, maxInFlight: 1_000 });
  }

  /**
   * Consumes `cost` points for `key`. Resolves with the request's outcome; rejects with the
   * limiter's error when it cannot answer (e.g. Redis unreachable).
   */
  async consume(key: string, cost: number): Promise<ConsumeOutcome> {
    const now = Date.now();
    const a = this.#allowances.get(key);
    if (a && a.resetAt > now && a.points >= cost) {
      a.points -= cost;
      if (a.points < this.#chunk / 2 && !a.refilling) this.#refill(key, a);
      return { allowed: true, remaining: a.remaining + a.points, msBeforeNext: a.resetAt - now };
    }
    // No allowance is claimed while the key is known to be over its limit in this window.
    const claim = a && a.resetAt > now && a.remaining === 0 ? 0 : this.#chunk;
    const out = await this.#batcher.submit({ key, cost, claim });
    if (out instanceof Error) throw out;
    return out;
  }

  /** Claims the next allowance for `key` in the background (no request waits for it). */
  #refill(key: string, a: Allowance): void {
    a.refilling = true;
    const retryLater = () => { a.refilling = false; };
    void this.#batcher.submit({ key, cost: 0, claim: this.#chunk }).then((out) => {
      if (out instanceof Error) retryLater();
    }, retryLater);
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
      const costs = idx.reduce((s, i) => s + items[i]!.cost, 0);
      // One allowance per group, claimed after its requests (they come first in the order).
      const claim = Math.max(...idx.map((i) => items[i]!.claim));
      let res: RateLimiterRes;
      try {
        res = await this.#limiter.consume(key, costs + claim);
      } catch (rej) {
        if (!isLimiterRes(rej)) {
          const err = rej instanceof Error ? rej : new Error(String(rej));
          for (const i of idx) out[i] = err;
          return;
        }
        res = rej;
      }
      let consumed = res.consumedPoints - costs - claim;
      for (const i of idx) {
        consumed += items[i]!.cost;
        const allowed = consumed <= this.#points;
        out[i] = { allowed, remaining: allowed ? this.#points - consumed : 0, msBeforeNext: res.msBeforeNext };
      }
      if (claim > 0) this.#grant(key, Math.max(0, Math.min(claim, this.#points - consumed)), res);
    }));
    return out;
  }

  /** Adds the points a claim was granted to the key's allowance (a new one when its window changed). */
  #grant(key: string, points: number, res: RateLimiterRes): void {
    const now = Date.now();
    const resetAt = now + res.msBeforeNext - ALLOWANCE_MARGIN_MS;
    const remaining = Math.max(0, this.#points - res.consumedPoints);
    const prior = this.#allowances.get(key);
    const sameWindow = prior !== undefined && prior.resetAt > now && Math.abs(prior.resetAt - resetAt) < 1000;
    this.#allowances.set(key, { points: (sameWindow ? prior.points : 0) + points, resetAt, remaining, refilling: false });
    if (this.#allowances.size > this.#sweepAt) {
      for (const [k, a] of this.#allowances) if (a.resetAt <= now) this.#allowances.delete(k);
      this.#sweepAt = Math.max(ALLOWANCE_SWEEP_AT, 2 * this.#allowances.size);
    }
  }
}
