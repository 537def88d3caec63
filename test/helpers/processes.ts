/**
 * Real server processes for multi-process tests: each is `node --import tsx src/main.ts` (one
 * OS process, so `kill -9` kills the server itself, not a wrapper), configured only through
 * its environment like a deployment; plus a private redis-server that can be stopped and
 * restarted empty, and a TCP round-robin balancer that skips dead backends (what a load
 * balancer does for agents reconnecting after a process died).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A port that was free a moment ago (the server binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function until(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Secrets every process of one cluster shares (they must agree to verify tokens and decrypt fields). */
export function clusterSecrets(): Record<string, string> {
  const { privateKey } = generateKeyPairSync('ed25519');
  return {
    MCP_MASTER_KEY: randomBytes(32).toString('hex'),
    MCP_PASSWORD_PEPPER: randomBytes(24).toString('hex'),
    MCP_SIGNING_KEY: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

export interface ServerProcess {
  name: string;
  pid: number;
  port: number;
  url: string;
  /** Everything the process printed (JSON log lines), for assertions and failure reports. */
  output(): string;
  /** Parsed JSON log lines with `msg` equal to the given text. */
  logs(msg: string): Array<Record<string, unknown>>;
  /** SIGKILL, then waits for the exit. */
  kill9(): Promise<void>;
  /** SIGTERM (graceful), then waits for the exit. */
  stop(): Promise<void>;
  readonly exited: boolean;
}

export async function startServerProcess(name: string, env: Record<string, string>, timeoutMs = 30_000): Promise<ServerProcess> {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `mcp-${name}-`));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), NODE_ENV: 'test',
      MCP_HOST: '127.0.0.1', MCP_PORT: String(port), MCP_WS_PORT: '0', MCP_DATA_DIR: dataDir, MCP_LOG_LEVEL: 'info', MCP_LOG_PRETTY: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  const url = `http://127.0.0.1:${port}`;
  try {
    const started = Date.now();
    for (;;) {
      if (exited) throw new Error(`${name} exited during start`);
      if (await fetch(`${url}/api/v1/ready`).then((r) => r.status === 200, () => false)) break;
      if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${name} to be ready`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n--- ${name} output ---\n${out.slice(-4000)}`, { cause: err });
  }
  const finish = async () => {
    await exit;
    rmSync(dataDir, { recursive: true, force: true });
  };
  return {
    name, pid: child.pid!, port, url,
    output: () => out,
    logs: (msg) => out.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; } }).filter((l) => l.message === msg),
    get exited() { return exited; },
    async kill9() {
      if (!exited) child.kill('SIGKILL');
      await finish();
    },
    async stop() {
      if (!exited) child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await finish();
      clearTimeout(force);
    },
  };
}

export interface RedisServer {
  port: number;
  url: string;
  /** SHUTDOWN NOSAVE: the data is gone; clients see connection refused until `start`. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
}

/** True when a `redis-server` binary is on PATH. */
export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** A private, non-persistent redis-server on a free port (so the test may restart it). */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  const start = async () => {
    const r = spawnSync('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes'], { stdio: 'ignore' });
    if (r.status !== 0) throw new Error('redis-server failed to start');
    await until(() => portOpen(port), 10_000, 'redis-server');
  };
  const stop = async () => {
    spawnSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave'], { stdio: 'ignore' });
    await until(async () => !(await portOpen(port)), 10_000, 'redis-server to stop');
  };
  await start();
  return { port, url: `redis://127.0.0.1:${port}`, start, stop };
}

export interface Balancer {
  port: number;
  url: string;
  /** Backend port each accepted connection was sent to, in order. */
  routed: number[];
  close(): Promise<void>;
}

/** Round-robin TCP balancer over `ports`; a backend that refuses is skipped (as a health-checking LB would). */
export async function startBalancer(ports: number[]): Promise<Balancer> {
  let next = 0;
  const routed: number[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    const tryBackend = (left: number) => {
      if (left === 0) { client.destroy(); return; }
      const port = ports[next++ % ports.length]!;
      const upstream = net.connect({ host: '127.0.0.1', port });
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        routed.push(port);
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        client.pipe(upstream).pipe(client);
        client.resume();
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.on('close', () => upstream.destroy());
      });
      upstream.once('error', () => {
        if (!connected) tryBackend(left - 1);
      });
    };
    tryBackend(ports.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port, url: `http://127.0.0.1:${port}`, routed,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
