/**
 * The assignment engine (SPEC §6, ARCHITECTURE §1.4): push dispatch, scored. Agents connected
 * to this process (sockets, long-polling claims, built-ins) register a slot; a dispatch round
 * reads eligible tasks in queue order, matches each to a capable agent by strategy, leases them
 * in one statement (rows locked in task_id order, only those still pending — so several
 * processes never take the same task; attempt + 1 is the fencing token) and only after commit
 * hands them to the slot's `deliver`. New tasks that can run now are leased by their insert
 * (`reserve`), without a round. Rounds are coalesced: any number of triggers while a round runs
 * cause one more round.
 *
 * Several processes (`connect(coord)`): a process only dispatches to agents connected to it, so
 * new work on process A must wake process B. Local `task:eligible` events are published (at
 * most one message per tick) on the coordination channel `engine:wake`; every other process
 * runs a round when it hears one. Releases of leases held by an agent served elsewhere
 * (a REST result or a cancel handled here) go out on `engine:release` so that process frees the
 * slot. Pub/sub is at-most-once, so a periodic safety-net round catches any lost wake-up (and
 * a Redis outage); correctness never depends on a message arriving — only latency does. A
 * process alone on the channel sends a wake-up only once a second (a probe for new processes,
 * which announce themselves when they connect).
 */
import { randomUUID } from 'node:crypto';
import { AppError, NotFoundError, isUuid, type EventBus } from '../core/index.ts';
import { PeerChannel, type Coordination, type Unsubscribe } from '../coordination/index.ts';
import type { Db, Queryable } from '../store/index.ts';
import { STRATEGIES, type Strategy } from '../contracts/tasks.ts';
import type { DeliveredTask } from '../contracts/views.ts';
import type { TaskAssignment, TaskRepository, TaskRow } from './task-repository.ts';
import { hasAll, ranksAbove } from './strategies.ts';
import { readQueueHead } from './queue-head.ts';
import { UPDATE_LOCKED_ROWS, inLockOrder, onLookedUpRow } from './task-batches.ts';
import { CapacityGrants, GRANT_CHANNEL, type HeldTokens, type LeasedWire } from './capacity-grants.ts';
import { ROOM_CHANNEL, RemoteRoom } from './remote-room.ts';

export type { DeliveredTask } from '../contracts/views.ts';

export interface AgentSlot {
  agent_id: string;
  capabilities: ReadonlySet<string>;
  max: number;
  score: number;
  builtin: boolean;
  /** Only `active`, non-draining slots receive work. */
  available: boolean;
  /** Pushes a task to the agent. Long-poll slots collect instead. */
  deliver(task: DeliveredTask): void;
}

interface SlotState extends AgentSlot {
  leased: Set<string>;
  /** Tokens other processes hold to lease new tasks to this agent at insert (capacity-grants.ts). */
  granted: number;
  /** A long-poll claim's slot (gone when the claim answers): never granted to other processes. */
  noGrants?: boolean;
  /** Picked for a lease that is being written (a round's, a delegate's, an assignment at insert). */
  reserved: number;
  lastPicked: number;
}

/** A task picked for a slot: counted against the slot (`reserved`) until its lease is written or given up. */
interface SlotPick { task_id: string; caps: string[]; slot: SlotState }

/** In-flight count of a slot: what counts against its `max`. */
const load = (s: SlotState) => s.leased.size + s.reserved + s.granted;

/**
 * Agents picked for new tasks before they are inserted (`reserve`): the insert leases them
 * (`TaskRepository.insertMany`'s `assign`), then `settle` hands the leased ones out — or
 * `cancel` when the insert failed.
 */
export interface Reservation extends TaskAssignment {
  /** After the insert committed: delivers the rows inserted as assigned, frees the other picks. */
  settle(rows: ReadonlyArray<Omit<DeliveryRow, 'parameters'> & { status: string }>, parametersOf: (taskId: string) => unknown): void;
  cancel(): void;
}

export interface AssignmentEngineOptions {
  defaultStrategy: Strategy;
  /** Max tasks leased per round. */
  batchSize?: number;
  /** Priority points gained per minute of waiting (aging), capped at `agingCap`. */
  agingPerMinute?: number;
  agingCap?: number;
  /** Called when the engine audits a PHI read by delivery (parameters decrypted for an agent). */
  onDelivered?: (agentId: string, tasks: DeliveredTask[]) => void;
  onError?: (err: unknown) => void;
  /** How long a delegate naming an agent served by another process waits for it (ms, default 3000). */
  forwardTimeoutMs?: number;
}

/** What a delivery needs of a leased task row (a round reads back only these). */
type DeliveryRow = Pick<TaskRow, 'task_id' | 'task_type' | 'parameters' | 'priority' | 'deadline' | 'pipeline_id' | 'stage' | 'attempt'
  | 'required_capabilities' | 'data_classification' | 'assigned_at' | 'timeout_seconds' | 'lease_expires_at' | 'assigned_agent'>;
const DELIVERY_COLS = 't.task_id, t.task_type, t.parameters, t.priority, t.deadline, t.pipeline_id, t.stage, t.attempt, t.required_capabilities, t.data_classification, t.assigned_at, t.timeout_seconds, t.lease_expires_at, t.assigned_agent';

/** Coordination channels of the engine (prefixed by the adapter). */
export const ENGINE_CHANNELS = { wake: 'engine:wake', release: 'engine:release', delegate: 'engine:delegate', delegated: 'engine:delegated' } as const;

