/**
 * The composition root (ARCHITECTURE §2): config → store + coordination → services → HTTP,
 * real-time, built-in agents, periodic jobs; and one shutdown path. Only this file (and main.ts,
 * the process entry) knows every subsystem.
 */
import { hostname } from 'node:os';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EventBus, newId } from './core/index.ts';
import type { Config } from './config/index.ts';
import { createLogger, Metrics, type Logger } from './observability/index.ts';
import { TableMaintenance, migrate, openDb, pendingMigrations, type Db } from './store/index.ts';
import { createCoordination, LeaderElector, socketIoAdapterFor, StoreWatch, type Coordination } from './coordination/index.ts';
import { AuditLog, BlindIndex, FheAggregator, actorOf, type AuditEntryInput, BreachDetector, EnrollmentTokens, FieldCipher, KeyRing, KeyRotation, MfaService, PhiAccessLog, RetentionJob, SecurityAlerts, loadOrCreateMasterKeyFile, longestTokenLifetime } from './security/index.ts';
import { ApiKeys, SyncedRevocationList, PasswordHasher, PrincipalState, SigningKeys, TokenService, UserService, principalKey } from './auth/index.ts';
import { AgentService } from './agents/index.ts';
import { AssignmentEngine, OrphanLeaseSweeper, TaskRepository, TaskService } from './tasks/index.ts';
import { RealtimeServer } from './realtime/index.ts';
import { BuiltinAgents, builtinAgentId, localProvider } from './builtin/index.ts';
import { PipelineEngine, PipelineRepository, PipelineService } from './pipelines/index.ts';
import { pipelineRoutes } from './http/routes/pipeline-routes.ts';
import { noteAuthFailure, securityRoutes } from './http/routes/security-routes.ts';
import { enrollmentTokenRoutes } from './http/routes/agent-routes.ts';
import { aiRoutes } from './http/routes/ai-routes.ts';
import { fheRoutes } from './http/routes/fhe-routes.ts';
import { composeAi } from './compose-ai.ts';
import { createApp, type App, type AppServices, type HealthReport } from './http/index.ts';

/** How often each process re-reads the revoked token ids (catches a lost `auth:revoked` message). */
const REVOCATION_SYNC_MS = 2000;
/** How often the audit chainer looks for entries no run of this process chained yet (other processes', late commits). */
const AUDIT_CHAIN_PERIOD_MS = 1000;

export const VERSION = '0.1.0';

export interface McpServer {
  config: Readonly<Config>;
  app: App;
  services: AppServices;
  logger: Logger;
  /** Prometheus metrics of this instance (realtime, integrations call its methods). */
  metrics: Metrics;
  /** The bound API port (useful when configured as 0). */
  port: number;
  /** The bound dedicated Socket.IO port (null when disabled). */
  wsPort: number | null;
  realtime: RealtimeServer;
  /** Base URL of the API. */
  url: string;
  /** Generated admin password when this start created the first admin without MCP_ADMIN_PASSWORD. */
  generatedAdminPassword: string | null;
  /** Security services (audit log, alerts, breach detection, MFA, enrollment tokens, retention). */
  security: { audit: AuditLog; alerts: SecurityAlerts; detector: BreachDetector; mfa: MfaService; enrollment: EnrollmentTokens; retention: RetentionJob; phi: PhiAccessLog; keys: KeyRotation };
  stop(): Promise<void>;
}

export interface StartOptions {
  config: Readonly<Config>;
  logger?: Logger;
  /** An already-open database (tests share one); the server will not close it. */
  db?: Db;
}

interface Secrets {
  ring: KeyRing;
  pepper: string;
}

