/** Embedded PGlite (Postgres compiled to WASM) in the data directory: the zero-config default. */
import { PGlite } from '@electric-sql/pglite';
import type { Db, Queryable, QueryResult } from './db.ts';

export class PgliteDb implements Db {
  readonly kind = 'pglite' as const;
  private closed = false;

  private constructor(private readonly pg: PGlite) {}

  /** `dataDir` undefined → in-memory (tests). */
  static async open(dataDir?: string): Promise<PgliteDb> {
    const pg = dataDir ? await PGlite.create(dataDir) : await PGlite.create();
    return new PgliteDb(pg);
  }

  async query<T>(sql: string, params?: unknown[]): Promise<QueryResult<T>> {
    const r = await this.pg.query<T>(sql, params as unknown[]);
    return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.pg.transaction(async (t) => {
      const tx: Queryable = {
        query: async <R>(sql: string, params?: unknown[]) => {
          const r = await t.query<R>(sql, params as unknown[]);
          return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
        },
        exec: async (sql: string) => {
          await t.exec(sql);
        },
      };
      return fn(tx);
    });
  }

  async exec(sql: string): Promise<void> {
    await this.pg.exec(sql);
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('store closed');
    await this.pg.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pg.close();
  }
}
