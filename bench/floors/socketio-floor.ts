/**
 * The protocol floor: what the SPEC's agent protocol alone costs on this host, with no store.
 * A Socket.IO server hands N tasks to K agents (P in flight each) as acked `task:delegate`
 * events; each agent acks and answers with an acked `task:result`, as bench/agents-worker.ts
 * does. Agents run in a child process. Prints tasks/s and CPU µs per task on each side.
 *
 *   npx tsx bench/floors/socketio-floor.ts [N]
 */
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import { io } from 'socket.io-client';

const K = 50;
const P = 20;

function agents(port: number): void {
  let ready = 0;
  const c0 = process.cpuUsage();
  for (let i = 0; i < K; i++) {
    const s = io(`http://127.0.0.1:${port}/mcp/ws`, { transports: ['websocket'], forceNew: true, reconnection: false });
    s.on('task:delegate', (t: { task_id: string; attempt: number }, ack: (r: unknown) => void) => {
      ack({ ok: true });
      s.emit('task:result', { task_id: t.task_id, attempt: t.attempt, success: true, data: {} }, () => {});
    });
    s.once('connect', () => { if (++ready === K) process.send!('ready'); });
  }
  process.on('message', () => {
    const c = process.cpuUsage(c0);
    process.send!(c.user + c.system, () => process.exit(0));
  });
}

async function server(n: number): Promise<void> {
  const http = createServer();
  const nsp = new Server(http, { transports: ['websocket'] }).of('/mcp/ws');
  const sockets: Socket[] = [];
  let sent = 0;
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => { finish = resolve; });
  const give = (s: Socket) => {
    if (sent >= n) return;
    sent++;
    s.emit('task:delegate', { task_id: randomUUID(), task_type: 'noop', parameters: {}, priority: 5, deadline: null, pipeline_id: null, stage: null, attempt: 1, metadata: { assigned_at: new Date().toISOString(), timeout_seconds: 300 } }, () => {});
  };
  nsp.on('connection', (s) => {
    sockets.push(s);
    s.on('task:result', (_r: unknown, ack: (r: unknown) => void) => {
      ack({ ok: true });
      if (++done === n) finish();
      give(s);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const child = fork(new URL(import.meta.url).pathname, ['agents', String((http.address() as AddressInfo).port)], { execArgv: ['--import', 'tsx'] });
  await new Promise((resolve) => child.once('message', resolve));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let round = 0; round < P; round++) for (const s of sockets) give(s);
  await finished;
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  child.send('stop');
  const agentCpu = await new Promise<number>((resolve) => child.once('message', (m) => resolve(m as number)));
  process.stdout.write(`${n} tasks in ${ms.toFixed(0)} ms → ${((n / ms) * 1000).toFixed(0)} tasks/s; CPU per task: server ${((c.user + c.system) / n).toFixed(1)} µs, agents ${(agentCpu / n).toFixed(1)} µs\n`);
  process.exit(0);
}

if (process.argv[2] === 'agents') agents(Number(process.argv[3]));
else await server(Number(process.argv[2] ?? 20_000));