function loadSecrets(cfg: Readonly<Config>, keyVersions = 1): Secrets {
  const production = cfg.env === 'production';
  const memory = cfg.store.data_dir === ':memory:';
  if (!memory) mkdirSync(cfg.store.data_dir, { recursive: true, mode: 0o700 });
  const file = (name: string) => path.join(cfg.store.data_dir, name);
  const generated = () => (memory ? { masterKey: Buffer.from(newId().replace(/-/g, '').padEnd(64, '0').slice(0, 64), 'hex') } : null);
  const master = cfg.security.master_key || (generated() ?? loadOrCreateMasterKeyFile(file('master.key'), { production })).masterKey;
  const pepper = cfg.auth.password_pepper || (memory ? 'in-memory-pepper-' + newId() : loadOrCreateMasterKeyFile(file('pepper.key'), { production }).masterKey.toString('hex'));
  // The ring holds every persisted key version (rotations) and can derive a few newer ones on demand, so a
  // rotation made by another process never makes this one fail to decrypt (see KeyRotation).
  return { ring: KeyRing.fromMasterKey(master, keyVersions - 1, { lookahead: 8 }), pepper };
}

export async function startServer(opts: StartOptions): Promise<McpServer> {
  const cfg = opts.config;
  const logger = opts.logger ?? createLogger({ level: cfg.log.level, pretty: cfg.log.pretty });
  /** This file's own lines (SPEC §11: every line names its component); subsystems get children of `logger`. */
  const log = logger.child({ component: 'server' });
  const startedAt = Date.now();
  const bus = new EventBus((err, event) => log.error({ err, event }, 'event listener failed'));

  const db = opts.db ?? (await openDb({ databaseUrl: cfg.store.database_url || undefined, dataDir: cfg.store.data_dir, inMemory: cfg.store.data_dir === ':memory:', poolSize: cfg.store.pool_size, preparedStatements: cfg.store.prepared_statements }));
  const ownsDb = !opts.db;
  let migrated = false;
  await migrate(db);
  migrated = true;
  const metrics = new Metrics({ db, onError: (err, what) => log.warn({ err, what }, 'metrics collection failed') });
  metrics.attach(bus);
  const coord: Coordination = await createCoordination({ redisUrl: cfg.coordination.redis_url || undefined, keyPrefix: cfg.coordination.key_prefix, logger: logger.child({ component: 'coordination' }) });

  const secrets = loadSecrets(cfg, await KeyRotation.loadVersionCount(db));
  const cipher = new FieldCipher(secrets.ring);
  const sealer = { seal: (v: string, rowId: string) => cipher.encrypt(v, { table: 'signing_keys', column: 'private_key', rowId }), open: (s: string, rowId: string) => cipher.decrypt<string>(s, { table: 'signing_keys', column: 'private_key', rowId }) };
  const signingKeys = new SigningKeys(db, sealer, cfg.auth.signing_key);
  await signingKeys.load();
  const revocations = new SyncedRevocationList(db, coord, { syncMs: REVOCATION_SYNC_MS, onError: (err) => log.warn({ err }, 'revocation sync failed') });
  await revocations.start();
  const tokens = new TokenService(db, signingKeys, { issuer: cfg.auth.issuer, audience: cfg.auth.audience, lifetimes: cfg.auth }, revocations, bus);
  const mfaPolicy = { requiredRoles: cfg.auth.mfa_required_roles, graceSeconds: cfg.auth.mfa_grace_period };
  const principals = new PrincipalState(db, bus, { mfa: mfaPolicy });
  const users = new UserService(db, new PasswordHasher(secrets.pepper), tokens, bus, {
    userIp: coord.createRateLimiter({ keyPrefix: 'login:uip', points: cfg.limits.login_failures_per_user_ip, durationSec: 15 * 60, blockDurationSec: 15 * 60 }),
    ip: coord.createRateLimiter({ keyPrefix: 'login:ip', points: cfg.limits.login_per_ip_daily, durationSec: 86400 }),
  }, mfaPolicy);
  const agents = new AgentService(db, coord, bus, new ApiKeys(secrets.pepper), tokens, {
    timeoutSeconds: cfg.agents.timeout_seconds,
    restTimeoutSeconds: cfg.agents.rest_timeout_seconds,
    heartbeatIntervalSeconds: cfg.agents.heartbeat_interval_seconds,
  });
  const tasks = new TaskService(db, new TaskRepository(cipher), agents.outcomes, bus, { retryBaseMs: cfg.tasks.retry_base_ms, retryCapMs: cfg.tasks.retry_cap_ms, queuePositionExactLimit: cfg.tasks.queue_position_exact_limit });
  const engine = new AssignmentEngine(db, tasks.repo, bus, {
    defaultStrategy: cfg.tasks.default_strategy,
    onError: (err) => log.error({ err }, 'dispatch round failed'),
    // Deliveries disclose task parameters to the agent: audited in batches (phiAccess is built below).
    onDelivered: (agentId, delivered) => phiAccess.delivered(agentId, delivered),
  });
  agents.servedLoad = (id) => (engine.hasSlot(id) ? engine.loadOf(id) : undefined);
  tasks.assigner = engine;
  agents.outcomes.start();
  const orphans = new OrphanLeaseSweeper(db, coord, engine, tasks, cfg.tasks.lease_grace_seconds * 1000);
  bus.on('agent:unregistered', (e) => {
    engine.removeSlot(e.agent_id);
    tasks.requeueAgentTasks(e.agent_id, 'agent deleted').catch((err: unknown) => log.error({ err, agent_id: e.agent_id }, 'requeue failed'));
  });

  const blindIndex = new BlindIndex(secrets.ring);
  const bidx = (purpose: 'patient_id' | 'session_id', value: string) => blindIndex.compute(purpose, value);
  const pipelineRepo = new PipelineRepository(cipher);
  const pipelineEngine = new PipelineEngine(db, pipelineRepo, tasks, bus, { blindIndex: bidx, logger: logger.child({ component: 'pipelines' }) });
  const pipelines = new PipelineService(db, pipelineRepo, pipelineEngine, bidx);

  const boot = await users.bootstrapAdmin(cfg.auth.admin_password);

  // Security (SPEC §4.1, §4.2, §9): audit log, alerts (stored, on the bus → metrics/sockets, webhook), breach rules, MFA, enrollment, retention.
  const securityError = (err: unknown, what: string) => log.warn({ err, what }, 'security side effect failed');
  const audit = new AuditLog(db, { key: secrets.ring.auditChainKey, onError: (err) => securityError(err, 'audit chaining') });
  audit.start(AUDIT_CHAIN_PERIOD_MS);
  const alerts = new SecurityAlerts(db, bus, { webhookUrl: cfg.security.webhook_url, onError: securityError });
  const detachAlerts = alerts.attach();
  const detector = new BreachDetector(coord, alerts, { onError: securityError });
  const mfa = new MfaService(db, cipher, { issuer: cfg.auth.issuer });
  users.mfaVerifier = mfa.verifier;
  const enrollment = new EnrollmentTokens(db);
  const retention = new RetentionJob(db, audit, { periods: cfg.retention });
  // PHI reads (task detail, deliveries) audited; the built-in agent is the server itself: audited, not counted as a bulk reader.
  const builtinId = builtinAgentId({ configured: cfg.agents.builtin_id, severalProcesses: !!cfg.coordination.redis_url, host: hostname(), port: cfg.server.port });
  const phiAccess = new PhiAccessLog(db, audit, detector, { breachExempt: [`agent:${builtinId}`], onError: securityError });
  tasks.phiAudit = phiAccess;
  pipelines.phiAudit = phiAccess;
  // Field-key versions (rotation → background re-encryption on the leader) and signing-key rotation.
  const keys = new KeyRotation(db, secrets.ring, cipher, {
    coord, audit, signingKeys, signingOverlapSeconds: longestTokenLifetime(cfg.auth), pollMs: cfg.security.key_poll_ms,
    onError: securityError, onInfo: (msg, data) => logger.info({ component: 'keys', ...data }, msg),
  });
  await keys.start();
  const security = { audit, alerts, detector, mfa, enrollment, retention, phi: phiAccess, keys };
  const fhe = new FheAggregator({ maxCiphertexts: cfg.security.fhe_max_ciphertexts });
  const ai = composeAi(cfg, { coord, cipher, blindIndex, metrics, logger: logger.child({ component: 'ai' }), local: localProvider });

  const health = async (): Promise<HealthReport> => {
    const checks: HealthReport['checks'] = {};
    const t0 = performance.now();
    try {
      await db.ping();
      checks.database = { status: 'healthy', engine: db.kind, latency_ms: Number((performance.now() - t0).toFixed(2)) };
    } catch (err) {
      checks.database = { status: 'unhealthy', engine: db.kind, error: (err as Error).message };
    }
    try {
      const ms = await coord.ping();
      checks.coordination = { status: 'healthy', kind: coord.kind, latency_ms: Number(ms.toFixed(2)) };
    } catch (err) {
      checks.coordination = { status: 'unhealthy', kind: coord.kind, error: (err as Error).message };
    }
    // Services some AI route depends on; one down makes the server degraded (requests fail over).
    const external = ai.services().filter((x) => x.routed);
    checks.external_services = { status: external.some((x) => x.status === 'down') ? 'degraded' : 'healthy', services: external.map((x) => ({ name: x.name, status: x.status, circuit: x.circuit })) };
    const statuses = Object.values(checks).map((c) => c.status);
    const status = statuses.includes('unhealthy') ? (checks.database?.status === 'unhealthy' ? 'unhealthy' : 'degraded') : statuses.includes('degraded') ? 'degraded' : 'healthy';
    return { status, checks };
  };

  const services: AppServices = {
    config: cfg, db, coord, bus, codec: cipher, signingKeys, tokens, principals, users, agents, tasks, engine, health,
    ready: async () => migrated && (await db.ping().then(() => true, () => false)) && (await pendingMigrations(db)) === 0,
    deliveriesAudited: (agentId, taskIds) => phiAccess.written(agentId, taskIds),
    extraRoutes: [
      (a, kit) => pipelineRoutes(a, kit, pipelines, { audit }),
      securityRoutes({ audit, alerts, detector, mfa, enrollment, onError: securityError }),
      enrollmentTokenRoutes({ audit, enrollment }),
      aiRoutes({ hub: ai.hub, providers: ai.providers, services: ai.services, audit }),
      fheRoutes({ fhe, audit, maxCiphertexts: cfg.security.fhe_max_ciphertexts }),
    ],
    observability: {
      scrape: () => metrics.scrape(),
      contentType: metrics.contentType,
      runtime: async () => ({ queues: await metrics.queueDepths(), event_loop: metrics.eventLoopLag() }),
    },
    version: VERSION,
    startedAt,
  };

  const tls = cfg.server.tls_cert ? { cert: readFileSync(cfg.server.tls_cert), key: readFileSync(cfg.server.tls_key) } : undefined;
  const app = await createApp({
    services, logger, tls,
    onResponse: (route, method, status, seconds, errorCode) => metrics.observeRequest(route, method, status, seconds, errorCode),
    onRateLimited: (route) => metrics.rateLimitedRequest(route),
    onAuthFailure: noteAuthFailure,
  });

  // Periodic jobs run on the leader only (one instance at a time across processes).
  const ownerId = `${process.pid}-${newId()}`;
  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping = false;
  let offlineSweepFrom = 0;
  /** Set once the server listens (see below); the sweep consults it first. */
  const watch: { store?: StoreWatch } = {};
  const holdOfflineSweep = () => { offlineSweepFrom = Date.now() + cfg.agents.timeout_seconds * 1000; };
  const sweep = async () => {
    if (sweeping) return;
    sweeping = true;
    try {
      await tasks.expireLeases();
      await orphans.sweep();
      await tasks.promoteRetries();
      await tasks.repairDependencies();
      // A new leader (failover), or a store that lost its state (Redis flushed or back after an
      // outage: every presence record gone), waits one agent timeout so heartbeats and the
      // processes' rebuild restore presence before silence is read as "offline". The store is
      // checked here, not only by its own timer, so this sweep cannot run first — and checked
      // again after presence was read: a read queued while Redis was down runs against the
      // empty Redis that comes back, and must not mark every agent offline.
      const steady = async () => (await watch.store?.check() ?? true) && Date.now() >= offlineSweepFrom;
      if (await steady()) await agents.sweepOffline(Date.now(), steady);
    } catch (err) {
      log.warn({ err }, 'sweep failed');
    } finally {
      sweeping = false;
    }
  };
  // Retention purge and audit-chain check: leader only, at a lower frequency (default hourly).
  let retentionTimer: NodeJS.Timeout | undefined;
  let retaining = false;
  const retain = async () => {
    if (retaining) return;
    retaining = true;
    try {
      const purged = (await retention.run()).filter((r) => r.purged > 0);
      if (purged.length) log.info({ purged }, 'retention purge');
      await detector.checkAuditChain(await audit.verify());
    } catch (err) {
      log.warn({ err }, 'retention job failed');
    } finally {
      retaining = false;
    }
  };
  // Where autovacuum does not run (PGlite, or turned off), the leader vacuums the queue tables and analyzes the tables that changed.
  const maintenance = new TableMaintenance(db, { tables: ['tasks', 'audit_pending'] });
  // PGlite keeps no statistics: count task changes here (each rewrites a row; one process).
  const offMaintenanceCount = db.kind === 'pglite' ? bus.onAny((name) => { if (name.startsWith('task:')) maintenance.note(1); }) : () => {};
  let vacuumTimer: NodeJS.Timeout | undefined;
  const vacuum = async () => {
    try {
      const done = await maintenance.run();
      if (done.length) log.debug({ maintained: done }, 'vacuumed or analyzed tables');
    } catch (err) {
      log.warn({ err }, 'vacuum failed');
    }
  };
  // system:health_check for subscribers of the system topic: statuses only (errors can name hosts).
  let healthTimer: NodeJS.Timeout | undefined;
  const broadcastHealth = async () => {
    const h = await health();
    bus.emit('system:health_check', { status: h.status, checks: Object.fromEntries(Object.entries(h.checks).map(([k, c]) => [k, c.status])) });
  };
  const elector = new LeaderElector(coord, {
    name: 'mcp:leader', ownerId, ttlMs: Math.max(3000, cfg.tasks.sweep_interval_ms * 5),
    onElected: (token) => {
      holdOfflineSweep();
      log.info({ fencing_token: token }, 'elected leader for periodic jobs');
      sweepTimer = setInterval(() => void sweep(), cfg.tasks.sweep_interval_ms);
      sweepTimer.unref();
      retentionTimer = setInterval(() => void retain(), cfg.retention.interval_ms);
      retentionTimer.unref();
      if (cfg.store.vacuum_interval_ms > 0) {
        vacuumTimer = setInterval(() => void vacuum(), cfg.store.vacuum_interval_ms);
        vacuumTimer.unref();
      }
      keys.startJob(); // re-encryption after a field-key rotation (resumes an interrupted one)
      if (cfg.log.health_broadcast_ms > 0) {
        healthTimer = setInterval(() => void broadcastHealth(), cfg.log.health_broadcast_ms);
        healthTimer.unref();
      }
    },
    onDemoted: () => {
      void keys.stopJob();
      if (sweepTimer) clearInterval(sweepTimer);
      sweepTimer = undefined;
      if (retentionTimer) clearInterval(retentionTimer);
      retentionTimer = undefined;
      if (vacuumTimer) clearInterval(vacuumTimer);
      vacuumTimer = undefined;
      if (healthTimer) clearInterval(healthTimer);
      healthTimer = undefined;
    },
  });
  await elector.start();

  // Several processes: wake-ups, releases and forwarded delegates across processes; the Socket.IO
  // adapter for room operations that must reach every process's sockets (revocation disconnects).
  await engine.connect(coord, cfg.coordination.safety_net_ms);
  const ioAdapter = await socketIoAdapterFor(coord, logger.child({ component: 'socket.io-adapter' }));
  const realtime = new RealtimeServer({
    ...(ioAdapter ? { adapter: ioAdapter } : {}),
    tokens, principals, agents, tasks, engine, bus, coord,
    logger: logger.child({ component: 'realtime' }),
    leaseGraceSeconds: cfg.tasks.lease_grace_seconds,
    // Subscribing to a pipeline that does not exist is a 404 (SPEC §3), as for tasks and agents.
    pipelineExists: async (id) => (await pipelineRepo.get(db, id)) !== null,
    tls,
    onConnectionsChanged: (n) => metrics.wsConnections.set(n),
    onDeliveryLatency: (s) => metrics.wsLatency.observe(s),
    // As the HTTP side does for a 401/403: an audit entry, and a count towards the breach rule.
    onDenied: (d) => {
      const entry: AuditEntryInput = {
        actor: actorOf(d.principal, d.ip, d.user_agent), action: d.code === 'INSUFFICIENT_PERMISSIONS' ? 'access_denied' : 'authentication_failed',
        resource_type: 'socket_event', resource_id: d.event.slice(0, 256), fields: [d.code], outcome: 'denied',
      };
      audit.append(db, [entry]).catch((err: unknown) => securityError(err, 'audit'));
      detector.noteAuthFailure(d.principal ? principalKey(d.principal) : `ip:${d.ip}`, d.code).catch((err: unknown) => securityError(err, 'breach detection'));
    },
  });
  const builtin = cfg.agents.builtin ? new BuiltinAgents(agents, tasks, engine, {
    concurrency: 8, logger: logger.child({ component: 'builtin-agents' }), agentId: builtinId,
    liveness: { coord, beatMs: Math.min(10_000, cfg.agents.timeout_seconds * 1000 / 3) },
    // A standalone task routed to a remote AI provider discloses its parameters: audited first.
    auditDisclosure: async (taskId, provider) => {
      await audit.audit(db, { actor: actorOf({ type: 'agent', id: builtinId, role: 'worker' }) }, {
        action: 'export', resource_type: 'task', resource_id: taskId, fields: ['parameters', `sent_to:${provider}`], data_classification: 'phi',
      });
    },
  }, ai.hub) : null;

  await app.ready();
  await pipelineEngine.start();
  await app.listen({ port: cfg.server.port, host: cfg.server.host });
  const wsPort = await realtime.listen(app.server, cfg.server.ws_port, cfg.server.host);
  await builtin?.start();
  // Redis flushed, restarted empty or unreachable for a while → rebuild this process's share of coordination state.
  const storeWatch = new StoreWatch(coord, {
    intervalMs: 1000,
    onReset: () => {
      holdOfflineSweep();
      bus.emit('system:warning', { component: 'coordination', message: 'The coordination store lost its state (restarted empty or unreachable); this process is rebuilding its share from PostgreSQL.' });
      return realtime.rebuildCoordinationState();
    },
    logger: logger.child({ component: 'coordination' }),
  });
  watch.store = storeWatch;
  await storeWatch.start();
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.server.port;
  const scheme = cfg.server.tls_cert ? 'https' : 'http';
  const url = cfg.server.public_url || `${scheme}://${cfg.server.host === '0.0.0.0' ? '127.0.0.1' : cfg.server.host}:${port}`;

  let stopped = false;
  return {
    config: cfg, app, services, logger, metrics, port, url, wsPort, realtime,
    generatedAdminPassword: boot.generated,
    security,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (sweepTimer) clearInterval(sweepTimer);
      if (retentionTimer) clearInterval(retentionTimer);
      if (vacuumTimer) clearInterval(vacuumTimer);
      if (healthTimer) clearInterval(healthTimer);
      offMaintenanceCount();
      detachAlerts();
      ai.stop();
      await fhe.close().catch(() => {});
      await storeWatch.stop().catch(() => {});
      await elector.stop().catch(() => {});
      await pipelineEngine.stop().catch((err: unknown) => log.warn({ err }, 'pipeline engine stop failed'));
      await realtime.close().catch((err: unknown) => log.warn({ err }, 'realtime close failed'));
      const grace = new Promise<void>((r) => setTimeout(r, cfg.server.shutdown_grace_ms).unref());
      await Promise.race([builtin?.stop() ?? Promise.resolve(), grace]);
      engine.stop();
      await agents.outcomes.stop().catch(() => {});
      await keys.stop().catch((err: unknown) => log.warn({ err }, 'key rotation stop failed'));
      await phiAccess.stop().catch((err: unknown) => log.warn({ err }, 'delivery audit flush failed'));
      await Promise.race([app.close(), grace]);
      // Entries left pending (a write after this) are chained by the next process that starts.
      await audit.stop().catch((err: unknown) => log.warn({ err }, 'audit chaining failed'));
      await revocations.stop();
      metrics.close();
      await alerts.settle().catch(() => {});
      await coord.close().catch(() => {});
      if (ownsDb) await db.close();
    },
  };
}
