/**
 * The agent registry (SPEC §5): registration with a one-time API key, listing, discovery by all
 * capabilities, updates, soft delete, heartbeats and presence, health and metrics.
 * Heartbeats touch only the coordination layer (presence with a TTL), never a PostgreSQL row.
 */
import { AppError, ConflictError, ForbiddenError, NotFoundError, newId, type EventBus } from '../core/index.ts';
import type { RegisterAgentInput, UpdateAgentInput, HeartbeatInput, AgentStatus, AgentSort } from '../contracts/agents.ts';
import type { Coordination, PresenceWrite } from '../coordination/index.ts';
import type { AgentView } from '../contracts/views.ts';
import { pgErrorCode, type Db } from '../store/index.ts';
import { permissionsOf, type ApiKeys, type Principal, type TokenPair, type TokenService } from '../auth/index.ts';
import { AgentRepository, type AgentRecord, type AgentFilter, type AgentStoreSort } from './agent-repository.ts';
import { averageResponseSeconds, scoreOf, successRate, type PerformanceCounters } from './scoring.ts';
import { AgentOutcomes } from './agent-outcomes.ts';

export interface AgentServiceOptions {
  /** Heartbeat silence (s) before a socket-connected agent is offline. */
  timeoutSeconds: number;
  /** Heartbeat silence (s) before a REST-only agent is offline. */
  restTimeoutSeconds: number;
  heartbeatIntervalSeconds: number;
}

export interface AgentPresence {
  status?: string;
  transport: 'ws' | 'rest';
  last_heartbeat: number;
  system_metrics?: Record<string, number>;
  /** In-flight tasks at the heartbeat, as counted by the process serving the agent. */
  load?: number;
}

export type { AgentView } from '../contracts/views.ts';

const PRESENCE = 'agent';

/** Whether the store sorts by it (a stored column) rather than the views (AgentService.list). */
function isStoreSort(sort: AgentSort): sort is AgentStoreSort {
  return sort.startsWith('registered_at:') || sort.startsWith('name:');
}

export class AgentService {
  readonly repo = new AgentRepository();
  private readonly startedAt = Date.now();
  private readonly seenAlive = new Set<string>();
  private readonly hbCache = new Map<string, { status: string; draining: boolean; at: number }>();
  /** Counts changes to cached heartbeat state: a read that overlapped one is not cached. */
  private hbChanges = 0;
  /** Outcome counters, buffered (see AgentOutcomes); started by the composition root. */
  readonly outcomes: AgentOutcomes;
  /** In-flight count of an agent this process serves (the task engine's slot); undefined otherwise. */
  servedLoad: (agentId: string) => number | undefined = () => undefined;

  /**
   * An agent's in-flight count: live when this process serves it, otherwise what the serving
   * process wrote with the agent's presence (several processes: at most one refresh old),
   * otherwise `stored` — its leased tasks in the store (`storedLoads`): an agent no process
   * serves over a socket (REST-only, claiming with POST /tasks/claim) has no slot to count them.
   */
  liveLoad(agentId: string, presence: AgentPresence | null | undefined, stored = 0): number {
    return this.servedLoad(agentId) ?? presence?.load ?? stored;
  }

  /** Whether `liveLoad` of this agent falls back to the store (no slot here, no load in its presence). */
  private needsStoredLoad(agentId: string, presence: AgentPresence | null | undefined): boolean {
    return this.servedLoad(agentId) === undefined && presence?.load === undefined;
  }

  /** Leased (assigned or running) task counts of those `agents` whose load is not known live: one statement for all. */
  private async storedLoads(agents: ReadonlyArray<{ agent_id: string; presence: AgentPresence | null | undefined }>): Promise<Map<string, number>> {
    const ids = agents.filter((x) => this.needsStoredLoad(x.agent_id, x.presence)).map((x) => x.agent_id);
    return ids.length ? this.repo.leasedCounts(this.db, ids) : new Map();
  }

  /** `liveLoad` of one agent, read from the store when nothing live knows it. */
  private async loadOf(agentId: string, presence: AgentPresence | null | undefined): Promise<number> {
    return this.liveLoad(agentId, presence, (await this.storedLoads([{ agent_id: agentId, presence }])).get(agentId) ?? 0);
  }

