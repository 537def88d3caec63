/** PostgreSQL through `pg` (used when DATABASE_URL is set). */
import pg from 'pg';
import type { Db, Queryable, QueryResult } from './db.ts';
import { withArrayLiterals } from './pg-array.ts';

// int8 (count(*), bigint columns) as JS numbers: every value we store fits in 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export interface PgDbOptions {
  connectionString: string;
  poolSize?: number;
  /** Schema to use as search_path (tests get one each). */
  schema?: string;
  /** Named prepared statements for hot SQL (default true; false behind a transaction-mode pooler). */
  preparedStatements?: boolean;
}

/**
 * Statements run often enough are sent as named prepared statements, so PostgreSQL parses and
 * plans them once per connection instead of on every call (the hot path's CTEs cost more to
 * plan than to run). A statement is named once it has been seen `PREPARE_AFTER` times with
 * parameters; at most `MAX_PREPARED` distinct texts per process are named (the server keeps
 * each per connection), the rest run unnamed as before.
 */
const PREPARE_AFTER = 5;
const MAX_PREPARED = 1000;

class StatementNames {
  readonly #names = new Map<string, string>();
  readonly #seen = new Map<string, number>();

  nameFor(sql: string): string | undefined {
    const name = this.#names.get(sql);
    if (name || this.#names.size >= MAX_PREPARED) return name;
    const n = (this.#seen.get(sql) ?? 0) + 1;
    if (n < PREPARE_AFTER) {
      if (this.#seen.size < 10_000) this.#seen.set(sql, n);
      return undefined;
    }
    this.#seen.delete(sql);
    const assigned = `mcp_${this.#names.size + 1}`;
    this.#names.set(sql, assigned);
    return assigned;
  }
}

function config(names: StatementNames | null, sql: string, params: unknown[] | undefined): pg.QueryConfig {
  const name = names && params?.length ? names.nameFor(sql) : undefined;
  const values = params?.length ? withArrayLiterals(params) : params;
  return name ? { name, text: sql, values } : { text: sql, values };
}

/**
 * Pool settings carrying `session` as the connection's `options`. `pg` lets an `options`
 * parameter of the connection string replace the one given beside it, so ours are appended to
 * the string's own when it has one (e.g. a `search_path`).
 */
function withSessionOptions(connectionString: string, session: string): { connectionString: string; options?: string } {
  try {
    const url = new URL(connectionString);
    const own = url.searchParams.get('options');
    if (own === null) return { connectionString, options: session };
    url.searchParams.set('options', `${own} ${session}`);
    return { connectionString: url.toString() };
  } catch {
    return { connectionString, options: session }; // not a URL: no options inside it to merge
  }
}

export class PgDb implements Db {
  readonly kind = 'postgres' as const;
  readonly pool: pg.Pool;
  readonly #names: StatementNames | null = new StatementNames();

  constructor(opts: PgDbOptions) {
    const prepare = opts.preparedStatements ?? true;
    if (!prepare) this.#names = null;
    // Session settings. No JIT: our statements are short, and a batch statement's estimated
    // cost can pass jit_above_cost (compiling once took over a second for a statement that runs
    // in milliseconds). Prepared statements keep their generic plan: re-planning the hot path's
    // CTEs on every call cost more than running them (the parameters are arrays whose length
    // the planner does not use anyway).
    const session = ['-c jit=off', prepare ? '-c plan_cache_mode=force_generic_plan' : '', opts.schema ? `-c search_path=${opts.schema}` : ''].filter(Boolean).join(' ');
    this.pool = new pg.Pool({
      ...withSessionOptions(opts.connectionString, session),
      max: opts.poolSize ?? 10,
      // Bursts queue for a connection rather than fail: a request waits up to 30 s.
      connectionTimeoutMillis: 30_000,
    });
    // An idle client erroring (server restart) must not crash the process; the pool replaces it.
    this.pool.on('error', () => {});
  }

  async query<T>(sql: string, params?: unknown[]): Promise<QueryResult<T>> {
    const r = await this.pool.query(config(this.#names, sql, params));
    return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const tx: Queryable = {
        query: async <R>(sql: string, params?: unknown[]) => {
          const r = await client.query(config(this.#names, sql, params));
          return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
        },
        exec: async (sql: string) => {
          await client.query(sql);
        },
      };
      const out = await fn(tx);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
