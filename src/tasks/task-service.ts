/**
 * Task use cases (SPEC §6): create (single/batch, all or nothing), read with visibility rules,
 * cancel, operator retry, and the assigned agent's accept/progress/complete/fail fenced by the
 * attempt number. Results are recorded at most once: the row is locked and the attempt, agent
 * and status are checked in the same transaction that records the outcome.
 * Domain events are emitted only after commit.
 */
import { AppError, ConflictError, ForbiddenError, MicroBatcher, isDataException, NotFoundError, ValidationError, isUuid, newId, type DomainEventName, type DomainEvents, type EventBus } from '../core/index.ts';
import { PRIORITY_ALIASES, TASK_TYPE_CAPABILITIES, type CreateTaskInput, type TaskErrorInput, type TaskStatus } from '../contracts/tasks.ts';
import type { Db, Queryable } from '../store/index.ts';
import { hasPermission, principalKey, type Principal } from '../auth/index.ts';
import { DecryptionError, actorOf, isDataClassification, maskValue, type AuditActor, type AuditContext, type PhiAccessLog } from '../security/index.ts';
import { DOOMED, TaskRepository, type AuditedReads, type HistoryEntry, type NewTask, type TaskListFilter, type TaskRow } from './task-repository.ts';
import { backoffMs, CANCELLABLE_STATUSES, RETRYABLE_BY_OPERATOR } from './task-status.ts';
import type { Reservation } from './assignment-engine.ts';
import { historyView, taskSummary, type TaskSummary } from './task-view.ts';
import { UPDATE_LOCKED_ROWS, inLockOrder, onLookedUpRow, rowsByFirstMention } from './task-batches.ts';
import { QueueDepth } from './queue-depth.ts';

/** Where per-agent outcome statistics go (AgentService.outcomes; buffered, off the hot path). */
export interface OutcomeSink {
  record(agentId: string, ok: boolean, responseMs: number): void;
}

export const noOutcomes: OutcomeSink = { record: () => {} };

/** Default of `TaskServiceOptions.queuePositionExactLimit` (config `tasks.queue_position_exact_limit`). */
export const QUEUE_POSITION_EXACT_LIMIT = 10_000;

export interface TaskServiceOptions {
  retryBaseMs: number;
  retryCapMs: number;
  random?: () => number;
  /** Queue positions are exact up to this many tasks ahead, estimated beyond (QueueDepth). Default 10,000. */
  queuePositionExactLimit?: number;
  /** Clock for the estimated positions' counts, for tests. */
  now?: () => number;
}

interface CompletionInput {
  taskId: string;
  agentId: string;
  attempt: number | null;
  result: unknown;
  meta: string | null;
}

interface CompletionRow {
  task_id: string;
  agent_id: string;
  data_classification: string;
  attempt: number;
  task_type: string;
  pipeline_id: string | null;
  stage: string | null;
  ms: number;
  unblocked: string[];
}

/** What explaining a refused transition needs of a task row. */
type MissRow = Pick<TaskRow, 'task_id' | 'attempt' | 'status' | 'assigned_agent'>;

/** An acceptance of a batch: accepted, or the row as the statement saw it (null: not found or a repeat). */
interface AcceptOutcome { accepted: { task_id: string; attempt: number } | null; current: MissRow | null }

/** How long a delivery ack waits for the agent's result before it is written as an accept. */
const ACCEPT_HOLD_MS = 5;

/**
 * A task id named by a caller, as PostgreSQL writes it (lower case; the schemas accept either
 * case): batches and maps match rows by it, and results are sealed under it. TASK_NOT_FOUND when
 * it is no UUID.
 */
function taskKey(taskId: string): string {
  if (!isUuid(taskId)) throw new NotFoundError('TASK_NOT_FOUND');
  return taskId.toLowerCase();
}

type Emit = <K extends DomainEventName>(name: K, payload: DomainEvents[K]) => void;
type Pending = Array<() => void>;

export interface TaskDetail extends TaskSummary {
  parameters: unknown;
  result: unknown;
  history: ReturnType<typeof historyView>;
}

/** One detail read: the task, who reads it, and the audit context of the request. */
interface DetailRead { taskId: string; viewer: Principal; ctx: AuditContext }

export class TaskService {
  private readonly singleCreates = new MicroBatcher<{ task: NewTask; creator: Principal }, (TaskRow & { queue_position: number }) | Error>((items) => this.createGroup(items), { maxSize: 200, maxInFlight: 4 });
  private readonly acceptances = new MicroBatcher<{ taskId: string; agentId: string; attempt: number | null }, AcceptOutcome>((items) => this.acceptBatch(items), { maxSize: 500, maxInFlight: 4, isolate: isDataException });
  private readonly completions = new MicroBatcher<CompletionInput, CompletionRow | null>((items) => this.completeBatch(items), { maxSize: 500, maxInFlight: 4, isolate: isDataException });
  /** Concurrent detail reads share one statement, which also writes their audit entries (`detail`). */
  private readonly detailReads = new MicroBatcher<DetailRead, { row: TaskRow; history: HistoryEntry[] } | null>(async (reads) => {
    const phi = this.phiAudit;
    const audit: AuditedReads | undefined = phi ? {
      reads: reads.filter((r) => hasPermission(r.viewer.role, 'task:read')).map((r) => ({ task_id: r.taskId, ...phi.readAuditOf(r.ctx), visibleTo: this.visibleTo(r.viewer) })),
      sql: (source, param) => phi.readsSql('task', source, param),
    } : undefined;
    const found = await this.repo.getManyWithHistory(this.db, reads.map((r) => r.taskId), audit);
    return reads.map((r) => found.get(r.taskId) ?? null);
  }, { maxSize: 200, maxInFlight: 4 });
  /** Delivery acks not yet written as accepts, by task id as the store wrote it in the delivery (`acknowledgeDelivery`). */
  private readonly held = new Map<string, { agentId: string; attempt: number }>();
  private heldTimer: NodeJS.Timeout | undefined;
  /** Queue positions past the exact limit (QueueDepth). */
  private readonly depth: QueueDepth;

  constructor(
    private readonly db: Db,
    readonly repo: TaskRepository,
    private readonly outcomes: OutcomeSink,
    private readonly bus: EventBus,
    private readonly opts: TaskServiceOptions,
  ) {
    this.depth = new QueueDepth(db, repo, { exactLimit: opts.queuePositionExactLimit ?? QUEUE_POSITION_EXACT_LIMIT, now: opts.now });
  }

  private deferEmit(pending: Pending): Emit {
    return (name, payload) => pending.push(() => this.bus.emit(name, payload));
  }

  private async tx<T>(fn: (q: Queryable, emit: Emit) => Promise<T>): Promise<T> {
    const pending: Pending = [];
    const out = await this.db.transaction((q) => fn(q, this.deferEmit(pending)));
    for (const p of pending) p();
    return out;
  }

