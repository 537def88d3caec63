/**
 * The real-time channel (SPEC §8): Socket.IO namespace `/mcp/ws` on the API port and on its own
 * port. JWT in the handshake; `auth:expired`/`auth:refresh`; validated, acked client events;
 * agent sessions (task delivery, leases kept for a grace period after a drop and re-sent on
 * reconnect); authorized subscriptions; per-socket event rate limit; 10 sockets per principal.
 *
 * Several processes: domain events reach every process's sockets as batches on the
 * coordination store (`FanOut`); other room operations (revocation disconnects) go through the
 * coordination's Socket.IO adapter (`adapter`). Each socket is a presence record (`ws:<principal>`, TTL refreshed
 * by its process) so the per-principal cap counts sockets on all processes and a killed
 * process's sockets age out; `agent-socket` presence names the process serving an agent so a
 * grace timer elsewhere does not time out leases of an agent that reconnected here. Agent
 * status changes are relayed (`realtime:agent-changed`) so the serving process refreshes the
 * agent's slot when another process drains or re-activates it.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Server, type DefaultEventsMap, type Namespace, type ServerOptions, type Socket } from 'socket.io';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { AppError, ForbiddenError, isUuid, type EventBus } from '../core/index.ts';
import { hasPermission, mfaEnrolmentRequired, principalKey, type Principal, type PrincipalState, type TokenService } from '../auth/index.ts';
import { scoreOf, type AgentService } from '../agents/index.ts';
import { AGENT_SOCKET_PRESENCE, type AssignmentEngine, type DeliveredTask, type TaskService } from '../tasks/index.ts';
import type { Coordination, PresenceWrite, Unsubscribe } from '../coordination/index.ts';
import {
  SocketAuthRefresh, SocketHeartbeat, SocketStatusUpdate, SocketSubscription, SocketTaskAck, SocketTaskProgress, SocketTaskResult,
  type SocketTaskResultInput,
} from '../contracts/socket-events.ts';
import type { HeartbeatInput } from '../contracts/agents.ts';
import { FanOut, rooms } from './fan-out.ts';
import { DENIAL_CODES, onEvent, type Ack, type HandlerHooks } from './socket-kit.ts';
import { coalesceWebSocketWrites } from './coalesce-writes.ts';

export const NAMESPACE = '/mcp/ws';
/** A server-generated id (a UUID, stored and sent lower-case) as events carry it; any other id unchanged. */
const canonicalUuid = (id: string): string => (isUuid(id) ? id.toLowerCase() : id);
export const SOCKET_PRESENCE_TTL_MS = 30_000;
const AGENT_CHANGED = 'realtime:agent-changed';
/** Events only an agent's socket sends (a user's socket sending one is refused, not ignored). */
const AGENT_EVENTS = new Set(['agent:heartbeat', 'agent:status_update', 'task:accepted', 'task:rejected', 'task:progress', 'task:result']);
const KNOWN_EVENTS = new Set([...AGENT_EVENTS, 'subscribe', 'unsubscribe', 'auth:refresh']);

export interface RealtimeOptions {
  tokens: TokenService;
  principals: PrincipalState;
  agents: AgentService;
  tasks: TaskService;
  engine: AssignmentEngine;
  bus: EventBus;
  coord: Coordination;
  logger: { info: (o: unknown, m?: string) => void; warn: (o: unknown, m?: string) => void; error: (o: unknown, m?: string) => void };
  leaseGraceSeconds: number;
  maxSocketsPerPrincipal?: number;
  eventsPerSecond?: number;
  /**
   * Whether a pipeline exists, asked with the id lower-cased when it is a UUID (subscriptions:
   * an unknown one answers PIPELINE_NOT_FOUND like REST). Absent → any pipeline id is accepted
   * for pipeline:read holders (compose always wires it).
   */
  pipelineExists?: (id: string) => Promise<boolean>;
  tls?: { cert: Buffer; key: Buffer };
  onConnectionsChanged?: (n: number) => void;
  onDeliveryLatency?: (seconds: number) => void;
  /** Socket.IO adapter shared by all processes (coordination `socketIoAdapterFor`); default in-memory. */
  adapter?: ServerOptions['adapter'];
  /** An authentication or authorization failure on the channel (SPEC §9: audited, counted by breach detection). */
  onDenied?: (d: SocketDenial) => void;
}

