/**
 * Built-in agents (SPEC §7.4, ARCHITECTURE §1.5): in-process agents holding every stage's and
 * known task type's capability, running the local analysers. They get work through the same
 * assignment engine as remote agents (a slot whose `deliver` runs the handler in this process)
 * and rank below remote agents, so a connected specialised agent wins.
 */
import { randomUUID } from 'node:crypto';
import type { AgentService } from '../agents/index.ts';
import type { Coordination } from '../coordination/index.ts';
import { AGENT_SOCKET_PRESENCE, type AssignmentEngine, type DeliveredTask, type TaskService } from '../tasks/index.ts';
import { LOCAL_STAGE_HANDLERS, StageFailure } from '../pipelines/stages/index.ts';
import { AiHub, AllProvidersFailedError, warmUpLocalAnalysers } from '../ai/index.ts';
import { TASK_TYPE_CAPABILITIES } from '../contracts/tasks.ts';
import { localProvider } from './local-provider.ts';

export const BUILTIN_AGENT_ID = 'builtin-local';

/** Pipeline stages always run on `local` (their results feed later stages in its shapes). */
const LOCAL_ONLY = ['local'] as const;

/**
 * The built-in agent's id for a server process. One process (in-process coordination):
 * `builtin-local`. Several (Redis): each needs its own — a shared id would let every process
 * that starts requeue the leases the others' built-ins are working on, and count their load as
 * its own — stable across restarts of that process so that a restart requeues what it left:
 * `builtin-<host>-<port>`, or a random suffix when the port is chosen by the system (0).
 */
export function builtinAgentId(o: { configured?: string; severalProcesses: boolean; host: string; port: number }): string {
  if (o.configured) return o.configured;
  if (!o.severalProcesses) return BUILTIN_AGENT_ID;
  const suffix = o.port > 0 ? String(o.port) : randomUUID().slice(0, 8);
  const host = o.host.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64 - 'builtin--'.length - suffix.length) || 'host';
  return `builtin-${host}-${suffix}`;
}

/** The capability a task type requires by default (SPEC §6): the known types' table, else the type's own name. */
function capabilityOf(taskType: string): string {
  return TASK_TYPE_CAPABILITIES[taskType] ?? taskType;
}

/**
 * Task types the built-in may have a handler for: the known types, the local handlers, and the
 * other capabilities SPEC §5 names, as task types of the same name (`text_analysis` runs when a
 * route sends it to a remote provider; nothing runs `language_detection` today).
 */
const CANDIDATE_TASK_TYPES = [...new Set([...Object.keys(TASK_TYPE_CAPABILITIES), ...Object.keys(LOCAL_STAGE_HANDLERS), 'text_analysis', 'language_detection'])];

/**
 * The capabilities a built-in advertises with this hub: only those of a task type it has a
 * handler for (locally, or on a route the hub is configured with). A capability without one
 * would win it tasks it can only give back.
 */
function builtinCapabilities(hub: AiHub): string[] {
  const handled = CANDIDATE_TASK_TYPES.filter((t) => hub.supports(t) || hub.supports(t, LOCAL_ONLY));
  return [...new Set(handled.map(capabilityOf))].sort();
}


export interface BuiltinAgentsOptions {
  concurrency: number;
  /** One id per server process that runs built-ins (`builtinAgentId`); default `builtin-local`. */
  agentId?: string;
  /**
   * Liveness, as a connected agent shows it: every `beatMs` a heartbeat (the offline sweep marks
   * a built-in whose process died offline) and a presence record saying some process serves it
   * (the orphan-lease sweeper times out the leases of one whose process died and did not come back).
   */
  liveness?: { coord: Coordination; beatMs: number };
  logger: { warn: (o: unknown, m?: string) => void; error: (o: unknown, m?: string) => void };
  /** Audits a task's parameters leaving the server for a remote AI provider (awaited before they are sent). */
  auditDisclosure?: (taskId: string, provider: string) => Promise<void>;
}


/**
 * A task's failure from what the hub threw: a stage's own failure as it is (also when it was the
 * last of a route's providers); every provider of a route failing is retryable, named by codes
 * only (never the providers' messages, which may quote the input).
 */
function failureOf(err: unknown): { failure: { code: string; message: string; retryable: boolean; details?: Record<string, unknown> }; unexpected: boolean } {
  const f = err instanceof StageFailure ? err : err instanceof AllProvidersFailedError && err.cause instanceof StageFailure ? err.cause : null;
  if (f) return { failure: { code: f.code, message: f.message, retryable: f.retryable, ...(f.details !== undefined ? { details: f.details as Record<string, unknown> } : {}) }, unexpected: false };
  if (err instanceof AllProvidersFailedError) return { failure: { code: 'EXTERNAL_SERVICE_ERROR', message: err.message, retryable: true, details: { failures: err.failures } }, unexpected: false };
  return { failure: { code: 'STAGE_FAILED', message: 'The built-in handler failed.', retryable: true }, unexpected: true };
}

function defaultHub(): AiHub {
  const hub = new AiHub();
  hub.register(localProvider);
  return hub;
}

export class BuiltinAgents {
  private inFlight = 0;
  private stopped = false;
  private beatTimer: NodeJS.Timeout | undefined;
  private readonly idle = new Set<() => void>();

  constructor(
    private readonly agents: AgentService,
    private readonly tasks: TaskService,
    private readonly engine: AssignmentEngine,
    private readonly opts: BuiltinAgentsOptions,
    /**
     * Routes each task type to its providers (MCP_AI_ROUTES) for standalone tasks; pipeline stages
     * always run on `local` (their results feed later stages in the local analysers' shapes).
     * By default everything runs on `local`.
     */
    private readonly hub: AiHub = defaultHub(),
  ) {}

