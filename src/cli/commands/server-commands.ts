/**
 * Commands that act on the server's own configuration and store rather than over HTTP:
 * `start`, `migrate`, `config print`, `keys rotate`, and `bench`.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { Config } from '../../config/index.ts';
import type { Db } from '../../store/index.ts';
import type { Kit } from '../command-kit.ts';
import { CliError, EXIT, emit, keyValues, table } from '../output.ts';

const loadConfig = async () => (await import('../../config/index.ts')).loadConfig();
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

// Server modules (store drivers, crypto, analysers) load lazily: `mcp --help` and the REST commands stay fast.
async function openStore(cfg: Readonly<Config>): Promise<Db> {
  if (cfg.store.data_dir === ':memory:' && !cfg.store.database_url) throw new CliError('MCP_DATA_DIR=:memory: has no store to act on', EXIT.usage);
  const { openDb } = await import('../../store/index.ts');
  return openDb({ databaseUrl: cfg.store.database_url || undefined, dataDir: cfg.store.data_dir, poolSize: 2 });
}

/**
 * The embedded PGlite store belongs to one process: opening its data directory while a server
 * uses it would corrupt it. Refuse when a server answers on the configured port (`--force` skips).
 */
async function assertStoreFree(cfg: Readonly<Config>, force: boolean): Promise<void> {
  if (force || cfg.store.database_url) return;
  const live = await fetch(`http://127.0.0.1:${cfg.server.port}/api/v1/live`, { signal: AbortSignal.timeout(700) }).then((r) => r.ok, () => false);
  if (live) throw new CliError(`a server is running on port ${cfg.server.port} and the store is the embedded PGlite in ${cfg.store.data_dir}: stop the server first (or pass --force if it uses another data directory)`, EXIT.usage);
}