export interface SocketDenial {
  /** Null when the handshake's token was refused. */
  principal: Principal | null;
  ip: string;
  user_agent: string | null;
  code: string;
  /** The event refused, or `connect` for the handshake. */
  event: string;
}

interface SocketData {
  principal: Principal;
  exp: number;
}

type McpSocket = Socket<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, SocketData>;

export class RealtimeServer {
  readonly io: Server;
  readonly nsp: Namespace;
  private readonly fanOut: FanOut;
  private wsServer: http.Server | https.Server | undefined;
  private readonly perPrincipal = new Map<string, number>();
  private readonly agentSockets = new Map<string, Set<McpSocket>>();
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  private readonly limiter: RateLimiterMemory;
  private readonly offs: Array<() => void> = [];
  private connections = 0;
  /** Names this process in presence records. */
  readonly serverId = `${process.pid}-${randomUUID()}`;
  private readonly agentSocketPresence = { pid: process.pid, server: this.serverId };
  private readonly sockets = new Set<McpSocket>();
  private unsubAgentChanged: Unsubscribe | undefined;
  /** Period of `refreshPresence` and `refreshLiveness`. */
  private readonly livenessMs: number;
  /** A rebuild heartbeats every connected agent itself: liveness refreshes skip their write meanwhile. */
  private rebuilding = false;

  constructor(private readonly o: RealtimeOptions) {
    this.io = new Server({ maxHttpBufferSize: 1024 * 1024, cors: { origin: false }, serveClient: false, pingInterval: 20000, pingTimeout: 20000, ...(o.adapter ? { adapter: o.adapter } : {}) });
    this.nsp = this.io.of(NAMESPACE);
    this.limiter = new RateLimiterMemory({ points: o.eventsPerSecond ?? 200, duration: 1 });
    this.fanOut = new FanOut(this.nsp, o.bus, o.coord, (err, what) => o.logger.warn({ err }, what));
    this.nsp.use((socket, next) => {
      this.authenticate(socket as McpSocket).then(() => next(), (err: unknown) => {
        const code = err instanceof AppError ? err.code : 'INVALID_TOKEN';
        if (DENIAL_CODES.has(code)) this.denied(socket as McpSocket, null, code, 'connect');
        const e = new Error(code) as Error & { data?: unknown };
        e.data = { code, message: err instanceof AppError ? err.message : 'Authentication failed.' };
        next(e);
      });
    });
    // A session that cannot start (the store gone mid-connect: shutdown, the agent deleted) is
    // logged and its socket closed, never left as an unhandled rejection.
    this.nsp.on('connection', (socket) => {
      this.onConnection(socket as McpSocket).catch((err: unknown) => {
        this.o.logger.warn({ err, principal: principalKey((socket as McpSocket).data.principal) }, 'socket session could not start');
        socket.disconnect(true);
      });
    });
    this.offs.push(o.bus.on('principal:revoked', (e) => this.disconnectPrincipal(`${e.subject_type}:${e.subject_id}`, e.reason)));
    // A status, capability or capacity change: the slot of an agent served here follows it; one
    // served elsewhere is told to its process.
    const agentChanged = (e: { agent_id: string }) => {
      o.agents.invalidate(e.agent_id);
      void this.refreshSlot(e.agent_id);
      if (!this.agentSockets.has(e.agent_id)) o.coord.publish(AGENT_CHANGED, { origin: this.serverId, agent_id: e.agent_id }).catch(() => {});
    };
    this.offs.push(o.bus.on('agent:status_changed', agentChanged), o.bus.on('agent:updated', agentChanged));
    // One timer keeps what this process owns alive: its socket presence, and the liveness of the
    // agents connected here, whether or not they send agent:heartbeat (the seed's snippet never
    // does) — a third of the shorter of the two lifetimes, so no record ever lapses.
    this.livenessMs = Math.min(SOCKET_PRESENCE_TTL_MS, o.agents.wsTimeoutMs) / 3;
    const refresh = setInterval(() => {
      void this.refreshPresence();
      void this.refreshLiveness();
    }, this.livenessMs);
    refresh.unref();
    this.offs.push(() => clearInterval(refresh));
  }

