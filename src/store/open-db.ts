/** Chooses the engine: DATABASE_URL → PostgreSQL, else PGlite in `<data_dir>/pglite`. */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Db } from './db.ts';
import { PgDb } from './pg-db.ts';
import { PgliteDb } from './pglite-db.ts';

export interface OpenDbOptions {
  databaseUrl?: string;
  dataDir?: string;
  poolSize?: number;
  /** PostgreSQL only: named prepared statements for hot SQL (default true). */
  preparedStatements?: boolean;
  /** PGlite only: keep everything in memory (tests). */
  inMemory?: boolean;
  schema?: string;
}

export async function openDb(opts: OpenDbOptions): Promise<Db> {
  if (opts.databaseUrl) return new PgDb({ connectionString: opts.databaseUrl, poolSize: opts.poolSize, schema: opts.schema, preparedStatements: opts.preparedStatements });
  if (opts.inMemory || !opts.dataDir) return PgliteDb.open();
  const dir = path.resolve(opts.dataDir, 'pglite');
  mkdirSync(dir, { recursive: true });
  return PgliteDb.open(dir);
}
