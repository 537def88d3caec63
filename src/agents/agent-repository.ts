/** SQL for agents. Rows are mapped to `AgentRecord`; no business rules here. */
import type { Queryable } from '../store/index.ts';
import type { Role } from '../auth/index.ts';
import type { AgentSort } from '../contracts/agents.ts';

export interface AgentRecord {
  agent_id: string;
  name: string;
  type: string;
  capabilities: string[];
  version: string;
  endpoint_url: string | null;
  health_check_url: string | null;
  max_concurrent_tasks: number;
  metadata: Record<string, unknown>;
  tags: string[];
  role: Role;
  status: string;
  draining: boolean;
  builtin: boolean;
  api_key_hash: string;
  tasks_completed: number;
  tasks_failed: number;
  total_response_ms: number;
  last_seen_at: Date | null;
  registered_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const COLS = `agent_id, name, type, capabilities, version, endpoint_url, health_check_url, max_concurrent_tasks, metadata, tags, role,
  status, draining, builtin, api_key_hash, tasks_completed, tasks_failed, total_response_ms, last_seen_at, registered_at, updated_at, deleted_at`;

export interface AgentFilter {
  status?: string;
  type?: string;
  capabilities?: string[];
  includeDeleted?: boolean;
}

function where(f: AgentFilter): { sql: string; params: unknown[] } {
  const conds: string[] = [];
  const params: unknown[] = [];
  if (!f.includeDeleted) conds.push('deleted_at IS NULL');
  if (f.status) { params.push(f.status); conds.push(`status = $${params.length}`); }
  if (f.type) { params.push(f.type); conds.push(`type = $${params.length}`); }
  if (f.capabilities?.length) { params.push(f.capabilities); conds.push(`capabilities @> $${params.length}::text[]`); }
  return { sql: conds.length ? `WHERE ${conds.join(' AND ')}` : '', params };
}

/** The list orders the store sorts by (stored columns); ties by agent_id, in the same direction. */
export type AgentStoreSort = Extract<AgentSort, `${'registered_at' | 'name'}:${string}`>;
const ORDER_BY: Record<AgentStoreSort, string> = {
  'registered_at:asc': 'registered_at, agent_id',
  'registered_at:desc': 'registered_at DESC, agent_id DESC',
  'name:asc': 'name, agent_id',
  'name:desc': 'name DESC, agent_id DESC',
};

export class AgentRepository {
  async insert(q: Queryable, a: Omit<AgentRecord, 'tasks_completed' | 'tasks_failed' | 'total_response_ms' | 'last_seen_at' | 'registered_at' | 'updated_at' | 'deleted_at' | 'status' | 'draining'>): Promise<AgentRecord> {
    const { rows } = await q.query<AgentRecord>(
      `INSERT INTO agents (agent_id, name, type, capabilities, version, endpoint_url, health_check_url, max_concurrent_tasks, metadata, tags, role, builtin, api_key_hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ${COLS}`,
      [a.agent_id, a.name, a.type, a.capabilities, a.version, a.endpoint_url, a.health_check_url, a.max_concurrent_tasks, JSON.stringify(a.metadata), a.tags, a.role, a.builtin, a.api_key_hash],
    );
    return rows[0]!;
  }

  async get(q: Queryable, agentId: string, includeDeleted = false): Promise<AgentRecord | null> {
    const { rows } = await q.query<AgentRecord>(`SELECT ${COLS} FROM agents WHERE agent_id = $1 ${includeDeleted ? '' : 'AND deleted_at IS NULL'}`, [agentId]);
    return rows[0] ?? null;
  }