  /** Attaches to the API's HTTP server and opens the dedicated port (0 = ephemeral, -1 = none). */
  async listen(apiServer: http.Server | https.Server, wsPort: number, host: string): Promise<number | null> {
    this.io.attach(apiServer);
    await this.fanOut.start();
    this.unsubAgentChanged = await this.o.coord.subscribe(AGENT_CHANGED, (m) => {
      const msg = m as { origin?: string; agent_id?: string } | null;
      if (msg?.agent_id && msg.origin !== this.serverId) {
        this.o.agents.invalidate(msg.agent_id);
        void this.refreshSlot(msg.agent_id);
      }
    }).catch((err: unknown) => {
      this.o.logger.warn({ err }, 'agent status relay unavailable');
      return undefined;
    });
    if (wsPort < 0) return null;
    this.wsServer = this.o.tls ? https.createServer({ cert: this.o.tls.cert, key: this.o.tls.key, minVersion: 'TLSv1.3' }) : http.createServer();
    this.wsServer.on('request', (_req, res) => {
      if (!res.headersSent && !res.writableEnded && !_req.url?.startsWith('/socket.io')) { res.writeHead(404).end(); }
    });
    this.io.attach(this.wsServer);
    await new Promise<void>((resolve, reject) => {
      this.wsServer!.once('error', reject);
      this.wsServer!.listen(wsPort, host, () => resolve());
    });
    return (this.wsServer.address() as AddressInfo).port;
  }

  /** Tells every socket the server is going away, then closes. */
  async close(): Promise<void> {
    this.nsp.emit('system:shutdown', { message: 'The server is shutting down.', timestamp: new Date().toISOString() });
    for (const off of this.offs) off();
    await this.fanOut.stop();
    await this.unsubAgentChanged?.().catch(() => {});
    for (const t of this.graceTimers.values()) clearTimeout(t);
    await new Promise<void>((r) => setTimeout(r, 50));
    this.nsp.disconnectSockets(true);
    await this.io.close().catch(() => {});
    const ws = this.wsServer;
    if (ws?.listening) await new Promise<void>((resolve) => ws.close(() => resolve()));
  }

  private async authenticate(socket: McpSocket): Promise<void> {
    const raw = (socket.handshake.auth as { token?: unknown } | undefined)?.token ?? socket.handshake.headers.authorization;
    if (typeof raw !== 'string' || !raw.trim()) throw new AppError('MISSING_AUTHENTICATION');
    const token = raw.replace(/^Bearer\s+/i, '').trim();
    const v = await this.o.tokens.verify(token, 'access');
    const live = await this.o.principals.current(v.principal);
    if (!live) throw new AppError('INVALID_TOKEN', 'The principal is disabled or deleted.');
    if (live.mfaOverdue) throw mfaEnrolmentRequired();
    const key = principalKey(live);
    await this.admitSocket(socket.id, key);
    socket.data.principal = live;
    socket.data.exp = v.exp;
  }

  /**
   * The per-principal socket cap across processes: the socket's presence record is written
   * first, then the live records are counted, so two concurrent connects cannot both squeeze
   * under the cap (at worst both are refused). While the coordination store is unreachable
   * the cap falls back to this process's own count rather than refusing agents their reconnect.
   */
  private async admitSocket(socketId: string, key: string): Promise<void> {
    const max = this.o.maxSocketsPerPrincipal ?? 10;
    const kind = `ws:${key}`;
    let count: number;
    try {
      await this.o.coord.setPresence(kind, socketId, { server: this.serverId }, SOCKET_PRESENCE_TTL_MS);
      count = (await this.o.coord.listPresence(kind)).length;
    } catch (err) {
      this.o.logger.warn({ err, principal: key }, 'socket cap checked locally: coordination unavailable');
      count = (this.perPrincipal.get(key) ?? 0) + 1;
    }
    if (count > max || (this.perPrincipal.get(key) ?? 0) >= max) {
      await this.o.coord.removePresence(kind, socketId).catch(() => {});
      throw new AppError('RATE_LIMIT_EXCEEDED', 'Too many sockets for this principal.');
    }
  }

