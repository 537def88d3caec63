/**
 * `McpAgent`: a worker process's connection to the MCP server (SPEC §8, §12).
 *
 * - `start()` exchanges the API key for tokens, announces its concurrency to the server, and
 *   connects Socket.IO (`${url}/mcp/ws`, listeners registered before connecting: work may arrive
 *   at once).
 * - `task:delegate` is acked `{ok: true}` to accept, `{ok: false, reason}` to decline (no handler,
 *   at the concurrency limit, draining). A delivery already being worked on (the server re-sends
 *   unacknowledged leases after a reconnect) is acked again and not run twice.
 * - The handler gets `ctx.progress(p, message?)` and `ctx.signal` (aborted on `task:cancel` or a
 *   forced stop); its return value is sent as `task:result {success: true, data}`, a thrown error
 *   as `{success: false, error}` — retryable unless it is a `NonRetryableError` (or carries
 *   `retryable: false`).
 * - Heartbeats on an interval; answers `auth:expired` with `auth:refresh` after renewing its
 *   token; reconnects with exponential backoff and jitter (also after the server refused a
 *   handshake, with renewed tokens).
 * - `stop({drain: true})` asks the server to drain it, declines new work, waits (bounded) for
 *   running handlers, then disconnects. `handleSignals: true` wires that to SIGTERM/SIGINT.
 */
import { EventEmitter } from 'node:events';
import { io, type Socket } from 'socket.io-client';
import { McpClient } from './mcp-client.ts';
import { toTaskError } from './errors.ts';
import type { DelegatedTask, TokenPair } from './types.ts';