  constructor(
    readonly db: Db,
    private readonly coord: Coordination,
    private readonly bus: EventBus,
    private readonly apiKeys: ApiKeys,
    private readonly tokens: TokenService,
    private readonly opts: AgentServiceOptions,
  ) {
    this.outcomes = new AgentOutcomes(db);
  }

  /** Stored counters plus this process's unflushed ones. */
  counters(a: AgentRecord): PerformanceCounters {
    const d = this.outcomes.unflushed(a.agent_id);
    return { tasks_completed: a.tasks_completed + d.completed, tasks_failed: a.tasks_failed + d.failed, total_response_ms: a.total_response_ms + d.ms };
  }

  principalOf(a: Pick<AgentRecord, 'agent_id' | 'role'>): Principal {
    return { type: 'agent', id: a.agent_id, role: a.role, name: a.agent_id };
  }

  async register(input: RegisterAgentInput, opts: { builtin?: boolean; registeredBy?: string } = {}): Promise<{ agent: AgentRecord; api_key: string; tokens: TokenPair; permissions: string[] }> {
    const apiKey = this.apiKeys.generate();
    const agentId = input.agent_id ?? newId();
    let agent: AgentRecord;
    try {
      agent = await this.repo.insert(this.db, {
        agent_id: agentId,
        name: input.name,
        type: input.type,
        capabilities: input.capabilities,
        version: input.version,
        endpoint_url: input.endpoint_url ?? null,
        health_check_url: input.health_check_url ?? null,
        max_concurrent_tasks: input.max_concurrent_tasks ?? 5,
        metadata: input.metadata ?? {},
        tags: input.tags ?? [],
        role: input.role ?? 'worker',
        builtin: opts.builtin ?? false,
        api_key_hash: this.apiKeys.hash(apiKey),
      });
    } catch (err) {
      if (pgErrorCode(err) === '23505') throw new ConflictError('AGENT_ALREADY_REGISTERED', undefined, { details: { agent_id: agentId } });
      throw err;
    }
    const principal = this.principalOf(agent);
    const tokens = await this.tokens.issuePair(principal);
    this.bus.emit('agent:registered', { agent_id: agent.agent_id, type: agent.type, capabilities: agent.capabilities });
    return { agent, api_key: apiKey, tokens, permissions: permissionsOf(agent.role) };
  }

  /** API key → token pair (POST /auth/token). Deleted agents and wrong keys look the same. */
  async exchangeApiKey(agentId: string, apiKey: string): Promise<TokenPair> {
    const agent = await this.repo.get(this.db, agentId, true);
    if (!agent || !this.apiKeys.matches(apiKey, agent.api_key_hash)) throw new AppError('INVALID_CREDENTIALS');
    if (agent.deleted_at) {
      this.bus.emit('system:security_alert', { alert_id: newId(), rule: 'revoked_agent_credentials', severity: 'high', message: `A deleted agent's API key was used (agent ${agent.agent_id}).` });
      throw new AppError('INVALID_CREDENTIALS');
    }
    return this.tokens.issuePair(this.principalOf(agent));
  }

  async get(agentId: string): Promise<AgentRecord> {
    const a = await this.repo.get(this.db, agentId);
    if (!a) throw new NotFoundError('AGENT_NOT_FOUND');
    return a;
  }

  async presence(agentId: string): Promise<AgentPresence | null> {
    return (await this.coord.getPresence(PRESENCE, agentId)) as AgentPresence | null;
  }

  /** Presence of many agents in one round trip (lists). */
  private async presenceOf(agentIds: string[]): Promise<Array<AgentPresence | null>> {
    return (await this.coord.getPresenceMany(PRESENCE, agentIds)) as Array<AgentPresence | null>;
  }

  /** The status callers see: `busy` at capacity (`load`: `liveLoad`); otherwise the stored status. */
  effectiveStatus(a: AgentRecord, load: number): AgentStatus {
    if (a.status === 'active' && load >= a.max_concurrent_tasks) return 'busy';
    return a.status as AgentStatus;
  }