  /**
   * Keeps this process's presence records alive (its sockets, the agents it serves): one
   * `setPresenceMany`, not a round trip per socket in turn (10,000 sockets took 10,000
   * sequential Redis calls every 10 s).
   */
  private async refreshPresence(): Promise<void> {
    const records: PresenceWrite[] = [];
    for (const socket of this.sockets) records.push({ kind: `ws:${principalKey(socket.data.principal)}`, id: socket.id, data: { server: this.serverId } });
    for (const agentId of this.agentSockets.keys()) records.push({ kind: AGENT_SOCKET_PRESENCE, id: agentId, data: this.agentSocketPresence });
    try {
      await this.o.coord.setPresenceMany(records, SOCKET_PRESENCE_TTL_MS);
    } catch (err) {
      this.o.logger.warn({ err }, 'socket presence refresh failed');
    }
  }

  /**
   * Keeps the agents connected here from being swept offline when they send no heartbeat: their
   * `agent` presence is rewritten (`AgentService.livenessRecords`) in one batched write, skipping
   * the ones that heartbeated within the period. No per-socket timer or statement.
   */
  private async refreshLiveness(): Promise<void> {
    if (this.rebuilding || this.agentSockets.size === 0) return;
    try {
      const records = await this.o.agents.livenessRecords([...this.agentSockets.keys()], this.livenessMs);
      // Checked again after the read: a rebuild that started meanwhile writes these records itself.
      if (records.length && !this.rebuilding) await this.o.coord.setPresenceMany(records, this.o.agents.wsTimeoutMs);
    } catch (err) {
      this.o.logger.warn({ err }, 'agent liveness refresh failed');
    }
  }

  /**
   * Rebuilds what this process owns in the coordination store after it was lost (Redis flushed,
   * restarted empty or unreachable): socket and agent-socket presence, heartbeat presence of
   * the agents connected here, their slots (re-read from PostgreSQL) and a redelivery of
   * unacknowledged leases; then a dispatch round. Idempotent.
   */
  async rebuildCoordinationState(): Promise<void> {
    this.rebuilding = true;
    try {
      await this.refreshPresence();
      for (const agentId of [...this.agentSockets.keys()]) {
        this.o.agents.invalidate(agentId);
        await this.o.agents.heartbeat(agentId, {}, 'ws').catch((err: unknown) => this.o.logger.warn({ err, agent_id: agentId }, 'presence rebuild failed'));
        await this.refreshSlot(agentId);
        await this.resendUnacknowledged(agentId, 5000).catch(() => {});
      }
    } finally {
      this.rebuilding = false;
    }
    this.o.engine.trigger();
  }

