/**
 * `mcp agent run`: a worker agent process built on the SDK. Its handlers are the local analysers
 * (src/ai via the pipeline stage handlers: sentiment, emotions, bias, PII, empathy, every pipeline
 * stage), so a remote worker can take any built-in task type off the server's hands.
 */
import type { Command } from 'commander';
import type { TaskHandler } from '../../sdk/index.ts';
import type { Kit } from '../command-kit.ts';
import { saveAgentNote } from './agent-note.ts';
import { CliError, EXIT, parseIntOption } from '../output.ts';

/** The task types the example worker handles by default (standalone analyses). */
export const DEFAULT_WORKER_TYPES = ['sentiment_analysis', 'emotion_analysis', 'bias_detection', 'pii_detection', 'empathy_scoring', 'text_preprocessing'];

/** SDK handlers over the local analysers, for the given task types. */
export async function localHandlers(taskTypes: readonly string[]): Promise<Record<string, TaskHandler>> {
  // loaded lazily: the analysers (NLP libraries) take seconds to import
  const { LOCAL_STAGE_HANDLERS } = await import('../../pipelines/index.ts');
  const out: Record<string, TaskHandler> = {};
  for (const type of taskTypes) {
    const stage = LOCAL_STAGE_HANDLERS[type];
    if (!stage) throw new CliError(`no local handler for task type '${type}' (known: ${Object.keys(LOCAL_STAGE_HANDLERS).join(', ')})`, EXIT.usage);
    out[type] = async (task, ctx) => {
      if (ctx.signal.aborted) throw ctx.signal.reason as Error;
      // StageFailure carries {code, retryable: false} for bad input: the SDK reports it non-retryable.
      return stage({ task_type: task.task_type, parameters: (task.parameters ?? {}) as Record<string, unknown>, reportProgress: (p: number) => void ctx.progress(p) });
    };
  }
  return out;
}

export function registerAgentRunCommand(program: Command, kit: Kit): void {
  const agent = program.command('agent').description('run a worker agent process');
  agent.command('run')
    .description('start a worker agent (SDK + local analysers) until SIGTERM/SIGINT, then drain and exit')
    .option('--agent-id <id>', 'agent id (else MCP_AGENT_ID)')
    .option('--api-key <key>', 'API key (else MCP_AGENT_KEY)')
    .option('--register', 'register a new agent first, with the stored login (needs agent:register); prints its API key once')
    .option('--types <list>', 'task types to handle, comma-separated', DEFAULT_WORKER_TYPES.join(','))
    .option('--concurrency <n>', 'tasks at once (1-1000)', '4')
    .option('--ws-url <url>', 'Socket.IO base URL when not the API URL (e.g. http://host:8081)')
    .option('--heartbeat <seconds>', 'heartbeat interval', '30')
    .action(kit.action(async (ctx, _a, o) => {
      const types = String(o.types).split(',').map((s) => s.trim()).filter(Boolean);
      const handlers = await localHandlers(types);
      const concurrency = parseIntOption('--concurrency', o.concurrency, 1, 1000)!;
      let agentId = (o.agentId as string | undefined) ?? ctx.env.agentId;
      let apiKey = (o.apiKey as string | undefined) ?? ctx.env.agentKey;
      if (o.register) {
        const { TASK_TYPE_CAPABILITIES } = await import('../../contracts/tasks.ts');
        const capabilities = [...new Set(types.map((t) => TASK_TYPE_CAPABILITIES[t] ?? t))];
        const reg = await ctx.client().agents.register({
          ...(agentId ? { agent_id: agentId } : {}), name: `mcp agent run (${types.join(', ')})`.slice(0, 100), type: 'general', capabilities, version: '1.0.0',
          max_concurrent_tasks: concurrency, tags: ['cli-worker'],
        });
        agentId = reg.agent_id;
        apiKey = reg.api_key;
        saveAgentNote(ctx, reg.agent_id, reg.api_key);
      }
      if (!agentId || !apiKey) throw new CliError('agent credentials are required: --agent-id and --api-key (or MCP_AGENT_ID / MCP_AGENT_KEY), or --register', EXIT.usage);

      const log = (level: string, message: string, meta?: Record<string, unknown>) => {
        if (ctx.out.json) ctx.out.stderr(JSON.stringify({ time: new Date().toISOString(), level, message, ...meta }));
        else ctx.out.stderr(`${new Date().toISOString()} ${level.padEnd(5)} ${message}${meta && Object.keys(meta).length ? ` ${JSON.stringify(meta)}` : ''}`);
      };
      const { McpAgent } = await import('../../sdk/index.ts');
      const worker = new McpAgent({
        url: ctx.url, wsUrl: o.wsUrl, agentId, apiKey, handlers, concurrency, handleSignals: true,
        heartbeatIntervalMs: (parseIntOption('--heartbeat', o.heartbeat, 1, 3600) ?? 30) * 1000,
        logger: { info: (m, meta) => log('info', m, meta), warn: (m, meta) => log('warn', m, meta), error: (m, meta) => log('error', m, meta) },
      });
      worker.on('task', (t) => log('info', 'task received', { task_id: t.task_id, task_type: t.task_type, attempt: t.attempt }));
      worker.on('completed', (e) => log('info', 'task completed', { task_id: e.task.task_id, duration_ms: e.duration_ms }));
      worker.on('failed', (e) => log('warn', 'task failed', { task_id: e.task.task_id, code: e.error.code, retryable: e.error.retryable, duration_ms: e.duration_ms }));
      worker.on('error', () => {}); // already logged by the SDK logger
      const stopped = new Promise<void>((resolve) => worker.once('stopped', () => resolve()));
      await worker.start();
      log('info', 'agent running', { agent_id: agentId, url: ctx.url, types, concurrency });
      await stopped;
      log('info', 'agent stopped', { agent_id: agentId });
    }));
}
