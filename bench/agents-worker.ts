/**
 * The load generator's agent side, in its own process so it never shares the server's event
 * loop nor the orchestrator's. Driven over IPC by bench/lib/agents-client.ts:
 * - `connect`: real socket.io-client agents (websocket transport) that answer `task:delegate`
 *   by acking it and immediately emitting `task:result {success: true, data: {}}`, recording the
 *   delivery latency when the task carries `parameters.sent_at` (a wall-clock ms timestamp);
 * - `heartbeat`: every socket sends `agent:heartbeat` every `intervalMs` and times the ack;
 * - `bullmq`: a BullMQ Worker that returns immediately, counting completed jobs.
 * Timestamps crossing the process boundary are high-resolution wall clock ms.
 */
import { io, type Socket } from 'socket.io-client';
import { percentiles, sleep, wallMs, type Percentiles } from './lib/stats.ts';

export interface WorkerAgent {
  agent_id: string;
  access_token: string;
}

export type WorkerCommand =
  | { cmd: 'connect'; url: string; agents: WorkerAgent[]; socketsPerAgent: number; concurrency: number; timeoutMs: number }
  | { cmd: 'stats' }
  | { cmd: 'reset' }
  | { cmd: 'waitResults'; n: number; timeoutMs: number }
  | { cmd: 'heartbeat'; intervalMs: number; durationMs: number }
  | { cmd: 'disconnect' }
  | { cmd: 'bullmq'; redisUrl: string; queue: string; n: number; concurrency: number; timeoutMs: number };

export interface ConnectResult { connected: number; failed: number; errors: Record<string, number>; ms: number }
export interface WorkerStats {
  sockets: number;
  delegates: number;
  results_ok: number;
  results_err: number;
  result_errors: Record<string, number>;
  /** transient errors answered to task:result, retried: code → count */
  result_retries: Record<string, number>;
  disconnects: number;
  first_delegate_at: number | null;
  last_result_at: number | null;
  /** delegate receive time − parameters.sent_at, ms */
  delivery_ms: number[];
}
export interface HeartbeatResult { sent: number; acked: number; errors: Record<string, number>; ack_ms: Percentiles }
export interface BullResult { completed: number; first_at: number | null; last_at: number | null; ready_at: number }

const RETRYABLE = new Set(['RATE_LIMIT_EXCEEDED', 'INTERNAL_ERROR', 'SERVICE_UNAVAILABLE']);
const sockets: Socket[] = [];
let stats: WorkerStats = freshStats();
const resultWaiters = new Set<() => void>();

function freshStats(): WorkerStats {
  return { sockets: 0, delegates: 0, results_ok: 0, results_err: 0, result_errors: {}, result_retries: {}, disconnects: 0, first_delegate_at: null, last_result_at: null, delivery_ms: [] };
}

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

interface Delivered { task_id: string; attempt: number; parameters?: { sent_at?: unknown } }
interface AckBody { ok?: boolean; error?: { code?: string } }

function sendResult(s: Socket, t: Delivered, tries = 0): void {
  s.timeout(60_000).emit('task:result', { task_id: t.task_id, attempt: t.attempt, success: true, data: {} }, (err: Error | null, resp?: AckBody) => {
    if (err) { stats.results_err++; bump(stats.result_errors, 'ACK_TIMEOUT'); return; }
    if (resp?.ok) {
      stats.results_ok++;
      stats.last_result_at = wallMs();
      for (const w of resultWaiters) w();
      return;
    }
    const code = resp?.error?.code ?? 'UNKNOWN';
    // As a real agent would: retry what the server says is transient (the result is recorded at most once).
    if (RETRYABLE.has(code) && tries < 50) {
      bump(stats.result_retries, code);
      setTimeout(() => sendResult(s, t, tries + 1), (code === 'RATE_LIMIT_EXCEEDED' ? 50 : 250) + Math.random() * 100 * (tries + 1));
      return;
    }
    stats.results_err++;
    bump(stats.result_errors, code);
  });
}

function connectOne(url: string, token: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = io(`${url}/mcp/ws`, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true, autoConnect: false, timeout: timeoutMs });
    s.on('task:delegate', (t: Delivered, ack?: (r: unknown) => void) => {
      const now = wallMs();
      stats.delegates++;
      stats.first_delegate_at ??= now;
      const sentAt = t.parameters?.sent_at;
      if (typeof sentAt === 'number') stats.delivery_ms.push(now - sentAt);
      if (typeof ack === 'function') ack({ ok: true });
      sendResult(s, t);
    });
    const timer = setTimeout(() => { s.close(); reject(new Error('CONNECT_TIMEOUT')); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); resolve(s); });
    s.once('connect_error', (err) => { clearTimeout(timer); s.close(); reject(err); });
    s.on('disconnect', () => { stats.disconnects++; });
    s.connect();
  });
}

