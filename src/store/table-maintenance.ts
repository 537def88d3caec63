/**
 * Vacuums the store's churning tables when nothing else does. A task row is rewritten several
 * times in its life (pending → assigned → completed) and `audit_pending` rows are deleted once
 * chained: each change leaves a dead row version and dead index entries behind. Until a VACUUM
 * removes them, the partial index of pending tasks keeps entries for every task that ever
 * waited, and each statement reading it (queue positions, dispatch rounds) visits their heap
 * rows: measured, a create's statement went from 0.14 ms to 2 ms once 20,000 tasks had passed
 * through the queue (docs/benchmarks.md).
 *
 * A table that only grew needs a VACUUM too, as autovacuum gives it since PostgreSQL 13: until
 * one marks its pages all-visible, an index-only scan still reads the heap row of every entry it
 * counts. Measured: counting a backlog of 30,000 pending tasks (a create's queue position) took
 * 3.0 ms before and 1.3 ms after.
 *
 * Statistics too: a table analyzed while small (or never) is planned as small, and a prepared
 * statement's generic plan made then is kept as the table grows — until an ANALYZE (or VACUUM)
 * of the table invalidates it. So a table is also analyzed once 50 rows + 10 % of it changed
 * since its last ANALYZE, as autovacuum does — on PostgreSQL every table of the schema (a
 * growing pipelines or audit table is planned from its statistics too), on PGlite the queue
 * tables (the changes it notes are theirs; it plans each statement anew anyway).
 *
 * PostgreSQL's autovacuum does this when it is on (migration 0009 makes it eager on these
 * tables). PGlite has no autovacuum, and a server may run with it off: then the leader runs
 * VACUUM (and ANALYZE) itself once a table holds enough dead rows or rows inserted since its last vacuum —
 * read from PostgreSQL's statistics (they count every process's changes), or on PGlite (one
 * process, no statistics) from the changes this process noted.
 */
import type { Db } from './db.ts';

export interface TableMaintenanceOptions {
  /** Tables to keep vacuumed (unqualified: the connection's schema). */
  tables: readonly string[];
  /** A table is vacuumed once it holds at least this many dead rows (or rows inserted since its last vacuum)… */
  minDeadRows?: number;
  /** …and at least this fraction of its live rows (a vacuum scans every index in full). */
  deadFraction?: number;
  /** A table is analyzed once this many rows plus `analyzeFraction` of its live rows changed since its last ANALYZE. */
  analyzeMinRows?: number;
  analyzeFraction?: number;
}

export interface MaintenanceReport {
  table: string;
  dead_rows: number;
  /** What ran: VACUUM, ANALYZE or both (one `VACUUM (ANALYZE)`). */
  vacuumed: boolean;
  analyzed: boolean;
  ms: number;
}

const MIN_DEAD_ROWS = 5000;
const DEAD_FRACTION = 0.1;
/** autovacuum_analyze_threshold and autovacuum_analyze_scale_factor's defaults. */
const ANALYZE_MIN_ROWS = 50;
const ANALYZE_FRACTION = 0.1;

interface Due { table: string; dead: number; vacuum: boolean; analyze: boolean }

export class TableMaintenance {
  readonly #tables: readonly string[];
  readonly #minDead: number;
  readonly #fraction: number;
  readonly #analyzeMin: number;
  readonly #analyzeFraction: number;
  /** PGlite: row changes noted since the last vacuum, and since the last analyze (applies to every table). */
  #noted = 0;
  #notedSinceAnalyze = 0;
  #running = false;

  constructor(private readonly db: Db, opts: TableMaintenanceOptions) {
    for (const t of opts.tables) if (!/^[a-z_][a-z0-9_]*$/.test(t)) throw new Error(`not a table name: ${t}`);
    this.#tables = opts.tables;
    this.#minDead = opts.minDeadRows ?? MIN_DEAD_ROWS;
    this.#fraction = opts.deadFraction ?? DEAD_FRACTION;
    this.#analyzeMin = opts.analyzeMinRows ?? ANALYZE_MIN_ROWS;
    this.#analyzeFraction = opts.analyzeFraction ?? ANALYZE_FRACTION;
  }

  /** Counts row changes made by this process (used on PGlite, which keeps no statistics). */
  note(changes: number): void {
    this.#noted += changes;
    this.#notedSinceAnalyze += changes;
  }

  /**
   * One pass: vacuums each table that needs it, unless autovacuum runs on this server. Returns
   * what it vacuumed. A pass already running makes this one a no-op.
   */
  async run(): Promise<MaintenanceReport[]> {
    if (this.#running) return [];
    this.#running = true;
    try {
      // The queue tables first, in their order; then the others by name.
      const order = (t: string) => { const i = this.#tables.indexOf(t); return i < 0 ? this.#tables.length : i; };
      const due = (await this.#due()).sort((a, b) => order(a.table) - order(b.table) || a.table.localeCompare(b.table));
      const out: MaintenanceReport[] = [];
      for (const { table, dead, vacuum, analyze } of due) {
        const t0 = performance.now();
        const name = `"${table.replaceAll('"', '""')}"`;
        await this.db.exec(vacuum ? `VACUUM ${analyze ? '(ANALYZE) ' : ''}${name}` : `ANALYZE ${name}`);
        out.push({ table, dead_rows: dead, vacuumed: vacuum, analyzed: analyze, ms: Math.round(performance.now() - t0) });
      }
      if (this.db.kind === 'pglite') {
        if (due.some((d) => d.vacuum)) this.#noted = 0;
        if (due.some((d) => d.analyze)) this.#notedSinceAnalyze = 0;
      }
      return out;
    } finally {
      this.#running = false;
    }
  }

  async #due(): Promise<Due[]> {
    const enough = (n: number, live: number) => n >= this.#minDead && n >= this.#fraction * live;
    const stale = (changed: number, live: number) => changed > 0 && changed >= this.#analyzeMin + this.#analyzeFraction * live;
    const due = (d: Due) => d.vacuum || d.analyze;
    if (this.db.kind === 'pglite') {
      if (this.#noted < this.#minDead && this.#notedSinceAnalyze < this.#analyzeMin) return [];
      const { rows } = await this.db.query<{ table: string; live: number }>(
        `SELECT relname AS table, GREATEST(reltuples, 0)::float8 AS live FROM pg_class
         WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r' AND relname = ANY($1::text[])`, [this.#tables]);
      return rows.map((r) => ({ table: r.table, dead: this.#noted, vacuum: enough(this.#noted, r.live), analyze: stale(this.#notedSinceAnalyze, r.live) })).filter(due);
    }
    // Every table of the schema is analyzed when it changed enough (as autovacuum analyzes every
    // table); only the queue tables are vacuumed.
    const { rows } = await this.db.query<{ table: string; dead: number; inserted: number; modified: number; live: number; autovacuum: boolean }>(
      `SELECT s.relname AS table, s.n_dead_tup::float8 AS dead, s.n_ins_since_vacuum::float8 AS inserted, s.n_mod_since_analyze::float8 AS modified,
         s.n_live_tup::float8 AS live,
         current_setting('autovacuum')::boolean AND COALESCE(NOT ('autovacuum_enabled=false' = ANY(c.reloptions)), true) AS autovacuum
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
       WHERE s.schemaname = current_schema()`);
    return rows.filter((r) => !r.autovacuum)
      .map((r) => ({ table: r.table, dead: r.dead, vacuum: this.#tables.includes(r.table) && (enough(r.dead, r.live) || enough(r.inserted, r.live)), analyze: stale(r.modified, r.live) }))
      .filter(due);
  }
}
