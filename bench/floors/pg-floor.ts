/**
 * The store floor: the least a durable queue writes per task in PostgreSQL — one row inserted
 * (batches of 1,000, as POST /api/v1/tasks/batch) and one update recording its result (batches
 * of B) — on a minimal table (uuid key, status, payload, result, one partial index). Prints the
 * client's and the backend's CPU µs per task (the backend's from /proc/<pid>/stat). A logged
 * table (WAL written, as for the real ones), dropped at the end.
 *
 *   npx tsx bench/floors/pg-floor.ts [B] [postgres-url]
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { TICKS_PER_S, procStat } from '../lib/process-cpu.ts';

const N = 20_000;
const B = Number(process.argv[2] ?? 50);
const c = new pg.Client({ connectionString: process.argv[3] ?? process.env.MCP_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' });
await c.connect();
const table = `floor_tasks_${process.pid}`;
try {
  await c.query(`CREATE TABLE ${table} (id uuid PRIMARY KEY, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), parameters bytea, result bytea)`);
  await c.query(`CREATE INDEX ON ${table} (created_at) WHERE status = 'pending'`);
  const pid = (await c.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p;
  const ticks = () => procStat(pid).ticks;
  const ids = Array.from({ length: N }, () => randomUUID());
  const payload = Buffer.alloc(40, 7);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const k0 = ticks();
  for (let off = 0; off < N; off += 1000) {
    await c.query(`INSERT INTO ${table} (id, status, parameters) SELECT id, 'pending', $2 FROM unnest($1::uuid[]) id`, [ids.slice(off, off + 1000), payload]);
  }
  for (let off = 0; off < N; off += B) {
    await c.query(`UPDATE ${table} SET status = 'completed', result = $2 WHERE id = ANY($1::uuid[])`, [ids.slice(off, off + B), payload]);
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const backendUs = ((ticks() - k0) / TICKS_PER_S) * 1e6;
  process.stdout.write(`B=${B}: ${N} inserts + updates in ${ms.toFixed(0)} ms; CPU per task: client ${((cpu.user + cpu.system) / N).toFixed(1)} µs, backend ${(backendUs / N).toFixed(1)} µs\n`);
} finally {
  await c.query(`DROP TABLE IF EXISTS ${table}`);
  await c.end();
}
