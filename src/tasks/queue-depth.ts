/**
 * Queue positions that stay cheap however long the queue grows. A position is a count of
 * pending tasks ranking ahead, and PostgreSQL counts by walking index entries: measured, a
 * single create went from 4.5 to 10.3 ms once 100,000 tasks were waiting
 * (docs/benchmarks.md), so a backlog — when agents are down, exactly when the system is under
 * strain — would make every create slower than the last.
 *
 * So the count in a create's statement stops at `exactLimit` (an index walk of at most that
 * many entries). A position within the limit is exact; past it, the position comes from a full
 * count per priority taken at most `maxAgeMs` ago, shared by every create in between (one full
 * count a second at most, however many creates wait behind a long queue). Such a position is an
 * estimate: the queue may have moved since the count.
 */
import type { Queryable } from '../store/index.ts';
import type { TaskRepository } from './task-repository.ts';

export interface QueueDepthOptions {
  /** Counts stop here; positions beyond it are estimated. */
  exactLimit: number;
  /** How old a full count may be before a deep position takes a new one. */
  maxAgeMs?: number;
  /** Clock (ms), for tests. */
  now?: () => number;
}

const MAX_AGE_MS = 1000;

type Counts = Map<number, number>;

/** Adds one per priority listed. */
function tally(counts: Counts, priorities: readonly number[]): Counts {
  for (const p of priorities) counts.set(p, (counts.get(p) ?? 0) + 1);
  return counts;
}

function atOrAbove(counts: Counts, priority: number): number {
  let n = 0;
  for (const [p, c] of counts) if (p >= priority) n += c;
  return n;
}

export class QueueDepth {
  readonly exactLimit: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  /** Pending tasks per priority: the last full count plus the tasks queued through this process since; null before the first count. */
  #counts: Counts | null = null;
  /** When the last full count was taken. */
  #countedAt = 0;
  /** A full count under way, shared by the creates that need it. */
  #counting: Promise<void> | null = null;

  constructor(private readonly db: Queryable, private readonly repo: TaskRepository, opts: QueueDepthOptions) {
    if (!Number.isInteger(opts.exactLimit) || opts.exactLimit < 1) throw new Error('exactLimit must be a positive integer');
    this.exactLimit = opts.exactLimit;
    this.#maxAgeMs = opts.maxAgeMs ?? MAX_AGE_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** Tasks just queued through this process (their priorities), to carry the last full count forward. */
  note(batch: readonly number[]): void {
    if (this.#counts) tally(this.#counts, batch);
  }

  /**
   * For a batch of tasks just queued and noted (their priorities; none for a task already
   * waiting) of which some counted the limit: how many pending tasks queued before the batch
   * rank at a priority or higher — the last full count plus the tasks queued through this
   * process since, never below the limit. A count older than `maxAgeMs` is taken again first.
   * The batch is in either (noted since the count, or counted), and left out. A count that
   * fails counts nothing (the answer is the limit, a lower bound): the batch is committed, so
   * its creates must not fail now.
   */
  async aheadOf(batch: readonly number[]): Promise<(priority: number) => number> {
    if (!this.#counts || this.#now() - this.#countedAt >= this.#maxAgeMs) {
      this.#counting ??= this.#count().finally(() => { this.#counting = null; });
      await this.#counting;
    }
    const counts = this.#counts ?? new Map<number, number>();
    const own = tally(new Map(), batch);
    return (priority) => Math.max(this.exactLimit, atOrAbove(counts, priority) - atOrAbove(own, priority));
  }

  /** One walk of the pending index gives every priority's count. */
  async #count(): Promise<void> {
    const at = this.#now();
    try {
      this.#counts = new Map((await this.repo.pendingByPriority(this.db)).map((c) => [c.priority, c.n]));
    } catch {
      this.#counts = new Map();
    }
    this.#countedAt = at;
  }
}