  private async onConnection(socket: McpSocket): Promise<void> {
    const p = socket.data.principal;
    const key = principalKey(p);
    this.sockets.add(socket);
    coalesceWebSocketWrites(socket.conn);
    this.perPrincipal.set(key, (this.perPrincipal.get(key) ?? 0) + 1);
    this.o.onConnectionsChanged?.(++this.connections);
    this.scheduleExpiry(socket);
    this.scheduleMfaDeadline(socket, socket.data.principal.mfaDeadline);
    // Every handler is attached before the first await: the client may send as soon as it is
    // connected, and an event arriving while no handler listens would go unanswered (its ack
    // never called) — with Redis, the awaits below are network round trips.

    const hooks: HandlerHooks = {
      unexpected: (err) => this.o.logger.error({ err, principal: key }, 'socket handler failed'),
      denied: (code, event) => this.denied(socket, p, code, event),
    };
    socket.use((event, next) => {
      const [name] = event as unknown as [string];
      this.limiter.consume(socket.id).then(() => next(), () => {
        const ack = event[event.length - 1];
        const error = { code: 'RATE_LIMIT_EXCEEDED', message: 'Too many events on this socket.' };
        if (typeof ack === 'function') (ack as Ack)({ ok: false, error });
        else socket.emit('error', { ...error, timestamp: new Date().toISOString() });
        void name;
      });
    });
    socket.onAny((event: string, ...args: unknown[]) => {
      const agentOnly = AGENT_EVENTS.has(event) && p.type !== 'agent';
      if (KNOWN_EVENTS.has(event) && !agentOnly) return;
      if (agentOnly) hooks.denied('INSUFFICIENT_PERMISSIONS', event);
      const error = agentOnly
        ? { code: 'INSUFFICIENT_PERMISSIONS', message: `Only an agent's socket sends '${event}'.` }
        : { code: 'UNSUPPORTED_EVENT', message: `The event '${event}' is not supported.` };
      const ack = args[args.length - 1];
      if (typeof ack === 'function') (ack as Ack)({ ok: false, error });
      socket.emit('error', { ...error, timestamp: new Date().toISOString() });
    });

    onEvent<{ token: string }>(socket, 'auth:refresh', SocketAuthRefresh, async ({ token }) => {
      const v = await this.o.tokens.verify(token.replace(/^Bearer\s+/i, ''), 'access');
      if (principalKey(v.principal) !== key) throw new ForbiddenError('INSUFFICIENT_PERMISSIONS', 'The token belongs to another principal.');
      // A new token does not extend a socket its principal may no longer hold (MFA enrolment overdue):
      // refused, the socket closes when its current token expires.
      const live = await this.o.principals.current(v.principal);
      if (!live) throw new AppError('INVALID_TOKEN', 'The principal is disabled or deleted.');
      if (live.mfaOverdue) throw mfaEnrolmentRequired();
      socket.data.exp = v.exp;
      this.scheduleExpiry(socket);
      this.scheduleMfaDeadline(socket, live.mfaDeadline);
      return { expires_at: new Date(v.exp * 1000).toISOString() };
    }, hooks);
    onEvent<Record<string, string>>(socket, 'subscribe', SocketSubscription, async (sub) => ({ room: await this.subscribe(socket, sub, true) }), hooks);
    onEvent<Record<string, string>>(socket, 'unsubscribe', SocketSubscription, async (sub) => ({ room: await this.subscribe(socket, sub, false) }), hooks);

    if (p.type === 'agent') this.attachAgentHandlers(socket, hooks);

    socket.on('disconnect', () => {
      this.sockets.delete(socket);
      void this.o.coord.removePresence(`ws:${key}`, socket.id).catch(() => {});
      const n = (this.perPrincipal.get(key) ?? 1) - 1;
      if (n <= 0) this.perPrincipal.delete(key);
      else this.perPrincipal.set(key, n);
      this.o.onConnectionsChanged?.(--this.connections);
      const timers = socket as unknown as { expiryTimer?: NodeJS.Timeout; mfaTimer?: NodeJS.Timeout };
      clearTimeout(timers.expiryTimer);
      clearTimeout(timers.mfaTimer);
      if (p.type === 'agent') this.onAgentDisconnect(socket);
    });

    await socket.join(rooms.principal(key));
    if (hasPermission(p.role, 'security:alerts')) await socket.join(rooms.admins);
    if (p.type === 'agent') await this.startAgentSession(socket);
  }

  private denied(socket: McpSocket, principal: Principal | null, code: string, event: string): void {
    const ua = socket.handshake.headers['user-agent'];
    this.o.onDenied?.({ principal, ip: socket.handshake.address, user_agent: typeof ua === 'string' ? ua : null, code, event });
  }

  private scheduleExpiry(socket: McpSocket): void {
    const s = socket as unknown as { expiryTimer?: NodeJS.Timeout };
    if (s.expiryTimer) clearTimeout(s.expiryTimer);
    const ms = Math.max(0, socket.data.exp * 1000 - Date.now());
    s.expiryTimer = setTimeout(() => {
      socket.emit('auth:expired', { message: 'The access token expired; send auth:refresh {token} within 30 s.', timestamp: new Date().toISOString() });
      s.expiryTimer = setTimeout(() => socket.disconnect(true), 30_000);
      s.expiryTimer.unref();
    }, Math.min(ms, 2 ** 31 - 1));
    s.expiryTimer.unref();
  }

  /**
   * A user whose role must enrol MFA, connected within the grace period, is disconnected when it
   * ends (error MFA_REQUIRED) unless they enrolled meanwhile — not left connected until the
   * token expires. Checked again at the deadline: enrolment or a role change moves it.
   */
  private scheduleMfaDeadline(socket: McpSocket, deadline: number | undefined): void {
    const s = socket as unknown as { mfaTimer?: NodeJS.Timeout };
    clearTimeout(s.mfaTimer);
    s.mfaTimer = undefined;
    if (deadline === undefined) return;
    const p = socket.data.principal;
    s.mfaTimer = setTimeout(() => {
      s.mfaTimer = undefined;
      this.o.principals.invalidate(p.type, p.id);
      void this.o.principals.current(p).then((live) => {
        if (!socket.connected) return;
        if (live && !live.mfaOverdue) {
          this.scheduleMfaDeadline(socket, live.mfaDeadline);
          return;
        }
        const err = live ? mfaEnrolmentRequired() : new AppError('INVALID_TOKEN', 'The principal is disabled or deleted.');
        socket.emit('error', { code: err.code, message: err.message, timestamp: new Date().toISOString() });
        socket.disconnect(true);
      }, (err: unknown) => this.o.logger.warn({ err, principal: principalKey(p) }, 'MFA deadline check failed'));
    }, Math.min(Math.max(0, deadline - Date.now()) + 100, 2 ** 31 - 1));
    s.mfaTimer.unref();
  }

