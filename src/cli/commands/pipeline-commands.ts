/** `pipelines run|ls|show|watch`: runs over REST; `watch` draws per-stage progress bars from Socket.IO events + REST re-reads. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { McpClient, PipelineDetail, CreatePipelineInput } from '../../sdk/index.ts';
import type { Kit } from '../command-kit.ts';
import type { CliContext } from '../cli-context.ts';
import { CliError, EXIT, bar, emit, keyValues, parseIntOption, parseJsonOption, table } from '../output.ts';

const TERMINAL = new Set(['completed', 'partially_completed', 'failed', 'cancelled']);
const FORMATS = ['text', 'json', 'jsonl', 'csv'] as const;

function inputData(o: Record<string, string | undefined>): CreatePipelineInput['input_data'] {
  if (o.text !== undefined && o.file !== undefined) throw new CliError('give --text or --file, not both', EXIT.usage);
  if (o.format !== undefined && !(FORMATS as readonly string[]).includes(o.format)) throw new CliError(`--format must be one of ${FORMATS.join(', ')}`, EXIT.usage);
  if (o.text !== undefined) return o.format ? { format: o.format as (typeof FORMATS)[number], content: o.text } : { text: o.text };
  if (o.file === undefined) throw new CliError('the input is required: --text <text> or --file <path>', EXIT.usage);
  let content: string;
  try {
    content = o.file === '-' ? readFileSync(0, 'utf8') : readFileSync(o.file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${o.file}: ${(err as Error).message}`, EXIT.usage);
  }
  const ext = path.extname(o.file).slice(1).toLowerCase();
  const format = (o.format ?? ((FORMATS as readonly string[]).includes(ext) ? ext : ext === 'txt' ? 'text' : undefined)) as (typeof FORMATS)[number] | undefined;
  return format ? { format, content } : { content };
}

function renderRun(p: PipelineDetail): string {
  const w = Math.max(5, ...p.stages.map((s) => s.stage.length));
  const lines = [`${p.name || p.template} ${p.pipeline_id}  ${p.status}  ${bar(p.progress, 30)}`];
  for (const s of p.stages) {
    const err = s.error ? `  ${typeof s.error === 'object' ? ((s.error as { message?: string }).message ?? JSON.stringify(s.error)) : JSON.stringify(s.error)}` : '';
    lines.push(`  ${s.stage.padEnd(w)}  ${bar(s.progress)}  ${s.status}${err.slice(0, 100)}`);
  }
  return lines.join('\n');
}

/**
 * Follows a run until it reaches a final status: subscribes to `{pipeline_id}` over Socket.IO
 * and re-reads the run over REST on every event (and every `pollMs` as a safety net, so missed
 * events or a dropped socket only delay the picture). Redraws in place on a terminal; prints a
 * line per change otherwise. Resolves with the final detail.
 */
export async function watchPipeline(ctx: CliContext, client: McpClient, id: string, opts: { pollMs?: number; timeoutMs?: number } = {}): Promise<PipelineDetail> {
  const tty = process.stdout.isTTY && !ctx.out.json;
  let last = '';
  let drawnLines = 0;
  const draw = (p: PipelineDetail) => {
    const text = renderRun(p);
    if (text === last) return;
    last = text;
    if (ctx.out.json) { ctx.out.stdout(JSON.stringify({ pipeline_id: p.pipeline_id, status: p.status, progress: p.progress, stages: p.stages.map((s) => ({ stage: s.stage, status: s.status, progress: s.progress })) })); return; }
    if (tty && drawnLines) process.stdout.write(`\x1b[${drawnLines}A\x1b[0J`);
    process.stdout.write(`${text}\n`);
    drawnLines = text.split('\n').length;
  };

  let current = await client.pipelines.get(id);
  draw(current);
  if (TERMINAL.has(current.status)) return current;

  const { io } = await import('socket.io-client');
  const socket = io(`${client.baseUrl}/mcp/ws`, { auth: (cb) => cb({ token: client.token ?? '' }), transports: ['websocket'], reconnection: true, reconnectionDelay: 500, reconnectionDelayMax: 5000 });
  socket.on('connect', () => { socket.emit('subscribe', { pipeline_id: id }, () => {}); });
  let timer: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  try {
    current = await new Promise<PipelineDetail>((resolve, reject) => {
      let reading = false;
      let again = false;
      const reread = () => {
        if (reading) { again = true; return; }
        reading = true;
        client.pipelines.get(id).then((p) => {
          current = p;
          draw(p);
          if (TERMINAL.has(p.status)) resolve(p);
        }, reject).finally(() => {
          reading = false;
          if (again) { again = false; reread(); }
        });
      };
      const soon = () => { if (timer) clearTimeout(timer); timer = setTimeout(reread, 50); };
      socket.onAny((name: string, payload: { pipeline_id?: string }) => {
        if ((name.startsWith('pipeline:') || name.startsWith('task:')) && (!payload?.pipeline_id || payload.pipeline_id === id)) soon();
      });
      poll = setInterval(reread, opts.pollMs ?? 2000);
      if (opts.timeoutMs) deadline = setTimeout(() => reject(new CliError(`the run is still ${current.status} after ${Math.round(opts.timeoutMs! / 1000)} s`)), opts.timeoutMs);
      reread();
    });
  } finally {
    if (timer) clearTimeout(timer);
    if (poll) clearInterval(poll);
    if (deadline) clearTimeout(deadline);
    socket.close();
  }
  return current;
}

