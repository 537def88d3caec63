/**
 * Leases held by agents no server process serves any more (the process that held their socket
 * crashed, and they did not come back): after the grace period they time out and are retried.
 * Run by the leader next to lease expiry. An agent counts as served when some process holds its
 * socket (`agent-socket` presence, refreshed while connected; a built-in's process writes it
 * too), when this process has its slot (built-ins, long-poll claims), or when it heartbeats over
 * REST (those rely on lease expiry).
 */
import type { Coordination } from '../coordination/index.ts';
import type { Db } from '../store/index.ts';
import type { AssignmentEngine } from './assignment-engine.ts';
import type { TaskService } from './task-service.ts';

/** Presence kind "this agent holds a socket on that process": written by realtime/, read here. */
export const AGENT_SOCKET_PRESENCE = 'agent-socket';

export class OrphanLeaseSweeper {
  private readonly missingSince = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly coord: Coordination,
    private readonly engine: AssignmentEngine,
    private readonly tasks: TaskService,
    private readonly graceMs: number,
  ) {}

  /** Returns the number of leases timed out. */
  async sweep(now = Date.now()): Promise<number> {
    const { rows } = await this.db.query<{ agent_id: string }>(
      `SELECT DISTINCT t.assigned_agent AS agent_id FROM tasks t JOIN agents a ON a.agent_id = t.assigned_agent
       WHERE t.status IN ('assigned', 'running')`);
    const holders = new Set(rows.map((r) => r.agent_id));
    for (const id of this.missingSince.keys()) if (!holders.has(id)) this.missingSince.delete(id);
    const served = await this.served([...holders]);
    let timedOut = 0;
    for (const agentId of holders) {
      if (served.has(agentId)) {
        this.missingSince.delete(agentId);
        continue;
      }
      const since = this.missingSince.get(agentId) ?? now;
      this.missingSince.set(agentId, since);
      if (now - since < this.graceMs) continue;
      this.missingSince.delete(agentId);
      timedOut += await this.tasks.timeoutAgentLeases(agentId, 'No server process serves this agent any more (lost connection).');
    }
    return timedOut;
  }

  /**
   * Which of `agentIds` are served, in at most two presence reads however many agents hold
   * leases (one per agent, in turn, made a sweep of 1,000 busy agents 1,000–2,000 round trips).
   */
  private async served(agentIds: string[]): Promise<Set<string>> {
    const out = new Set(agentIds.filter((id) => this.engine.hasSlot(id)));
    const noSlot = agentIds.filter((id) => !out.has(id));
    const sockets = await this.coord.getPresenceMany(AGENT_SOCKET_PRESENCE, noSlot);
    const unseen: string[] = [];
    noSlot.forEach((id, i) => { if (sockets[i]) out.add(id); else unseen.push(id); });
    const records = await this.coord.getPresenceMany('agent', unseen);
    unseen.forEach((id, i) => { if (records[i]?.transport === 'rest') out.add(id); });
    return out;
  }
}