  // ---- creation -------------------------------------------------------------------------

  normalize(input: CreateTaskInput, creator: string, index?: number): NewTask {
    const at = (f: string) => (index === undefined ? f : `tasks[${index}].${f}`);
    const caps = input.required_capabilities ?? (TASK_TYPE_CAPABILITIES[input.task_type] ? [TASK_TYPE_CAPABILITIES[input.task_type]!] : null);
    if (!caps) throw new ValidationError('Unknown task types must name required_capabilities.', [{ field: at('required_capabilities'), message: `required for task_type '${input.task_type}'` }]);
    const priority = typeof input.priority === 'string' ? PRIORITY_ALIASES[input.priority] : (input.priority ?? 5);
    if (input.stage && !input.pipeline_id) throw new ValidationError('stage requires pipeline_id.', [{ field: at('stage'), message: 'requires pipeline_id' }]);
    return {
      task_id: newId(),
      task_type: input.task_type,
      priority,
      required_capabilities: caps,
      parameters: input.parameters ?? {},
      data_classification: input.data_classification ?? 'phi',
      metadata: input.metadata ?? {},
      pipeline_id: input.pipeline_id ?? null,
      stage: input.stage ?? null,
      deadline: input.deadline ? new Date(input.deadline).toISOString() : null,
      timeout_seconds: input.timeout_seconds ?? 300,
      max_retries: input.max_retries ?? 3,
      dependencies: input.dependencies ?? [],
      strategy: input.strategy ?? null,
      created_by: creator,
    };
  }

  /** Creates tasks in one transaction; any invalid one rejects the whole batch. */
  async createMany(inputs: CreateTaskInput[], creator: Principal, q?: Queryable): Promise<TaskRow[]> {
    const tasks = inputs.map((t, i) => this.normalize(t, principalKey(creator), inputs.length > 1 ? i : undefined));
    const actor = actorOf(creator);
    return this.insertTasks(tasks, () => actor, (missing) => missing.map(({ index, dep }) => ({ field: inputs.length > 1 ? `tasks[${index}].dependencies` : 'dependencies', message: `unknown task ${dep}` })), {}, q);
  }

  /**
   * Inserts tasks with their history and creation audit, then (after commit) announces them.
   * Without dependencies to check that is one statement and its own commit; otherwise (or
   * inside the caller's `q`) the check and the insert share a transaction.
   */
  private async insertTasks<R extends TaskRow>(
    tasks: NewTask[], actorAt: (i: number) => AuditActor, depErrors: (missing: Array<{ index: number; dep: string }>) => Array<{ field: string; message: string }>,
    opts: { queueAhead?: number }, q?: Queryable,
  ): Promise<R[]> {
    const audit = this.phiAudit?.prepareWrites('create', tasks.map((t, i) => ({ actor: actorAt(i), resource_type: 'task', resource_id: t.task_id, fields: ['parameters'], classification: t.data_classification }))) ?? null;
    const deps = [...new Set(tasks.flatMap((t) => t.dependencies))];
    const run = async (tx: Queryable, emit: Emit, assign: Reservation | null) => {
      if (deps.length) {
        const found = await this.repo.existing(tx, deps);
        const missing = tasks.flatMap((t, index) => t.dependencies.filter((d) => !found.has(d)).map((dep) => ({ index, dep })));
        if (missing.length) throw new ValidationError('Some dependencies do not exist.', depErrors(missing));
      }
      const rows = await this.repo.insertMany(tx, tasks, { ...opts, audit, assign }) as R[];
      for (const r of rows) emit('task:created', { task_id: r.task_id, task_type: r.task_type, priority: r.priority, pipeline_id: r.pipeline_id, stage: r.stage });
      const eligible = rows.filter((r) => r.status === 'pending' && r.pending_deps === 0);
      if (eligible.length) {
        emit('task:eligible', {
          task_ids: eligible.map((r) => r.task_id),
          tasks: eligible.map((r) => ({ task_id: r.task_id, required_capabilities: r.required_capabilities, strategy: r.strategy })),
        });
      }
      return rows;
    };
    if (q) return run(q, (n, p) => this.bus.emit(n, p), null);
    if (deps.length) return this.tx((tx, emit) => run(tx, emit, null));
    // One statement, committed by itself: tasks that can run now are leased to agents of this process in it.
    const assign = this.assigner?.reserve(tasks) ?? null;
    const pending: Pending = [];
    let rows: R[];
    try {
      rows = await run(this.db, this.deferEmit(pending), assign);
    } catch (err) {
      assign?.cancel();
      throw err;
    }
    for (const p of pending) p();
    if (assign) {
      const byId = new Map(tasks.map((t) => [t.task_id, t]));
      assign.settle(rows, (id) => byId.get(id)?.parameters);
    }
    return rows;
  }

  /**
   * Assignment at insert (compose sets the engine); without it new tasks wait for a dispatch round.
   * `refused` is told of each refusal (`reject`) so that the task is not offered to the same
   * agent again at once (AssignmentEngine.refused).
   */
  assigner: { reserve(tasks: NewTask[]): Reservation | null; refused?(taskId: string, agentId: string): void } | null = null;

  async create(input: CreateTaskInput, creator: Principal): Promise<{ task_id: string; status: 'pending'; created_at: string; queue_position: number }> {
    const task = this.normalize(input, principalKey(creator));
    const row = await this.singleCreates.submit({ task, creator });
    if (row instanceof Error) throw row;
    return { task_id: row.task_id, status: 'pending', created_at: row.created_at.toISOString(), queue_position: row.queue_position };
  }

  /**
   * Concurrent single creates share one transaction (one insert, one audit append, one commit).
   * When the group fails (e.g. one task names an unknown dependency) each is retried alone, so
   * a caller only ever sees its own error.
   */
  private async createGroup(items: Array<{ task: NewTask; creator: Principal }>): Promise<Array<(TaskRow & { queue_position: number }) | Error>> {
    // One audit write for the group: an entry per creator naming the tasks it created.
    const insert = async (group: typeof items) => {
      const inserted = await this.insertTasks<TaskRow & { queue_ahead?: number }>(group.map((g) => g.task), (i) => actorOf(group[i]!.creator),
        (missing) => missing.map(({ dep }) => ({ field: 'dependencies', message: `unknown task ${dep}` })), { queueAhead: this.depth.exactLimit });
      // Tasks leased at insert are not queued (position 0).
      const queued = inserted.filter((r) => r.status === 'pending');
      const priorities = queued.map((r) => r.priority);
      this.depth.note(priorities);
      const deep = queued.filter((r) => (r.queue_ahead ?? 0) >= this.depth.exactLimit);
      if (deep.length) {
        const ahead = await this.depth.aheadOf(priorities);
        for (const r of deep) r.queue_ahead = ahead(r.priority);
      }
      const positions = new Map(TaskRepository.queuePositions(queued).map((p, i) => [queued[i]!.task_id, p]));
      return inserted.map((r) => ({ ...r, queue_position: positions.get(r.task_id) ?? 0 }));
    };
    try {
      return await insert(items);
    } catch (err) {
      if (items.length === 1) return [err instanceof Error ? err : new Error(String(err))];
      const out: Array<(TaskRow & { queue_position: number }) | Error> = [];
      for (const it of items) {
        out.push(await insert([it]).then((rows) => rows[0]!, (e: unknown) => (e instanceof Error ? e : new Error(String(e)))));
      }
      return out;
    }
  }

