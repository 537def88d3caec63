/**
 * PgDb names statements it runs often (prepared once per connection, planned per call), and
 * names none when prepared statements are turned off (poolers in transaction mode).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { PgDb } from './pg-db.ts';
import { createPgSchema, dropPgSchema } from '../../test/helpers/stores.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const url = process.env.MCP_TEST_PG_URL ?? '';

describe.skipIf(!url)('PgDb statements', () => {
  const schemas: string[] = [];
  afterAll(async () => {
    for (const s of schemas) await dropPgSchema(url, s);
  });

  async function run(preparedStatements: boolean): Promise<{ names: string[]; planMode: string; sums: number[] }> {
    const schema = await createPgSchema(url);
    schemas.push(schema);
    const db = new PgDb({ connectionString: url, schema, poolSize: 1, preparedStatements });
    try {
      const sums: number[] = [];
      for (let i = 0; i < 8; i++) sums.push((await db.query<{ s: number }>('SELECT $1::int + $2::int AS s', [i, 1])).rows[0]!.s);
      // One connection (pool of 1): the session that ran them.
      const { rows } = await db.query<{ name: string }>('SELECT name FROM pg_prepared_statements ORDER BY name');
      const mode = await db.query<{ plan_cache_mode: string }>('SHOW plan_cache_mode');
      return { names: rows.map((r) => r.name), planMode: mode.rows[0]!.plan_cache_mode, sums };
    } finally {
      await db.close();
    }
  }

  it('prepares a statement once it has run a few times, planned for each call\'s parameters', async () => {
    const r = await run(true);
    expect(r.sums).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(r.names).toEqual(['mcp_1']);
    expect(r.planMode).toBe('force_custom_plan');
  });

  it('prepares nothing when turned off', async () => {
    const r = await run(false);
    expect(r.sums).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(r.names).toEqual([]);
    expect(r.planMode).toBe('auto');
  });
});