  private async subscribe(socket: McpSocket, sub: Record<string, string>, join: boolean): Promise<string> {
    const p = socket.data.principal;
    const need = (perm: Parameters<typeof hasPermission>[1]) => {
      if (!hasPermission(p.role, perm)) throw new ForbiddenError('INSUFFICIENT_PERMISSIONS');
    };
    if (!join) {
      // Leaving needs no permission and no lookup: a socket may always leave a room, also one
      // whose object is gone (purged, deleted) — it would otherwise stay in it for good.
      const room = sub.task_id ? rooms.task(canonicalUuid(sub.task_id)) : sub.pipeline_id ? rooms.pipeline(canonicalUuid(sub.pipeline_id))
        : sub.agent_id ? rooms.agentSub(sub.agent_id) : rooms.topic(sub.topic!);
      await socket.leave(room);
      return room;
    }
    let room: string;
    // Rooms are named by the id as events carry it (the stored one; UUIDs lower-case), not as
    // the caller spelled it: `task:01A2…` would ack ok and never receive an event.
    if (sub.task_id) {
      need('task:read');
      const row = await this.o.tasks.getRow(sub.task_id, p);
      room = rooms.task(row.task_id);
    } else if (sub.pipeline_id) {
      need('pipeline:read');
      const id = canonicalUuid(sub.pipeline_id);
      if (this.o.pipelineExists && !(await this.o.pipelineExists(id))) throw new AppError('PIPELINE_NOT_FOUND');
      room = rooms.pipeline(id);
    } else if (sub.agent_id) {
      need('agent:read');
      // An agent's room carries the task events of its leases: a worker sees its own only (as it lists its own tasks).
      if (p.role === 'worker' && !(p.type === 'agent' && p.id === sub.agent_id)) throw new ForbiddenError('INSUFFICIENT_PERMISSIONS', 'Workers may subscribe to their own agent only.');
      const agent = await this.o.agents.get(sub.agent_id);
      room = rooms.agentSub(agent.agent_id);
    } else {
      const topic = sub.topic!;
      if (topic === 'tasks') {
        need('task:read');
        if (p.role === 'worker') throw new ForbiddenError('INSUFFICIENT_PERMISSIONS', 'Workers may subscribe to their own tasks only.');
      } else if (topic === 'pipelines') need('pipeline:read');
      else if (topic === 'agents') need('agent:read');
      else need('system:health');
      room = rooms.topic(topic);
    }
    await socket.join(room);
    return room;
  }

  private disconnectPrincipal(key: string, reason: string): void {
    this.nsp.to(rooms.principal(key)).emit('error', { code: 'INVALID_TOKEN', message: `Credentials revoked (${reason}).`, timestamp: new Date().toISOString() });
    this.nsp.in(rooms.principal(key)).disconnectSockets(true);
  }

  // ---- agent sessions ---------------------------------------------------------------------