  /** A pending task's position (1 = next): exact up to the limit, estimated beyond (QueueDepth). */
  async queuePosition(row: Pick<TaskRow, 'task_id' | 'priority'>): Promise<number> {
    const n = await this.repo.queuePosition(this.db, row.task_id, this.depth.exactLimit);
    return n >= this.depth.exactLimit ? (await this.depth.aheadOf([]))(row.priority) : n;
  }

  // ---- reading ----------------------------------------------------------------------------

  canSee(p: Principal, t: Pick<TaskRow, 'assigned_agent' | 'created_by'>): boolean {
    if (!hasPermission(p.role, 'task:read')) return false;
    if (p.role !== 'worker') return true;
    return (p.type === 'agent' && t.assigned_agent === p.id) || t.created_by === principalKey(p);
  }

  async getRow(taskId: string, viewer?: Principal): Promise<TaskRow> {
    const row = await this.repo.get(this.db, taskId);
    if (!row || (viewer && !this.canSee(viewer, row))) throw new NotFoundError('TASK_NOT_FOUND');
    return row;
  }

  /** PHI-read auditing (set by compose). Without it reads are neither audited nor counted. */
  phiAudit: PhiAccessLog | null = null;

  /**
   * The task with its decrypted parameters/result (SPEC §6, §9). Callers without `phi:read`
   * get them masked per the task's classification, except the assigned agent, which sees its
   * own task in full. The read is audited by the statement that reads (grouped with concurrent
   * reads), so the entry is committed before anything is decrypted or returned, and a failed
   * audit write fails the read. A value that does not decrypt (tampered, moved) fails closed
   * with a 500 and adds a high-risk failure entry, in a transaction of its own, after the
   * statement's entry for the read.
   */
  async detail(taskId: string, viewer: Principal, ctx: AuditContext = { actor: actorOf(viewer) }): Promise<TaskDetail> {
    let failing: { task_id: string; field: string; classification: string } | null = null;
    try {
      const found = await this.detailReads.submit({ taskId: taskKey(taskId), viewer, ctx });
      if (!found || !this.canSee(viewer, found.row)) throw new NotFoundError('TASK_NOT_FOUND');
      const { row, history } = found;
      const classification = isDataClassification(row.data_classification) ? row.data_classification : 'phi';
      failing = { task_id: row.task_id, field: 'parameters', classification };
      const parameters: unknown = this.repo.openParameters(row);
      failing.field = 'result';
      const result: unknown = this.repo.openResult(row);
      failing = null;
      const full = hasPermission(viewer.role, 'phi:read') || (viewer.type === 'agent' && row.assigned_agent === viewer.id);
      this.phiAudit?.countRead(ctx, { classification, unmasked: full });
      return {
        ...taskSummary(row),
        parameters: full ? parameters : maskValue(parameters, classification),
        result: full ? result : maskValue(result, classification),
        history: historyView(history),
      };
    } catch (err) {
      const f = failing;
      if (err instanceof DecryptionError && f && this.phiAudit) {
        await this.phiAudit.failure(ctx, { resource_type: 'task', resource_id: f.task_id, fields: [f.field], classification: f.classification, reason: err.reason }).catch(() => {});
      }
      throw err;
    }
  }

  /** What a worker may see (tasks assigned to it or created by it); null for every other role (`canSee`). */
  private visibleTo(viewer: Principal): NonNullable<TaskListFilter['visibleTo']> | null {
    return viewer.role === 'worker' ? { agentId: viewer.type === 'agent' ? viewer.id : null, creator: principalKey(viewer) } : null;
  }

  async list(f: TaskListFilter, viewer: Principal, sort: string, limit: number, offset: number): Promise<{ tasks: TaskSummary[]; total: number }> {
    const visibleTo = this.visibleTo(viewer);
    const filter = visibleTo ? { ...f, visibleTo } : f;
    const { rows, total } = await this.repo.list(this.db, filter, sort, limit, offset);
    return { tasks: rows.map(taskSummary), total };
  }

  // ---- operator actions -----------------------------------------------------------------

  async cancel(taskId: string, reason: string, by: Principal): Promise<TaskSummary> {
    return this.tx(async (q, emit) => {
      const row = await this.repo.get(q, taskId, true);
      if (!row || !this.canSee(by, row)) throw new NotFoundError('TASK_NOT_FOUND');
      if (!CANCELLABLE_STATUSES.includes(row.status)) throw this.transitionError(row.status, 'cancelled');
      const { rows } = await q.query<TaskRow>(
        `UPDATE tasks SET status = 'cancelled', lease_expires_at = NULL, retry_at = NULL, completed_at = now(), updated_at = now()
         WHERE task_id = $1 RETURNING *`, [row.task_id]);
      await this.repo.recordEvents(q, [{ task_id: row.task_id, from: row.status, to: 'cancelled', attempt: row.attempt, agent_id: row.assigned_agent, reason }]);
      const leased = row.status === 'assigned' || row.status === 'running';
      emit('task:cancelled', { task_id: row.task_id, agent_id: leased ? row.assigned_agent : null, reason, pipeline_id: row.pipeline_id });
      await this.failDependents(q, [row.task_id], emit);
      return taskSummary(rows[0]!);
    });
  }

