/**
 * Domain events → Socket.IO rooms (SPEC §8). Each event carries a per-resource `seq` so a
 * subscriber can see gaps after a reconnect and re-read state over REST. Internal events
 * (eligibility, revocations) are never sent out. Payloads carry ids and statuses, not PHI.
 *
 * Events are batched per turn of the event loop: the events raised while handling one batch
 * of work (a dispatch round, a group of results) cost one coordination round trip for their
 * `seq`s and one publish, not two per event.
 *
 * Several processes: events of one resource are emitted by whichever process handled the
 * change (a task is created on A, assigned and completed on B), so `seq` comes from a shared
 * coordination counter (`seq:<resource>`, a 10-minute window per resource) rather than a local one,
 * and each batch is published once on `realtime:events`; every process emits the batch to its
 * own sockets (`nsp.local`), the publishing one without waiting for the echo. A resource's
 * birth (`task:created`, `pipeline:created`: raised once, by the process that created it) is
 * seq 1 without a counter, and every later event takes the counter + 1: another process may
 * lease a task the moment its insert commits and number `task:assigned` before the creator's
 * own counter call would have reached Redis — the birth stays first whatever the race.
 * Batches, this process's and the ones heard from others, are emitted in the order they were
 * raised or heard, so each process emits its events in seq order. While
 * the store is unreachable the seq falls back to a per-process counter (subscribers may then
 * see a repeated or out-of-order seq — the signal to re-read over REST, as after any gap) and
 * remote sockets miss the batch (pub/sub is at-most-once).
 *
 * A process alone on the channel (one server using Redis) does not publish: each publish says
 * how many other processes listen, and while none does, batches stay local, with one publish a
 * second as a probe. A process announces itself when it starts (an empty batch), and any batch
 * received from another process means someone listens again.
 */
import type { Namespace } from 'socket.io';
import type { DomainEventName, EventBus } from '../core/index.ts';
import { PeerChannel, type Coordination, type Unsubscribe } from '../coordination/index.ts';

/**
 * How long a resource's seq counter lives from its first event. Every task gets one, so this
 * bounds the counters kept (Redis keys, or entries in-process) to the resources that had an
 * event in the last window: at 5,000 tasks/s about 3 million. A resource whose events span
 * longer starts again at 1 — to a subscriber, like any gap: re-read over REST.
 */
const SEQ_WINDOW_MS = 10 * 60 * 1000;
/** Coordination channel carrying event batches between processes. */
export const EVENTS_CHANNEL = 'realtime:events';

/** The first event of a resource's life, raised once by the process that created it: always seq 1. */
const BIRTHS = new Set<DomainEventName>(['task:created', 'pipeline:created']);

export const rooms = {
  task: (id: string) => `task:${id}`,
  pipeline: (id: string) => `pipeline:${id}`,
  agentSub: (id: string) => `agent-sub:${id}`,
  agentConn: (id: string) => `agent-conn:${id}`,
  principal: (key: string) => `principal:${key}`,
  topic: (t: string) => `topic:${t}`,
  admins: 'admins',
};

const PUBLIC_EVENTS = new Set<DomainEventName>([
  'task:created', 'task:assigned', 'task:progress_updated', 'task:completed', 'task:failed', 'task:cancelled',
  'pipeline:created', 'pipeline:stage_started', 'pipeline:stage_completed', 'pipeline:completed', 'pipeline:failed',
  'agent:registered', 'agent:status_changed', 'agent:unregistered',
  'system:warning', 'system:health_check', 'system:security_alert',
]);

/** One outgoing event: where it goes and what it says (seq filled in at flush). */
interface Outgoing {
  name: DomainEventName;
  /** Resource whose counter gives `seq`. */
  key: string;
  rooms: string[];
  payload: Record<string, unknown>;
  seq?: number;
  /** Agent to send `task:cancel` to (a cancelled task that was leased). */
  cancel?: { agent_id: string; task_id: string; reason: string };
}

/** What travels between processes (published with `echo: false`, so never back to its sender). */
interface Batch { events: Outgoing[] }

export class FanOut {
  private readonly seqs = new Map<string, number>();
  private off: (() => void) | undefined;
  private unsubscribe: Unsubscribe | undefined;
  private queue: Outgoing[] = [];
  private scheduled = false;
  /** Emits batches in bus order even though each waits for its shared seqs. */
  private chain: Promise<void> = Promise.resolve();
  private seqFailing = false;
  private publishFailing = false;
  /** Batches for the other processes (none sent while no other process listens). */
  private readonly peers: PeerChannel | undefined;

  constructor(
    private readonly nsp: Namespace,
    private readonly bus: EventBus,
    private readonly coord?: Coordination,
    private readonly onError?: (err: unknown, what: string) => void,
  ) {
    this.peers = coord?.kind === 'redis' ? new PeerChannel(coord, EVENTS_CHANNEL) : undefined;
  }

  /** The next value of a resource's counter kept in this process (no shared store, or while it is unreachable). */
  private nextCount(key: string): number {
    const n = (this.seqs.get(key) ?? 0) + 1;
    this.seqs.set(key, n);
    if (this.seqs.size > 100_000) this.seqs.clear();
    return n;
  }

