/**
 * The typed in-process event bus (ARCHITECTURE §1.7). Services emit domain events here;
 * Socket.IO fan-out, metrics and webhooks subscribe. Event names are SPEC §8's.
 * Listeners run synchronously in emit order; a throwing listener is reported, never propagated,
 * so one broken subscriber cannot fail the service call that emitted.
 */
export interface DomainEvents {
  'task:created': { task_id: string; task_type: string; priority: number; pipeline_id: string | null; stage: string | null };
  'task:assigned': { task_id: string; agent_id: string; attempt: number; pipeline_id: string | null };
  'task:accepted': { task_id: string; agent_id: string; attempt: number };
  'task:progress_updated': { task_id: string; agent_id: string | null; attempt: number; progress: number; message: string | null; pipeline_id: string | null };
  'task:completed': { task_id: string; agent_id: string | null; attempt: number; task_type: string; pipeline_id: string | null; stage: string | null; duration_ms: number | null };
  'task:failed': { task_id: string; agent_id: string | null; attempt: number; task_type: string; pipeline_id: string | null; stage: string | null; error: { code: string; message: string; retryable: boolean }; dead_letter: boolean; will_retry: boolean };
  'task:cancelled': { task_id: string; agent_id: string | null; reason: string; pipeline_id: string | null };
  'task:retrying': { task_id: string; attempt: number; retry_at: string };
  /** `tasks`, when given, describes them (what a process needs to lease them without reading the queue). */
  'task:eligible': { task_ids: string[]; tasks?: Array<{ task_id: string; required_capabilities: string[]; strategy: string | null }> };
  'pipeline:created': { pipeline_id: string; template: string; name: string };
  'pipeline:stage_started': { pipeline_id: string; stage: string; task_id: string };
  'pipeline:stage_completed': { pipeline_id: string; stage: string; task_id: string; status: string };
  'pipeline:completed': { pipeline_id: string; status: string };
  /** `error.message` stays in process (it may quote what an agent said): subscribers get the code and stage. */
  'pipeline:failed': { pipeline_id: string; status: string; error: { code: string; message: string; stage?: string } | null };
  'agent:registered': { agent_id: string; type: string; capabilities: string[] };
  'agent:status_changed': { agent_id: string; status: string; previous: string | null };
  /** Its capabilities or capacity changed (a status change is `agent:status_changed`): the process serving it updates its slot. */
  'agent:updated': { agent_id: string };
  'agent:unregistered': { agent_id: string };
  'principal:revoked': { subject_type: 'user' | 'agent'; subject_id: string; reason: string };
  'system:warning': { message: string; component: string };
  /** The overall status and each dependency's (no error text), sent by the leader every `log.health_broadcast_ms`. */
  'system:health_check': { status: string; checks: Record<string, string> };
  'system:security_alert': { alert_id: string; rule: string; severity: string; message: string };
}

export type DomainEventName = keyof DomainEvents;
type Listener<K extends DomainEventName> = (payload: DomainEvents[K]) => void;

export class EventBus {
  private readonly listeners = new Map<DomainEventName, Set<Listener<never>>>();
  private readonly anyListeners = new Set<(name: DomainEventName, payload: unknown) => void>();

  constructor(private readonly onListenerError: (err: unknown, event: string) => void = () => {}) {}

  on<K extends DomainEventName>(name: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    const l = listener as Listener<never>;
    set.add(l);
    return () => set.delete(l);
  }

  /** Listen to every event (fan-out transports). */
  onAny(listener: (name: DomainEventName, payload: unknown) => void): () => void {
    this.anyListeners.add(listener);
    return () => this.anyListeners.delete(listener);
  }

  emit<K extends DomainEventName>(name: K, payload: DomainEvents[K]): void {
    const set = this.listeners.get(name);
    if (set) {
      for (const l of set) {
        try {
          (l as Listener<K>)(payload);
        } catch (err) {
          this.onListenerError(err, name);
        }
      }
    }
    for (const l of this.anyListeners) {
      try {
        l(name, payload);
      } catch (err) {
        this.onListenerError(err, name);
      }
    }
  }
}