  /**
   * Re-queues a failed or timed-out (possibly dead-lettered) task. A dead-lettered one gets one
   * more delivery: max_retries is raised to the failures so far, so its next failure is final.
   */
  async retry(taskId: string, by: Principal): Promise<TaskSummary> {
    return this.tx(async (q, emit) => {
      const row = await this.repo.get(q, taskId, true);
      if (!row || !this.canSee(by, row)) throw new NotFoundError('TASK_NOT_FOUND');
      if (!RETRYABLE_BY_OPERATOR.includes(row.status)) throw this.transitionError(row.status, 'pending');
      // Its dependencies are counted again (those that completed while it was failed released
      // nothing); one that can never complete refuses the redrive, which would wait forever.
      let pendingDeps = 0;
      if (row.dependencies.length) {
        const deps = await this.repo.dependencyStates(q, row.dependencies);
        const doomed = deps.filter((d) => d.doomed).map((d) => d.task_id);
        if (doomed.length) {
          throw new ConflictError('CONFLICT', 'A dependency of the task was cancelled or failed for good: retry it first.', { details: { dependencies: doomed } });
        }
        pendingDeps = deps.filter((d) => d.status !== 'completed').length; // as created: one no longer stored counts as done
      }
      const { rows } = await q.query<TaskRow>(
        `UPDATE tasks SET status = 'pending', dead_letter = false, retry_at = NULL, error = NULL, assigned_agent = NULL, lease_expires_at = NULL,
           progress = 0, progress_message = NULL, max_retries = GREATEST(max_retries, failures), pending_deps = $2, completed_at = NULL, updated_at = now()
         WHERE task_id = $1 RETURNING *`, [row.task_id, pendingDeps]);
      await this.repo.recordEvents(q, [{ task_id: row.task_id, from: row.status, to: 'pending', attempt: row.attempt, agent_id: null, reason: `redriven by ${by.name}` }]);
      if (pendingDeps === 0) emit('task:eligible', { task_ids: [row.task_id] });
      return taskSummary(rows[0]!);
    });
  }

  private transitionError(from: TaskStatus, to: TaskStatus): AppError {
    return new ConflictError('INVALID_STATUS_TRANSITION', `A ${from} task cannot become ${to}.`, { details: { from, to } });
  }

  /**
   * The error for a report by the agent a task still names, under its current attempt, when the
   * task is no longer leased: its lease timed out or failed and the task waits for its retry
   * (`timeout`, `retrying`) → STALE_ATTEMPT, the report is late (SPEC §6); any other status (a
   * result already recorded, a cancel) → INVALID_STATUS_TRANSITION.
   */
  private notLeasedError(row: Pick<TaskRow, 'status' | 'attempt'>, to: TaskStatus): AppError {
    if (row.status === 'retrying' || row.status === 'timeout') {
      return new ConflictError('STALE_ATTEMPT', 'The lease of this attempt ended (timed out or failed); the task waits for its retry.', { details: { current_attempt: row.attempt, status: row.status } });
    }
    return this.transitionError(row.status, to);
  }

  // ---- the assigned agent's side ------------------------------------------------------

  /**
   * Whether an agent reporting on a task it does not hold now may know the task exists (SPEC
   * §3: an object the caller may not see answers 404 like an unknown one, no existence oracle):
   * it may read it (`canSee` with the agent's stored role — a worker, only the tasks it
   * created), or the attempt it names was its own lease (a late report of an earlier attempt
   * stays STALE_ATTEMPT, SPEC §6). One read, asked only once a report was refused, so accepted
   * reports pay nothing for it. `held`: the attempt it names was its lease (or it holds the task now).
   */
  private async knownTo(q: Queryable, row: Pick<TaskRow, 'task_id' | 'assigned_agent'>, agentId: string, attempt: number | undefined): Promise<{ known: boolean; held: boolean }> {
    if (row.assigned_agent === agentId) return { known: true, held: true };
    const s = await this.repo.reporterStanding(q, row.task_id, agentId, attempt ?? null);
    if (!s) return { known: false, held: false };
    const viewer: Principal = { type: 'agent', id: agentId, role: s.role ?? 'worker', name: agentId };
    return { known: s.held || this.canSee(viewer, { assigned_agent: row.assigned_agent, created_by: s.created_by }), held: s.held };
  }

  /**
   * The error for a report by an agent that is not the task's holder now, its attempt being the
   * current one (or none). Nobody holds the task and the attempt was the caller's lease (or it
   * named none) → STALE_ATTEMPT: its lease ended — expired, or turned down — and the task went
   * back to the queue with the same attempt, so the report is late, not someone else's (SPEC §6).
   * Otherwise another agent's lease → NOT_ASSIGNED_AGENT.
   */
  private notHolderError(row: Pick<TaskRow, 'attempt' | 'assigned_agent'>, attempt: number | undefined, held: boolean): AppError {
    if (row.assigned_agent === null && (attempt === undefined || held)) {
      return new ConflictError('STALE_ATTEMPT', undefined, { details: { ...(attempt === undefined ? {} : { attempt }), current_attempt: row.attempt } });
    }
    return new ForbiddenError('NOT_ASSIGNED_AGENT');
  }

  /**
   * Why a report does not fit the task's current lease, for a caller that may know the task:
   * an older attempt → STALE_ATTEMPT; not the holder now → `notHolderError`; null when the
   * caller holds the current lease (its status is the caller's to check).
   */
  private leaseMismatch(row: Pick<TaskRow, 'attempt' | 'assigned_agent'>, agentId: string, attempt: number | undefined, held: boolean): AppError | null {
    if (attempt !== undefined && attempt !== row.attempt) return new ConflictError('STALE_ATTEMPT', undefined, { details: { attempt, current_attempt: row.attempt } });
    if (row.assigned_agent !== agentId) return this.notHolderError(row, attempt, held);
    return null;
  }

  /**
   * Locks the task and checks the caller holds its current lease. `attempt` undefined means
   * "the lease I hold" (SPEC §8). Order: unknown, or not known to the caller (`knownTo`) → 404;
   * older attempt, or its own lease that ended → STALE_ATTEMPT; another agent's lease →
   * NOT_ASSIGNED_AGENT (`notHolderError`).
   */
  private async lockLeased(q: Queryable, taskId: string, agentId: string, attempt: number | undefined): Promise<TaskRow> {
    const row = await this.repo.get(q, taskId, true);
    const standing = row ? await this.knownTo(q, row, agentId, attempt) : null;
    if (!row || !standing?.known) throw new NotFoundError('TASK_NOT_FOUND');
    const mismatch = this.leaseMismatch(row, agentId, attempt, standing.held);
    if (mismatch) throw mismatch;
    return row;
  }

  /**
   * Why a fenced single-statement update matched nothing: unknown task, or one not known to the
   * caller (`knownTo`) (404, thrown); older attempt (STALE_ATTEMPT), someone else's lease
   * (NOT_ASSIGNED_AGENT), or a status the transition does not start from
   * (INVALID_STATUS_TRANSITION). Read without a lock: it only picks the error.
   */
  private async explainMiss(taskId: string, agentId: string, attempt: number | undefined, to: TaskStatus): Promise<{ row: MissRow; error: AppError | null }> {
    const row = await this.repo.get(this.db, taskId);
    if (!row) throw new NotFoundError('TASK_NOT_FOUND');
    return this.explainRow(row, agentId, attempt, to);
  }

  /** `explainMiss` for a row already read. */
  private async explainRow(row: MissRow, agentId: string, attempt: number | undefined, to: TaskStatus): Promise<{ row: MissRow; error: AppError | null }> {
    const standing = await this.knownTo(this.db, row, agentId, attempt);
    if (!standing.known) throw new NotFoundError('TASK_NOT_FOUND');
    return { row, error: this.leaseMismatch(row, agentId, attempt, standing.held) ?? this.notLeasedError(row, to) };
  }