export function registerServerCommands(program: Command, kit: Kit): void {
  program.command('start')
    .description('start the server (same as npm start): REST, Socket.IO, built-in agents')
    .option('--port <port>', 'API port (overrides MCP_PORT)')
    .option('--ws-port <port>', 'Socket.IO port (overrides MCP_WS_PORT; 0 = ephemeral)')
    .action(kit.action(async (_ctx, _a, o) => {
      const overrides: Record<string, unknown> = {};
      if (o.port !== undefined) overrides['server.port'] = Number(o.port);
      if (o.wsPort !== undefined) overrides['server.ws_port'] = Number(o.wsPort);
      const { main } = await import('../../main.ts');
      await main(overrides);
      // main() installed SIGTERM/SIGINT handlers that exit the process; keep it alive until then.
      await new Promise<never>(() => {});
    }));

  program.command('migrate')
    .description('apply pending database migrations (DATABASE_URL or the PGlite data directory)')
    .option('--status', 'only list applied and pending migrations')
    .option('--force', 'skip the check that no local server is using the embedded store')
    .action(kit.action(async (ctx, _a, o) => {
      const cfg = await loadConfig();
      await assertStoreFree(cfg, !!o.force);
      const db = await openStore(cfg);
      const { listMigrations, migrate } = await import('../../store/index.ts');
      try {
        if (o.status) {
          const done = new Set((await db.query<{ version: number }>('SELECT version FROM schema_migrations').catch(() => ({ rows: [] as Array<{ version: number }> }))).rows.map((r) => Number(r.version)));
          const rows = listMigrations().map((m) => ({ version: m.version, name: m.name, applied: done.has(m.version) }));
          emit(ctx.out, { migrations: rows, pending: rows.filter((r) => !r.applied).length }, () => table(rows, [['VERSION', (r) => r.version], ['NAME', (r) => r.name], ['APPLIED', (r) => r.applied]]));
          return;
        }
        const applied = await migrate(db);
        emit(ctx.out, { applied, store: db.kind }, () => (applied.length ? `Applied migrations ${applied.join(', ')} (${db.kind}).` : `The ${db.kind} store is up to date.`));
      } finally {
        await db.close();
      }
    }));

  const config = program.command('config').description('server configuration');
  config.command('print')
    .description('the resolved configuration (defaults < MCP_CONFIG file < environment), secrets redacted')
    .action(kit.action(async (ctx) => {
      const { describeConfig } = await import('../../config/index.ts');
      const rows = describeConfig(await loadConfig());
      emit(ctx.out, rows, () => table(rows, [['ENV', (r) => r.env], ['VALUE', (r) => r.value, 60], ['DESCRIPTION', (r) => r.description, 70]]));
    }));

  const keys = program.command('keys').description('encryption and signing keys');
  keys.command('rotate')
    .description('rotate the field-encryption key (default; data re-encrypted in the background by the server) and/or the JWT signing key. With the embedded PGlite store, run it while the server is stopped')
    .option('--signing', 'rotate the JWT signing key (live tokens keep working until they expire)')
    .option('--field', 'rotate the field-encryption key (the default when --signing is not given)')
    .option('--force', 'skip the check that no local server is using the embedded store')
    .action(kit.action(async (ctx, _a, o) => {
      const cfg = await loadConfig();
      await assertStoreFree(cfg, !!o.force);
      const [{ migrate }, { AuditLog, FieldCipher, KeyRing, KeyRotation, loadOrCreateMasterKeyFile, longestTokenLifetime, rotateKeys }, { SigningKeys }, { createCoordination }] = await Promise.all([
        import('../../store/index.ts'), import('../../security/index.ts'), import('../../auth/index.ts'), import('../../coordination/index.ts'),
      ]);
      const db = await openStore(cfg);
      const coord = await createCoordination({ redisUrl: cfg.coordination.redis_url || undefined });
      try {
        await migrate(db);
        const master = cfg.security.master_key || loadOrCreateMasterKeyFile(path.join(cfg.store.data_dir, 'master.key'), { production: cfg.env === 'production' }).masterKey;
        const ring = KeyRing.fromMasterKey(master, Math.max(0, (await KeyRotation.loadVersionCount(db)) - 1));
        const cipher = new FieldCipher(ring);
        const sealer = { seal: (v: string, rowId: string) => cipher.encrypt(v, { table: 'signing_keys', column: 'private_key', rowId }), open: (s: string, rowId: string) => cipher.decrypt<string>(s, { table: 'signing_keys', column: 'private_key', rowId }) };
        const signingKeys = new SigningKeys(db, sealer, cfg.auth.signing_key);
        const audit = new AuditLog(db, { key: ring.auditChainKey });
        const rotation = new KeyRotation(db, ring, cipher, { coord, audit, signingKeys, signingOverlapSeconds: longestTokenLifetime(cfg.auth) });
        const r = await rotateKeys(rotation, { field: o.field ? true : undefined, signing: !!o.signing, ctx: { actor: { type: 'system', id: 'mcp-cli', role: 'system', ip: null, user_agent: 'mcp-cli' } } });
        await audit.flush(); // chain the rotation's entries now (a running server would within a second)
        const notes: string[] = [];
        if (r.signing && cfg.auth.signing_key) notes.push('MCP_SIGNING_KEY is set: tokens stay signed with the configured key until it is removed from the configuration.');
        emit(ctx.out, { ...r, notes }, () => [
          keyValues([
            ['field key', r.field ? `${r.field.kid} (version ${r.field.version}); old data is re-encrypted in the background by the running server` : 'unchanged'],
            ['signing key', r.signing ? `${r.signing.kid} (previous keys verify for ${r.signing.overlap_seconds} s)` : 'unchanged'],
          ]),
          ...notes,
        ].join('\n'));
      } finally {
        await coord.close();
        await db.close();
      }
    }));

  program.command('bench')
    .description('run the benchmark suite (npm run bench); extra arguments are passed through')
    .allowUnknownOption(true)
    .argument('[args...]', 'arguments for bench/run.ts')
    .action(kit.action(async (_ctx, args) => {
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', '--silent', 'bench', ...(args.length ? ['--', ...args] : [])], { cwd: ROOT, stdio: 'inherit' });
        child.once('error', reject);
        child.once('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
      });
      return code === 0 ? EXIT.ok : EXIT.failure;
    }));
}
