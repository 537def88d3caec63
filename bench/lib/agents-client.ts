/** Starts bench/agents-worker.ts as a separate Node process and talks to it over IPC. */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { WorkerCommand } from '../agents-worker.ts';
import { REPO_ROOT, rssKbOf } from './server-process.ts';

type Reply = { id: number; ok: boolean; result?: unknown; error?: string } | { event: string };

export class AgentsWorker {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly eventWaiters = new Map<string, Array<() => void>>();

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: Reply) => {
      if ('event' in m) {
        const ws = this.eventWaiters.get(m.event) ?? [];
        this.eventWaiters.delete(m.event);
        for (const w of ws) w();
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`agents worker: ${m.error}`));
    });
    child.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`agents worker exited (${code})`));
      this.pending.clear();
    });
  }

  static async start(): Promise<AgentsWorker> {
    const child = fork(path.join(REPO_ROOT, 'bench/agents-worker.ts'), [], {
      cwd: REPO_ROOT, execArgv: ['--import', 'tsx', '--max-old-space-size=4096'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const w = new AgentsWorker(child);
    await w.once('ready', 30_000);
    return w;
  }

  get pid(): number { return this.child.pid!; }
  rssKb(): number { return rssKbOf(this.child.pid!); }

  once(event: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`agents worker: no '${event}' within ${timeoutMs} ms`)), timeoutMs);
      const list = this.eventWaiters.get(event) ?? [];
      list.push(() => { clearTimeout(t); resolve(); });
      this.eventWaiters.set(event, list);
    });
  }

  call<T>(command: WorkerCommand): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, command });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.disconnect();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}
