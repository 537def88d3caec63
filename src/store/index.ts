/**
 * store: the system of record. The Db port, its PostgreSQL (`pg`) and PGlite adapters, and the
 * migrations. SQL lives in domain repositories; drivers live only here.
 */
export type { Db, Queryable, QueryResult } from './db.ts';
export { pgErrorCode } from './db.ts';
export { PgDb, type PgDbOptions } from './pg-db.ts';
export { PgliteDb } from './pglite-db.ts';
export { migrate, listMigrations, pendingMigrations } from './migrate.ts';
export { openDb, type OpenDbOptions } from './open-db.ts';
export { TableMaintenance, type TableMaintenanceOptions, type MaintenanceReport } from './table-maintenance.ts';
