/** /pipelines (SPEC §7). Business rules live in the pipeline service and engine. */
import type { FastifyRequest } from 'fastify';
import type { App } from '../app-types.ts';
import type { RouteKit } from '../http-deps.ts';
import { auditContextOf } from '../audit-context.ts';
import { EmptyBody, paginate } from '../../contracts/common.ts';
import { ControlBody, CreatePipelineBody, CreateTemplateBody, ListPipelinesQuery, ListTemplatesQuery, OutputQuery, PipelineParams, StageParams } from '../../contracts/pipelines.ts';
import type { PipelineService } from '../../pipelines/index.ts';
import type { AuditLog } from '../../security/index.ts';
import type { Queryable } from '../../store/index.ts';

export interface PipelineRouteOptions {
  /**
   * When given, PHI writes, reads (masked or not, as task reads) and exports of runs are audited
   * (a failed audit write fails the request); audited reads then count towards the bulk-read
   * breach rule through the pipeline service (`noteRead`).
   */
  audit?: AuditLog;
}

export function pipelineRoutes(app: App, kit: RouteKit, pipelines: PipelineService, opts: PipelineRouteOptions = {}): void {
  const tags = ['pipelines'];
  const audit = async (request: FastifyRequest, action: 'create' | 'read' | 'export', pipelineId: string, fields: string[], q: Queryable = kit.services.db) => {
    if (!opts.audit) return;
    const ctx = auditContextOf(request);
    await opts.audit.audit(q, ctx, {
      action, resource_type: 'pipeline', resource_id: pipelineId, fields, data_classification: 'phi', outcome: 'success',
    });
    if (action !== 'create') pipelines.noteRead(ctx, request.principal!);
  };

  app.get('/pipelines/templates', { schema: { tags, querystring: ListTemplatesQuery }, ...kit.guard('pipeline:read') }, async (request) => {
    const limit = request.query.limit ?? 50;
    const offset = request.query.offset ?? 0;
    const { templates, total } = await pipelines.templates(limit, offset, request.query.sort);
    return { templates, pagination: paginate(total, limit, offset) };
  });

  app.post('/pipelines/templates', { schema: { tags, body: CreateTemplateBody }, config: { idempotent: true }, ...kit.guard('pipeline:manage') }, async (request, reply) => {
    return reply.status(201).send(await pipelines.createTemplate(request.body, request.principal!));
  });

  app.post('/pipelines', { schema: { tags, body: CreatePipelineBody }, config: { idempotent: true }, ...kit.guard('pipeline:create', 'task_create') }, async (request, reply) => {
    // Audited in the creating transaction: no run without its entry (a failed audit creates nothing).
    const created = await pipelines.create(request.body, request.principal!, (q, id) => audit(request, 'create', id, ['input_data', 'context'], q));
    return reply.status(201).send(created);
  });

  app.get('/pipelines', { schema: { tags, querystring: ListPipelinesQuery }, ...kit.guard('pipeline:read') }, async (request) => {
    const limit = request.query.limit ?? 50;
    const offset = request.query.offset ?? 0;
    const { pipelines: rows, total } = await pipelines.list(request.query);
    return { pipelines: rows, pagination: paginate(total, limit, offset) };
  });

  app.get('/pipelines/:pipeline_id', { schema: { tags, params: PipelineParams }, ...kit.guard('pipeline:read') }, async (request) => {
    const detail = await pipelines.get(request.params.pipeline_id, request.principal!, auditContextOf(request));
    // Audited for every caller, as task reads are: a masked read is still an access to the record.
    await audit(request, 'read', detail.pipeline_id, detail.output === undefined ? ['context'] : ['context', 'output']);
    return detail;
  });

  app.get('/pipelines/:pipeline_id/progress', { schema: { tags, params: PipelineParams }, ...kit.guard('pipeline:read') }, async (request) => {
    return pipelines.progress(request.params.pipeline_id);
  });

  app.get('/pipelines/:pipeline_id/output', { schema: { tags, params: PipelineParams, querystring: OutputQuery }, ...kit.guard('pipeline:read') }, async (request, reply) => {
    const out = await pipelines.output(request.params.pipeline_id, request.query.format ?? 'json', request.principal!, auditContextOf(request));
    await audit(request, 'export', request.params.pipeline_id, ['output']);
    return reply
      .header('Content-Type', `${out.content_type}; charset=utf-8`)
      .header('Content-Disposition', `inline; filename="${out.filename}"`)
      .header('Cache-Control', 'no-store')
      .send(out.body);
  });

  app.post('/pipelines/:pipeline_id/cancel', { schema: { tags, params: PipelineParams, body: ControlBody }, ...kit.guard('pipeline:manage') }, async (request) => {
    await pipelines.cancel(request.params.pipeline_id, request.body.reason ?? `cancelled by ${request.principal!.name}`);
    return pipelines.progress(request.params.pipeline_id);
  });

  app.post('/pipelines/:pipeline_id/pause', { schema: { tags, params: PipelineParams, body: ControlBody }, ...kit.guard('pipeline:manage') }, async (request) => {
    await pipelines.pause(request.params.pipeline_id);
    return pipelines.progress(request.params.pipeline_id);
  });

  app.post('/pipelines/:pipeline_id/resume', { schema: { tags, params: PipelineParams, body: ControlBody }, ...kit.guard('pipeline:manage') }, async (request) => {
    await pipelines.resume(request.params.pipeline_id);
    return pipelines.progress(request.params.pipeline_id);
  });

  app.post('/pipelines/:pipeline_id/stages/:stage/retry', { schema: { tags, params: StageParams, body: EmptyBody }, ...kit.guard('pipeline:manage') }, async (request) => {
    const { task_id } = await pipelines.retryStage(request.params.pipeline_id, request.params.stage);
    return { ...(await pipelines.progress(request.params.pipeline_id)), stage: request.params.stage, task_id };
  });
}