/** New tasks described in a wake-up, so that a process with room can lease them at once. */
interface AnnouncedTask { id: string; caps: string[]; strategy: string | null }
interface WakeMessage { origin: string; tasks?: AnnouncedTask[] }
/** The most tasks one wake-up describes (more: a plain wake-up, and a round reads the queue). */
const MAX_ANNOUNCED = 1000;
interface ReleaseMessage { origin: string; task_id: string; agent_id: string }
/** A delegate naming an agent this process does not serve, for whichever process does. */
interface DelegateRequest { origin: string; request_id: string; task_id: string; agent_id: string; strategy: Strategy | null }
interface DelegateReply {
  origin: string;
  request_id: string;
  result: { agent_id: string; attempt: number } | null;
  error: { code: string; message: string; details?: Record<string, unknown> } | null;
}

/** The longest a long-poll claim waits, when it ends, for leases of its slot still being written. */
const CLAIM_SETTLE_MS = 5000;

/** How long a forwarded delegate waits for the serving process by default (then the task stays queued). */
const DELEGATE_FORWARD_MS = 3000;

/**
 * After a built-in yielded a task to another process's agent (remote-room.ts), a round runs again
 * this much later, with a wake-up for the others: the task is theirs, or the built-in's if it is
 * still waiting (their room was gone, or the wake-up announcing it lost).
 */
const YIELD_RECHECK_MS = 100;

/**
 * An agent that turned a task down (`refused`) is not offered that task again for
 * `min(REFUSAL_BASE_MS × 2^(n−1), REFUSAL_CAP_MS)` after its n-th refusal of it: the task goes
 * to another capable agent, or — when only agents that refused it can take it — waits that long
 * instead of going straight back to the same agent (SPEC §8: rejected → re-queued elsewhere).
 */
const REFUSAL_BASE_MS = 1000;
const REFUSAL_CAP_MS = 60_000;
/** Refusals are forgotten this long after their exclusion ended (and when the task finishes). */
const REFUSAL_RETAIN_MS = 10 * 60_000;
/** At most this many tasks' refusals are kept (the oldest go first). */
const MAX_REFUSED_TASKS = 50_000;

/** The `tasks` of a wake-up from another process, when well-formed. */
function announced(v: unknown): AnnouncedTask[] | null {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_ANNOUNCED) return null;
  for (const t of v as Array<Partial<AnnouncedTask> | null>) {
    if (!t || typeof t.id !== 'string' || !isUuid(t.id) || !Array.isArray(t.caps) || !t.caps.every((c) => typeof c === 'string')
      || (t.strategy !== null && !(STRATEGIES as readonly unknown[]).includes(t.strategy))) return null;
  }
  return v as AnnouncedTask[];
}

export class AssignmentEngine {
  private readonly slots = new Map<string, SlotState>();
  private running = false;
  private again = false;
  private stopped = false;
  private pickCounter = 0;
  private readonly waiters = new Set<() => void>();
  private readonly offs: Array<() => void> = [];
  private readonly batchSize: number;
  /** Identifies this engine's own messages on the shared channels. */
  readonly instanceId = randomUUID();
  private coord: Coordination | undefined;
  private readonly unsubs: Unsubscribe[] = [];
  private wakePending = false;
  /** Wake-ups for the other processes (none sent while no other process listens). */
  private wakes: PeerChannel | undefined;
  /** Descriptions of the tasks the pending wake-up announces (null: a plain wake-up). */
  private wakeTasks: AnnouncedTask[] | null = null;
  /**
   * Eligible tasks may be waiting that no round has seen: set by every `trigger`, cleared by a
   * round that looked for every slot and left nothing behind. Freed room runs a round only
   * while it is set.
   */
  private queued = true;
  private safetyTimer: NodeJS.Timeout | undefined;
  /** Capacity granted to and by the other processes (after `connect`). */
  private grants: CapacityGrants | undefined;
  /** Forwarded delegates waiting for the serving process's answer. */
  private readonly forwarded = new Map<string, (reply: DelegateReply | null) => void>();
  /** Where other processes' agents have room (after `connect`): built-ins here yield to them. */
  private room: RemoteRoom | undefined;
  /** How many of the slots are built-ins (the room asks whether any is, at every message). */
  private builtinSlots = 0;
  /** A built-in yielded a task since the last re-check (set by `pickFor`). */
  private yielded = false;
  private recheckTimer: NodeJS.Timeout | undefined;
  /**
   * Agents that turned tasks down, by task then agent: not offered that task before `until`
   * (`refused`). Process-local on purpose: a process dispatches only to the agents connected to
   * it, and a refusal arrives on the process serving the agent, which is the one that would
   * offer it the task again. Lost on a restart or when the agent reconnects to another process
   * (it is then offered the task once more, refuses, and is excluded there) — a few extra
   * deliveries, never a loop.
   */
  private readonly refusals = new Map<string, Map<string, { until: number; count: number }>>();
  /** Runs a round when the earliest exclusion ends (a task may be waiting only for it). */
  private refusalTimer: { at: number; timer: NodeJS.Timeout } | undefined;

  constructor(
    private readonly db: Db,
    private readonly repo: TaskRepository,
    private readonly bus: EventBus,
    private readonly opts: AssignmentEngineOptions,
  ) {
    this.batchSize = opts.batchSize ?? 500;
    this.offs.push(bus.on('task:eligible', (e) => {
      this.trigger();
      this.publishWake(e.tasks?.map((t) => ({ id: t.task_id, caps: t.required_capabilities, strategy: t.strategy })) ?? null);
    }));
    const release = (e: { task_id: string; agent_id: string | null }) => {
      this.release(e.task_id, e.agent_id);
      if (this.refusals.size) this.refusals.delete(e.task_id);
    };
    this.offs.push(bus.on('task:completed', release));
    this.offs.push(bus.on('task:failed', release));
    this.offs.push(bus.on('task:cancelled', release));
  }