  /** assigned → running (the agent acknowledged the delivery), answered with the task's summary (REST). */
  async accept(taskId: string, agentId: string, attempt?: number): Promise<TaskSummary> {
    await this.acceptLease(taskId, agentId, attempt);
    const row = await this.repo.get(this.db, taskId);
    if (!row) throw new NotFoundError('TASK_NOT_FOUND');
    return taskSummary(row);
  }

  /**
   * The agent acknowledged a delivery (the ack of `task:delegate`; nothing waits for the
   * outcome). Recorded as an accept `ACCEPT_HOLD_MS` later, unless the agent's result for the
   * same lease arrives first: then the result's statement records the task as completed from
   * `assigned` and no statement is spent on the accept (an agent that answers at once costs two
   * statements per task instead of three). A lost hold (crash) loses nothing: the lease is the
   * same in `assigned` as in `running`.
   */
  acknowledgeDelivery(taskId: string, agentId: string, attempt: number): void {
    this.held.set(taskId, { agentId, attempt });
    this.heldTimer ??= setTimeout(() => {
      this.heldTimer = undefined;
      const due = [...this.held];
      this.held.clear();
      for (const [id, h] of due) this.acceptLease(id, h.agentId, h.attempt).catch(() => {});
    }, ACCEPT_HOLD_MS);
  }

  /**
   * assigned → running, batched with concurrent acceptances; answers only what the socket ack
   * needs (the hot path: every delivery is acknowledged). Accepting a task it already runs is
   * not an error for its agent.
   */
  async acceptLease(taskId: string, agentId: string, attempt?: number): Promise<{ task_id: string; status: TaskStatus; attempt: number }> {
    const out = await this.acceptances.submit({ taskId: taskKey(taskId), agentId, attempt: attempt ?? null });
    if (out.accepted) {
      this.bus.emit('task:accepted', { task_id: out.accepted.task_id, agent_id: agentId, attempt: out.accepted.attempt });
      return { task_id: out.accepted.task_id, status: 'running', attempt: out.accepted.attempt };
    }
    // The statement read the row it did not update (e.g. the agent's result was recorded first):
    // that explains the miss, unless it still looked assigned (changed while the statement ran).
    const miss = out.current && out.current.status !== 'assigned' ? await this.explainRow(out.current, agentId, attempt, 'running') : await this.explainMiss(taskId, agentId, attempt, 'running');
    if (!miss.error || (miss.row.status === 'running' && miss.row.assigned_agent === agentId)) return { task_id: miss.row.task_id, status: miss.row.status, attempt: miss.row.attempt };
    throw miss.error;
  }

  private async acceptBatch(items: Array<{ taskId: string; agentId: string; attempt: number | null }>): Promise<AcceptOutcome[]> {
    const unique = inLockOrder(items, (x) => x.taskId);
    const { rows } = await this.db.query<MissRow & { accepted: boolean }>(
      `WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[]) AS x(task_id, agent_id, attempt)
       ), cur AS (
         -- One lookup by primary key per input row, locked inside it: in input order, which is
         -- task_id order (inLockOrder), as every batch locks. (LIMIT keeps the planner from turning
         -- it into a join that scans the table, whatever its statistics were when the plan was made.)
         SELECT t.task_id FROM input x CROSS JOIN LATERAL (
           SELECT task_id FROM tasks WHERE task_id = x.task_id AND ${onLookedUpRow(`assigned_agent = x.agent_id AND status = 'assigned' AND (x.attempt IS NULL OR attempt = x.attempt)`)}
           LIMIT 1 FOR UPDATE) AS t
       ), upd AS (
         UPDATE tasks t SET status = 'running', started_at = now(), updated_at = now()
         FROM cur WHERE ${UPDATE_LOCKED_ROWS}
         RETURNING t.task_id, t.attempt, t.assigned_agent
       ), ev AS (
         INSERT INTO task_events (task_id, from_status, to_status, attempt, agent_id) SELECT task_id, 'assigned', 'running', attempt, assigned_agent FROM upd
       )
       SELECT task_id, attempt, 'running' AS status, assigned_agent, true AS accepted FROM upd
       UNION ALL
       SELECT t.task_id, t.attempt, t.status, t.assigned_agent, false FROM input x CROSS JOIN LATERAL (SELECT * FROM tasks WHERE task_id = x.task_id LIMIT 1) AS t
       WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.task_id = t.task_id)`,
      [unique.map((x) => x.taskId), unique.map((x) => x.agentId), unique.map((x) => x.attempt)]);
    // A repeat within the batch is answered from a fresh read.
    return rowsByFirstMention(items, (x) => x.taskId, rows).map((r) => {
      if (!r) return { accepted: null, current: null };
      return r.accepted ? { accepted: { task_id: r.task_id, attempt: r.attempt }, current: null } : { accepted: null, current: r };
    });
  }

  /**
   * The agent declines a delivery: back to the queue for someone else (SPEC §8), no retry
   * consumed. The engine is told before the requeue's round runs (that round starts on a later
   * turn), so the round passes the refusing agent over.
   */
  async reject(taskId: string, agentId: string, attempt: number | undefined, reason: string): Promise<void> {
    const id = await this.tx(async (q, emit) => {
      const row = await this.lockLeased(q, taskId, agentId, attempt);
      if (row.status !== 'assigned' && row.status !== 'running') throw this.notLeasedError(row, 'pending');
      await this.requeueRows(q, [row], `rejected: ${reason}`, emit);
      return row.task_id;
    });
    this.assigner?.refused?.(id, agentId);
  }

  /** Records progress and extends the lease by the task's timeout. One statement. */
  async progress(taskId: string, agentId: string, attempt: number | undefined, progress: number, message?: string): Promise<{ task_id: string; attempt: number; progress: number; lease_expires_at: string }> {
    if (!isUuid(taskId)) throw new NotFoundError('TASK_NOT_FOUND');
    const { rows } = await this.db.query<{ task_id: string; attempt: number; lease_expires_at: Date; pipeline_id: string | null; was: string }>(
      `WITH cur AS (
         SELECT task_id, status AS was FROM tasks
         WHERE task_id = $1::uuid AND ${onLookedUpRow(`assigned_agent = $2 AND status IN ('assigned', 'running') AND ($3::int IS NULL OR attempt = $3)`)} FOR UPDATE
       ), upd AS (
         UPDATE tasks t SET progress = $4, progress_message = $5, status = 'running', started_at = COALESCE(t.started_at, now()),
           lease_expires_at = now() + make_interval(secs => t.timeout_seconds), updated_at = now()
         FROM cur WHERE t.task_id = cur.task_id
         RETURNING t.task_id, t.attempt, t.lease_expires_at, t.pipeline_id, cur.was
       ), ev AS (
         INSERT INTO task_events (task_id, from_status, to_status, attempt, agent_id, reason)
         SELECT task_id, 'assigned', 'running', attempt, $2, 'progress' FROM upd WHERE was = 'assigned'
       ) SELECT * FROM upd`,
      [taskId, agentId, attempt ?? null, progress, message ?? null]);
    const row = rows[0];
    if (!row) throw (await this.explainMiss(taskId, agentId, attempt, 'running')).error ?? new AppError('INVALID_STATUS_TRANSITION');
    this.bus.emit('task:progress_updated', { task_id: row.task_id, agent_id: agentId, attempt: row.attempt, progress, message: message ?? null, pipeline_id: row.pipeline_id });
    return { task_id: row.task_id, attempt: row.attempt, progress, lease_expires_at: row.lease_expires_at.toISOString() };
  }