  /** Starts listening to the bus and, with a shared coordination store, to other processes' batches. */
  async start(): Promise<void> {
    this.off = this.bus.onAny((name, payload) => {
      if (!PUBLIC_EVENTS.has(name)) return;
      this.queue.push(outgoing(name, payload as Record<string, unknown>));
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
    if (!this.coord || !this.peers) return;
    this.unsubscribe = await this.coord.subscribe(EVENTS_CHANNEL, (m) => {
      this.peers?.heard();
      const batch = m as Batch | null;
      if (!batch || !Array.isArray(batch.events)) return;
      // Behind this process's batches still waiting for their seqs: raised before this one was heard.
      this.chain = this.chain.then(() => { for (const e of batch.events) this.emitLocal(e); }).catch(() => undefined);
    }).catch((err: unknown) => {
      this.onError?.(err, 'cross-process events unavailable');
      return undefined;
    });
    // Tells the processes already running that this one listens (and learns whether they do).
    if (this.unsubscribe) await this.publish([]);
  }

  /** Publishes a batch for the other processes (unless none listens). */
  private async publish(events: Outgoing[]): Promise<void> {
    await this.peers?.publish({ events } satisfies Batch, { echo: false }).then(() => {
      this.publishFailing = false;
    }, (err: unknown) => {
      if (!this.publishFailing) this.onError?.(err, 'cross-process events unavailable; remote sockets miss events until the store is back');
      this.publishFailing = true;
    });
  }

  private flush(): void {
    this.scheduled = false;
    const events = this.queue;
    this.queue = [];
    const coord = this.coord;
    const counted = events.filter((e) => !BIRTHS.has(e.name));
    if (!coord) {
      numberEvents(events, counted.map((e) => this.nextCount(e.key)));
      for (const e of events) this.emitLocal(e);
      return;
    }
    const counts = counted.length === 0 ? Promise.resolve([]) : coord.incrMany(counted.map((e) => `seq:${e.key}`), SEQ_WINDOW_MS).then((n) => {
      this.seqFailing = false;
      return n;
    }, (err: unknown) => {
      if (!this.seqFailing) this.onError?.(err, 'event sequence unavailable; using a local one'); // once per outage
      this.seqFailing = true;
      return counted.map((e) => this.nextCount(e.key));
    });
    this.chain = this.chain.then(async () => {
      numberEvents(events, await counts);
      for (const e of events) this.emitLocal(e);
      await this.publish(events);
    }).catch(() => undefined);
  }

  /**
   * Emits to this process's sockets only; every process does the same for each batch. Rooms
   * without a socket here are skipped before Socket.IO encodes anything (most task events have
   * no subscriber at all).
   */
  private emitLocal(e: Outgoing): void {
    const here = this.nsp.adapter.rooms;
    if (e.rooms.some((r) => here.has(r))) this.nsp.local.to(e.rooms).emit(e.name, { ...e.payload, seq: e.seq });
    if (e.cancel && here.has(rooms.agentConn(e.cancel.agent_id))) {
      this.nsp.local.to(rooms.agentConn(e.cancel.agent_id)).emit('task:cancel', { task_id: e.cancel.task_id, reason: e.cancel.reason });
    }
  }

  async stop(): Promise<void> {
    this.off?.();
    await this.unsubscribe?.().catch(() => {});
  }
}

/** Sets each event's `seq`: 1 for a birth, else its resource's counter (`counts`, in order of the other events) + 1. */
function numberEvents(events: Outgoing[], counts: readonly number[]): void {
  let i = 0;
  for (const e of events) e.seq = BIRTHS.has(e.name) ? 1 : counts[i++]! + 1;
}

/** The rooms an event goes to and the resource that numbers it. */
function outgoing(name: DomainEventName, payload: Record<string, unknown>): Outgoing {
  const p = payload as Record<string, string | null | undefined>;
  const out: Outgoing = { name, key: 'system', rooms: [], payload: { ...withoutFreeText(payload), timestamp: isoNow() } };
  if (name.startsWith('task:')) {
    out.key = `task:${p.task_id}`;
    out.rooms.push(rooms.task(p.task_id!), rooms.topic('tasks'));
    if (p.pipeline_id) out.rooms.push(rooms.pipeline(p.pipeline_id));
    if (p.agent_id) out.rooms.push(rooms.agentSub(p.agent_id));
    if (name === 'task:cancelled' && p.agent_id) out.cancel = { agent_id: p.agent_id, task_id: p.task_id!, reason: p.reason ?? 'cancelled' };
  } else if (name.startsWith('pipeline:')) {
    out.key = `pipeline:${p.pipeline_id}`;
    out.rooms.push(rooms.pipeline(p.pipeline_id!), rooms.topic('pipelines'));
  } else if (name.startsWith('agent:')) {
    out.key = `agent:${p.agent_id}`;
    out.rooms.push(rooms.agentSub(p.agent_id!), rooms.topic('agents'));
  } else if (name === 'system:security_alert') {
    out.rooms.push(rooms.admins);
  } else {
    out.rooms.push(rooms.topic('system'));
  }
  return out;
}

/**
 * Free text written by agents (progress messages, error messages — also inside a pipeline's
 * failure) or by people (a cancel reason) may quote PHI; subscribers get codes and numbers only
 * and can read details over REST, where access is audited and masked.
 */
function withoutFreeText(p: Record<string, unknown>): Record<string, unknown> {
  const err = p.error as { code?: unknown; retryable?: unknown; stage?: unknown } | null | undefined;
  const hasMessage = 'message' in p && 'progress' in p;
  if (!hasMessage && !(err && typeof err === 'object')) return p; // most events: nothing to strip (copied by the caller)
  const out = { ...p };
  if (hasMessage) delete out.message;
  if (err && typeof err === 'object') out.error = { code: err.code, retryable: err.retryable, stage: err.stage }; // undefined ones are not sent
  return out;
}

/** The current time as ISO-8601, formatted once per millisecond (a batch shares it). */
let lastMs = 0;
let lastIso = '';
function isoNow(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}
