/**
 * Domain events → Socket.IO rooms (SPEC §8). Each event carries a per-resource `seq` so a
 * subscriber can see gaps after a reconnect and re-read state over REST. Internal events
 * (eligibility, revocations) are never sent out. Payloads carry ids and statuses, not PHI.
 */
import type { Namespace } from 'socket.io';
import type { DomainEventName, EventBus } from '../core/index.ts';

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

  constructor(private readonly nsp: Namespace, private readonly bus: EventBus) {}

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
      this.nsp.to(targets).emit(name, { ...(payload as Record<string, unknown>), seq: this.nextSeq(key), timestamp });
      if (name === 'task:cancelled' && p.agent_id) {
        this.nsp.to(rooms.agentConn(p.agent_id)).emit('task:cancel', { task_id: p.task_id, reason: p.reason ?? 'cancelled' });
      }
    });
  }

  stop(): void {
    this.off?.();
  }
}
