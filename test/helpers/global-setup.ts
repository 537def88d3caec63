/**
 * Decides once per run whether PostgreSQL and Redis are reachable. Under CI=true both are
 * required: an unreachable service fails the run instead of silently skipping its tests.
 * The answer is passed to test files through MCP_TEST_PG_URL / MCP_TEST_REDIS_URL.
 */
import net from 'node:net';

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(1000);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.once('timeout', () => { s.destroy(); resolve(false); });
  });
}

export default async function setup(): Promise<void> {
  // Tools fetched by .ci/run (promtool) live in .cache/bin.
  process.env.PATH = `${process.cwd()}/.cache/bin:${process.env.PATH ?? ''}`;
  const pgUrl = process.env.MCP_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const redisUrl = process.env.MCP_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const pg = new URL(pgUrl);
  const redis = new URL(redisUrl);
  const pgUp = await reachable(pg.hostname, Number(pg.port || 5432));
  const redisUp = await reachable(redis.hostname, Number(redis.port || 6379));
  if (process.env.CI === 'true' && (!pgUp || !redisUp)) {
    throw new Error(`CI requires PostgreSQL (${pgUp ? 'up' : 'DOWN'}) and Redis (${redisUp ? 'up' : 'DOWN'})`);
  }
  process.env.MCP_TEST_PG_URL = pgUp ? pgUrl : '';
  process.env.MCP_TEST_REDIS_URL = redisUp ? redisUrl : '';
}