  /** The agent as callers see it. `load`, when given, is its `liveLoad` (lists compute them together). */
  async view(a: AgentRecord, presence?: AgentPresence | null, load?: number): Promise<AgentView> {
    const p = presence === undefined ? await this.presence(a.agent_id) : presence;
    const n = load ?? await this.loadOf(a.agent_id, p);
    return {
      agent_id: a.agent_id,
      name: a.name,
      type: a.type,
      capabilities: a.capabilities,
      version: a.version,
      endpoint_url: a.endpoint_url,
      health_check_url: a.health_check_url,
      max_concurrent_tasks: a.max_concurrent_tasks,
      metadata: a.metadata,
      tags: a.tags,
      role: a.role,
      status: this.effectiveStatus(a, n),
      draining: a.draining,
      builtin: a.builtin,
      registered_at: a.registered_at.toISOString(),
      updated_at: a.updated_at.toISOString(),
      last_heartbeat: p ? new Date(p.last_heartbeat).toISOString() : a.last_seen_at?.toISOString() ?? null,
      load: n,
      score: Number(scoreOf(this.counters(a)).toFixed(4)),
    };
  }

  /**
   * A page of agents in `sort` order (GET /agents). Stored columns are sorted by the store, a
   * page per statement; `status` and `score` are what the views show (live `busy`, unflushed
   * outcomes), so they sort every matching view in memory (the fleet is small).
   */
  async list(f: AgentFilter, limit: number, offset: number, sort: AgentSort = 'registered_at:asc'): Promise<{ agents: AgentView[]; total: number }> {
    if (isStoreSort(sort)) {
      const { rows, total } = await this.repo.list(this.db, f, limit, offset, sort);
      return { agents: await this.views(rows), total };
    }
    const views = await this.all(f, sort);
    return { agents: views.slice(offset, offset + limit), total: views.length };
  }

  /** Every agent matching `f`, as views (with live status and load), in `sort` order; ties in registration order. */
  async all(f: AgentFilter, sort: AgentSort = 'registered_at:asc'): Promise<AgentView[]> {
    const views = await this.views(await this.repo.all(this.db, f, isStoreSort(sort) ? sort : 'registered_at:asc'));
    if (isStoreSort(sort)) return views;
    const sign = sort.endsWith(':asc') ? 1 : -1;
    const key = sort.startsWith('score:') ? (v: AgentView) => v.score : (v: AgentView) => v.status;
    return views.sort((a, b) => { const x = key(a), y = key(b); return x < y ? -sign : x > y ? sign : 0; }); // stable
  }

  private async views(rows: AgentRecord[]): Promise<AgentView[]> {
    const presence = await this.presenceOf(rows.map((r) => r.agent_id));
    const stored = await this.storedLoads(rows.map((r, i) => ({ agent_id: r.agent_id, presence: presence[i] })));
    return Promise.all(rows.map((r, i) => this.view(r, presence[i], this.liveLoad(r.agent_id, presence[i], stored.get(r.agent_id) ?? 0))));
  }

  /**
   * A page of the agents holding all capabilities — available (active, under capacity, not
   * draining) first, then best score — and how many match in all (SPEC §2 pagination).
   */
  async discover(capabilities: string[], f: { type?: string; status?: string }, limit: number, offset = 0): Promise<{ agents: AgentView[]; total: number }> {
    const views = await this.all({ capabilities, type: f.type });
    const filtered = f.status ? views.filter((v) => v.status === f.status) : views;
    const available = (v: AgentView) => v.status === 'active' && !v.draining;
    filtered.sort((a, b) => Number(available(b)) - Number(available(a)) || Number(a.builtin) - Number(b.builtin) || b.score - a.score || a.load - b.load);
    return { agents: filtered.slice(offset, offset + limit), total: filtered.length };
  }

  async detail(agentId: string): Promise<AgentView & { current_tasks: string[]; performance_metrics: Record<string, unknown>; system_metrics: Record<string, number> | null }> {
    const a = await this.get(agentId);
    const p = await this.presence(agentId);
    const [current, day] = await Promise.all([this.repo.currentTasks(this.db, agentId), this.repo.last24h(this.db, agentId)]);
    return {
      ...(await this.view(a, p)),
      current_tasks: current,
      performance_metrics: this.performance(a, day),
      system_metrics: p?.system_metrics ?? null,
    };
  }