  async list(q: Queryable, f: AgentFilter, limit: number, offset: number, sort: AgentStoreSort = 'registered_at:asc'): Promise<{ rows: AgentRecord[]; total: number }> {
    const w = where(f);
    // The page and the count in one round trip (the fleet is small enough to count with the page);
    // a page past the end has no row to carry the count, so only then is it asked on its own.
    const { rows } = await q.query<AgentRecord & { total_count: number }>(
      `SELECT ${COLS}, count(*) OVER ()::int AS total_count FROM agents ${w.sql} ORDER BY ${ORDER_BY[sort]} LIMIT ${limit} OFFSET ${offset}`, w.params);
    const total = rows[0]?.total_count ?? (offset > 0 ? (await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM agents ${w.sql}`, w.params)).rows[0]!.n : 0);
    return { rows: rows.map(({ total_count: _, ...r }) => r), total };
  }

  async all(q: Queryable, f: AgentFilter = {}, sort: AgentStoreSort = 'registered_at:asc'): Promise<AgentRecord[]> {
    const w = where(f);
    return (await q.query<AgentRecord>(`SELECT ${COLS} FROM agents ${w.sql} ORDER BY ${ORDER_BY[sort]}`, w.params)).rows;
  }

  /** What the offline sweep needs of the agents it may mark offline: registered, not already offline (built-ins heartbeat too). */
  async offlineCandidates(q: Queryable): Promise<Array<Pick<AgentRecord, 'agent_id' | 'registered_at' | 'last_seen_at'>>> {
    return (await q.query<Pick<AgentRecord, 'agent_id' | 'registered_at' | 'last_seen_at'>>(
      `SELECT agent_id, registered_at, last_seen_at FROM agents WHERE deleted_at IS NULL AND status <> 'offline'`)).rows;
  }

  async update(q: Queryable, agentId: string, patch: Record<string, unknown>): Promise<AgentRecord | null> {
    const sets: string[] = [];
    const params: unknown[] = [agentId];
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) continue;
      params.push(k === 'metadata' ? JSON.stringify(v) : v);
      sets.push(`${k} = $${params.length}`);
    }
    sets.push('updated_at = now()');
    const { rows } = await q.query<AgentRecord>(`UPDATE agents SET ${sets.join(', ')} WHERE agent_id = $1 AND deleted_at IS NULL RETURNING ${COLS}`, params);
    return rows[0] ?? null;
  }

  async softDelete(q: Queryable, agentId: string): Promise<boolean> {
    const r = await q.query(`UPDATE agents SET deleted_at = now(), status = 'offline', updated_at = now() WHERE agent_id = $1 AND deleted_at IS NULL`, [agentId]);
    return r.rowCount > 0;
  }

  async last24h(q: Queryable, agentId: string): Promise<{ completed: number; failed: number; avg_ms: number | null }> {
    const { rows } = await q.query<{ completed: number; failed: number; avg_ms: number | null }>(
      `SELECT count(*) FILTER (WHERE status = 'completed')::int AS completed,
              count(*) FILTER (WHERE status IN ('failed', 'timeout') OR (status = 'retrying'))::int AS failed,
              (avg(extract(epoch FROM (completed_at - COALESCE(started_at, assigned_at))) * 1000) FILTER (WHERE status = 'completed'))::float8 AS avg_ms
       FROM tasks WHERE assigned_agent = $1 AND updated_at > now() - interval '24 hours'`,
      [agentId],
    );
    return rows[0] ?? { completed: 0, failed: 0, avg_ms: null };
  }

  /** Leased (assigned or running) tasks per agent, for those of `agentIds` holding any (index tasks_agent_live). */
  async leasedCounts(q: Queryable, agentIds: readonly string[]): Promise<Map<string, number>> {
    const { rows } = await q.query<{ agent_id: string; n: number }>(
      `SELECT assigned_agent AS agent_id, count(*)::int AS n FROM tasks WHERE assigned_agent = ANY($1::text[]) AND status IN ('assigned', 'running') GROUP BY assigned_agent`,
      [agentIds]);
    return new Map(rows.map((r) => [r.agent_id, r.n]));
  }

  async currentTasks(q: Queryable, agentId: string): Promise<string[]> {
    const { rows } = await q.query<{ task_id: string }>(`SELECT task_id FROM tasks WHERE assigned_agent = $1 AND status IN ('assigned', 'running') ORDER BY assigned_at`, [agentId]);
    return rows.map((r) => r.task_id);
  }
}
