/**
 * Per-agent outcome counters (completed, failed, response time) accumulated in memory and
 * flushed to the agents table in one statement per interval. Writing them inside every task
 * completion would make each agent's row a hot lock that serialises its results; these are
 * performance statistics, so a crash may lose at most one interval of them.
 */
import type { Db } from '../store/index.ts';

interface Delta {
  completed: number;
  failed: number;
  ms: number;
}

export class AgentOutcomes {
  private pending = new Map<string, Delta>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(private readonly db: Db, private readonly intervalMs = 1000) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush().catch(() => {}), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  record(agentId: string, ok: boolean, responseMs: number): void {
    const d = this.pending.get(agentId) ?? { completed: 0, failed: 0, ms: 0 };
    if (ok) {
      d.completed++;
      d.ms += Math.max(0, responseMs);
    } else d.failed++;
    this.pending.set(agentId, d);
  }

  /** Not-yet-flushed counts, so reads in this process are exact. */
  unflushed(agentId: string): Delta {
    return this.pending.get(agentId) ?? { completed: 0, failed: 0, ms: 0 };
  }

  async flush(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const ids = [...batch.keys()];
    const d = [...batch.values()];
    this.flushing = this.db.query(
      `UPDATE agents a SET tasks_completed = a.tasks_completed + x.c, tasks_failed = a.tasks_failed + x.f, total_response_ms = a.total_response_ms + x.ms
       FROM unnest($1::text[], $2::int[], $3::int[], $4::float8[]) AS x(agent_id, c, f, ms) WHERE a.agent_id = x.agent_id`,
      [ids, d.map((x) => x.completed), d.map((x) => x.failed), d.map((x) => x.ms)],
    ).then(() => undefined, (err: unknown) => {
      // put them back so the next flush retries
      for (const [id, x] of batch) {
        const cur = this.pending.get(id) ?? { completed: 0, failed: 0, ms: 0 };
        this.pending.set(id, { completed: cur.completed + x.completed, failed: cur.failed + x.failed, ms: cur.ms + x.ms });
      }
      throw err;
    }).finally(() => { this.flushing = undefined; });
    await this.flushing;
  }
}
