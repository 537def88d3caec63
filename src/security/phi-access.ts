/**
 * PhiAccessLog: the audit trail of PHI reads (SPEC §9) — what services call whenever they
 * decrypt a classified value for someone.
 *
 * - `readsSql(...)` is the audit of reads written by the statement that reads (a read whose
 *   audit cannot be written fails with it); `countRead` then feeds the breach detector's
 *   `phi_bulk_read` rule (best effort: a coordination outage must not turn every read into an
 *   error — it is reported through `onError`).
 * - `failure(ctx, input)` records a read that failed to decrypt (tampered or moved ciphertext):
 *   its own transaction, since the caller's work is being abandoned; outcome `failure`, risk
 *   `high`. Never the value, only the field names and the failure reason.
 * - `delivered(agentId, tasks)` records deliveries of task parameters to agents (the assignment
 *   engine's `onDelivered` hook, called after the lease committed). Deliveries are buffered and
 *   written in batches (one audit transaction per flush, default every 200 ms or 500 entries),
 *   so a dispatch round of hundreds of tasks costs one chained insert, not hundreds. A failed
 *   flush keeps its entries and is retried (bounded; beyond `maxBuffered` the oldest are
 *   dropped and reported). Principals in `breachExempt` (the built-in in-process agent: it is
 *   the server itself) are audited but not counted by the bulk-read rule.
 */
import { AppError, newId } from '../core/index.ts';
import type { Db } from '../store/index.ts';
import type { AuditActor } from './audit-chain.ts';
import { defaultRiskLevel, type AuditContext, type AuditEntryInput, type AuditLog, type PendingAudit } from './audit-log.ts';
import type { BreachDetector } from './breach-detector.ts';
import { isDataClassification, requiresEncryption, type DataClassification } from './classification.ts';

/** A PHI read to count towards the bulk-read rule (`countRead`; its audit entry is written by the statement that read). */
export interface PhiReadInput {
  /** A DataClassification; anything else is treated as `phi`. */
  classification: string;
  /** False when the caller got masked values: audited, but not counted as a PHI disclosure. */
  unmasked?: boolean;
  /** Records disclosed (default 1). */
  count?: number;
}

export interface PhiFailureInput {
  resource_type: string;
  resource_id: string;
  fields: string[];
  /** A DataClassification; anything else is treated as `phi`. */
  classification: string;
  /** e.g. the DecryptionError reason (`authentication_failed`, `malformed`, …). */
  reason: string;
}

export interface DeliveredPhi {
  task_id: string;
  data_classification: string;
  pipeline_id?: string | null;
}

export interface PhiAccessLogOptions {
  /** Principal keys (`agent:<id>`) audited but exempt from the bulk-read breach rule. */
  breachExempt?: Iterable<string>;
  /** Delivery batches are flushed this often (ms, default 200). */
  flushMs?: number;
  /** …or as soon as this many entries wait (default 500). */
  maxBatch?: number;
  /** Entries kept while the store refuses writes (default 50 000); older ones are dropped and reported. */
  maxBuffered?: number;
  /** Reads are counted towards the bulk-read rule this often (ms, default 100), summed per principal. */
  countEveryMs?: number;
  onError?: (err: unknown, what: string) => void;
}

const classificationOf = (c: string): DataClassification => (isDataClassification(c) ? c : 'phi');

/** Resources named by one grouped entry at most (keeps a row and its hash input bounded). */
const MAX_IDS_PER_ENTRY = 1000;

/**
 * Merges items with the same `key` (same actor, action, resource type, fields, classification)
 * into one entry each, in first-seen order: `resource_id` when it names one resource,
 * `resource_ids` when it names several.
 */
function groupResources(items: Array<{ key: string; id: string; entry: AuditEntryInput }>): AuditEntryInput[] {
  const groups = new Map<string, { entry: AuditEntryInput; ids: string[] }>();
  const out: Array<{ entry: AuditEntryInput; ids: string[] }> = [];
  for (const item of items) {
    let g = groups.get(item.key);
    if (!g || g.ids.length >= MAX_IDS_PER_ENTRY) {
      g = { entry: item.entry, ids: [] };
      groups.set(item.key, g);
      out.push(g);
    }
    g.ids.push(item.id);
  }
  return out.map(({ entry, ids }) => (ids.length === 1 ? { ...entry, resource_id: ids[0]! } : { ...entry, resource_id: null, resource_ids: ids }));
}

