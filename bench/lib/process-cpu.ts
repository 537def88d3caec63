/**
 * CPU used by each party of a scenario over its measured window, read from /proc (Linux; on
 * other systems `stop` returns null): the server process(es), every PostgreSQL process, Redis,
 * the agents process and this process (the load generator). Gives "where the time goes" as
 * cores and as CPU µs per task in every result file, without a profiler attached.
 *
 * Processes are matched by pid (server, agents, this one) or by their command name (`postgres`,
 * `redis-server`); a process that starts or exits inside the window counts only for the part
 * it was seen in both readings, so PostgreSQL backends opened mid-window are undercounted.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { round } from './stats.ts';

export interface CpuParties {
  server: number[];
  agents: number[];
}

type Group = 'server' | 'postgres' | 'redis' | 'agents' | 'load_generator';
const GROUPS: Group[] = ['server', 'postgres', 'redis', 'agents', 'load_generator'];
export const TICKS_PER_S = 100; // USER_HZ on Linux

export interface CpuShare {
  window_s: number;
  /** Cores used on average over the window, per party. */
  cores: Record<Group, number>;
  /** CPU µs per task, per party and in all. */
  us_per_task: Record<Group | 'total', number>;
}

/** A process's command name and CPU used so far (utime + stime, in ticks) from /proc/<pid>/stat; throws when it is gone. */
export function procStat(pid: number): { comm: string; ticks: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ticks: Number(f[11]) + Number(f[12]) };
}

/** utime + stime in ticks, by pid, for the processes of interest. */
function read(parties: CpuParties): Map<number, { group: Group; ticks: number }> {
  const out = new Map<number, { group: Group; ticks: number }>();
  const byPid = new Map<number, Group>([
    ...parties.server.map((p) => [p, 'server'] as const),
    ...parties.agents.map((p) => [p, 'agents'] as const),
    [process.pid, 'load_generator'],
  ]);
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const { comm, ticks } = procStat(pid);
      const group = byPid.get(pid) ?? (comm === 'postgres' ? 'postgres' : comm.startsWith('redis-server') ? 'redis' : undefined);
      if (group) out.set(pid, { group, ticks });
    } catch {
      // the process exited while the directory was read
    }
  }
  return out;
}

export class ProcessCpu {
  private readonly before: Map<number, { group: Group; ticks: number }> | null;
  private readonly t0 = performance.now();

  private constructor(private readonly parties: CpuParties) {
    this.before = process.platform === 'linux' ? read(parties) : null;
  }

  static start(parties: CpuParties): ProcessCpu {
    return new ProcessCpu(parties);
  }

  /** The share of each party since `start`, per task over `tasks` tasks. */
  stop(tasks: number): CpuShare | null {
    if (!this.before) return null;
    const seconds = (performance.now() - this.t0) / 1000;
    const ticks = Object.fromEntries(GROUPS.map((g) => [g, 0])) as Record<Group, number>;
    for (const [pid, now] of read(this.parties)) {
      const was = this.before.get(pid);
      if (was) ticks[now.group] += now.ticks - was.ticks;
    }
    const us = (t: number) => (tasks > 0 ? round((t / TICKS_PER_S / tasks) * 1e6, 0) : 0);
    const total = GROUPS.reduce((a, g) => a + ticks[g], 0);
    return {
      window_s: round(seconds, 2),
      cores: Object.fromEntries(GROUPS.map((g) => [g, round(ticks[g] / TICKS_PER_S / seconds, 2)])) as Record<Group, number>,
      us_per_task: { ...(Object.fromEntries(GROUPS.map((g) => [g, us(ticks[g])])) as Record<Group, number>), total: us(total) },
    };
  }
}
