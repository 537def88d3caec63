/** /tasks (SPEC §6). Worker visibility and lease fencing are enforced by the task service. */
import Type from 'typebox';
import type { App } from '../app-types.ts';
import type { RouteKit } from '../http-deps.ts';
import { auditContextOf } from '../audit-context.ts';
import { perItemCost } from '../rate-limit.ts';
import { AppError, ForbiddenError } from '../../core/index.ts';
import { EmptyBody, IdParams, ListQuery, paginate } from '../../contracts/common.ts';
import { Attempt, BatchCreateBody, CancelBody, ClaimBody, CompleteBody, CreateTaskBody, DelegateBody, FailBody, ListTasksQuery, ProgressBody } from '../../contracts/tasks.ts';
import type { Principal } from '../../auth/index.ts';

const Params = IdParams('task_id');
const DeadLetterQuery = Type.Object({
  ...ListQuery,
  /** SPEC §2; default `updated_at:desc`. Only these values reach the ORDER BY (TaskRepository.list). */
  sort: Type.Optional(Type.Enum(['updated_at:asc', 'updated_at:desc', 'created_at:asc', 'created_at:desc', 'priority:asc', 'priority:desc'] as const)),
}, { additionalProperties: false });

function agentOf(p: Principal): string {
  if (p.type !== 'agent') throw new ForbiddenError('NOT_ASSIGNED_AGENT', 'Only the assigned agent may report on a task.');
  return p.id;
}

export function taskRoutes(app: App, kit: RouteKit): void {
  const { tasks, engine, agents } = kit.services;
  const tags = ['tasks'];

  app.post('/tasks', { schema: { tags, body: CreateTaskBody }, config: { idempotent: true }, ...kit.guard('task:create', 'task_create') }, async (request, reply) => {
    return reply.status(201).send(await tasks.create(request.body, request.principal!));
  });

  app.post('/tasks/batch', {
    schema: { tags, body: BatchCreateBody },
    config: { idempotent: true },
    // The body is not validated yet (a malformed batch counts too): a batch costs one per task.
    ...kit.guard('task:create', 'task_create', perItemCost('tasks')),
  }, async (request, reply) => {
    const rows = await tasks.createMany(request.body.tasks, request.principal!);
    return reply.status(201).send({ task_ids: rows.map((r) => r.task_id), count: rows.length, created_at: rows[0]?.created_at.toISOString() });
  });

  app.get('/tasks', { schema: { tags, querystring: ListTasksQuery }, ...kit.guard('task:read') }, async (request) => {
    const q = request.query;
    const limit = q.limit ?? 50;
    const offset = q.offset ?? 0;
    const { tasks: rows, total } = await tasks.list({ status: q.status, task_type: q.task_type, pipeline_id: q.pipeline_id, agent_id: q.agent_id, dead_letter: q.dead_letter }, request.principal!, q.sort ?? 'created_at:desc', limit, offset);
    return { tasks: rows, pagination: paginate(total, limit, offset) };
  });

  app.get('/tasks/dead-letter', { schema: { tags, querystring: DeadLetterQuery }, ...kit.guard('task:manage') }, async (request) => {
    const limit = request.query.limit ?? 50;
    const offset = request.query.offset ?? 0;
    const { tasks: rows, total } = await tasks.list({ dead_letter: true }, request.principal!, request.query.sort ?? 'updated_at:desc', limit, offset);
    return { tasks: rows, pagination: paginate(total, limit, offset) };
  });

  // Decrypts PHI: audited (and masked for callers without phi:read) by the task service.
  app.get('/tasks/:task_id', { schema: { tags, params: Params }, ...kit.guard('task:read') }, async (request) => {
    return tasks.detail(request.params.task_id, request.principal!, auditContextOf(request));
  });

  app.post('/tasks/:task_id/cancel', { schema: { tags, params: Params, body: CancelBody }, ...kit.guard('task:manage') }, async (request) => {
    return tasks.cancel(request.params.task_id, request.body.reason ?? `cancelled by ${request.principal!.name}`, request.principal!);
  });

  app.post('/tasks/:task_id/retry', { schema: { tags, params: Params, body: EmptyBody }, ...kit.guard('task:manage') }, async (request) => tasks.retry(request.params.task_id, request.principal!));

  app.post('/tasks/:task_id/delegate', { schema: { tags, params: Params, body: DelegateBody }, ...kit.guard('task:manage', 'delegate') }, async (request, reply) => {
    await tasks.getRow(request.params.task_id, request.principal!);
    if (request.body.agent_id) await agents.get(request.body.agent_id);
    const r = await engine.delegate(request.params.task_id, request.body.agent_id, request.body.strategy);
    if (r) return { task_id: request.params.task_id, status: 'assigned', assigned_agent: r.agent_id, attempt: r.attempt };
    const row = await tasks.getRow(request.params.task_id);
    const position = await tasks.queuePosition(row);
    // A task waiting for its dependencies cannot be assigned whoever is available: say so.
    const message = row.pending_deps > 0
      ? `The task waits for its dependencies (${row.pending_deps} not completed); it stays queued until they complete.`
      : 'No capable agent is available; the task stays queued.';
    return reply.status(202).send({ task_id: row.task_id, status: row.status, queue_position: position, message });
  });

  app.post('/tasks/claim', { schema: { tags, body: ClaimBody }, ...kit.guard('task:execute') }, async (request) => {
    const agentId = agentOf(request.principal!);
    // Claiming is a sign of life (presence for REST-only agents): recorded first, so that an agent
    // marked offline (it had been silent) claims as the active agent the heartbeat makes it.
    await agents.heartbeat(agentId, {}, 'rest');
    const a = await agents.get(agentId);
    const delivered = await engine.claim(
      { agent_id: a.agent_id, capabilities: new Set(a.capabilities), max: a.max_concurrent_tasks, score: 0, builtin: false, available: a.status !== 'offline' && !a.draining && (a.status === 'active' || a.status === 'busy') },
      request.body.max ?? 1, request.body.wait_ms ?? 0);
    // The parameters go out only once their delivery is audited (if that fails, the claim fails;
    // its leases come back when they expire).
    await kit.services.deliveriesAudited?.(agentId, delivered.map((t) => t.task_id));
    return { tasks: delivered, count: delivered.length };
  });

  app.post('/tasks/:task_id/accept', { schema: { tags, params: Params, body: Type.Object({ attempt: Type.Optional(Attempt) }, { additionalProperties: false }) }, ...kit.guard('task:execute') }, async (request) => {
    return tasks.accept(request.params.task_id, agentOf(request.principal!), request.body.attempt);
  });

  app.post('/tasks/:task_id/progress', { schema: { tags, params: Params, body: ProgressBody }, ...kit.guard('task:execute') }, async (request) => {
    const b = request.body;
    return tasks.progress(request.params.task_id, agentOf(request.principal!), b.attempt, b.progress, b.message);
  });

  app.post('/tasks/:task_id/complete', { schema: { tags, params: Params, body: CompleteBody }, ...kit.guard('task:execute') }, async (request) => {
    const b = request.body;
    if (b.result === undefined) throw new AppError('VALIDATION_ERROR', 'result is required.', { details: { field_errors: [{ field: 'result', message: 'is required' }] } });
    return tasks.complete(request.params.task_id, agentOf(request.principal!), b.attempt, b.result, b.metadata);
  });

  app.post('/tasks/:task_id/fail', { schema: { tags, params: Params, body: FailBody }, ...kit.guard('task:execute') }, async (request) => {
    return tasks.fail(request.params.task_id, agentOf(request.principal!), request.body.attempt, request.body.error);
  });
}