/** One PHI field write to audit (task parameters on creation, results on completion). */
interface PhiWriteItem { actor: AuditActor; resource_type: string; resource_id: string; fields: string[]; classification: string }

/** The grouped entries of `prepareWrites`: one per actor, resource type, fields and classification. */
function writeEntries(action: 'create' | 'update', items: PhiWriteItem[], requestId: string | null): AuditEntryInput[] {
  return groupResources(items.filter((i) => requiresEncryption(classificationOf(i.classification))).map((i) => ({
    key: `${principalOf(i.actor)}|${i.resource_type}|${i.fields.join(',')}|${i.classification}`,
    id: i.resource_id,
    entry: { actor: i.actor, action, resource_type: i.resource_type, fields: i.fields, data_classification: classificationOf(i.classification), outcome: 'success' as const, request_id: requestId },
  })));
}

/** Whether a read counts towards the bulk-read rule: PHI seen unmasked. */
function countsAsBulkRead(input: PhiReadInput): boolean {
  return input.unmasked !== false && requiresEncryption(classificationOf(String(input.classification)));
}

/** `type:id`, the principal key the breach detector counts by. */
function principalOf(actor: AuditActor): string {
  return `${actor.type}:${actor.id ?? actor.ip ?? 'anonymous'}`;
}

export class PhiAccessLog {
  readonly #exempt: Set<string>;
  readonly #flushMs: number;
  readonly #maxBatch: number;
  readonly #maxBuffered: number;
  readonly #countEveryMs: number;
  readonly #onError: (err: unknown, what: string) => void;
  #buffer: Array<{ key: string; id: string; entry: AuditEntryInput; principal: string; counted: boolean }> = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | null = null;
  #stopped = false;

  constructor(
    private readonly db: Db,
    private readonly audit: AuditLog,
    private readonly detector: BreachDetector | null,
    opts: PhiAccessLogOptions = {},
  ) {
    this.#exempt = new Set(opts.breachExempt ?? []);
    this.#flushMs = opts.flushMs ?? 200;
    this.#maxBatch = opts.maxBatch ?? 500;
    this.#maxBuffered = opts.maxBuffered ?? 50_000;
    this.#countEveryMs = opts.countEveryMs ?? 100;
    this.#onError = opts.onError ?? (() => {});
  }

  /** True when the principal is exempt from the bulk-read rule (still audited). */
  isExempt(principal: string): boolean {
    return this.#exempt.has(principal);
  }

  /**
   * The audit of reads a statement makes, written by that statement (one round trip for a
   * read and its audit; committed with it, so nothing is disclosed unaudited, and a statement
   * whose audit cannot be written fails whole): a data-modifying CTE body inserting into
   * `audit_pending` one `read` entry per row of `source`, a relation with the columns
   * `audit_id` (uuid), `actor` (jsonb), `request_id` and `resource_id` (text), `fields` (jsonb,
   * an array of field names, never values) and `data_classification` (text, one of the
   * classifications) — `audit_id`, `actor` and `request_id` as `readAuditOf` gives them. The
   * entries are those an `append` of the same reads would write. Count them towards the
   * bulk-read rule with `countRead` once the statement has succeeded.
   */
  readsSql(resourceType: string, source: string, param: (value: unknown) => string): string {
    this.audit.noteAppended();
    const risk = defaultRiskLevel('read', 'success', 'phi');
    return `INSERT INTO audit_pending (audit_id, body)
      SELECT s.audit_id, jsonb_build_object('audit_id', s.audit_id, 'timestamp', ${param(new Date(this.audit.clock.now()).toISOString())}::text,
        'actor', s.actor, 'action', 'read', 'resource_type', ${param(resourceType)}::text, 'resource_id', s.resource_id, 'resource_ids', NULL,
        'fields', s.fields, 'data_classification', s.data_classification, 'outcome', 'success', 'request_id', s.request_id, 'risk_level', ${param(risk)}::text)::text
      FROM ${source} AS s`;
  }

  /** A read's own values for `readsSql`'s source: a fresh entry id, the actor (its five keys) and the request id. */
  readAuditOf(ctx: AuditContext): { audit_id: string; actor: AuditActor; request_id: string | null } {
    const a = ctx.actor;
    return {
      audit_id: newId(),
      actor: { type: a.type, id: a.id ?? null, role: a.role ?? null, ip: a.ip ?? null, user_agent: a.user_agent ?? null },
      request_id: ctx.request_id ?? null,
    };
  }