  /**
   * Records the result of the caller's current lease, at most once: the row is locked and the
   * agent, attempt and status are checked by the same statement that records the outcome, the
   * history entry and the release of dependents. A repeat of an already recorded result by the
   * same lease answers `duplicate: true` and changes nothing.
   */
  async complete(taskId: string, agentId: string, attempt: number | undefined, result: unknown, metadata?: Record<string, unknown>): Promise<{ task_id: string; status: 'completed'; attempt: number; duplicate: boolean }> {
    const id = taskKey(taskId);
    const held = this.held.get(id);
    if (held && held.agentId === agentId && (attempt === undefined || attempt === held.attempt)) this.held.delete(id); // recorded by the result
    const row = await this.completions.submit({ taskId: id, agentId, attempt: attempt ?? null, result: result ?? null, meta: metadata ? JSON.stringify(metadata) : null });
    if (!row) {
      const miss = await this.explainMiss(taskId, agentId, attempt, 'completed');
      if (miss.row.status === 'completed' && miss.row.assigned_agent === agentId && (attempt === undefined || attempt === miss.row.attempt)) {
        return { task_id: miss.row.task_id, status: 'completed', attempt: miss.row.attempt, duplicate: true };
      }
      throw miss.error ?? this.transitionError(miss.row.status, 'completed');
    }
    this.outcomes.record(agentId, true, row.ms);
    this.bus.emit('task:completed', { task_id: row.task_id, agent_id: agentId, attempt: row.attempt, task_type: row.task_type, pipeline_id: row.pipeline_id, stage: row.stage, duration_ms: row.ms });
    if (row.unblocked.length) this.bus.emit('task:eligible', { task_ids: row.unblocked });
    return { task_id: row.task_id, status: 'completed', attempt: row.attempt, duplicate: false };
  }

  /**
   * Records a batch of results in one statement: each row is locked and its agent, attempt and
   * status checked by the same statement that records the outcome, writes the history entry and
   * releases dependents — so a result is recorded at most once and only for the current lease.
   * Items that did not match (stale, foreign, already final, or a repeat within the batch) get null.
   */
  private async completeBatch(items: CompletionInput[]): Promise<Array<CompletionRow | null>> {
    const unique = inLockOrder(items, (x) => x.taskId);
    // Sealed right before the statement (with the key current now), as PHI whatever the task's
    // classification: the classification is only known inside the statement, and sealing too
    // much is the safe direction.
    const params: unknown[] = [unique.map((x) => x.taskId), unique.map((x) => x.agentId), unique.map((x) => x.attempt), unique.map((x) => this.repo.sealResult(x.taskId, 'phi', x.result)), unique.map((x) => x.meta)];
    // The results written are PHI writes by their agents: audited by the same statement (one
    // entry per agent), so a group is one statement and one commit.
    const audit = this.phiAudit?.agentWritesSql('update', 'upd', 'task', ['result'], (v) => `$${params.push(v)}`);
    const { rows } = await this.db.query<CompletionRow>(
      `WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::jsonb[]) AS x(task_id, agent_id, attempt, result, meta)
       ), cur AS (
         -- One primary-key lookup per input row, locked inside it in task_id order, as in acceptBatch.
         SELECT t.task_id, t.status AS was, x.agent_id, x.result, x.meta FROM input x CROSS JOIN LATERAL (
           SELECT task_id, status FROM tasks WHERE task_id = x.task_id AND ${onLookedUpRow(`assigned_agent = x.agent_id AND status IN ('assigned', 'running') AND (x.attempt IS NULL OR attempt = x.attempt)`)}
           LIMIT 1 FOR UPDATE) AS t
       ), upd AS (
         UPDATE tasks t SET status = 'completed', result = cur.result, progress = 1, completed_at = now(), lease_expires_at = NULL, error = NULL,
           metadata = CASE WHEN cur.meta IS NULL THEN t.metadata ELSE t.metadata || jsonb_build_object('result_metadata', cur.meta) END,
           started_at = COALESCE(t.started_at, t.assigned_at), updated_at = now()
         FROM cur WHERE ${UPDATE_LOCKED_ROWS}
         RETURNING t.task_id, t.attempt, t.task_type, t.pipeline_id, t.stage, t.data_classification, cur.was, cur.agent_id,
           (extract(epoch FROM (now() - t.assigned_at)) * 1000)::float8 AS ms
       ), ev AS (
         INSERT INTO task_events (task_id, from_status, to_status, attempt, agent_id) SELECT task_id, was, 'completed', attempt, agent_id FROM upd
       ), waiting AS (
         SELECT d.task_id FROM tasks d WHERE d.dependencies <> '{}' AND d.dependencies && (SELECT array_agg(task_id) FROM upd) AND ${onLookedUpRow(`d.status = 'pending'`)}
         ORDER BY d.task_id FOR UPDATE OF d
       ), dep AS (
         UPDATE tasks d SET pending_deps = GREATEST(0, d.pending_deps - (SELECT count(*) FROM upd u WHERE u.task_id = ANY(d.dependencies)))
         FROM waiting w WHERE d.task_id = w.task_id
         RETURNING d.task_id, d.pending_deps, d.dependencies
       )${audit ? `, au AS (${audit})` : ''}
       SELECT upd.task_id, upd.attempt, upd.task_type, upd.pipeline_id, upd.stage, upd.ms, upd.agent_id, upd.data_classification,
         COALESCE((SELECT array_agg(dep.task_id) FROM dep WHERE dep.pending_deps = 0 AND upd.task_id = ANY(dep.dependencies)), '{}') AS unblocked
       FROM upd`,
      params);
    return rowsByFirstMention(items, (x) => x.taskId, rows).map((r) => r ?? null);
  }