  /** The agent's events (synchronous: see onConnection), and the socket counted as the agent's at once, so a disconnect during its session start is seen. */
  private attachAgentHandlers(socket: McpSocket, hooks: HandlerHooks): void {
    const agentId = socket.data.principal.id;
    const grace = this.graceTimers.get(agentId);
    if (grace) { clearTimeout(grace); this.graceTimers.delete(agentId); }
    let set = this.agentSockets.get(agentId);
    if (!set) this.agentSockets.set(agentId, (set = new Set()));
    set.add(socket);

    onEvent<HeartbeatInput>(socket, 'agent:heartbeat', SocketHeartbeat, async (body) => {
      // (The agent's socket presence is kept alive by the batched refresh, not per heartbeat.)
      const r = await this.o.agents.heartbeat(agentId, body, 'ws');
      // Only an agent that may hold leases can have an unacknowledged delivery to re-send.
      if (this.o.engine.mayHoldLeases(agentId)) await this.resendUnacknowledged(agentId, 5000);
      return { next_heartbeat: r.next_heartbeat, status: r.agent_status };
    }, hooks);
    onEvent<{ status: 'active' | 'inactive' | 'maintenance' }>(socket, 'agent:status_update', SocketStatusUpdate, async ({ status }) => {
      const a = await this.o.agents.setStatus(agentId, status, status === 'active' ? { draining: false } : {});
      await this.refreshSlot(agentId);
      return { status: a?.status ?? status };
    }, hooks);
    onEvent<{ task_id: string; attempt?: number }>(socket, 'task:accepted', SocketTaskAck, async (b) => {
      const t = await this.o.tasks.acceptLease(b.task_id, agentId, b.attempt);
      return { task_id: t.task_id, status: t.status, attempt: t.attempt };
    }, hooks);
    onEvent<{ task_id: string; attempt?: number; reason?: string }>(socket, 'task:rejected', SocketTaskAck, async (b) => {
      await this.o.tasks.reject(b.task_id, agentId, b.attempt, b.reason ?? 'rejected by agent');
      this.o.engine.forget(agentId, b.task_id);
      return { task_id: b.task_id, status: 'pending' };
    }, hooks);
    onEvent<{ task_id: string; attempt?: number; progress: number; message?: string }>(socket, 'task:progress', SocketTaskProgress, async (b) => {
      const r = await this.o.tasks.progress(b.task_id, agentId, b.attempt, b.progress, b.message);
      return { lease_expires_at: r.lease_expires_at };
    }, hooks);
    onEvent<SocketTaskResultInput>(socket, 'task:result', SocketTaskResult, async (b) => this.onResult(agentId, b), hooks);
  }

  /** The agent's presence, liveness and slot; its unacknowledged leases re-sent (SPEC §8). */
  private async startAgentSession(socket: McpSocket): Promise<void> {
    const agentId = socket.data.principal.id;
    await socket.join(rooms.agentConn(agentId));
    await this.markSocketPresence(agentId);
    const agent = await this.o.agents.get(agentId);
    await this.o.agents.heartbeat(agentId, {}, 'ws');
    // Gone meanwhile (its disconnect already ran): no slot for a socket that is not there.
    if (socket.disconnected) return;
    await this.o.engine.addSlot({
      agent_id: agentId,
      capabilities: new Set(agent.capabilities),
      max: agent.max_concurrent_tasks,
      score: scoreOf(this.o.agents.counters(agent)),
      builtin: false,
      available: this.isAvailable(agent.status, agent.draining),
      deliver: (t) => this.deliver(agentId, t),
    });
    // Re-send leases it still holds but never acknowledged (SPEC §8).
    await this.resendUnacknowledged(agentId, 0);
  }

  /**
   * Delivery is at-least-once: leases still `assigned` (never acknowledged) for longer than
   * `olderThanMs` are sent again — on reconnect, and on heartbeats (a delivery that raced the
   * agent's listener registration is not left to wait for the lease to expire).
   */
  private async resendUnacknowledged(agentId: string, olderThanMs: number): Promise<void> {
    const leased = await this.o.tasks.leasedBy(agentId);
    const cutoff = Date.now() - olderThanMs;
    const due = leased.filter((t) => t.status === 'assigned' && (t.assigned_at?.getTime() ?? 0) <= cutoff);
    for (const t of this.o.engine.redeliveries(agentId, due)) this.deliver(agentId, t);
  }

  /**
   * `agent-socket` presence says "this agent holds a socket on some server process". Its TTL is
   * short and refreshed while connected (`refreshPresence`, every third of it), so a crashed
   * process's agents stop counting as connected and the leader's orphan sweep can time out
   * their leases.
   */
  private async markSocketPresence(agentId: string): Promise<void> {
    await this.o.coord.setPresence(AGENT_SOCKET_PRESENCE, agentId, this.agentSocketPresence, SOCKET_PRESENCE_TTL_MS).catch(() => {});
  }

  private isAvailable(status: string, draining: boolean): boolean {
    return !draining && (status === 'active' || status === 'busy');
  }