  /** Counts an audited read towards the bulk-read rule (summed per principal, counted every `countEveryMs`; the caller does not wait). */
  countRead(ctx: AuditContext, input: PhiReadInput): void {
    if (countsAsBulkRead(input)) this.#countSoon(principalOf(ctx.actor), input.count ?? 1);
  }

  /** Reads to count for the bulk-read rule, summed per principal until the next count. */
  #toCount = new Map<string, number>();
  #countTimer: NodeJS.Timeout | undefined;
  /** The counts under way (never rejects: `count` reports its errors). */
  #counting: Promise<void> = Promise.resolve();

  /**
   * Counts reads at most every `countEveryMs`, summed per principal: one coordination call for
   * all of a principal's reads of that time, not one per request (reads arriving a millisecond
   * apart each made their own). The rule's window is minutes long.
   */
  #countSoon(principal: string, n: number): void {
    this.#toCount.set(principal, (this.#toCount.get(principal) ?? 0) + n);
    if (this.#countTimer) return;
    this.#countTimer = setTimeout(() => void this.#countNow(), this.#countEveryMs);
    this.#countTimer.unref();
  }

  /** Counts what waits now; resolves once those counts and the earlier ones are done. */
  #countNow(): Promise<void> {
    if (this.#countTimer) clearTimeout(this.#countTimer);
    this.#countTimer = undefined;
    const counts = this.#toCount;
    this.#toCount = new Map();
    const run = Promise.all([...counts].map(([p, k]) => this.count(p, k)));
    this.#counting = Promise.all([this.#counting, run]).then(() => undefined);
    return this.#counting;
  }

  /**
   * Audits writes of PHI (task parameters on creation) with the caller's own rows: returns the
   * entries for the caller to insert in the same statement (`pendingAuditSelect`), so a failed
   * audit write fails the write. Items with the same actor, resource type, fields and
   * classification share one chained entry naming all of them (`resource_ids`): a batch of 1,000
   * creates is one entry per creator.
   */
  prepareWrites(action: 'create' | 'update', items: PhiWriteItem[], requestId: string | null = null): PendingAudit {
    return this.audit.prepare(writeEntries(action, items, requestId));
  }

  /**
   * `prepareWrites` for PHI writes made by agents inside one statement (the results a batch statement
   * actually recorded, known only inside it): a data-modifying CTE body that inserts into
   * `audit_pending` one entry per agent and classification — the entries `prepareWrites` would give
   * for the rows of `source` (a relation with `agent_id`, `task_id` and `data_classification`;
   * at most 1,000 rows, the most one entry names). `param` binds a value and returns its
   * placeholder. Only `phi` and `restricted` rows are audited, as by `prepareWrites`.
   */
  agentWritesSql(action: 'update', source: string, resourceType: string, fields: string[], param: (value: unknown) => string): string {
    this.audit.noteAppended();
    const risk = defaultRiskLevel(action, 'success', 'phi');
    return `INSERT INTO audit_pending (audit_id, body)
      SELECT g.id, jsonb_build_object('audit_id', g.id, 'timestamp', ${param(new Date(this.audit.clock.now()).toISOString())}::text,
        'actor', jsonb_build_object('type', 'agent', 'id', g.agent_id, 'role', NULL, 'ip', NULL, 'user_agent', NULL),
        'action', ${param(action)}::text, 'resource_type', ${param(resourceType)}::text,
        'resource_id', CASE WHEN g.n = 1 THEN g.ids[1] END, 'resource_ids', CASE WHEN g.n > 1 THEN to_jsonb(g.ids) END,
        'fields', ${param(JSON.stringify(fields))}::jsonb, 'data_classification', g.cls, 'outcome', 'success', 'request_id', NULL, 'risk_level', ${param(risk)}::text)::text
      FROM (SELECT gen_random_uuid() AS id, s.agent_id, s.cls, s.ids, cardinality(s.ids) AS n FROM (
        SELECT agent_id, data_classification AS cls, array_agg(task_id::text ORDER BY task_id) AS ids
        FROM ${source} WHERE data_classification IN ('phi', 'restricted') GROUP BY agent_id, data_classification) AS s) AS g`;
  }