/** Minimal logger; `console` fits. */
export interface SdkLogger {
  debug?(message: string, meta?: Record<string, unknown>): void;
  info?(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

export interface TaskContext {
  readonly taskId: string;
  readonly attempt: number;
  readonly task: DelegatedTask;
  /** Aborted when the server cancels the task, or when the agent stops without draining. */
  readonly signal: AbortSignal;
  /** Reports progress 0..1 (extends the lease). Resolves once the server acknowledged it; never rejects. */
  progress(progress: number, message?: string): Promise<void>;
  readonly logger: SdkLogger;
}

export type TaskHandler<R = unknown> = (task: DelegatedTask, ctx: TaskContext) => Promise<R> | R;

export interface McpAgentOptions {
  /** Server base URL (REST), e.g. `http://localhost:8080`. */
  url: string;
  /** Socket.IO base URL when it differs from `url` (e.g. the dedicated port 8081). */
  wsUrl?: string;
  agentId: string;
  apiKey: string;
  /** Handlers by task type, else by a required capability; `'*'` catches the rest. */
  handlers: Record<string, TaskHandler>;
  /** Most tasks run at once (default 5). Announced to the server as `max_concurrent_tasks` unless `syncConcurrency: false`. */
  concurrency?: number;
  syncConcurrency?: boolean;
  /** Default 30 000 ms. */
  heartbeatIntervalMs?: number;
  /** Reconnection backoff: first delay, cap, jitter factor 0..1 (defaults 500 ms, 30 s, 0.5). */
  reconnect?: { delayMs?: number; maxDelayMs?: number; jitter?: number };
  /** How long `stop({drain: true})` waits for running handlers (default 30 000 ms). */
  drainTimeoutMs?: number;
  /** Stop gracefully on SIGTERM/SIGINT (default false). */
  handleSignals?: boolean;
  /** Mark the agent `active` (and not draining) on start — a previous run may have drained it (default true). */
  activateOnStart?: boolean;
  logger?: SdkLogger;
}

export interface AgentEvents {
  connected: [{ reconnect: boolean }];
  disconnected: [{ reason: string }];
  task: [DelegatedTask];
  declined: [{ task: DelegatedTask; reason: string }];
  progress: [{ task_id: string; attempt: number; progress: number; message?: string }];
  completed: [{ task: DelegatedTask; result: unknown; duration_ms: number }];
  failed: [{ task: DelegatedTask; error: ReturnType<typeof toTaskError>; duration_ms: number }];
  cancelled: [{ task_id: string; reason: string }];
  token_refreshed: [{ via: 'socket' | 'handshake' }];
  heartbeat: [{ next_heartbeat?: string; status?: string }];
  error: [Error];
  stopped: [];
}

interface Running {
  task: DelegatedTask;
  controller: AbortController;
  cancelled: boolean;
  done: Promise<void>;
}

type AckResponse = { ok?: boolean; error?: { code?: string; message?: string }; [k: string]: unknown };

const noop = () => {};
const SILENT: SdkLogger = { warn: noop, error: noop };
const keyOf = (taskId: string, attempt: number) => `${taskId}#${attempt}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Waits for `p` or `ms`, whichever comes first, without leaving a timer behind. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => { timer = setTimeout(r, Math.max(0, ms)); })]);
  clearTimeout(timer);
}

export class McpAgent extends EventEmitter<AgentEvents> {
  readonly client: McpClient;
  readonly concurrency: number;
  private socket: Socket | undefined;
  private readonly running = new Map<string, Running>();
  /** Recently finished deliveries (task#attempt), so a re-sent lease is not run twice. */
  private readonly finished = new Map<string, number>();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private handshakeFailures = 0;
  private state: 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' = 'idle';
  private everConnected = false;
  private readonly log: SdkLogger;
  private readonly signalHandler = () => void this.stop({ drain: true }).catch((err: unknown) => this.fail(err));

  constructor(private readonly o: McpAgentOptions) {
    super();
    this.concurrency = Math.max(1, Math.floor(o.concurrency ?? 5));
    this.log = o.logger ?? SILENT;
    this.client = new McpClient({ url: o.url, agent: { agentId: o.agentId, apiKey: o.apiKey }, userAgent: `mcp-sdk-agent/${o.agentId}`, onTokens: (t) => this.onTokens(t) });
  }

  get agentId(): string {
    return this.o.agentId;
  }

  /** Tasks currently being handled. */
  get inFlight(): number {
    return this.running.size;
  }

  get connected(): boolean {
    return this.socket?.connected ?? false;
  }

  /** Exchanges the API key, connects, resolves once the first connection is up. */
  async start(): Promise<void> {
    if (this.state !== 'idle' && this.state !== 'stopped') throw new Error(`McpAgent.start(): already ${this.state}`);
    this.state = 'starting';
    this.everConnected = false;
    this.finished.clear();
    try {
      await this.client.auth.token(this.o.agentId, this.o.apiKey);
      if (this.o.syncConcurrency !== false) {
        // So the server never sends more than we run (else extra deliveries are declined and re-queued).
        try {
          const me = await this.client.agents.get(this.o.agentId);
          if (me.max_concurrent_tasks !== this.concurrency) await this.client.agents.update(this.o.agentId, { max_concurrent_tasks: this.concurrency });
        } catch (err) {
          this.log.warn('could not announce the concurrency to the server', { error: (err as Error).message });
        }
      }
      await this.connect();
      if (this.o.activateOnStart !== false) await this.emitAck('agent:status_update', { status: 'active' }).catch((err: unknown) => this.fail(err));
      this.state = 'running';
    } catch (err) {
      this.state = 'stopped';
      this.teardownSocket();
      throw err;
    }
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.o.heartbeatIntervalMs ?? 30_000);
    this.heartbeatTimer.unref();
    if (this.o.handleSignals) {
      process.once('SIGTERM', this.signalHandler);
      process.once('SIGINT', this.signalHandler);
    }
  }

  /**
   * Stops. With `drain` (default true): tells the server to drain this agent, declines new work,
   * waits up to `timeoutMs` for running handlers (then aborts them), and disconnects. Without:
   * aborts running handlers at once.
   */
  async stop(opts: { drain?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping' || this.state === 'idle') return;
    this.state = 'stopping';
    process.off('SIGTERM', this.signalHandler);
    process.off('SIGINT', this.signalHandler);
    const drain = opts.drain ?? true;
    if (drain) {
      await this.client.agents.drain(this.o.agentId).catch((err: unknown) => this.fail(err, 'drain request failed'));
      const deadline = Date.now() + (opts.timeoutMs ?? this.o.drainTimeoutMs ?? 30_000);
      while (this.running.size > 0 && Date.now() < deadline) {
        await within(Promise.allSettled([...this.running.values()].map((r) => r.done)), deadline - Date.now());
      }
    }
    for (const r of this.running.values()) r.controller.abort(new Error('The agent is stopping.'));
    // Give aborted handlers a moment to report, so their tasks are retried promptly rather than after the grace period.
    if (this.running.size) await within(Promise.allSettled([...this.running.values()].map((r) => r.done)), 2000);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    this.teardownSocket();
    this.state = 'stopped';
    this.emit('stopped');
  }

  // ---- connection ---------------------------------------------------------------------------

  private connect(): Promise<void> {
    const r = this.o.reconnect ?? {};
    const base = (this.o.wsUrl ?? this.o.url).replace(/\/+$/, '');
    const socket = io(`${base}/mcp/ws`, {
      autoConnect: false,
      forceNew: true,
      transports: ['websocket'],
      // A function, so every (re)connection presents the newest token.
      auth: (cb) => cb({ token: this.client.token ?? '' }),
      reconnection: true,
      reconnectionDelay: r.delayMs ?? 500,
      reconnectionDelayMax: r.maxDelayMs ?? 30_000,
      randomizationFactor: r.jitter ?? 0.5,
    });
    this.socket = socket;

    socket.on('task:delegate', (task: DelegatedTask, ack?: (r: AckResponse) => void) => this.onDelegate(task, ack ?? noop));
    socket.on('task:cancel', (c: { task_id: string; reason?: string }) => this.onCancel(c.task_id, c.reason ?? 'cancelled'));
    socket.on('auth:expired', () => void this.onAuthExpired());
    socket.on('system:shutdown', () => this.log.info?.('the server is shutting down; will reconnect'));
    socket.on('error', (e: { code?: string; message?: string }) => this.fail(new Error(`server error ${e.code ?? ''}: ${e.message ?? ''}`.trim())));
    socket.on('disconnect', (reason) => {
      this.log.warn('disconnected', { reason });
      this.emit('disconnected', { reason });
      // socket.io does not reconnect after a server-side disconnect (token expiry, revocation, an
      // operator kicking the socket); a running agent does, with renewed credentials and backoff.
      if (reason === 'io server disconnect') this.scheduleReconnect('SERVER_DISCONNECT');
    });
    socket.on('connect', () => {
      const reconnect = this.everConnected;
      this.everConnected = true;
      this.handshakeFailures = 0;
      this.log.info?.(reconnect ? 'reconnected' : 'connected', { agent_id: this.o.agentId });
      this.emit('connected', { reconnect });
      if (reconnect) void this.heartbeat();
    });
    // A refused handshake (expired/revoked token, server restarting) is not retried by socket.io: renew and retry here.
    socket.on('connect_error', (err: Error & { data?: { code?: string } }) => {
      if (socket.active) return;
      const code = err.data?.code ?? err.message;
      this.log.warn('connection refused', { code });
      this.scheduleReconnect(code);
    });

    return new Promise<void>((resolve, reject) => {
      const onConnect = () => { socket.off('connect_error', onError); resolve(); };
      const onError = (err: Error & { data?: { code?: string } }) => {
        if (socket.active) return; // transient: socket.io keeps trying
        socket.off('connect', onConnect);
        reject(Object.assign(new Error(`Socket.IO connection refused: ${err.data?.code ?? err.message}`), { code: err.data?.code ?? err.message }));
      };
      socket.once('connect', onConnect);
      socket.on('connect_error', onError);
      socket.connect();
    });
  }

  /** Reconnects by hand (after a refused handshake or a server-side disconnect): exponential backoff with jitter. */
  private scheduleReconnect(code: string): void {
    const socket = this.socket;
    if (!socket || this.state === 'stopping' || this.state === 'stopped' || this.reconnectTimer) return;
    const r = this.o.reconnect ?? {};
    const exp = Math.min(r.maxDelayMs ?? 30_000, (r.delayMs ?? 500) * 2 ** Math.min(this.handshakeFailures++, 16));
    const delay = exp * (1 + (Math.random() * 2 - 1) * (r.jitter ?? 0.5));
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      const renew = code !== 'SERVER_DISCONNECT' || this.handshakeFailures > 1;
      const go = () => { if (this.socket === socket && this.state !== 'stopping' && this.state !== 'stopped' && !socket.connected) socket.connect(); };
      (renew ? this.client.renewTokens() : Promise.resolve()).then(go, (e: unknown) => {
        this.fail(e, 'token renewal failed');
        go();
      });
    }, Math.max(0, delay));
  }

  private teardownSocket(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const s = this.socket;
    this.socket = undefined;
    if (s) {
      s.removeAllListeners();
      s.disconnect();
    }
  }

  private onTokens(_t: TokenPair): void {
    // Nothing to do for the handshake (its auth function reads the client's token); live sockets refresh on auth:expired.
  }

  private async onAuthExpired(): Promise<void> {
    try {
      await this.client.renewTokens();
      const r = await this.emitAck('auth:refresh', { token: this.client.token });
      if (r.ok === false) throw new Error(`auth:refresh refused: ${r.error?.code ?? 'unknown'}`);
      this.log.info?.('token refreshed');
      this.emit('token_refreshed', { via: 'socket' });
    } catch (err) {
      this.fail(err, 'token refresh failed');
    }
  }

  private async heartbeat(): Promise<void> {
    if (!this.socket?.connected) return;
    try {
      const r = await this.emitAck('agent:heartbeat', { current_tasks: [...new Set([...this.running.values()].map((x) => x.task.task_id))] });
      if (r.ok === false) throw new Error(`heartbeat refused: ${r.error?.code ?? 'unknown'}`);
      this.emit('heartbeat', { next_heartbeat: r.next_heartbeat as string | undefined, status: r.status as string | undefined });
    } catch (err) {
      this.fail(err, 'heartbeat failed');
    }
  }

  private emitAck(event: string, payload: unknown, timeoutMs = 10_000): Promise<AckResponse> {
    const s = this.socket;
    if (!s) return Promise.reject(new Error('not connected'));
    return s.timeout(timeoutMs).emitWithAck(event, payload) as Promise<AckResponse>;
  }

  private fail(err: unknown, context?: string): void {
    const e = err instanceof Error ? err : new Error(String(err));
    this.log.error(context ? `${context}: ${e.message}` : e.message, { agent_id: this.o.agentId });
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }

  // ---- tasks --------------------------------------------------------------------------------

  private handlerFor(task: DelegatedTask): TaskHandler | undefined {
    const h = this.o.handlers;
    if (Object.hasOwn(h, task.task_type)) return h[task.task_type];
    for (const c of task.required_capabilities ?? []) if (Object.hasOwn(h, c)) return h[c];
    if (task.stage && Object.hasOwn(h, task.stage)) return h[task.stage];
    return Object.hasOwn(h, '*') ? h['*'] : undefined;
  }

  private onDelegate(task: DelegatedTask, ack: (r: AckResponse) => void): void {
    const key = keyOf(task.task_id, task.attempt);
    if (this.running.has(key) || this.finished.has(key)) {
      ack({ ok: true }); // a re-sent lease we already hold
      return;
    }
    const decline = (reason: string) => {
      ack({ ok: false, reason });
      this.emit('declined', { task, reason });
    };
    if (this.state === 'stopping' || this.state === 'stopped') return decline('The agent is draining.');
    const handler = this.handlerFor(task);
    if (!handler) return decline(`No handler for task type '${task.task_type}'.`);
    if (this.running.size >= this.concurrency) return decline(`At the concurrency limit (${this.concurrency}).`);
    ack({ ok: true });
    this.emit('task', task);
    const controller = new AbortController();
    const entry: Running = { task, controller, cancelled: false, done: Promise.resolve() };
    this.running.set(key, entry);
    entry.done = this.run(task, handler, entry).finally(() => {
      this.running.delete(key);
      this.finished.set(key, Date.now());
      if (this.finished.size > 5000) for (const k of [...this.finished.keys()].slice(0, 1000)) this.finished.delete(k);
    });
  }

  private onCancel(taskId: string, reason: string): void {
    for (const r of this.running.values()) {
      if (r.task.task_id !== taskId) continue;
      r.cancelled = true;
      r.controller.abort(Object.assign(new Error(`The task was cancelled: ${reason}`), { name: 'AbortError' }));
    }
    this.emit('cancelled', { task_id: taskId, reason });
  }

  private async run(task: DelegatedTask, handler: TaskHandler, entry: Running): Promise<void> {
    const started = performance.now();
    const ctx: TaskContext = {
      taskId: task.task_id,
      attempt: task.attempt,
      task,
      signal: entry.controller.signal,
      logger: this.log,
      progress: async (progress, message) => {
        if (entry.cancelled) return;
        const p = Math.min(1, Math.max(0, Number.isFinite(progress) ? progress : 0));
        const body = { task_id: task.task_id, attempt: task.attempt, progress: p, ...(message ? { message: message.slice(0, 1000) } : {}) };
        try {
          const r = await this.emitAck('task:progress', body);
          if (r.ok === false) this.log.warn('progress refused', { task_id: task.task_id, code: r.error?.code });
          else this.emit('progress', body);
        } catch (err) {
          this.log.warn('progress not acknowledged', { task_id: task.task_id, error: (err as Error).message });
        }
      },
    };
    let outcome: { success: true; data: unknown } | { success: false; error: ReturnType<typeof toTaskError> };
    try {
      const data = await handler(task, ctx);
      outcome = { success: true, data: data === undefined ? null : data };
    } catch (err) {
      outcome = { success: false, error: toTaskError(err) };
    }
    const duration_ms = Math.round(performance.now() - started);
    if (entry.cancelled) return; // the server already closed the task
    await this.report(task, outcome);
    if (outcome.success) this.emit('completed', { task, result: outcome.data, duration_ms });
    else this.emit('failed', { task, error: outcome.error, duration_ms });
  }

  /** Sends the result over the socket (buffered across reconnects), retrying; falls back to REST. */
  private async report(task: DelegatedTask, outcome: { success: true; data: unknown } | { success: false; error: ReturnType<typeof toTaskError> }): Promise<void> {
    const payload = { task_id: task.task_id, attempt: task.attempt, ...outcome };
    for (let i = 0; i < 3; i++) {
      if (!this.socket) break;
      try {
        const r = await this.emitAck('task:result', payload, 15_000);
        if (r.ok !== false) return;
        // STALE_ATTEMPT / INVALID_STATUS_TRANSITION: the lease moved on (timed out, cancelled) — nothing to retry.
        this.log.warn('result refused', { task_id: task.task_id, attempt: task.attempt, code: r.error?.code });
        return;
      } catch {
        await sleep(500 * 2 ** i);
      }
    }
    try {
      if (outcome.success) await this.client.tasks.complete(task.task_id, task.attempt, outcome.data);
      else await this.client.tasks.fail(task.task_id, task.attempt, outcome.error);
    } catch (err) {
      this.fail(err, `could not report the result of task ${task.task_id}`);
    }
  }
}
