/**
 * PgDb names statements it runs often (prepared and planned once per connection: generic plans),
 * names none when prepared statements are turned off (poolers in transaction mode), and applies
 * its session settings even when the connection string carries `options` of its own.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { PgDb } from './pg-db.ts';
import { createPgSchema, dropPgSchema, pgUrlWithSchema } from '../../test/helpers/stores.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const url = process.env.MCP_TEST_PG_URL ?? '';

describe.skipIf(!url)('PgDb statements', () => {
  const schemas: string[] = [];
  afterAll(async () => {
    for (const s of schemas) await dropPgSchema(url, s);
  });

  async function run(preparedStatements: boolean, schemaIn: 'option' | 'url' = 'option') {
    const schema = await createPgSchema(url);
    schemas.push(schema);
    const db = schemaIn === 'option'
      ? new PgDb({ connectionString: url, schema, poolSize: 1, preparedStatements })
      : new PgDb({ connectionString: pgUrlWithSchema(url, schema), poolSize: 1, preparedStatements });
    try {
      const sums: number[] = [];
      for (let i = 0; i < 8; i++) sums.push((await db.query<{ s: number }>('SELECT $1::int + $2::int AS s', [i, 1])).rows[0]!.s);
      // One connection (pool of 1): the session that ran them.
      const { rows } = await db.query<{ name: string; generic_plans: number; custom_plans: number }>('SELECT name, generic_plans, custom_plans FROM pg_prepared_statements ORDER BY name');
      const show = async (setting: string) => (await db.query<Record<string, string>>(`SHOW ${setting}`)).rows[0]![setting];
      return { names: rows.map((r) => r.name), plans: rows.map((r) => [r.generic_plans, r.custom_plans]), planMode: await show('plan_cache_mode'), jit: await show('jit'), searchPath: await show('search_path'), schema, sums };
    } finally {
      await db.close();
    }
  }

  it('prepares a statement once it has run a few times and reuses its generic plan', async () => {
    const r = await run(true);
    expect(r.sums).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(r.names).toEqual(['mcp_1']);
    expect(r.planMode).toBe('force_generic_plan');
    expect(r.plans).toEqual([[4, 0]]); // named at the 5th call: calls 5–8 ran the one generic plan
    expect(r.jit).toBe('off');
  });

  it('keeps its session settings when the connection string has options of its own (a search_path)', async () => {
    const r = await run(true, 'url');
    expect(r.searchPath).toBe(r.schema);
    expect(r.planMode).toBe('force_generic_plan');
    expect(r.jit).toBe('off');
    expect(r.plans).toEqual([[4, 0]]);
  });

  it('prepares nothing when turned off', async () => {
    const r = await run(false);
    expect(r.sums).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(r.names).toEqual([]);
    expect(r.planMode).toBe('auto');
    expect(r.jit).toBe('off');
  });
});
