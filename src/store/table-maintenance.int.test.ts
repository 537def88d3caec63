/**
 * TableMaintenance vacuums a churned table once it holds enough dead rows, analyzes one that
 * changed enough since its statistics were taken, leaves tables below the thresholds alone, and reads "enough" from PostgreSQL's statistics or, on PGlite, from the
 * changes noted. Migration 0009 makes autovacuum eager on the queue tables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TableMaintenance } from './table-maintenance.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';

const deadRows = async (db: TestDb['db'], table: string) =>
  (await db.query<{ n: number }>(`SELECT n_dead_tup::int AS n FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = $1`, [table])).rows[0]?.n ?? -1;

const insertedRows = async (db: TestDb['db'], table: string) =>
  (await db.query<{ n: number }>(`SELECT n_ins_since_vacuum::int AS n FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = $1`, [table])).rows[0]?.n ?? -1;

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each(engines())('TableMaintenance on $name', (engine) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await engine.open();
    // autovacuum_enabled = false: the job's business whatever the server's own setting.
    // Vacuumed once filled (after PostgreSQL's statistics have counted the inserts, or they would
    // count them again after the vacuum): their inserts are not what the tests below are about.
    for (const name of ['churn', 'calm']) {
      await t.db.exec(`CREATE TABLE ${name} (id int PRIMARY KEY, v int NOT NULL) WITH (autovacuum_enabled = false);
        INSERT INTO ${name} SELECT g, 0 FROM generate_series(1, 6000) AS g;`);
      if (engine.name === 'postgres') await until(() => insertedRows(t.db, name), (n) => n >= 6000);
      await t.db.exec(`VACUUM (ANALYZE) ${name}`);
    }
    await t.db.exec('UPDATE churn SET v = v + 1'); // 6,000 dead row versions
    await t.db.exec('UPDATE calm SET v = v + 1 WHERE id <= 100'); // 100
  });
  afterAll(async () => t.dispose());

  it('vacuums the table that reached the threshold and only that one', async () => {
    const m = new TableMaintenance(t.db, { tables: ['churn', 'calm'], minDeadRows: 5000, deadFraction: 0.1 });
    if (engine.name === 'postgres') {
      // Statistics reach other sessions within about a second.
      expect(await until(() => deadRows(t.db, 'churn'), (n) => n >= 6000)).toBeGreaterThanOrEqual(6000);
      expect(await deadRows(t.db, 'calm')).toBeLessThan(5000);
    } else {
      m.note(6000);
    }
    const done = await m.run();
    expect(done.map((d) => d.table)).toEqual(engine.name === 'postgres' ? ['churn'] : ['churn', 'calm']);
    expect(done[0]!.dead_rows).toBeGreaterThanOrEqual(6000);
    if (engine.name === 'postgres') {
      expect(await until(() => deadRows(t.db, 'churn'), (n) => n === 0)).toBe(0);
      const { rows } = await t.db.query<{ vacuumed: boolean }>(`SELECT last_vacuum IS NOT NULL AS vacuumed FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'churn'`);
      expect(rows[0]!.vacuumed).toBe(true);
    }
    // Nothing due any more: a second pass does nothing.
    expect(await m.run()).toEqual([]);
  });

  it('leaves tables alone below the thresholds', async () => {
    const m = new TableMaintenance(t.db, { tables: ['calm'], minDeadRows: 5000, analyzeMinRows: 5000 });
    m.note(4999);
    expect(await m.run()).toEqual([]);
  });

  it('vacuums a table that only grew, so its pages are marked all-visible for index-only scans', async () => {
    await t.db.exec(`CREATE TABLE grown (id int PRIMARY KEY) WITH (autovacuum_enabled = false);
      INSERT INTO grown SELECT g FROM generate_series(1, 6000) AS g;`);
    const visiblePages = async () => (await t.db.query<{ n: number }>(`SELECT relallvisible::int AS n FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relname = 'grown'`)).rows[0]!.n;
    expect(await visiblePages()).toBe(0);
    const m = new TableMaintenance(t.db, { tables: ['grown'], minDeadRows: 5000, deadFraction: 0.1 });
    if (engine.name === 'postgres') {
      expect(await until(() => insertedRows(t.db, 'grown'), (n) => n >= 6000)).toBe(6000);
    } else {
      m.note(6000);
    }
    expect((await m.run()).map((d) => d.table)).toEqual(['grown']);
    expect(await visiblePages()).toBeGreaterThan(0);
  });

  it('analyzes a table that changed since its statistics were taken, so that plans see its size', async () => {
    await t.db.exec(`CREATE TABLE planned (id int PRIMARY KEY) WITH (autovacuum_enabled = false);
      INSERT INTO planned SELECT g FROM generate_series(1, 1000) AS g;`);
    const estimate = async () => (await t.db.query<{ n: number }>(`SELECT reltuples::int AS n FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relname = 'planned'`)).rows[0]!.n;
    expect(await estimate()).toBeLessThan(1); // never analyzed: -1 (PostgreSQL ≥ 14) or 0
    const m = new TableMaintenance(t.db, { tables: ['planned'] });
    if (engine.name === 'postgres') {
      const modified = async () => (await t.db.query<{ n: number }>(`SELECT n_mod_since_analyze::int AS n FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'planned'`)).rows[0]?.n ?? -1;
      expect(await until(modified, (n) => n >= 1000)).toBe(1000);
    } else {
      m.note(1000);
    }
    // 1,000 inserted rows: too few to vacuum (5,000), enough to analyze (50 + 10 %).
    expect((await m.run()).map((d) => [d.table, d.vacuumed, d.analyzed])).toEqual([['planned', false, true]]);
    expect(await estimate()).toBe(1000);
    expect(await m.run()).toEqual([]);
    if (engine.name === 'postgres') {
      // PostgreSQL: every table of the schema is analyzed once it changed enough; only the listed ones are vacuumed.
      await t.db.exec(`CREATE TABLE unlisted (id int PRIMARY KEY) WITH (autovacuum_enabled = false);
        INSERT INTO unlisted SELECT g FROM generate_series(1, 6000) AS g;`);
      const modified = async () => (await t.db.query<{ n: number }>(`SELECT n_mod_since_analyze::int AS n FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'unlisted'`)).rows[0]?.n ?? -1;
      expect(await until(modified, (n) => n >= 6000)).toBe(6000);
      expect((await m.run()).map((d) => [d.table, d.vacuumed, d.analyzed])).toEqual([['unlisted', false, true]]);
    }
  });

  it('refuses a name that is not a plain table name', () => {
    expect(() => new TableMaintenance(t.db, { tables: ['tasks; DROP TABLE x'] })).toThrow(/not a table name/);
  });

  it('makes autovacuum eager on the queue tables (migration 0009)', async () => {
    const { rows } = await t.db.query<{ relname: string; reloptions: string[] }>(
      `SELECT relname, reloptions FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relname IN ('tasks', 'audit_pending') ORDER BY relname`);
    expect(rows).toEqual([
      { relname: 'audit_pending', reloptions: ['autovacuum_vacuum_scale_factor=0', 'autovacuum_vacuum_threshold=5000'] },
      { relname: 'tasks', reloptions: ['autovacuum_vacuum_scale_factor=0.02', 'autovacuum_vacuum_threshold=1000'] },
    ]);
  });
});