  private async refreshSlot(agentId: string): Promise<void> {
    if (!this.o.engine.hasSlot(agentId) || !this.agentSockets.has(agentId)) return;
    const agent = await this.o.agents.get(agentId).catch(() => null);
    if (!agent) return;
    // Connected here, so alive: marked offline anyway (its presence was lost, e.g. the coordination
    // store restarted empty), it comes back as on a heartbeat; that status change refreshes the slot.
    if (agent.status === 'offline') {
      const revived = await this.o.agents.heartbeat(agentId, {}, 'ws').then(() => true, (err: unknown) => {
        this.o.logger.warn({ err, agent_id: agentId }, 'reviving a connected agent failed');
        return false;
      });
      if (revived) return;
    }
    this.o.engine.updateSlot(agentId, { available: this.isAvailable(agent.status, agent.draining), max: agent.max_concurrent_tasks, capabilities: new Set(agent.capabilities) });
  }

  private async onResult(agentId: string, b: SocketTaskResultInput): Promise<Record<string, unknown>> {
    const success = b.success ?? (b.error === undefined);
    if (success) {
      const data = b.data !== undefined ? b.data : b.result;
      if (data === undefined) throw new AppError('VALIDATION_ERROR', 'A successful result needs `data` (or the seed form `result`).', { details: { field_errors: [{ field: 'data', message: 'is required' }] } });
      const r = await this.o.tasks.complete(b.task_id, agentId, b.attempt, data, b.metadata);
      return { task_id: r.task_id, status: r.status, attempt: r.attempt, duplicate: r.duplicate };
    }
    if (!b.error) throw new AppError('VALIDATION_ERROR', 'A failed result needs `error`.', { details: { field_errors: [{ field: 'error', message: 'is required' }] } });
    const r = await this.o.tasks.fail(b.task_id, agentId, b.attempt, b.error);
    return { task_id: r.task_id, status: r.status, attempt: r.attempt, will_retry: r.will_retry, dead_letter: r.dead_letter };
  }

  /** Emits `task:delegate` to one of the agent's sockets; its ack accepts the task. */
  private deliver(agentId: string, t: DeliveredTask): void {
    const set = this.agentSockets.get(agentId);
    const socket = set ? [...set].pop() : undefined;
    if (!socket) return; // lease stays; re-sent on reconnect or timed out after the grace period
    const sentAt = performance.now();
    socket.timeout(30_000).emit('task:delegate', t, (err: Error | null, resp?: { ok?: boolean; reason?: string }): void => {
      if (err) return; // no ack: the agent may still send a result; the lease decides
      this.o.onDeliveryLatency?.((performance.now() - sentAt) / 1000);
      if (resp && resp.ok === false) {
        this.o.tasks.reject(t.task_id, agentId, t.attempt, resp.reason ?? 'declined').then(() => this.o.engine.forget(agentId, t.task_id), () => {});
        return;
      }
      this.o.tasks.acknowledgeDelivery(t.task_id, agentId, t.attempt);
    });
  }

  private onAgentDisconnect(socket: McpSocket): void {
    const agentId = socket.data.principal.id;
    const set = this.agentSockets.get(agentId);
    set?.delete(socket);
    if (set && set.size > 0) return;
    this.agentSockets.delete(agentId);
    this.o.engine.removeSlot(agentId);
    // Only our own record: the agent may already have reconnected to another process.
    void this.o.coord.getPresence(AGENT_SOCKET_PRESENCE, agentId).then((rec) => (rec?.server === this.serverId ? this.o.coord.removePresence(AGENT_SOCKET_PRESENCE, agentId) : undefined)).catch(() => {});
    const timer = setTimeout(() => {
      this.graceTimers.delete(agentId);
      void (async () => {
        if (this.agentSockets.has(agentId)) return;
        const elsewhere = await this.o.coord.getPresence(AGENT_SOCKET_PRESENCE, agentId).catch(() => null);
        if (elsewhere && elsewhere.server !== this.serverId) return; // reconnected to another server process
        const n = await this.o.tasks.timeoutAgentLeases(agentId, `Agent disconnected for more than ${this.o.leaseGraceSeconds} s.`);
        if (n) this.o.logger.warn({ agent_id: agentId, tasks: n }, 'leases of a disconnected agent timed out');
      })().catch((err: unknown) => this.o.logger.error({ err, agent_id: agentId }, 'grace expiry failed'));
    }, this.o.leaseGraceSeconds * 1000);
    timer.unref();
    this.graceTimers.set(agentId, timer);
  }
}