async function connect(c: Extract<WorkerCommand, { cmd: 'connect' }>): Promise<ConnectResult> {
  const started = performance.now();
  const jobs: string[] = [];
  for (let k = 0; k < c.socketsPerAgent; k++) for (const a of c.agents) jobs.push(a.access_token);
  const errors: Record<string, number> = {};
  let connected = 0;
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(c.concurrency, jobs.length) }, async () => {
    while (next < jobs.length) {
      const token = jobs[next++]!;
      try {
        sockets.push(await connectOne(c.url, token, c.timeoutMs));
        connected++;
      } catch (err) {
        bump(errors, (err as Error).message || 'connect_error');
      }
    }
  }));
  stats.sockets = sockets.length;
  return { connected, failed: jobs.length - connected, errors, ms: performance.now() - started };
}

async function waitResults(n: number, timeoutMs: number): Promise<WorkerStats> {
  const deadline = Date.now() + timeoutMs;
  while (stats.results_ok + stats.results_err < n && Date.now() < deadline) {
    await new Promise<void>((resolve) => {
      const done = () => { clearTimeout(t); resultWaiters.delete(done); resolve(); };
      const t = setTimeout(done, 200);
      resultWaiters.add(done);
    });
  }
  return stats;
}

async function heartbeat(intervalMs: number, durationMs: number): Promise<HeartbeatResult> {
  const lat: number[] = [];
  const errors: Record<string, number> = {};
  let sent = 0;
  const end = Date.now() + durationMs;
  const pending = new Set<Promise<void>>();
  const beat = (s: Socket): Promise<void> => new Promise((resolve) => {
    if (!s.connected) { bump(errors, 'DISCONNECTED'); resolve(); return; }
    sent++;
    const t0 = performance.now();
    s.timeout(30_000).emit('agent:heartbeat', { status: 'active' }, (err: Error | null, resp?: AckBody) => {
      if (err) bump(errors, 'ACK_TIMEOUT');
      else if (!resp?.ok) bump(errors, resp?.error?.code ?? 'UNKNOWN');
      else lat.push(performance.now() - t0);
      resolve();
    });
  });
  await Promise.all(sockets.map(async (s) => {
    await sleep(Math.random() * intervalMs);
    while (Date.now() < end) {
      const p = beat(s);
      pending.add(p);
      void p.then(() => pending.delete(p));
      await sleep(intervalMs);
    }
  }));
  await Promise.all(pending);
  return { sent, acked: lat.length, errors, ack_ms: percentiles(lat) };
}

async function disconnect(): Promise<{ closed: number }> {
  const n = sockets.length;
  for (const s of sockets.splice(0)) s.close();
  stats.sockets = 0;
  await sleep(100);
  return { closed: n };
}

async function bull(c: Extract<WorkerCommand, { cmd: 'bullmq' }>): Promise<BullResult> {
  const { Worker } = await import('bullmq');
  const u = new URL(c.redisUrl);
  const connection = { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0), maxRetriesPerRequest: null };
  let completed = 0;
  let first: number | null = null;
  let last: number | null = null;
  let wake: (() => void) | undefined;
  const worker = new Worker(c.queue, async () => ({}), { connection, concurrency: c.concurrency, autorun: false });
  worker.on('completed', () => {
    const now = wallMs();
    first ??= now;
    last = now;
    if (++completed >= c.n) wake?.();
  });
  worker.on('error', () => {});
  void worker.run();
  await worker.waitUntilReady();
  const readyAt = wallMs();
  process.send!({ event: 'bullmq-ready' });
  await new Promise<void>((resolve) => {
    wake = resolve;
    setTimeout(resolve, c.timeoutMs);
    if (completed >= c.n) resolve();
  });
  await worker.close();
  return { completed, first_at: first, last_at: last, ready_at: readyAt };
}

async function handle(m: WorkerCommand): Promise<unknown> {
  switch (m.cmd) {
    case 'connect': return connect(m);
    case 'stats': return stats;
    case 'reset': { const s = stats; stats = { ...freshStats(), sockets: sockets.length }; return { ...s, delivery_ms: [] }; }
    case 'waitResults': return waitResults(m.n, m.timeoutMs);
    case 'heartbeat': return heartbeat(m.intervalMs, m.durationMs);
    case 'disconnect': return disconnect();
    case 'bullmq': return bull(m);
  }
}

process.on('message', (msg: { id: number; command: WorkerCommand }) => {
  handle(msg.command).then(
    (result) => process.send!({ id: msg.id, ok: true, result }),
    (err: unknown) => process.send!({ id: msg.id, ok: false, error: (err as Error).stack ?? String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send!({ event: 'ready' });
