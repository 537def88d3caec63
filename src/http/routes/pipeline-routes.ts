/** /pipelines (SPEC §7). Business rules live in the pipeline service and engine. */
import Type from 'typebox';
import type { App } from '../create-app.ts';
import type { RouteKit } from '../http-deps.ts';
import { paginate } from '../../contracts/common.ts';
import { ControlBody, CreatePipelineBody, CreateTemplateBody, ListPipelinesQuery, OutputQuery, PipelineParams, StageParams } from '../../contracts/pipelines.ts';
import type { PipelineService } from '../../pipelines/index.ts';

const TemplatesQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
}, { additionalProperties: false });

export function pipelineRoutes(app: App, kit: RouteKit, pipelines: PipelineService): void {
  const tags = ['pipelines'];

  app.get('/pipelines/templates', { schema: { tags, querystring: TemplatesQuery }, preHandler: kit.guard('pipeline:read') }, async (request) => {
    const limit = request.query.limit ?? 50;
    const offset = request.query.offset ?? 0;
    const { templates, total } = await pipelines.templates(limit, offset);
    return { templates, pagination: paginate(total, limit, offset) };
  });

  app.post('/pipelines/templates', { schema: { tags, body: CreateTemplateBody }, config: { idempotent: true }, preHandler: kit.guard('pipeline:manage') }, async (request, reply) => {
    return reply.status(201).send(await pipelines.createTemplate(request.body, request.principal!));
  });

  app.post('/pipelines', { schema: { tags, body: CreatePipelineBody }, config: { idempotent: true }, preHandler: kit.guard('pipeline:create', 'task_create') }, async (request, reply) => {
    return reply.status(201).send(await pipelines.create(request.body, request.principal!));
  });

  app.get('/pipelines', { schema: { tags, querystring: ListPipelinesQuery }, preHandler: kit.guard('pipeline:read') }, async (request) => {
    const limit = request.query.limit ?? 50;
    const offset = request.query.offset ?? 0;
    const { pipelines: rows, total } = await pipelines.list(request.query);
    return { pipelines: rows, pagination: paginate(total, limit, offset) };
  });

  app.get('/pipelines/:pipeline_id', { schema: { tags, params: PipelineParams }, preHandler: kit.guard('pipeline:read') }, async (request) => {
    return pipelines.get(request.params.pipeline_id, request.principal!);
  });

  app.get('/pipelines/:pipeline_id/progress', { schema: { tags, params: PipelineParams }, preHandler: kit.guard('pipeline:read') }, async (request) => {
    return pipelines.progress(request.params.pipeline_id);
  });

  app.get('/pipelines/:pipeline_id/output', { schema: { tags, params: PipelineParams, querystring: OutputQuery }, preHandler: kit.guard('pipeline:read') }, async (request, reply) => {
    const out = await pipelines.output(request.params.pipeline_id, request.query.format ?? 'json', request.principal!);
    return reply
      .header('Content-Type', `${out.content_type}; charset=utf-8`)
      .header('Content-Disposition', `inline; filename="${out.filename}"`)
      .header('Cache-Control', 'no-store')
      .send(out.body);
  });

  app.post('/pipelines/:pipeline_id/cancel', { schema: { tags, params: PipelineParams, body: ControlBody }, preHandler: kit.guard('pipeline:manage') }, async (request) => {
    await pipelines.cancel(request.params.pipeline_id, request.body.reason ?? `cancelled by ${request.principal!.name}`);
    return pipelines.progress(request.params.pipeline_id);
  });

  app.post('/pipelines/:pipeline_id/pause', { schema: { tags, params: PipelineParams, body: ControlBody }, preHandler: kit.guard('pipeline:manage') }, async (request) => {
    await pipelines.pause(request.params.pipeline_id);
    return pipelines.progress(request.params.pipeline_id);
  });

  app.post('/pipelines/:pipeline_id/resume', { schema: { tags, params: PipelineParams, body: ControlBody }, preHandler: kit.guard('pipeline:manage') }, async (request) => {
    await pipelines.resume(request.params.pipeline_id);
    return pipelines.progress(request.params.pipeline_id);
  });

  app.post('/pipelines/:pipeline_id/stages/:stage/retry', { schema: { tags, params: StageParams }, preHandler: kit.guard('pipeline:manage') }, async (request) => {
    const { task_id } = await pipelines.retryStage(request.params.pipeline_id, request.params.stage);
    return { ...(await pipelines.progress(request.params.pipeline_id)), stage: request.params.stage, task_id };
  });
}