  /** Audits a read that failed to decrypt (own transaction; outcome failure, risk high). */
  async failure(ctx: AuditContext, input: PhiFailureInput): Promise<void> {
    try {
      await this.audit.append(this.db, [{
        actor: ctx.actor,
        action: 'read',
        resource_type: input.resource_type,
        resource_id: input.resource_id,
        // the reason rides with the field names: a fixed vocabulary, never data
        fields: [...input.fields, `decryption:${input.reason}`],
        data_classification: classificationOf(String(input.classification)),
        outcome: 'failure',
        request_id: ctx.request_id ?? null,
        risk_level: 'high',
      }]);
    } catch (err) {
      this.#onError(err, 'audit of a decryption failure');
      throw err;
    }
  }

  /**
   * Records that `agentId` was sent these tasks' parameters (buffered; see the file comment).
   * A flush writes one entry per agent and classification naming every task delivered.
   */
  delivered(agentId: string, tasks: DeliveredPhi[], role: string | null = null): void {
    if (tasks.length === 0) return;
    const actor: AuditActor = { type: 'agent', id: agentId, role, ip: null, user_agent: null };
    const principal = principalOf(actor);
    for (const t of tasks) {
      const classification = classificationOf(t.data_classification);
      this.#buffer.push({
        key: `${principal}|${classification}`,
        id: t.task_id,
        principal,
        counted: requiresEncryption(classification) && !this.#exempt.has(principal),
        entry: { actor, action: 'read', resource_type: 'task', fields: ['parameters'], data_classification: classification, outcome: 'success', request_id: 'delivery' },
      });
    }
    if (this.#buffer.length > this.#maxBuffered) {
      const dropped = this.#buffer.splice(0, this.#buffer.length - this.#maxBuffered);
      this.#onError(new Error(`${dropped.length} delivery audit entries dropped (audit store unavailable)`), 'delivery audit');
    }
    if (this.#buffer.length >= this.#maxBatch) void this.flush();
    else this.#schedule();
  }

  /**
   * Resolves once the delivery entries of `taskIds` to `agentId` are written; throws when the
   * audit store refused them (kept buffered and retried all the same). For a delivery that is
   * a request's answer (a REST claim): if its audit write fails, the request fails (SPEC §9).
   */
  async written(agentId: string, taskIds: readonly string[]): Promise<void> {
    if (taskIds.length === 0) return;
    await this.flush();
    const principal = `agent:${agentId}`;
    const ids = new Set(taskIds);
    if (this.#buffer.some((b) => b.principal === principal && ids.has(b.id))) {
      throw new AppError('SERVICE_UNAVAILABLE', 'The audit log could not be written; try again.', { retryAfter: 5 });
    }
  }

  /** Number of delivery entries waiting to be written. */
  get pending(): number {
    return this.#buffer.length;
  }

  #schedule(): void {
    if (this.#timer || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, this.#flushMs);
    this.#timer.unref();
  }

  /** Writes the buffered delivery entries now (one statement per batch of `maxBatch`), after counting the reads that wait. */
  async flush(): Promise<void> {
    await this.#countNow();
    while (this.#flushing) await this.#flushing;
    if (this.#buffer.length === 0) return;
    const run = async () => {
      while (this.#buffer.length > 0) {
        const batch = this.#buffer.slice(0, this.#maxBatch);
        try {
          await this.audit.append(this.db, groupResources(batch));
        } catch (err) {
          this.#onError(err, 'delivery audit');
          if (!this.#stopped) this.#schedule();
          return;
        }
        this.#buffer.splice(0, batch.length);
        const counts = new Map<string, number>();
        for (const b of batch) if (b.counted) counts.set(b.principal, (counts.get(b.principal) ?? 0) + 1);
        for (const [principal, n] of counts) await this.count(principal, n);
      }
    };
    this.#flushing = run().finally(() => { this.#flushing = null; });
    await this.#flushing;
  }

  /** Flushes what is buffered and stops the timer (shutdown). */
  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
    this.#stopped = true;
  }

  private async count(principal: string, n: number): Promise<void> {
    if (!this.detector) return;
    try {
      await this.detector.notePhiRead(principal, n);
    } catch (err) {
      this.#onError(err, 'phi read breach rule');
    }
  }
}