  async fail(taskId: string, agentId: string, attempt: number | undefined, error: TaskErrorInput): Promise<{ task_id: string; status: TaskStatus; attempt: number; will_retry: boolean; retry_at: string | null; dead_letter: boolean }> {
    return this.tx(async (q, emit) => {
      const row = await this.lockLeased(q, taskId, agentId, attempt);
      if (row.status !== 'assigned' && row.status !== 'running') throw this.notLeasedError(row, 'failed');
      this.outcomes.record(agentId, false, 0);
      return this.failRow(q, row, 'failed', { code: error.code, message: error.message, retryable: error.retryable ?? true, ...(error.details ? { details: error.details } : {}) }, emit);
    });
  }

  /**
   * failed|timeout, then either retrying (backoff) while retries remain and the failure is
   * retryable, or `failed` for good with dead_letter — a timeout too (timeout → failed; its error
   * code says it timed out). Retries are counted by `failures` (this one included: the task's Nth
   * failure is retried while N <= max_retries), not by `attempt`, so deliveries that did not fail
   * (a refusal, a requeue) consume none (SPEC §6).
   */
  private async failRow(q: Queryable, row: TaskRow, status: 'failed' | 'timeout', error: { code: string; message: string; retryable: boolean; details?: unknown }, emit: Emit) {
    const failures = row.failures + 1;
    const willRetry = error.retryable && failures <= row.max_retries;
    const delay = backoffMs(failures, this.opts.retryBaseMs, this.opts.retryCapMs, this.opts.random);
    const { rows } = await q.query<{ retry_at: Date | null }>(
      `UPDATE tasks SET status = $2, error = $3, dead_letter = $4, retry_at = CASE WHEN $5::boolean THEN now() + make_interval(secs => $6::float8 / 1000) END,
         lease_expires_at = NULL, updated_at = now(), completed_at = CASE WHEN $5::boolean THEN NULL ELSE now() END, failures = failures + 1
       WHERE task_id = $1 RETURNING retry_at`,
      [row.task_id, willRetry ? 'retrying' : 'failed', JSON.stringify(error), !willRetry, willRetry, delay]);
    const events: Array<{ task_id: string; from: string | null; to: string; attempt: number; agent_id: string | null; reason: string | null }> = [{ task_id: row.task_id, from: row.status, to: status, attempt: row.attempt, agent_id: row.assigned_agent, reason: error.code }];
    if (willRetry) events.push({ task_id: row.task_id, from: status, to: 'retrying', attempt: row.attempt, agent_id: null, reason: `backoff ${delay} ms` });
    // A timeout that is not retried ends `failed` like any failure (SPEC §6); its error code says it timed out.
    else if (status === 'timeout') events.push({ task_id: row.task_id, from: 'timeout', to: 'failed', attempt: row.attempt, agent_id: null, reason: error.retryable ? 'retries exhausted' : 'not retryable' });
    await this.repo.recordEvents(q, events);
    const retryAt = rows[0]?.retry_at ?? null;
    emit('task:failed', { task_id: row.task_id, agent_id: row.assigned_agent, attempt: row.attempt, task_type: row.task_type, pipeline_id: row.pipeline_id, stage: row.stage, error: { code: error.code, message: error.message, retryable: error.retryable }, dead_letter: !willRetry, will_retry: willRetry });
    if (retryAt) emit('task:retrying', { task_id: row.task_id, attempt: row.attempt, retry_at: retryAt.toISOString() });
    if (!willRetry) await this.failDependents(q, [row.task_id], emit);
    return { task_id: row.task_id, status: (willRetry ? 'retrying' : 'failed') as TaskStatus, attempt: row.attempt, will_retry: willRetry, retry_at: retryAt ? retryAt.toISOString() : null, dead_letter: !willRetry };
  }

  /**
   * Tasks waiting for one of `ids` — which were just cancelled or dead-lettered, so they will never
   * complete — can never run: they fail for good (status `failed`, `dead_letter`, error
   * DEPENDENCY_FAILED naming the dependency, not retryable), and so, transitively, do the tasks
   * waiting for them; each gets its history entry and `task:failed`. Such a task can be redriven
   * (`retry`) once its dependency has been. In the caller's transaction; one statement.
   */
  private async failDependents(q: Queryable, ids: string[], emit: Emit): Promise<void> {
    const { rows } = await q.query<Pick<TaskRow, 'task_id' | 'attempt' | 'task_type' | 'pipeline_id' | 'stage' | 'error'>>(
      `WITH RECURSIVE doomed(task_id, cause) AS (
         SELECT d.task_id, c.id FROM unnest($1::uuid[]) AS c(id)
         JOIN tasks d ON d.dependencies <> '{}' AND d.dependencies && ARRAY[c.id] AND d.status = 'pending'
         UNION
         SELECT d.task_id, x.task_id FROM doomed x
         JOIN tasks d ON d.dependencies <> '{}' AND d.dependencies && ARRAY[x.task_id] AND d.status = 'pending'
       ), one AS (
         SELECT DISTINCT ON (task_id) task_id, cause FROM doomed ORDER BY task_id, cause
       ), locked AS (
         SELECT t.task_id, one.cause FROM tasks t JOIN one ON one.task_id = t.task_id WHERE t.status = 'pending' ORDER BY t.task_id FOR UPDATE OF t
       ), upd AS (
         UPDATE tasks t SET status = 'failed', dead_letter = true, retry_at = NULL, completed_at = now(), updated_at = now(),
           error = jsonb_build_object('code', 'DEPENDENCY_FAILED', 'retryable', false, 'details', jsonb_build_object('dependency', l.cause),
             'message', 'Dependency ' || l.cause || ' was cancelled or failed for good; this task can never run.')
         FROM locked l WHERE t.task_id = l.task_id AND t.status = 'pending'
         RETURNING t.task_id, t.attempt, t.task_type, t.pipeline_id, t.stage, t.error
       ), ev AS (
         INSERT INTO task_events (task_id, from_status, to_status, attempt, agent_id, reason) SELECT task_id, 'pending', 'failed', attempt, NULL, 'DEPENDENCY_FAILED' FROM upd
       )
       SELECT * FROM upd`, [ids]);
    for (const r of rows) {
      emit('task:failed', { task_id: r.task_id, agent_id: null, attempt: r.attempt, task_type: r.task_type, pipeline_id: r.pipeline_id, stage: r.stage,
        error: { code: 'DEPENDENCY_FAILED', message: r.error?.message ?? 'A dependency failed.', retryable: false }, dead_letter: true, will_retry: false });
    }
  }

  private async requeueRows(q: Queryable, rows: TaskRow[], reason: string, emit: Emit): Promise<void> {
    if (!rows.length) return;
    const ids = rows.map((r) => r.task_id);
    await q.query(
      `UPDATE tasks SET status = 'pending', assigned_agent = NULL, lease_expires_at = NULL, progress = 0, progress_message = NULL, updated_at = now()
       WHERE task_id = ANY($1::uuid[])`, [ids]);
    await this.repo.recordEvents(q, rows.map((r) => ({ task_id: r.task_id, from: r.status, to: 'pending', attempt: r.attempt, agent_id: r.assigned_agent, reason })));
    emit('task:eligible', { task_ids: ids });
  }