  performance(a: AgentRecord, day: { completed: number; failed: number; avg_ms: number | null }): Record<string, unknown> {
    const dayTotal = day.completed + day.failed;
    const c = this.counters(a);
    return {
      tasks_completed: c.tasks_completed,
      tasks_failed: c.tasks_failed,
      average_response_time: Number(averageResponseSeconds(c).toFixed(4)),
      success_rate: Number(successRate(c).toFixed(4)),
      score: Number(scoreOf(c).toFixed(4)),
      last_24h: {
        tasks_completed: day.completed,
        tasks_failed: day.failed,
        average_response_time: day.avg_ms === null ? 0 : Number((day.avg_ms / 1000).toFixed(4)),
        success_rate: dayTotal === 0 ? 1 : Number((day.completed / dayTotal).toFixed(4)),
      },
    };
  }

  async metrics(agentId: string): Promise<Record<string, unknown>> {
    const a = await this.get(agentId);
    const [p, day] = await Promise.all([this.presence(agentId), this.repo.last24h(this.db, agentId)]);
    return { agent_id: a.agent_id, load: await this.loadOf(a.agent_id, p), max_concurrent_tasks: a.max_concurrent_tasks, performance_metrics: this.performance(a, day), system_metrics: p?.system_metrics ?? null };
  }

  async health(agentId: string): Promise<{ agent_id: string; status: 'healthy' | 'degraded' | 'unhealthy'; agent_status: string; last_heartbeat: string | null; seconds_since_heartbeat: number | null; reasons: string[] }> {
    const a = await this.get(agentId);
    const p = await this.presence(agentId);
    const reasons: string[] = [];
    const since = p ? (Date.now() - p.last_heartbeat) / 1000 : null;
    let verdict: 'healthy' | 'degraded' | 'unhealthy' = 'healthy';
    const status = this.effectiveStatus(a, await this.loadOf(a.agent_id, p));
    // Built-ins heartbeat too (their process's liveness): a dead process's built-in is unhealthy like any silent agent.
    if (!p || status === 'offline') {
      verdict = 'unhealthy';
      reasons.push('no recent heartbeat');
    } else if (status === 'error') {
      verdict = 'unhealthy';
      reasons.push('agent reports error');
    }
    if (verdict === 'healthy' && status === 'maintenance') { verdict = 'degraded'; reasons.push('in maintenance'); }
    const m = p?.system_metrics ?? {};
    for (const k of ['cpu_usage', 'memory_usage', 'disk_usage'] as const) {
      if ((m[k] ?? 0) >= 90) { if (verdict === 'healthy') verdict = 'degraded'; reasons.push(`${k} ≥ 90%`); }
    }
    return { agent_id: a.agent_id, status: verdict, agent_status: status, last_heartbeat: p ? new Date(p.last_heartbeat).toISOString() : null, seconds_since_heartbeat: since === null ? null : Number(since.toFixed(3)), reasons };
  }

