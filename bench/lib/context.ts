/** What every scenario receives: run mode, reachable backing services, logging. */
import type { ServerHandle, ServerOptions } from './server-process.ts';

export interface BenchContext {
  smoke: boolean;
  /** PostgreSQL base URL when reachable, else ''. */
  pgUrl: string;
  /** Redis URL when reachable, else ''. */
  redisUrl: string;
  /** Store for scenarios 3–6: PostgreSQL (+ Redis) when reachable, else PGlite in-process. */
  defaultEngine: Pick<ServerOptions, 'engine' | 'redisUrl'>;
  /** Directory for server CPU profiles, or '' (no profiling). */
  cpuProfDir: string;
  log(msg: string): void;
  /**
   * A server for a scenario. Full runs start a fresh one each time (clean store, clean RSS);
   * smoke runs share one per store (its stop() is deferred to the end) to stay under a minute.
   */
  server(o: Pick<ServerOptions, 'engine' | 'redisUrl' | 'builtinAgents' | 'label'>): Promise<ServerHandle>;
}

export type ScenarioResult = Record<string, unknown>;

export function engineLabel(o: Pick<ServerOptions, 'engine' | 'redisUrl'>): string {
  return `${o.engine === 'postgres' ? 'PostgreSQL' : 'PGlite'} + ${o.redisUrl ? 'Redis' : 'in-process'}`;
}
