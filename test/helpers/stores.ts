/**
 * Runs the same store/service tests on every engine reachable: PGlite always (in memory),
 * PostgreSQL when MCP_TEST_PG_URL is set (global setup; always under CI). Each PostgreSQL test
 * database gets its own schema, dropped only when the suite passed (pg-boss test/hooks.ts).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { PgDb, PgliteDb, listMigrations, migrate, type Db } from '../../src/store/index.ts';
import { createCoordination, type Coordination } from '../../src/coordination/index.ts';

const migrations = (upTo?: number) => listMigrations().filter((m) => upTo === undefined || m.version <= upTo);

export interface Engine {
  name: 'pglite' | 'postgres';
  /** Opens a fresh, migrated database (up to migration `upTo` when given: to test an upgrade). */
  open(upTo?: number): Promise<TestDb>;
}

export interface TestDb {
  db: Db;
  /** Connection string + schema, so a child server process can share it (postgres only). */
  url?: string;
  schema?: string;
  /** Closes; drops the schema when `keep` is false. */
  dispose(keep?: boolean): Promise<void>;
}

export async function createPgSchema(url: string): Promise<string> {
  const schema = `t_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(`CREATE SCHEMA ${schema}`);
  await c.end();
  return schema;
}

export async function dropPgSchema(url: string, schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await c.end();
}

export function pgUrlWithSchema(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

const pgliteEngine: Engine = {
  name: 'pglite',
  async open(upTo) {
    const db = await PgliteDb.open();
    await migrate(db, migrations(upTo));
    return { db, dispose: () => db.close() };
  },
};

function postgresEngine(url: string): Engine {
  return {
    name: 'postgres',
    async open(upTo) {
      const schema = await createPgSchema(url);
      const db = new PgDb({ connectionString: url, schema, poolSize: 5 });
      await migrate(db, migrations(upTo));
      return {
        db,
        url,
        schema,
        async dispose(keep = false) {
          await db.close();
          if (!keep) await dropPgSchema(url, schema);
        },
      };
    },
  };
}

export function engines(): Engine[] {
  const url = process.env.MCP_TEST_PG_URL;
  return url ? [pgliteEngine, postgresEngine(url)] : [pgliteEngine];
}

/**
 * The same database with hooks around each statement sent through `query`: `before` is awaited
 * before it is sent, `after` once its result is in and before the caller gets it (to count,
 * hold back or reorder statements; transactions pass through untouched).
 */
export function hookedDb(db: Db, hooks: { before?: (sql: string, params: unknown[] | undefined) => void | Promise<void>; after?: (sql: string) => void | Promise<void> }): Db {
  return {
    kind: db.kind,
    query: async <T,>(sql: string, params?: unknown[]) => {
      await hooks.before?.(sql, params);
      const result = await db.query<T>(sql, params);
      await hooks.after?.(sql);
      return result;
    },
    exec: (sql) => db.exec(sql),
    transaction: (fn) => db.transaction(fn),
    ping: () => db.ping(),
    close: () => db.close(),
  };
}

/**
 * For one describe block: a fresh store on `engine` and an in-process coordination, opened
 * before its tests and closed after them (read `tdb` and `coord` inside the tests).
 */
export function storeAndCoordination(engine: Engine): { tdb: TestDb; coord: Coordination } {
  const ctx = {} as { tdb: TestDb; coord: Coordination };
  beforeAll(async () => {
    ctx.tdb = await engine.open();
    ctx.coord = await createCoordination({});
  });
  afterAll(async () => {
    await ctx.coord?.close();
    await ctx.tdb?.dispose();
  });
  return ctx;
}

/** The same database, telling `seen` of every statement sent through `query` (to count or keep them). */
export function observedDb(db: Db, seen: (sql: string, params: unknown[] | undefined) => void): Db {
  return hookedDb(db, { before: seen });
}

/**
 * Waits until at least `n` statements on `table` wait for a lock (PostgreSQL). Asked on a client
 * outside any transaction: a transaction sees pg_stat_activity as it was at its first look.
 */
export async function lockWaiters(c: pg.Client, table: string, n: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid IN (SELECT pid FROM pg_locks WHERE relation = $1::regclass)`, [table]);
    if (rows[0]!.n >= n) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`fewer than ${n} statements waited for a lock on ${table}`);
}