  async update(agentId: string, patch: UpdateAgentInput, caller: Principal, canManage: boolean): Promise<AgentRecord> {
    const keys = Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined);
    if (keys.length === 0) throw new AppError('EMPTY_UPDATE');
    const before = await this.get(agentId);
    if (!canManage) {
      const self = caller.type === 'agent' && caller.id === agentId;
      if (!self || keys.some((k) => !['capabilities', 'metadata', 'max_concurrent_tasks'].includes(k))) throw new ForbiddenError('INSUFFICIENT_PERMISSIONS');
    }
    // `status: active` ends a drain (as the agent's own `agent:status_update` does): the view
    // returned says `draining: false`. Any other status leaves the drain as it is.
    const undrain = patch.status === 'active' && before.draining;
    const after = await this.repo.update(this.db, agentId, undrain ? { ...patch, draining: false } : patch);
    this.invalidate(agentId);
    if (!after) throw new NotFoundError('AGENT_NOT_FOUND');
    if (patch.status && patch.status !== before.status) this.bus.emit('agent:status_changed', { agent_id: agentId, status: patch.status, previous: before.status });
    else if (undrain) this.bus.emit('agent:updated', { agent_id: agentId });
    if (patch.role && patch.role !== before.role) {
      await this.tokens.revokeSubject('agent', agentId);
      this.bus.emit('principal:revoked', { subject_type: 'agent', subject_id: agentId, reason: 'role_changed' });
    }
    if (patch.capabilities || patch.max_concurrent_tasks) this.bus.emit('agent:updated', { agent_id: agentId });
    if (patch.capabilities || patch.max_concurrent_tasks || patch.status) this.bus.emit('task:eligible', { task_ids: [] });
    return after;
  }

  /** Soft delete: credentials stop working; its leased tasks go back to the queue (task engine listens). */
  async remove(agentId: string): Promise<void> {
    this.invalidate(agentId);
    if (!(await this.repo.softDelete(this.db, agentId))) throw new NotFoundError('AGENT_NOT_FOUND');
    await this.tokens.revokeSubject('agent', agentId);
    await this.coord.removePresence(PRESENCE, agentId);
    this.bus.emit('principal:revoked', { subject_type: 'agent', subject_id: agentId, reason: 'deleted' });
    this.bus.emit('agent:unregistered', { agent_id: agentId });
  }

  async setStatus(agentId: string, status: AgentStatus, extra: Record<string, unknown> = {}): Promise<AgentRecord | null> {
    const before = await this.repo.get(this.db, agentId);
    if (!before) return null;
    if (before.status === status && Object.keys(extra).length === 0) return before;
    const after = await this.repo.update(this.db, agentId, { status, ...extra });
    this.invalidate(agentId);
    if (after && before.status !== status) {
      this.bus.emit('agent:status_changed', { agent_id: agentId, status, previous: before.status });
      if (status === 'active') this.bus.emit('task:eligible', { task_ids: [] });
    } else if (after && after.draining !== before.draining) {
      // Same status, drain started or ended: the serving process refreshes the agent's slot.
      this.bus.emit('agent:updated', { agent_id: agentId });
      if (!after.draining) this.bus.emit('task:eligible', { task_ids: [] });
    }
    return after;
  }

  async drain(agentId: string): Promise<AgentRecord> {
    await this.get(agentId);
    const after = await this.setStatus(agentId, 'inactive', { draining: true });
    return after!;
  }

  /**
   * Records a heartbeat in presence (TTL = the offline timeout). An offline agent comes back
   * `active` (`inactive` while draining); a reported status is applied when it differs. A
   * reported `active` also ends a drain, as `agent:status_update {status: "active"}` and
   * `PUT /agents/{id} {status: "active"}` do: the agent says it takes work again. `busy` is a
   * load report, not a request: it leaves a drain as it is.
   */
  async heartbeat(agentId: string, body: HeartbeatInput, transport: 'ws' | 'rest'): Promise<{ status: 'acknowledged'; next_heartbeat: string; agent_status: string }> {
    const a = await this.heartbeatState(agentId);
    const ttl = (transport === 'ws' ? this.opts.timeoutSeconds : this.opts.restTimeoutSeconds) * 1000;
    const served = this.servedLoad(agentId);
    const presence: AgentPresence = {
      transport, last_heartbeat: Date.now(), ...(body.status ? { status: body.status } : {}), ...(body.system_metrics ? { system_metrics: body.system_metrics } : {}),
      ...(served === undefined ? {} : { load: served }),
    };
    await this.coord.setPresence(PRESENCE, agentId, presence as unknown as Record<string, unknown>, ttl);
    this.seenAlive.add(agentId);
    let status = a.status;
    const undrain = a.draining && body.status === 'active';
    const wanted = body.status === 'busy' ? 'active' : body.status;
    if (undrain) status = 'active';
    else if (wanted && wanted !== a.status && !(a.draining && wanted === 'active')) status = wanted;
    else if (a.status === 'offline') status = a.draining ? 'inactive' : 'active';
    if (status !== a.status || undrain) await this.setStatus(agentId, status as AgentStatus, { last_seen_at: new Date(), ...(undrain ? { draining: false } : {}) });
    return { status: 'acknowledged', next_heartbeat: new Date(Date.now() + this.opts.heartbeatIntervalSeconds * 1000).toISOString(), agent_status: status };
  }

  /** Heartbeat silence (ms) before a socket-connected agent is offline: the TTL of its presence. */
  get wsTimeoutMs(): number {
    return this.opts.timeoutSeconds * 1000;
  }

  /**
   * Liveness of agents whose socket this process holds, as presence records for one
   * `setPresenceMany` (TTL `wsTimeoutMs`). SPEC §8 promises the seed's client snippet works
   * unchanged, and it never sends `agent:heartbeat`: an open socket is itself a sign of life.
   * Each record is the agent's presence as its last heartbeat wrote it (reported status and
   * system metrics kept) with a new `last_heartbeat` and this process's live load. Agents whose
   * presence is younger than `freshMs` (they heartbeat themselves) are left out. One read for
   * all of them, no database statement: 10,000 sockets cost two round trips a period.
   */
  async livenessRecords(agentIds: readonly string[], freshMs: number): Promise<PresenceWrite[]> {
    if (!agentIds.length) return [];
    const now = Date.now();
    const previous = await this.presenceOf([...agentIds]);
    const records: PresenceWrite[] = [];
    agentIds.forEach((id, i) => {
      const p = previous[i];
      if (p && now - p.last_heartbeat < freshMs) return;
      const served = this.servedLoad(id);
      const data: AgentPresence = {
        ...(p?.status ? { status: p.status } : {}), ...(p?.system_metrics ? { system_metrics: p.system_metrics } : {}),
        transport: 'ws', last_heartbeat: now, ...(served === undefined ? {} : { load: served }),
      };
      records.push({ kind: PRESENCE, id, data: data as unknown as Record<string, unknown> });
      this.seenAlive.add(id);
    });
    return records;
  }

  /** Drops the cached heartbeat state (a change made here or by another process, or coordination was rebuilt). */
  invalidate(agentId: string): void {
    this.hbCache.delete(agentId);
    this.hbChanges++;
  }

  /**
   * The agent fields a heartbeat needs, cached for a few seconds so that thousands of agents
   * heartbeating cost no database reads; every status change made here drops the entry. A read
   * that overlapped a change is returned but not cached: it may have seen the row before the
   * change (a heartbeat racing the offline sweep would otherwise keep `active` for the cache's
   * lifetime and not restore the row the sweep marked offline).
   */
  private async heartbeatState(agentId: string): Promise<Pick<AgentRecord, 'status' | 'draining'>> {
    const hit = this.hbCache.get(agentId);
    if (hit && Date.now() - hit.at < 5000) return hit;
    const changes = this.hbChanges;
    const a = await this.get(agentId);
    if (changes === this.hbChanges) this.hbCache.set(agentId, { status: a.status, draining: a.draining, at: Date.now() });
    if (this.hbCache.size > 50_000) this.hbCache.clear();
    return a;
  }

  /**
   * Marks agents offline whose presence expired (its TTL is the transport's timeout). An agent
   * this process never saw alive (e.g. right after a restart) gets the REST timeout, counted from
   * the later of process start, registration and its last known sighting. `steady`, asked after
   * presence was read and before anything is marked, tells whether that read can be trusted:
   * presence read from a coordination store that came back empty (Redis restarted) is no
   * evidence of silence (compose: the store watch, and the hold after a reset or an election).
   */
  async sweepOffline(now = Date.now(), steady: () => Promise<boolean> = () => Promise.resolve(true)): Promise<string[]> {
    const live = new Set((await this.coord.listPresence(PRESENCE)).map((p) => p.id));
    for (const id of live) this.seenAlive.add(id);
    const silent: string[] = [];
    // Only the agents that may go offline (every second, on the leader: not every agent row).
    for (const a of await this.repo.offlineCandidates(this.db)) {
      if (live.has(a.agent_id)) continue;
      const since = Math.max(this.startedAt, a.registered_at.getTime(), a.last_seen_at?.getTime() ?? 0);
      if (!this.seenAlive.has(a.agent_id) && now - since < this.opts.restTimeoutSeconds * 1000) continue;
      silent.push(a.agent_id);
    }
    if (!silent.length || !(await steady())) return [];
    for (const id of silent) {
      this.seenAlive.delete(id);
      await this.setStatus(id, 'offline');
    }
    return silent;
  }
}
