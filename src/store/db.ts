/**
 * The narrow database port (ARCHITECTURE §1.2, modelled on pg-boss's IDatabase): one SQL dialect,
 * two engines. Repositories take a `Queryable` so they work inside or outside a transaction.
 */
export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
  /** Runs a multi-statement script without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Throws when the store does not answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** PostgreSQL's "unique_violation" and friends, mapped the same on both engines. */
export function pgErrorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown } | null;
  return e && typeof e.code === 'string' ? e.code : undefined;
}