  get agentId(): string {
    return this.opts.agentId ?? BUILTIN_AGENT_ID;
  }

  async start(): Promise<void> {
    const id = this.agentId;
    const capabilities = builtinCapabilities(this.hub);
    const agent = await this.agents.repo.get(this.agentsDb(), id, true);
    if (!agent || agent.deleted_at) {
      if (agent?.deleted_at) await this.agentsDb().query('DELETE FROM agents WHERE agent_id = $1', [id]);
      await this.agents.register({
        agent_id: id, name: 'Built-in local analysers', type: 'pipeline-worker', capabilities,
        version: '1.0.0', max_concurrent_tasks: this.opts.concurrency, metadata: { provider: 'local' }, tags: ['builtin'], role: 'worker',
      }, { builtin: true });
    } else {
      await this.agents.repo.update(this.agentsDb(), id, { capabilities, max_concurrent_tasks: this.opts.concurrency, status: 'active', draining: false });
    }
    // Leases this id still holds belong to a previous incarnation of this process (it crashed
    // or was killed mid-task): nobody is working on them, so they go straight back to the queue.
    const orphaned = await this.tasks.requeueAgentTasks(id, 'built-in agent restarted');
    if (orphaned) this.opts.logger.warn({ agent_id: id, tasks: orphaned }, 'requeued tasks of a previous built-in incarnation');
    warmUpLocalAnalysers();
    await this.engine.addSlot({
      agent_id: id,
      capabilities: new Set(capabilities),
      max: this.opts.concurrency,
      score: 0,
      builtin: true,
      available: true,
      deliver: (t) => void this.run(t),
    });
    const live = this.opts.liveness;
    if (live) {
      await this.beat(live);
      this.beatTimer = setInterval(() => void this.beat(live), live.beatMs);
      this.beatTimer.unref();
    }
  }

  private async beat(live: NonNullable<BuiltinAgentsOptions['liveness']>): Promise<void> {
    try {
      await this.agents.heartbeat(this.agentId, {}, 'ws');
      await live.coord.setPresence(AGENT_SOCKET_PRESENCE, this.agentId, { builtin: true }, live.beatMs * 3);
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message, agent_id: this.agentId }, 'built-in agent heartbeat failed');
    }
  }

  private agentsDb() {
    return this.agents.db;
  }

  /** Stops taking work and waits for running handlers (bounded by the caller). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.beatTimer);
    this.engine.removeSlot(this.agentId);
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idle.add(resolve));
    // Not served here any more: leases left over go through the orphan sweep.
    await this.opts.liveness?.coord.removePresence(AGENT_SOCKET_PRESENCE, this.agentId).catch(() => {});
  }

  private async run(t: DeliveredTask): Promise<void> {
    this.inFlight++;
    const started = performance.now();
    try {
      if (this.stopped) return;
      const route = t.pipeline_id ? LOCAL_ONLY : undefined;
      if (!this.hub.supports(t.task_type, route)) {
        // Its capabilities matched, its type is not one the built-in runs (e.g. a custom type
        // requiring `sentiment_analysis`): give it back for another agent rather than fail it.
        await this.refuse(t);
        return;
      }
      await this.tasks.acceptLease(t.task_id, this.agentId, t.attempt);
      let outcome: { provider: string; result: Record<string, unknown> };
      try {
        const audit = this.opts.auditDisclosure;
        outcome = await this.hub.analyze(t.task_type, (t.parameters ?? {}) as Record<string, unknown>, {
          requestId: t.task_id, ...(audit ? { beforeSend: (provider: string) => audit(t.task_id, provider) } : {}),
        }, route);
      } catch (err) {
        const { failure, unexpected } = failureOf(err);
        await this.tasks.fail(t.task_id, this.agentId, t.attempt, failure);
        if (unexpected) this.opts.logger.error({ err, task_id: t.task_id }, 'built-in handler crashed');
        return;
      }
      const modelVersion = outcome.provider === 'local' ? 'local-1' : outcome.provider;
      await this.tasks.complete(t.task_id, this.agentId, t.attempt, outcome.result, { processing_time: (performance.now() - started) / 1000, model_version: modelVersion });
    } catch (err) {
      // Lost the lease (cancelled, timed out, redelivered): nothing to record.
      this.opts.logger.warn({ err: (err as Error).message, task_id: t.task_id }, 'built-in agent could not record a result');
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) for (const r of this.idle) r();
    }
  }

  /**
   * Gives a delivered task back to the queue (`task:rejected`'s path: no retry consumed; the
   * engine then passes this agent over for the task, longer at each refusal, so another capable
   * agent gets it or it waits). Never rejects: a lease already gone has nothing to give back.
   */
  private async refuse(t: DeliveredTask): Promise<void> {
    this.opts.logger.warn({ agent_id: this.agentId, task_id: t.task_id, task_type: t.task_type }, 'built-in agent has no handler for this task type; giving it back');
    try {
      await this.tasks.reject(t.task_id, this.agentId, t.attempt, 'no built-in handler for this task type');
    } catch (err) {
      // The lease is gone already (cancelled, timed out, redelivered): nothing to give back.
      this.opts.logger.warn({ err: (err as Error).message, task_id: t.task_id }, 'built-in agent could not give a task back');
    } finally {
      this.engine.forget(this.agentId, t.task_id);
    }
  }
}