  /**
   * Joins the other processes sharing `coord`: cross-process wake-ups and releases, plus a
   * safety-net round every `safetyNetMs` (0 = none). Resolves once subscribed.
   */
  async connect(coord: Coordination, safetyNetMs: number): Promise<void> {
    this.coord = coord;
    // A wake-up skipped while this process believed itself alone is made up for by a plain one a
    // second later (a round on every other process), not left to the safety net.
    const wakes = new PeerChannel(coord, ENGINE_CHANNELS.wake, undefined, { message: () => ({ origin: this.instanceId } satisfies WakeMessage), onError: (err) => this.opts.onError?.(err) });
    this.wakes = wakes;
    this.unsubs.push(await coord.subscribe(ENGINE_CHANNELS.wake, (m) => {
      const w = m as WakeMessage | null;
      if (w?.origin === this.instanceId) return;
      wakes.heard();
      const tasks = announced(w?.tasks);
      // Nothing known to be waiting here: lease the new tasks directly (one statement, no queue
      // read); otherwise they take their turn in a round.
      if (tasks && !this.queued) void this.leaseAnnounced(tasks);
      else this.trigger();
      // The sender creates work agents here could serve: let it lease the next ones itself.
      if (tasks && w) this.grants?.demand(w.origin, tasks);
    }));
    this.unsubs.push(await coord.subscribe(ENGINE_CHANNELS.release, (m) => {
      const r = m as ReleaseMessage | null;
      if (!r || r.origin === this.instanceId || typeof r.agent_id !== 'string' || typeof r.task_id !== 'string') return;
      if (this.slots.get(r.agent_id)?.leased.delete(r.task_id)) this.roomFreed();
    }));
    this.unsubs.push(await coord.subscribe(ENGINE_CHANNELS.delegate, (m) => {
      const r = m as DelegateRequest | null;
      if (!r || r.origin === this.instanceId || typeof r.agent_id !== 'string' || !this.slots.has(r.agent_id)) return;
      void this.answerForwarded(coord, r);
    }));
    this.unsubs.push(await coord.subscribe(ENGINE_CHANNELS.delegated, (m) => {
      const r = m as DelegateReply | null;
      if (r && r.origin === this.instanceId) this.forwarded.get(r.request_id)?.(r);
    }));
    const grants = new CapacityGrants(coord, this.instanceId, {
      slot: (id) => this.slots.get(id),
      slots: () => this.slots.values(),
      room: (s) => s.max - load(s as SlotState),
      deliverLeased: (rows) => this.deliverLeased(rows),
      roomFreed: () => this.roomFreed(),
      onError: (err) => this.opts.onError?.(err),
    });
    this.unsubs.push(await coord.subscribe(GRANT_CHANNEL, (m) => grants.onMessage(m)));
    this.grants = grants;
    grants.start();
    const room = new RemoteRoom(coord, this.instanceId, {
      slots: () => this.slots.values(),
      load: (s) => load(s as SlotState),
      runsBuiltins: () => this.builtinSlots > 0,
      changed: () => this.trigger(),
      onError: (err) => this.opts.onError?.(err),
    });
    this.unsubs.push(await coord.subscribe(ROOM_CHANNEL, (m) => room.onMessage(m)));
    this.room = room;
    room.start();
    this.sendWake({}); // a plain wake-up: tells the others this process listens (and learns whether they do)
    if (safetyNetMs > 0) {
      this.safetyTimer = setInterval(() => this.trigger(), safetyNetMs);
      this.safetyTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    for (const off of this.offs) off();
    for (const w of this.waiters) w();
    for (const answer of [...this.forwarded.values()]) answer(null);
    if (this.safetyTimer) clearInterval(this.safetyTimer);
    clearTimeout(this.recheckTimer);
    clearTimeout(this.refusalTimer?.timer);
    this.grants?.stop();
    this.room?.stop();
    this.wakes?.stop();
    for (const u of this.unsubs.splice(0)) void u().catch(() => {});
  }

  /**
   * Tells the other processes there is work (coalesced to one message per tick), describing the
   * new tasks when every eligibility of the tick came with descriptions (`null`: one did not).
   */
  private publishWake(tasks: AnnouncedTask[] | null): void {
    if (!this.wakes || this.stopped) return;
    if (this.wakePending) {
      this.wakeTasks = tasks && this.wakeTasks && this.wakeTasks.length + tasks.length <= MAX_ANNOUNCED ? [...this.wakeTasks, ...tasks] : null;
      return;
    }
    this.wakePending = true;
    this.wakeTasks = tasks && tasks.length <= MAX_ANNOUNCED ? tasks : null;
    // After the turn, not in a microtask: the fan-out's batch of this turn (queued first, when the
    // task was created) must take its `seq`s before another process can lease the task and number
    // its own events — `task:created` is seq 1 (test/e2e/multi-process.test.ts).
    setImmediate(() => {
      const tasks = this.wakeTasks;
      this.wakePending = false;
      this.wakeTasks = null;
      this.sendWake(tasks?.length ? { tasks } : {});
    });
  }

  /** Sends a wake-up unless no other process listens (wake-ups only save latency: the safety-net rounds find the work anyway). */
  private sendWake(body: Omit<WakeMessage, 'origin'>): void {
    this.wakes?.publish({ origin: this.instanceId, ...body } satisfies WakeMessage).catch((err: unknown) => this.opts.onError?.(err));
  }

  /** New tasks another process announced, leased to agents here that have room, in one statement. */
  private async leaseAnnounced(tasks: AnnouncedTask[]): Promise<void> {
    const picks = this.pickAll(tasks);
    if (picks.length < tasks.length) this.queued = true; // no room for some now: freed room runs a round
    if (!picks.length || this.stopped) {
      this.unreserve(picks, 0);
      return;
    }
    await this.leasePicked(picks).catch((err: unknown) => {
      this.opts.onError?.(err);
      this.trigger();
    });
  }

  /** Resolves once no dispatch round is running or pending (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.running) await new Promise<void>((resolve) => this.waiters.add(() => resolve()));
  }

  /** Live in-flight count for an agent served by this process. */
  loadOf(agentId: string): number {
    return this.slots.get(agentId)?.leased.size ?? 0;
  }

  hasSlot(agentId: string): boolean {
    return this.slots.has(agentId);
  }

  /**
   * Whether the agent may hold leases this process has not handed it: it holds some here, or
   * another process was granted capacity on it lately (a lost deliver message leaves a lease
   * only PostgreSQL knows of, re-sent as unacknowledged).
   */
  mayHoldLeases(agentId: string): boolean {
    return this.loadOf(agentId) > 0 || (this.grants?.grantedRecently(agentId) ?? false);
  }

  /** Registers (or replaces) an agent's slot; its current leases count towards its load. */
  async addSlot(slot: AgentSlot): Promise<void> {
    const { rows } = await this.db.query<{ task_id: string }>(`SELECT task_id FROM tasks WHERE assigned_agent = $1 AND status IN ('assigned', 'running')`, [slot.agent_id]);
    const prev = this.slots.get(slot.agent_id);
    this.builtinSlots += Number(slot.builtin) - Number(prev?.builtin ?? false);
    const granted = this.grants?.outstanding(slot.agent_id) ?? 0;
    this.slots.set(slot.agent_id, { ...slot, leased: new Set(rows.map((r) => r.task_id)), reserved: prev?.reserved ?? 0, granted, lastPicked: prev?.lastPicked ?? 0 });
    this.grants?.dropHeld(slot.agent_id); // served here now: no more leases through its old process
    this.trigger();
  }

  updateSlot(agentId: string, patch: Partial<Pick<AgentSlot, 'available' | 'max' | 'score' | 'capabilities' | 'deliver'>>): void {
    const s = this.slots.get(agentId);
    if (!s) return;
    Object.assign(s, patch);
    // Peers holding tokens for it drop them (it may serve fewer tasks, or other ones).
    if (patch.available === false || patch.capabilities || patch.max !== undefined) this.grants?.revoke(agentId);
    this.trigger();
  }

  removeSlot(agentId: string): void {
    if (this.slots.get(agentId)?.builtin) this.builtinSlots--;
    this.slots.delete(agentId);
    this.grants?.slotRemoved(agentId);
    this.room?.touch();
  }

  private release(taskId: string, agentId: string | null): void {
    if (!agentId) {
      for (const slot of this.slots.values()) if (slot.leased.delete(taskId)) this.roomFreed();
      return;
    }
    const s = this.slots.get(agentId);
    if (s) {
      if (s.leased.delete(taskId)) this.roomFreed();
      return;
    }
    // The agent may be served by another process, whose slot still counts this lease.
    if (this.coord && !this.stopped) {
      this.coord.publish(ENGINE_CHANNELS.release, { origin: this.instanceId, task_id: taskId, agent_id: agentId } satisfies ReleaseMessage).catch((err: unknown) => this.opts.onError?.(err));
    }
  }

  /** Forget a lease without a domain event (e.g. requeued by a reject). */
  forget(agentId: string, taskId: string): void {
    this.slots.get(agentId)?.leased.delete(taskId);
    this.trigger();
  }

  /**
   * The agent turned the task down (TaskService.reject, before the requeue's round runs): it is
   * not offered the task again for a while (REFUSAL_BASE_MS, doubling with each refusal of the
   * same task), so the task goes to another capable agent, or waits when only agents that
   * refused it are capable. A delegate naming the agent still reaches it.
   */
  refused(taskId: string, agentId: string): void {
    const id = taskId.toLowerCase();
    let byAgent = this.refusals.get(id);
    if (!byAgent) {
      if (this.refusals.size >= MAX_REFUSED_TASKS) this.refusals.delete(this.refusals.keys().next().value!);
      byAgent = new Map();
      this.refusals.set(id, byAgent);
    }
    const count = (byAgent.get(agentId)?.count ?? 0) + 1;
    const until = Date.now() + Math.min(REFUSAL_BASE_MS * 2 ** (count - 1), REFUSAL_CAP_MS);
    byAgent.set(agentId, { until, count });
    this.wakeAtRefusalEnd(until);
  }

  /** Whether `agentId` turned `taskId` down and is still excluded from it. */
  private refusedBy(taskId: string, agentId: string, now: number): boolean {
    const r = this.refusals.get(taskId)?.get(agentId);
    return r !== undefined && r.until > now;
  }

  /** Schedules a round for when an exclusion ends (the earliest one pending), pruning old refusals then. */
  private wakeAtRefusalEnd(at: number): void {
    if (this.stopped || (this.refusalTimer && this.refusalTimer.at <= at)) return;
    clearTimeout(this.refusalTimer?.timer);
    const timer = setTimeout(() => {
      this.refusalTimer = undefined;
      const now = Date.now();
      let next = Infinity;
      for (const [taskId, byAgent] of this.refusals) {
        for (const [agentId, r] of byAgent) {
          if (r.until > now) next = Math.min(next, r.until);
          else if (r.until + REFUSAL_RETAIN_MS < now) byAgent.delete(agentId);
        }
        if (!byAgent.size) this.refusals.delete(taskId);
      }
      this.trigger();
      if (next !== Infinity) this.wakeAtRefusalEnd(next);
      else if (this.refusals.size) this.wakeAtRefusalEnd(now + REFUSAL_RETAIN_MS);
    }, Math.max(0, at - Date.now()) + 5);
    timer.unref();
    this.refusalTimer = { at, timer };
  }

  /**
   * Schedules a dispatch round because work may be waiting (new or requeued tasks, a wake from
   * another process, an agent with room, the safety net); concurrent triggers coalesce.
   */
  trigger(): void {
    this.queued = true;
    this.room?.touch();
    this.schedule();
  }

  /** An agent has room again: a round only if tasks may be waiting (after assignment at insert, usually none). */
  private roomFreed(): void {
    this.room?.touch();
    if (this.queued) this.schedule();
  }

  /**
   * A built-in yielded tasks to agents of other processes: wake them (they lease what they have
   * room for) and look again shortly — what is still waiting then goes to the built-in unless
   * their room is still announced.
   */
  private recheckYielded(wake: boolean): void {
    if (!this.yielded || this.recheckTimer || this.stopped) return;
    this.yielded = false;
    if (wake) this.sendWake({});
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = undefined;
      this.trigger();
    }, YIELD_RECHECK_MS);
    this.recheckTimer.unref();
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        const full = await this.round();
        if (full) this.again = true;
      } while (this.again && !this.stopped);
      this.recheckYielded(true);
    } catch (err) {
      this.opts.onError?.(err);
      // Work may be waiting (the failed round's, and triggers that arrived during it): try again
      // shortly rather than leave it to the safety net.
      setTimeout(() => this.trigger(), 250).unref();
    } finally {
      this.running = false;
      this.wakeWaiters();
    }
  }

  private wakeWaiters(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const w of waiting) w();
  }

  /**
   * Picks an agent for a task among the available slots with room that have every capability in
   * `caps` (only `onlyAgent` when given), by `strategy` (else the default), and counts the pick
   * against its capacity until `unreserve`. Runs once per task placed: ranks the slots in place.
   * Given `taskId`, agents that turned that task down lately (`refused`) are passed over.
   */
  private pickFor(caps: string[], strategy: string | null, onlyAgent?: string, taskId?: string): SlotState | null {
    const strat = (strategy as Strategy | null) ?? this.opts.defaultStrategy;
    let best: SlotState | null = null;
    let bestLoad = 0;
    const now = taskId !== undefined && this.refusals.has(taskId) ? Date.now() : 0;
    for (const s of this.slots.values()) {
      if (onlyAgent && s.agent_id !== onlyAgent) continue;
      const l = load(s);
      if (!s.available || l >= s.max || !hasAll(s.capabilities, caps)) continue;
      if (now && this.refusedBy(taskId!, s.agent_id, now)) continue;
      if (!best || ranksAbove(s, l, best, bestLoad, strat)) {
        best = s;
        bestLoad = l;
      }
    }
    if (!best) return null;
    // A built-in only when no agent anywhere else has room (SPEC §7.4) — unless named.
    if (best.builtin && !onlyAgent && this.room?.covers(caps)) {
      this.yielded = true;
      return null;
    }
    best.lastPicked = ++this.pickCounter;
    best.reserved++;
    return best;
  }

  /**
   * Ends picks, `leased` of them with their lease written (counted from now on by `handOut`).
   * The others' room is freed: a task turned away meanwhile for want of it (two paths may pick
   * one task — a round and another process's announcement — and one comes back empty) gets a
   * round, instead of waiting for the safety net.
   */
  private unreserve(picks: ReadonlyArray<{ slot: SlotState }>, leased: number): void {
    for (const p of picks) p.slot.reserved--;
    if (leased < picks.length) this.roomFreed();
  }

  /** Picks an agent for each task in turn (by its strategy) until `limit` are placed; tasks without a capable agent with room are skipped. */
  private pickAll(tasks: Iterable<{ id: string; caps: string[]; strategy: string | null }>, limit = Infinity, onlyAgent?: string): SlotPick[] {
    const picks: SlotPick[] = [];
    for (const t of tasks) {
      if (picks.length >= limit) break;
      const slot = this.pickFor(t.caps, t.strategy, onlyAgent, t.id);
      if (slot) picks.push({ task_id: t.id, caps: t.caps, slot });
    }
    return picks;
  }

  /**
   * Leases picked pairs (only tasks still pending: a task another process took meanwhile is
   * left out), frees the picks and hands out what was leased. Returns how many were leased.
   */
  private async leasePicked(picks: SlotPick[]): Promise<number> {
    const delivered: Array<{ slot: SlotState; task: DeliveredTask }> = [];
    let leased = 0;
    try {
      const rows = await this.lease(this.db, picks.map((p) => ({ task_id: p.task_id, agent_id: p.slot.agent_id })), null);
      leased = rows.length;
      for (const r of rows) {
        const slot = this.slots.get(r.assigned_agent!);
        if (slot) delivered.push({ slot, task: this.toDelivered(r) });
      }
    } finally {
      this.unreserve(picks, leased); // the leases written now count through handOut, right below
    }
    this.handOut(delivered);
    return delivered.length;
  }

  /** One round over every available slot. Returns true when the batch was full (more may wait). */
  private async round(onlyAgent?: string, limit = this.batchSize): Promise<boolean> {
    const avail = [...this.slots.values()].filter((s) => s.available && load(s) < s.max && (!onlyAgent || s.agent_id === onlyAgent));
    if (!avail.length) return false;
    // Whether this round can tell that nothing is left waiting: it looks for every available slot.
    const coversAll = !onlyAgent && [...this.slots.values()].every((s) => !s.available || load(s) < s.max);
    const capUnion = [...new Set(avail.flatMap((s) => [...s.capabilities]))];
    const capacity = avail.reduce((n, s) => n + (s.max - load(s)), 0);
    const want = Math.min(limit, capacity);
    const ask = Math.max(want * 2, want + 10);
    // Read the queue without locking it, pick, then lease: the lease statement locks the rows
    // and takes only those still pending, so two processes picking the same task lease it once
    // (the other gets fewer rows back). Two autocommitted statements, no transaction around them.
    const rows = await readQueueHead(this.db, capUnion, ask, { perMinute: this.opts.agingPerMinute ?? 1, cap: this.opts.agingCap ?? 5 });
    const picks = this.pickAll(rows.map((t) => ({ id: t.task_id, caps: t.required_capabilities, strategy: t.strategy })), want, onlyAgent);
    if (coversAll && rows.length < ask && picks.length === rows.length) this.queued = false; // saw all, placed all
    if (!picks.length) return false;
    const leased = await this.leasePicked(picks);
    if (leased < picks.length) this.queued = true; // taken by another process meanwhile: what it left may still be waiting
    return leased > 0 && rows.length >= want && want === limit;
  }

  /**
   * Assignment at insert (single and batch creates): picks agents served by this process for
   * new tasks that have no dependencies, before they are inserted, so that a task that can run
   * now is created leased in the same statement — one commit from request to delivery. Null
   * when no task of them can be placed (they are then dispatched by rounds as usual).
   */
  reserve(tasks: ReadonlyArray<{ task_id: string; required_capabilities: string[]; strategy: string | null; dependencies: string[] }>): Reservation | null {
    if (this.stopped) return null;
    const ready = tasks.filter((t) => !t.dependencies.length);
    const hasLocal = (id: string) => this.slots.has(id);
    // Tasks no agent here but a built-in can take now, and those none can: agents of other
    // processes that granted capacity (capacity-grants.ts) come first (SPEC §7.4).
    const remote = new Map<string, HeldTokens>();
    const list: SlotPick[] = [];
    for (const p of this.slots.size ? this.pickAll(ready.map((t) => ({ id: t.task_id, caps: t.required_capabilities, strategy: t.strategy }))) : []) {
      const held = p.slot.builtin ? this.grants?.take(p.caps, hasLocal) : null;
      if (!held) list.push(p);
      else {
        remote.set(p.task_id, held);
        p.slot.reserved--;
      }
    }
    const picks = new Map(list.map((p) => [p.task_id, p.slot]));
    if (this.grants && picks.size + remote.size < ready.length) {
      for (const t of ready) {
        if (picks.has(t.task_id) || remote.has(t.task_id)) continue;
        const held = this.grants.take(t.required_capabilities, hasLocal);
        if (held) remote.set(t.task_id, held);
      }
    }
    this.recheckYielded(false); // yielded ones are announced to the others after the insert
    if (!list.length && !remote.size) return null;
    /** Parameters of the tasks placed on other processes' agents, as the insert sealed them. */
    const sealed = new Map<string, string>();
    let open = true;
    /** Ends the local picks, `leased` of them leased by the insert. */
    const close = (leased: number) => {
      if (!open) return false;
      open = false;
      this.unreserve(list, leased);
      return true;
    };
    return {
      agentOf: (id) => picks.get(id)?.agent_id ?? remote.get(id)?.agent_id ?? null,
      capabilitiesOf: (id) => { const s = picks.get(id) ?? remote.get(id); return s ? [...s.capabilities] : null; },
      stored: (id, parameters) => { if (remote.has(id)) sealed.set(id, parameters); },
      cancel: () => {
        if (close(0)) for (const h of remote.values()) this.grants?.giveBack(h);
      },
      settle: (rows, parametersOf) => {
        if (!open) return;
        const delivered: Array<{ slot: SlotState; task: DeliveredTask }> = [];
        const sent: Array<{ held: HeldTokens; row: LeasedWire }> = [];
        let leasedHere = 0;
        try {
          for (const r of rows) {
            const held = remote.get(r.task_id);
            if (held) {
              if (r.status === 'assigned' && r.assigned_agent === held.agent_id) sent.push({ held, row: this.toWire(r, sealed.get(r.task_id)!) });
              else this.grants?.giveBack(held); // queued behind older tasks: the token stays
              continue;
            }
            if (r.status !== 'assigned' || !picks.has(r.task_id)) continue;
            leasedHere++;
            const slot = r.assigned_agent ? this.slots.get(r.assigned_agent) : undefined;
            if (slot) delivered.push({ slot, task: this.toDelivered(r, parametersOf(r.task_id)) });
          }
        } finally {
          close(leasedHere); // the leases written now count through handOut, right below
        }
        this.handOut(delivered);
        if (sent.length) {
          this.grants?.used(sent);
          for (const { row } of sent) this.bus.emit('task:assigned', { task_id: row.task_id, agent_id: row.assigned_agent, attempt: row.attempt, pipeline_id: row.pipeline_id });
        }
        if (delivered.length) this.wakeWaiters(); // a long-polling claim may have been served
      },
    };
  }

  /** A row leased here to an agent another process serves, as sent to that process (parameters as stored: sealed). */
  private toWire(r: Omit<DeliveryRow, 'parameters'>, sealed: string): LeasedWire {
    return { ...this.toDelivered(r, sealed), parameters: sealed, assigned_agent: r.assigned_agent! };
  }

  /** Tasks another process leased at insert to agents served here (with tokens this process granted): hand them out. */
  private deliverLeased(leased: LeasedWire[]): void {
    const delivered: Array<{ slot: SlotState; task: DeliveredTask }> = [];
    for (const { assigned_agent, ...task } of leased) {
      const slot = this.slots.get(assigned_agent);
      // Not served here any more: the lease is re-sent when the agent reconnects (or times out).
      if (!slot || slot.leased.has(task.task_id)) continue;
      try {
        delivered.push({ slot, task: { ...task, parameters: this.repo.openParameters(task) } });
      } catch (err) {
        this.opts.onError?.(err); // parameters that do not open here: left to the unacknowledged-lease re-send
      }
    }
    this.handOut(delivered, false); // the leasing process announced task:assigned
  }

  /**
   * Payloads for leases being sent again (reconnect, unacknowledged delivery). Decrypting them
   * is a PHI disclosure like the first delivery, so it goes through the same `onDelivered` audit.
   */
  redeliveries(agentId: string, rows: TaskRow[]): DeliveredTask[] {
    const tasks = rows.map((r) => this.toDelivered(r));
    if (tasks.length) this.opts.onDelivered?.(agentId, tasks);
    return tasks;
  }

  /**
   * Leases pending tasks to agents (the attempt bump is the fencing token) and records the
   * history entries, in one statement; a task no longer pending is left out. Returns what the
   * deliveries need.
   */
  private async lease(q: Queryable, unordered: Array<{ task_id: string; agent_id: string }>, reason: string | null): Promise<DeliveryRow[]> {
    const pairs = inLockOrder(unordered, (p) => p.task_id);
    const { rows } = await q.query<DeliveryRow>(
      `WITH cur AS (
         -- One primary-key lookup per pair, locked inside it in input (task_id) order as accepts and
         -- results lock (inLockOrder); a task no longer pending (leased by another process
         -- meanwhile) is left out.
         SELECT t.task_id, x.agent_id FROM unnest($1::uuid[], $2::text[]) AS x(task_id, agent_id)
         CROSS JOIN LATERAL (SELECT task_id FROM tasks WHERE task_id = x.task_id AND ${onLookedUpRow(`status = 'pending' AND pending_deps = 0`)} LIMIT 1 FOR UPDATE) AS t
       ), upd AS (
         UPDATE tasks t SET status = 'assigned', attempt = t.attempt + 1, assigned_agent = cur.agent_id, assigned_at = now(),
           lease_expires_at = now() + make_interval(secs => t.timeout_seconds), progress = 0, progress_message = NULL, started_at = NULL, updated_at = now()
         FROM cur WHERE ${UPDATE_LOCKED_ROWS} RETURNING ${DELIVERY_COLS}
       ), ev AS (
         INSERT INTO task_events (task_id, from_status, to_status, attempt, agent_id, reason) SELECT task_id, 'pending', 'assigned', attempt, assigned_agent, $3::text FROM upd
       )
       SELECT * FROM upd`,
      [pairs.map((p) => p.task_id), pairs.map((p) => p.agent_id), reason]);
    return rows;
  }

  /** The payload of a delivery; `parameters` when the caller has them in the clear (else opened from the row). */
  toDelivered(r: DeliveryRow | Omit<DeliveryRow, 'parameters'>, parameters?: unknown): DeliveredTask {
    return {
      task_id: r.task_id,
      task_type: r.task_type,
      parameters: parameters !== undefined ? parameters : this.repo.openParameters(r as DeliveryRow),
      priority: r.priority,
      deadline: r.deadline ? r.deadline.toISOString() : null,
      pipeline_id: r.pipeline_id,
      stage: r.stage,
      attempt: r.attempt,
      required_capabilities: r.required_capabilities,
      data_classification: r.data_classification,
      metadata: { assigned_at: (r.assigned_at ?? new Date()).toISOString(), timeout_seconds: r.timeout_seconds, lease_expires_at: (r.lease_expires_at ?? new Date()).toISOString() },
    };
  }

  private handOut(delivered: Array<{ slot: SlotState; task: DeliveredTask }>, announce = true): void {
    if (delivered.length) this.room?.touch();
    const byAgent = new Map<string, DeliveredTask[]>();
    for (const { slot, task } of delivered) {
      slot.leased.add(task.task_id);
      const list = byAgent.get(slot.agent_id) ?? [];
      list.push(task);
      byAgent.set(slot.agent_id, list);
    }
    for (const [agentId, tasks] of byAgent) {
      if (announce) for (const t of tasks) this.bus.emit('task:assigned', { task_id: t.task_id, agent_id: agentId, attempt: t.attempt, pipeline_id: t.pipeline_id });
      this.opts.onDelivered?.(agentId, tasks);
      const slot = this.slots.get(agentId);
      for (const t of tasks) {
        try {
          slot?.deliver(t);
        } catch (err) {
          this.opts.onError?.(err);
        }
      }
    }
  }

  /**
   * Forces assignment of one pending task now (POST /tasks/{id}/delegate). Returns the agent
   * or null when no capable agent has room (the task stays queued).
   */
  async delegate(taskId: string, agentId?: string, strategy?: Strategy): Promise<{ agent_id: string; attempt: number } | null> {
    // An agent connected to another process: that process holds its slot, so it assigns.
    if (agentId && !this.slots.has(agentId) && this.coord) return this.forwardDelegate(this.coord, taskId, agentId, strategy);
    const delivered: Array<{ slot: SlotState; task: DeliveredTask }> = [];
    let pick: SlotPick | null = null;
    let out: { agent_id: string; attempt: number } | null = null;
    try {
      out = await this.db.transaction(async (q) => {
        const row = await this.repo.get(q, taskId, true);
        if (!row) throw new NotFoundError('TASK_NOT_FOUND');
        if (row.status === 'assigned' || row.status === 'running') throw new AppError('TASK_ALREADY_ASSIGNED', undefined, { details: { assigned_agent: row.assigned_agent } });
        if (row.status !== 'pending') throw new AppError('INVALID_STATUS_TRANSITION', `A ${row.status} task cannot be delegated.`, { details: { from: row.status, to: 'assigned' } });
        if (row.pending_deps > 0) return null;
        if (agentId && !this.slots.has(agentId)) return null;
        // Naming the agent overrides its refusal (an operator's decision); otherwise it is passed over.
        const slot = this.pickFor(row.required_capabilities, strategy ?? row.strategy, agentId, agentId ? undefined : row.task_id);
        if (!slot) return null;
        pick = { task_id: row.task_id, caps: row.required_capabilities, slot };
        const [r] = await this.lease(q, [{ task_id: row.task_id, agent_id: slot.agent_id }], 'delegated');
        if (!r) return null;
        delivered.push({ slot, task: this.toDelivered(r) });
        return { agent_id: slot.agent_id, attempt: r.attempt };
      });
    } finally {
      if (pick) this.unreserve([pick], out ? 1 : 0);
    }
    this.handOut(delivered);
    return out;
  }

  private async forwardDelegate(coord: Coordination, taskId: string, agentId: string, strategy?: Strategy): Promise<{ agent_id: string; attempt: number } | null> {
    const requestId = randomUUID();
    const reply = await new Promise<DelegateReply | null>((resolve) => {
      const timer = setTimeout(() => done(null), this.opts.forwardTimeoutMs ?? DELEGATE_FORWARD_MS);
      const done = (r: DelegateReply | null) => {
        clearTimeout(timer);
        this.forwarded.delete(requestId);
        resolve(r);
      };
      this.forwarded.set(requestId, done);
      const msg: DelegateRequest = { origin: this.instanceId, request_id: requestId, task_id: taskId, agent_id: agentId, strategy: strategy ?? null };
      coord.publish(ENGINE_CHANNELS.delegate, msg, { echo: false }).catch(() => done(null));
    });
    if (reply?.error) throw new AppError(reply.error.code as ConstructorParameters<typeof AppError>[0], reply.error.message, reply.error.details ? { details: reply.error.details } : {});
    return reply?.result ?? null; // nobody serves the agent (or no answer in time): stays queued
  }

  private async answerForwarded(coord: Coordination, r: DelegateRequest): Promise<void> {
    const reply: DelegateReply = { origin: r.origin, request_id: r.request_id, result: null, error: null };
    try {
      reply.result = await this.delegate(r.task_id, r.agent_id, r.strategy ?? undefined);
    } catch (err) {
      reply.error = err instanceof AppError ? { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } : { code: 'INTERNAL_ERROR', message: 'The delegation failed.' };
      if (!(err instanceof AppError)) this.opts.onError?.(err);
    }
    await coord.publish(ENGINE_CHANNELS.delegated, reply).catch((err: unknown) => this.opts.onError?.(err));
  }

  /**
   * Long-poll claim for an agent without a socket: assigns up to `max` eligible tasks to it,
   * waiting up to `waitMs` for some to appear. The agent's slot exists only during the call.
   */
  async claim(slot: Omit<AgentSlot, 'deliver'>, max: number, waitMs: number): Promise<DeliveredTask[]> {
    const got: DeliveredTask[] = [];
    const existing = this.slots.get(slot.agent_id);
    const deadline = Date.now() + waitMs;
    const collect = (t: DeliveredTask) => { got.push(t); };
    if (!existing) await this.addSlot({ ...slot, max: 0, deliver: collect });
    const s = this.slots.get(slot.agent_id)!;
    if (!existing) s.noGrants = true; // a lease another process made would outlive the claim
    const prevDeliver = s.deliver.bind(s);
    const prevMax = s.max;
    try {
      s.deliver = collect;
      s.max = s.leased.size + Math.max(0, Math.min(max, slot.max - s.leased.size));
      s.available = slot.available;
      this.room?.touch();
      while (!this.stopped) {
        await this.round(slot.agent_id, Math.max(0, s.max - s.leased.size));
        if (got.length || Date.now() >= deadline) break;
        await new Promise<void>((resolve) => {
          const done = () => { clearTimeout(timer); this.waiters.delete(done); resolve(); };
          // re-registered each wait; loop() clears the set after notifying
          const timer = setTimeout(done, Math.min(deadline - Date.now(), 1000));
          this.waiters.add(done);
        });
      }
      // Picks for this slot still being written — by a round `addSlot` triggered, or a create
      // leasing at insert — hand their tasks to `collect` once committed: wait for them, or those
      // tasks would be leased to the agent and never given to it (until the lease expired).
      // A pick is released right before its task is handed out, in the same turn.
      const until = Date.now() + CLAIM_SETTLE_MS;
      while (s.reserved > 0 && !this.stopped && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
      return got;
    } finally {
      if (existing) {
        s.deliver = prevDeliver;
        s.max = prevMax;
      } else {
        // keep the leases counted only while this process serves the agent
        this.slots.delete(slot.agent_id);
      }
      this.room?.touch();
    }
  }
}
