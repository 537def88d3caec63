/**
 * Domain events → Socket.IO rooms (SPEC §8). Each event carries a per-resource `seq` so a
 * subscriber can see gaps after a reconnect and re-read state over REST. Internal events
 * (eligibility, revocations) are never sent out. Payloads carry ids and statuses, not PHI.
 *
 * Several processes: events of one resource are emitted by whichever process handled the
 * change (a task is created on A, assigned and completed on B), so `seq` comes from a shared
 * coordination counter (`seq:<resource>`, a 24 h window per resource) rather than a local one.
 * The counter increments are sent in event order on one connection and emits wait for them in
 * that order, so each process emits its events in seq order. While the store is unreachable
 * the seq falls back to a per-process counter (subscribers may then see a repeated or
 * out-of-order seq — the signal to re-read over REST, as after any gap).
 */
import type { Namespace } from 'socket.io';
import type { DomainEventName, EventBus } from '../core/index.ts';
import type { Coordination } from '../coordination/index.ts';

const SEQ_WINDOW_MS = 24 * 3600 * 1000;

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
  'system:warning', 'system:security_alert',
]);

export class FanOut {
  private readonly seqs = new Map<string, number>();
  private off: (() => void) | undefined;
  /** Emits in bus order even though each waits for its shared seq. */
  private chain: Promise<void> = Promise.resolve();
  private seqFailing = false;

  constructor(private readonly nsp: Namespace, private readonly bus: EventBus, private readonly coord?: Coordination, private readonly onSeqError?: (err: unknown) => void) {}

  /** Resolves once every event seen so far was emitted (tests). */
  flushed(): Promise<void> {
    return this.chain;
  }

  private nextSeq(key: string): number {
    const n = (this.seqs.get(key) ?? 0) + 1;
    this.seqs.set(key, n);
    if (this.seqs.size > 100_000) this.seqs.clear();
    return n;
  }

  start(): void {
    this.off = this.bus.onAny((name, payload) => {
      if (!PUBLIC_EVENTS.has(name)) return;
      const p = payload as Record<string, string | null | undefined>;
      const timestamp = new Date().toISOString();
      const targets: string[] = [];
      let key = 'system';
      if (name.startsWith('task:')) {
        key = `task:${p.task_id}`;
        targets.push(rooms.task(p.task_id!), rooms.topic('tasks'));
        if (p.pipeline_id) targets.push(rooms.pipeline(p.pipeline_id));
        if (p.agent_id) targets.push(rooms.agentSub(p.agent_id));
      } else if (name.startsWith('pipeline:')) {
        key = `pipeline:${p.pipeline_id}`;
        targets.push(rooms.pipeline(p.pipeline_id!), rooms.topic('pipelines'));
      } else if (name.startsWith('agent:')) {
        key = `agent:${p.agent_id}`;
        targets.push(rooms.agentSub(p.agent_id!), rooms.topic('agents'));
      } else if (name === 'system:security_alert') {
        targets.push(rooms.admins);
      } else {
        targets.push(rooms.topic('system'));
      }
      const emit = (seq: number) => {
        this.nsp.to(targets).emit(name, { ...withoutFreeText(payload as Record<string, unknown>), seq, timestamp });
        if (name === 'task:cancelled' && p.agent_id) {
          this.nsp.to(rooms.agentConn(p.agent_id)).emit('task:cancel', { task_id: p.task_id, reason: p.reason ?? 'cancelled' });
        }
      };
      if (!this.coord) {
        emit(this.nextSeq(key));
        return;
      }
      const seq = this.coord.incr(`seq:${key}`, SEQ_WINDOW_MS).then((n) => {
        this.seqFailing = false;
        return n;
      }, (err: unknown) => {
        if (!this.seqFailing) this.onSeqError?.(err); // once per outage
        this.seqFailing = true;
        return this.nextSeq(key);
      });
      this.chain = this.chain.then(() => seq.then(emit)).catch(() => undefined);
    });
  }

  stop(): void {
    this.off?.();
  }
}

/**
 * Free text written by agents (progress messages, error messages) may quote the PHI they were
 * working on; subscribers get codes and numbers only and can read details over REST, where
 * access is audited and masked.
 */
function withoutFreeText(p: Record<string, unknown>): Record<string, unknown> {
  const out = { ...p };
  if ('message' in out && 'progress' in out) delete out.message;
  const err = out.error as { code?: unknown; retryable?: unknown } | null | undefined;
  if (err && typeof err === 'object') out.error = { code: err.code, retryable: err.retryable };
  return out;
}