  /** Tasks an agent currently holds a lease on. */
  async leasedBy(agentId: string): Promise<TaskRow[]> {
    const { rows } = await this.db.query<TaskRow>(`SELECT * FROM tasks WHERE assigned_agent = $1 AND status IN ('assigned', 'running') ORDER BY assigned_at`, [agentId]);
    return rows;
  }

  // ---- sweeps (run by the leader) -------------------------------------------------------

  /**
   * Leases past their expiry → timeout → retry or dead letter. Returns how many timed out. Each
   * counts as a failure of the agent that held it (its score, SPEC §6), once committed.
   */
  async expireLeases(limit = 500): Promise<number> {
    const rows = await this.tx(async (q, emit) => {
      const { rows } = await q.query<TaskRow>(
        `SELECT * FROM tasks WHERE status IN ('assigned', 'running') AND lease_expires_at < now() ORDER BY lease_expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`);
      for (const r of rows) await this.failRow(q, r, 'timeout', { code: 'TASK_TIMEOUT', message: `No result within the ${r.timeout_seconds} s lease.`, retryable: true }, emit);
      return rows;
    });
    this.recordTimeouts(rows);
    return rows.length;
  }

  /** The leases an agent holds → timeout (its socket stayed away past the grace period); each a failure of the agent. */
  async timeoutAgentLeases(agentId: string, reason: string): Promise<number> {
    const rows = await this.tx(async (q, emit) => {
      const { rows } = await q.query<TaskRow>(`SELECT * FROM tasks WHERE assigned_agent = $1 AND status IN ('assigned', 'running') ORDER BY task_id FOR UPDATE`, [agentId]);
      for (const r of rows) await this.failRow(q, r, 'timeout', { code: 'AGENT_DISCONNECTED', message: reason, retryable: true }, emit);
      return rows;
    });
    this.recordTimeouts(rows);
    return rows.length;
  }

  /** A lease that timed out is a failed outcome of the agent that held it, like a reported failure (`fail`). */
  private recordTimeouts(rows: ReadonlyArray<Pick<TaskRow, 'assigned_agent'>>): void {
    for (const r of rows) if (r.assigned_agent) this.outcomes.record(r.assigned_agent, false, 0);
  }

  /** An agent removed: its leased tasks go straight back to the queue. */
  async requeueAgentTasks(agentId: string, reason: string): Promise<number> {
    return this.tx(async (q, emit) => {
      const { rows } = await q.query<TaskRow>(`SELECT * FROM tasks WHERE assigned_agent = $1 AND status IN ('assigned', 'running') ORDER BY task_id FOR UPDATE`, [agentId]);
      await this.requeueRows(q, rows, reason, emit);
      return rows.length;
    });
  }

  /**
   * Repairs dependency counts a completion could not see. A completion decrements the pending
   * dependents it finds in its statement's snapshot; a task created with a dependency while that
   * dependency's completion is in flight (counted as unfinished by the create, committed after
   * the completion's snapshot was taken) is missed by it and would wait forever. No lock order
   * closes that window (the snapshot is taken before any lock), so the leader recounts the
   * recently created waiting tasks every sweep (their counts only go down) and releases those
   * whose dependencies have all completed. Returns how many it released.
   *
   * The same window exists for a dependency cancelled or dead-lettered (`failDependents` misses a
   * dependent created meanwhile), and a task may be created waiting for one that already can
   * never complete: the same recount finds those dependencies, and their waiting dependents fail
   * (DEPENDENCY_FAILED) in a second transaction — only when there are some.
   */
  async repairDependencies(withinSeconds = 300): Promise<number> {
    // One statement, committed by itself. The newest waiting tasks (a missed one is found by the
    // next sweep) are locked — a completion decrementing one of them waits, or it is skipped until
    // the next sweep — then set to the count of their dependencies not completed where lower.
    const { rows } = await this.db.query<{ task_id: string | null; pending_deps: number | null; required_capabilities: string[] | null; strategy: string | null; doomed: string[] | null }>(
      `WITH blocked AS (
         SELECT task_id, dependencies FROM tasks WHERE status = 'pending' AND pending_deps > 0 AND created_at > now() - make_interval(secs => $1::int)
         ORDER BY created_at DESC LIMIT 1000 FOR UPDATE SKIP LOCKED
       ), c AS MATERIALIZED (
         SELECT b.task_id, x.n, x.doomed FROM blocked b CROSS JOIN LATERAL (
           SELECT count(*) FILTER (WHERE d.status <> 'completed')::int AS n,
             array_agg(d.task_id) FILTER (WHERE ${DOOMED('d')}) AS doomed
           FROM tasks d WHERE d.task_id = ANY(b.dependencies)) AS x
       ), upd AS (
         UPDATE tasks t SET pending_deps = c.n, updated_at = now() FROM c
         WHERE t.task_id = c.task_id AND c.n < t.pending_deps
         RETURNING t.task_id, t.pending_deps, t.required_capabilities, t.strategy
       )
       SELECT task_id, pending_deps, required_capabilities, strategy, NULL::uuid[] AS doomed FROM upd
       UNION ALL SELECT NULL, NULL, NULL, NULL, doomed FROM c WHERE doomed IS NOT NULL`, [withinSeconds]);
    const ready = rows.filter((r) => r.task_id !== null && r.pending_deps === 0).map(({ task_id, required_capabilities, strategy }) => ({ task_id: task_id!, required_capabilities: required_capabilities!, strategy }));
    if (ready.length) this.bus.emit('task:eligible', { task_ids: ready.map((r) => r.task_id), tasks: ready });
    const doomed = [...new Set(rows.flatMap((r) => r.doomed ?? []))];
    if (doomed.length) await this.tx((q, emit) => this.failDependents(q, doomed, emit));
    return ready.length;
  }

  /** retrying tasks whose backoff elapsed → pending. */
  async promoteRetries(limit = 1000): Promise<number> {
    return this.tx(async (q, emit) => {
      const { rows } = await q.query<{ task_id: string; attempt: number }>(
        `UPDATE tasks SET status = 'pending', retry_at = NULL, assigned_agent = NULL, progress = 0, progress_message = NULL, updated_at = now()
         WHERE task_id IN (SELECT task_id FROM tasks WHERE status = 'retrying' AND retry_at <= now() ORDER BY retry_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
         RETURNING task_id, attempt`);
      await this.repo.recordEvents(q, rows.map((r) => ({ task_id: r.task_id, from: 'retrying', to: 'pending', attempt: r.attempt, agent_id: null, reason: 'backoff elapsed' })));
      if (rows.length) emit('task:eligible', { task_ids: rows.map((r) => r.task_id) });
      return rows.length;
    });
  }
}