export function registerPipelineCommands(program: Command, kit: Kit): void {
  const pipelines = program.command('pipelines').description('analysis pipeline runs');

  pipelines.command('run')
    .description('start a run (template techdeck by default)')
    .option('--template <name>', 'techdeck | mental_health_analysis | a custom template', 'techdeck')
    .option('--text <text>', 'the input text (a transcript)')
    .option('--file <path>', 'read the input from a file (- for stdin); format from the extension')
    .option('--format <f>', 'text|json|jsonl|csv')
    .option('--name <name>', 'run name')
    .option('--context <json>', 'context object, e.g. {"session_type":"individual"}')
    .option('--params <json>', 'parameters object')
    .option('--priority <p>', '1-10')
    .option('--error-strategy <s>', 'stop|continue')
    .option('--idempotency-key <key>', 'Idempotency-Key header')
    .option('-w, --watch', 'follow the run with progress bars; exit 1 unless it completed')
    .option('--timeout <seconds>', 'with --watch: give up after this long', '600')
    .action(kit.action(async (ctx, _a, o) => {
      const body: CreatePipelineInput = {
        template: o.template,
        input_data: inputData(o),
        ...(o.name ? { name: o.name } : {}),
        ...(o.context ? { context: parseJsonOption('--context', o.context) } : {}),
        ...(o.params ? { parameters: parseJsonOption('--params', o.params) } : {}),
        ...(o.priority ? { priority: parseIntOption('--priority', o.priority, 1, 10) } : {}),
        ...(o.errorStrategy ? { error_strategy: o.errorStrategy } : {}),
      };
      const client = ctx.client();
      const created = await client.pipelines.create(body, { idempotencyKey: o.idempotencyKey });
      if (!o.watch) {
        emit(ctx.out, created, () => `Started pipeline ${created.pipeline_id} (${created.status}). Follow it with: mcp pipelines watch ${created.pipeline_id}`);
        return;
      }
      const final = await watchPipeline(ctx, client, created.pipeline_id, { timeoutMs: (parseIntOption('--timeout', o.timeout, 1, 86400) ?? 600) * 1000 });
      if (!ctx.out.json) ctx.out.stdout(`Pipeline ${final.pipeline_id} ${final.status}.`);
      return final.status === 'completed' ? EXIT.ok : EXIT.failure;
    }));

  pipelines.command('ls').alias('list')
    .description('list runs')
    .option('--status <s>', 'created|running|paused|completed|partially_completed|failed|cancelled')
    .option('--template <name>', 'template')
    .option('--limit <n>', 'page size (1-1000)', '50')
    .option('--offset <n>', 'skip', '0')
    .action(kit.action(async (ctx, _a, o) => {
      const r = await ctx.client().pipelines.list({ status: o.status, template: o.template, limit: parseIntOption('--limit', o.limit, 1, 1000), offset: parseIntOption('--offset', o.offset, 0, 1e9) });
      emit(ctx.out, r, () => (r.pipelines.length ? `${table(r.pipelines, [
        ['PIPELINE_ID', (p) => p.pipeline_id], ['NAME', (p) => p.name, 30], ['TEMPLATE', (p) => p.template], ['STATUS', (p) => p.status],
        ['PROGRESS', (p) => `${Math.round(p.progress * 100)}%`], ['CREATED', (p) => p.created_at],
      ])}\n${r.pipelines.length} of ${r.pagination.total}` : 'No pipeline runs.'));
    }));

  pipelines.command('show <pipeline_id>')
    .description('run detail with its stages')
    .option('--output', 'also print the exported output (JSON)')
    .action(kit.action(async (ctx, [id], o) => {
      const p = await ctx.client().pipelines.get(id!);
      emit(ctx.out, p, () => [
        keyValues([['pipeline_id', p.pipeline_id], ['name', p.name], ['template', p.template], ['status', p.status], ['progress', bar(p.progress)], ['current stage', p.current_stage],
          ['created', p.created_at], ['completed', p.completed_at], ['error', p.error]]),
        '',
        table(p.stages, [['STAGE', (s) => s.stage], ['STATUS', (s) => s.status], ['PROGRESS', (s) => bar(s.progress, 16)], ['TASK', (s) => s.task_id], ['RUNS', (s) => s.runs], ['ERROR', (s) => s.error, 60]]),
        ...(o.output && p.output !== undefined ? ['', 'output:', JSON.stringify(p.output, null, 2)] : []),
      ].join('\n'));
    }));

  pipelines.command('watch <pipeline_id>')
    .description('live per-stage progress bars until the run finishes; exit 1 unless it completed')
    .option('--timeout <seconds>', 'give up after this long', '600')
    .action(kit.action(async (ctx, [id], o) => {
      const final = await watchPipeline(ctx, ctx.client(), id!, { timeoutMs: (parseIntOption('--timeout', o.timeout, 1, 86400) ?? 600) * 1000 });
      if (!ctx.out.json) ctx.out.stdout(`Pipeline ${final.pipeline_id} ${final.status}.`);
      return final.status === 'completed' ? EXIT.ok : EXIT.failure;
    }));
}
