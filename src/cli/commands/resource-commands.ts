/** `login`, `logout`, `whoami`, `agents …`, `tasks …`, `users …`, `audit …`: REST through the SDK client. */
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { McpClient } from '../../sdk/index.ts';
import type { Agent, AuditEntry, PublicUser, Role, Task, TaskStatus } from '../../sdk/index.ts';
import type { CreateTaskInput } from '../../contracts/tasks.ts';
import type { Kit } from '../command-kit.ts';
import { forgetLogin, saveLogin } from '../credentials.ts';
import { CliError, EXIT, emit, keyValues, parseIntOption, parseJsonOption, table, type Column } from '../output.ts';

const ROLES = ['worker', 'supervisor', 'admin', 'system'];
const FINAL = new Set(['completed', 'cancelled']);
const ago = (iso: string | null | undefined) => {
  if (!iso) return '-';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
};

/** Reads a line from the terminal without echoing it (passwords). */
async function prompt(question: string, hidden: boolean): Promise<string> {
  if (!process.stdin.isTTY) {
    // piped: first line of stdin
    const rl = createInterface({ input: process.stdin });
    for await (const line of rl) { rl.close(); return line; }
    return '';
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (hidden) {
    const r = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WritableStream };
    r._writeToOutput = (s: string) => { if (s.startsWith(question)) r.output.write(question); };
  }
  return new Promise((resolve) => rl.question(question, (a) => { rl.close(); if (hidden) process.stderr.write('\n'); resolve(a); }));
}

const TASK_COLUMNS: Array<Column<Task>> = [
  ['TASK_ID', (t) => t.task_id],
  ['TYPE', (t) => t.task_type, 28],
  ['STATUS', (t) => (t.dead_letter ? `${t.status}(dead)` : t.status)],
  ['PRIO', (t) => t.priority],
  ['AGENT', (t) => t.assigned_agent, 24],
  ['TRY', (t) => t.attempt],
  ['PROGRESS', (t) => `${Math.round(t.progress * 100)}%`],
  ['CREATED', (t) => ago(t.created_at)],
];

const AGENT_COLUMNS: Array<Column<Agent>> = [
  ['AGENT_ID', (a) => a.agent_id, 40],
  ['NAME', (a) => a.name, 28],
  ['TYPE', (a) => a.type],
  ['STATUS', (a) => (a.draining ? `${a.status}(draining)` : a.status)],
  ['LOAD', (a) => `${a.load}/${a.max_concurrent_tasks}`],
  ['SCORE', (a) => a.score.toFixed(2)],
  ['CAPABILITIES', (a) => a.capabilities, 48],
  ['HEARTBEAT', (a) => ago(a.last_heartbeat)],
];

async function waitForTask(client: McpClient, id: string, timeoutMs: number): Promise<Awaited<ReturnType<McpClient['tasks']['get']>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = await client.tasks.get(id);
    if (FINAL.has(t.status) || t.dead_letter) return t;
    if (Date.now() > deadline) throw new CliError(`task ${id} is still ${t.status} after ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function findUser(client: McpClient, idOrName: string): Promise<PublicUser> {
  const { users } = await client.users.list({ limit: 1000 });
  const u = users.find((x) => x.user_id === idOrName || x.username === idOrName);
  if (!u) throw new CliError(`no user '${idOrName}'`, EXIT.notFound);
  return u;
}

export function registerResourceCommands(program: Command, kit: Kit): void {
  // ---- login / logout / whoami ----------------------------------------------------------------
  program.command('login')
    .description('sign in and store the tokens in ~/.config/mcp/credentials.json (mode 0600)')
    .option('-u, --username <name>', 'user name (prompted when missing)')
    .option('-p, --password <password>', 'password (else MCP_PASSWORD, else prompted / first line of stdin)')
    .option('--totp <code>', 'TOTP code when MFA is on')
    .action(kit.action(async (ctx, _args, o) => {
      const username = (o.username as string | undefined) ?? await prompt('Username: ', false);
      const password = (o.password as string | undefined) ?? ctx.env.password ?? await prompt('Password: ', true);
      if (!username || !password) throw new CliError('a username and a password are required', EXIT.usage);
      const client = new McpClient({ url: ctx.url, userAgent: 'mcp-cli' });
      const r = await client.auth.login(username, password, o.totp as string | undefined);
      saveLogin(ctx.env.credentialsFile, ctx.url, { username: r.user.username, role: r.user.role, access_token: r.access_token, refresh_token: r.refresh_token, saved_at: new Date().toISOString() });
      emit(ctx.out, { url: ctx.url, user: r.user, credentials_file: ctx.env.credentialsFile, expires_in: r.expires_in },
        () => `Logged in to ${ctx.url} as ${r.user.username} (${r.user.role}). Credentials saved to ${ctx.env.credentialsFile}.`
          + (r.user.mfa_setup_required ? `\nNote: your role requires MFA; enrol with \`mcp mfa setup\` before ${r.user.mfa_setup_deadline ?? 'your grace period ends'}.` : ''));
    }));

  program.command('logout')
    .description('revoke the stored session and forget it')
    .action(kit.action(async (ctx) => {
      await ctx.client().auth.logout().catch(() => {});
      const had = forgetLogin(ctx.env.credentialsFile, ctx.url);
      emit(ctx.out, { url: ctx.url, forgotten: had }, () => (had ? `Logged out of ${ctx.url}.` : `No stored login for ${ctx.url}.`));
    }));

  program.command('whoami')
    .description('show who the stored credentials belong to')
    .action(kit.action(async (ctx) => {
      const me = await ctx.client().auth.me();
      emit(ctx.out, me, () => (me.type === 'user' ? `${me.user.username} (user, ${me.user.role}) at ${ctx.url}` : `${me.agent.agent_id} (agent, ${me.agent.role}) at ${ctx.url}`));
    }));

  const mfa = program.command('mfa').description('TOTP second factor for the logged-in user');
  mfa.command('setup')
    .description('start enrolment: prints the secret (and otpauth:// URL) for an authenticator app and one-time recovery codes')
    .action(kit.action(async (ctx) => {
      const s = await ctx.client().auth.mfaSetup();
      emit(ctx.out, s, () => [
        `Secret: ${s.secret}`, `URL:    ${s.otpauth_url}`,
        'Recovery codes (each works once; keep them offline):', ...s.recovery_codes.map((c) => `  ${c}`),
        'Add the secret to your authenticator app, then run `mcp mfa verify <code>`.',
      ].join('\n'));
    }));
  mfa.command('verify <code>')
    .description('finish enrolment with a current code from the app; later logins need --totp')
    .action(kit.action(async (ctx, [code]) => {
      const r = await ctx.client().auth.mfaVerify(code!);
      emit(ctx.out, r, () => 'MFA is on: log in with --totp <code> from now on.');
    }));

  // ---- agents ---------------------------------------------------------------------------------
  const agents = program.command('agents').description('registered agents');
  agents.command('ls').alias('list')
    .description('list agents')
    .option('--status <status>', 'active|busy|inactive|maintenance|error|offline')
    .option('--type <type>', 'agent type')
    .option('--capability <cap>', 'holding this capability')
    .option('--limit <n>', 'page size (1-1000)', '50')
    .option('--offset <n>', 'skip', '0')
    .action(kit.action(async (ctx, _a, o) => {
      const r = await ctx.client().agents.list({ status: o.status, type: o.type, capability: o.capability, limit: parseIntOption('--limit', o.limit, 1, 1000), offset: parseIntOption('--offset', o.offset, 0, 1e9) });
      emit(ctx.out, r, () => (r.agents.length ? `${table(r.agents, AGENT_COLUMNS)}\n${r.agents.length} of ${r.pagination.total}` : 'No agents.'));
    }));
  agents.command('show <agent_id>')
    .description('agent detail with current tasks and performance')
    .action(kit.action(async (ctx, [id]) => {
      const a = await ctx.client().agents.get(id!);
      emit(ctx.out, a, () => keyValues([
        ['agent_id', a.agent_id], ['name', a.name], ['type', a.type], ['role', a.role], ['status', a.status], ['draining', a.draining],
        ['version', a.version], ['capabilities', a.capabilities.join(', ')], ['load', `${a.load}/${a.max_concurrent_tasks}`], ['score', a.score],
        ['builtin', a.builtin], ['registered', a.registered_at], ['last heartbeat', a.last_heartbeat ? `${a.last_heartbeat} (${ago(a.last_heartbeat)})` : '-'],
        ['current tasks', a.current_tasks], ['performance', a.performance_metrics], ['tags', a.tags], ['metadata', a.metadata],
      ]));
    }));
  agents.command('drain <agent_id>')
    .description('stop new assignments to the agent; it finishes its current tasks')
    .action(kit.action(async (ctx, [id]) => {
      const r = await ctx.client().agents.drain(id!);
      emit(ctx.out, r, () => `Agent ${r.agent_id} is draining (status ${r.status}).`);
    }));
  agents.command('rm <agent_id>').alias('delete')
    .description('delete the agent: its credentials stop working and its leased tasks are re-queued')
    .action(kit.action(async (ctx, [id]) => {
      await ctx.client().agents.remove(id!);
      emit(ctx.out, { agent_id: id, deleted: true }, () => `Agent ${id} deleted.`);
    }));

  // ---- tasks ----------------------------------------------------------------------------------
  const tasks = program.command('tasks').description('tasks and the dead-letter queue');
  tasks.command('create')
    .description('create a task')
    .requiredOption('-t, --type <task_type>', 'task type, e.g. sentiment_analysis')
    .option('--params <json>', 'parameters as a JSON object')
    .option('--text <text>', 'shorthand for --params \'{"text": …}\'')
    .option('--priority <p>', '1-10 or critical|high|medium|low')
    .option('--capabilities <list>', 'required capabilities, comma-separated (default: from the task type)')
    .option('--timeout <seconds>', 'lease timeout (1-7200)')
    .option('--max-retries <n>', '0-10')
    .option('--classification <c>', 'public|internal|confidential|restricted|phi')
    .option('--strategy <s>', 'capability_match|round_robin|least_loaded|best_performance')
    .option('--idempotency-key <key>', 'Idempotency-Key header')
    .option('--wait', 'wait until the task finishes; exit 1 unless it completed')
    .option('--wait-timeout <seconds>', 'with --wait', '300')
    .action(kit.action(async (ctx, _a, o) => {
      const params = parseJsonOption('--params', o.params) ?? {};
      if (o.text !== undefined) params.text = o.text;
      const priority = o.priority === undefined ? undefined : /^\d+$/.test(o.priority) ? parseIntOption('--priority', o.priority, 1, 10) : o.priority;
      const body: CreateTaskInput = {
        task_type: o.type,
        parameters: params,
        ...(priority !== undefined ? { priority: priority as CreateTaskInput['priority'] } : {}),
        ...(o.capabilities ? { required_capabilities: String(o.capabilities).split(',').map((s) => s.trim()).filter(Boolean) } : {}),
        ...(o.timeout ? { timeout_seconds: parseIntOption('--timeout', o.timeout, 1, 7200) } : {}),
        ...(o.maxRetries !== undefined ? { max_retries: parseIntOption('--max-retries', o.maxRetries, 0, 10) } : {}),
        ...(o.classification ? { data_classification: o.classification } : {}),
        ...(o.strategy ? { strategy: o.strategy } : {}),
      };
      const client = ctx.client();
      const created = await client.tasks.create(body, { idempotencyKey: o.idempotencyKey });
      if (!o.wait) {
        emit(ctx.out, created, () => `Created task ${created.task_id} (queue position ${created.queue_position}).`);
        return;
      }
      const t = await waitForTask(client, created.task_id, (parseIntOption('--wait-timeout', o.waitTimeout, 1, 86400) ?? 300) * 1000);
      emit(ctx.out, t, () => `Task ${t.task_id} ${t.status}${t.dead_letter ? ' (dead-lettered)' : ''}${t.result !== undefined && t.result !== null ? `\n${JSON.stringify(t.result, null, 2)}` : ''}${t.error ? `\nerror: ${t.error.code}: ${t.error.message}` : ''}`);
      return t.status === 'completed' ? EXIT.ok : EXIT.failure;
    }));
  tasks.command('ls').alias('list')
    .description('list tasks (newest first)')
    .option('--status <status>', 'pending|assigned|running|completed|failed|timeout|retrying|cancelled')
    .option('--type <task_type>', 'task type')
    .option('--pipeline <pipeline_id>', 'tasks of a pipeline run')
    .option('--agent <agent_id>', 'tasks assigned to an agent')
    .option('--dead-letter', 'only dead-lettered tasks')
    .option('--sort <field:dir>', 'e.g. priority:desc', 'created_at:desc')
    .option('--limit <n>', 'page size (1-1000)', '50')
    .option('--offset <n>', 'skip', '0')
    .action(kit.action(async (ctx, _a, o) => {
      const r = await ctx.client().tasks.list({
        status: o.status as TaskStatus | undefined, task_type: o.type, pipeline_id: o.pipeline, agent_id: o.agent, dead_letter: o.deadLetter ? true : undefined, sort: o.sort,
        limit: parseIntOption('--limit', o.limit, 1, 1000), offset: parseIntOption('--offset', o.offset, 0, 1e9),
      });
      emit(ctx.out, r, () => (r.tasks.length ? `${table(r.tasks, TASK_COLUMNS)}\n${r.tasks.length} of ${r.pagination.total}` : 'No tasks.'));
    }));
  tasks.command('show <task_id>')
    .description('task detail: status, attempt, result or error, history')
    .action(kit.action(async (ctx, [id]) => {
      const t = await ctx.client().tasks.get(id!);
      emit(ctx.out, t, () => [
        keyValues([
          ['task_id', t.task_id], ['type', t.task_type], ['status', t.status], ['dead letter', t.dead_letter], ['priority', t.priority],
          ['capabilities', t.required_capabilities.join(', ')], ['agent', t.assigned_agent], ['attempt', `${t.attempt} (max retries ${t.max_retries})`],
          ['progress', `${Math.round(t.progress * 100)}%${t.progress_message ? ` — ${t.progress_message}` : ''}`], ['pipeline', t.pipeline_id ? `${t.pipeline_id} / ${t.stage}` : '-'],
          ['created', t.created_at], ['completed', t.completed_at], ['error', t.error ? `${t.error.code}: ${t.error.message}` : '-'],
        ]),
        '', 'parameters:', JSON.stringify(t.parameters, null, 2),
        ...(t.result !== undefined && t.result !== null ? ['', 'result:', JSON.stringify(t.result, null, 2)] : []),
        '', 'history:', table(t.history, [['FROM', (h) => h.from_status], ['TO', (h) => h.to_status], ['AT', (h) => h.at], ['TRY', (h) => h.attempt], ['AGENT', (h) => h.agent_id, 24], ['REASON', (h) => h.reason, 60]]),
      ].join('\n'));
    }));
  tasks.command('cancel <task_id>')
    .description('cancel a task (a running agent receives task:cancel)')
    .option('--reason <text>', 'why')
    .action(kit.action(async (ctx, [id], o) => {
      const t = await ctx.client().tasks.cancel(id!, o.reason);
      emit(ctx.out, t, () => `Task ${id} ${t.status ?? 'cancelled'}.`);
    }));
  tasks.command('retry <task_id>')
    .description('re-queue a failed or dead-lettered task')
    .action(kit.action(async (ctx, [id]) => {
      const t = await ctx.client().tasks.retry(id!);
      emit(ctx.out, t, () => `Task ${id} re-queued (${t.status ?? 'pending'}).`);
    }));
  tasks.command('dead-letter')
    .description('tasks that exhausted their retries')
    .option('--limit <n>', 'page size (1-1000)', '50')
    .action(kit.action(async (ctx, _a, o) => {
      const r = await ctx.client().tasks.deadLetter({ limit: parseIntOption('--limit', o.limit, 1, 1000) });
      emit(ctx.out, r, () => (r.tasks.length ? table(r.tasks, [...TASK_COLUMNS.slice(0, 2), ['ERROR', (t) => (t.error ? `${t.error.code}: ${t.error.message}` : '-'), 60]]) : 'The dead-letter queue is empty.'));
    }));

  // ---- users ----------------------------------------------------------------------------------
  const users = program.command('users').description('user accounts (admin)');
  users.command('add <username>')
    .description('create a user')
    .requiredOption('--role <role>', ROLES.join('|'))
    .option('-p, --password <password>', 'initial password (≥ 12 chars; else prompted / first line of stdin)')
    .action(kit.action(async (ctx, [username], o) => {
      if (!ROLES.includes(o.role)) throw new CliError(`--role must be one of ${ROLES.join(', ')}`, EXIT.usage);
      const password = (o.password as string | undefined) ?? await prompt('Password for the new user: ', true);
      const u = await ctx.client().users.create({ username: username!, password, role: o.role as Role });
      emit(ctx.out, u, () => `Created user ${u.username} (${u.role}), id ${u.user_id}.`);
    }));
  users.command('ls').alias('list')
    .description('list users')
    .option('--limit <n>', 'page size (1-1000)', '50')
    .option('--offset <n>', 'skip', '0')
    .action(kit.action(async (ctx, _a, o) => {
      const r = await ctx.client().users.list({ limit: parseIntOption('--limit', o.limit, 1, 1000), offset: parseIntOption('--offset', o.offset, 0, 1e9) });
      emit(ctx.out, r, () => table(r.users, [['USER_ID', (u) => u.user_id], ['USERNAME', (u) => u.username, 32], ['ROLE', (u) => u.role], ['DISABLED', (u) => u.disabled], ['MFA', (u) => u.mfa_enabled], ['CREATED', (u) => ago(u.created_at)]]));
    }));
  users.command('disable <user>')
    .description('disable a user (by id or username): its tokens stop working, its sockets are closed')
    .option('--enable', 'enable it again instead')
    .action(kit.action(async (ctx, [who], o) => {
      const client = ctx.client();
      const u = await findUser(client, who!);
      const after = await client.users.update(u.user_id, { disabled: !o.enable });
      emit(ctx.out, after, () => `User ${after.username} ${after.disabled ? 'disabled' : 'enabled'}.`);
    }));

  // ---- audit ----------------------------------------------------------------------------------
  const audit = program.command('audit').description('the append-only audit log');
  audit.command('ls').alias('list')
    .description('list audit entries (newest first)')
    .option('--actor <id>', 'actor id')
    .option('--actor-type <t>', 'user|agent|system|anonymous')
    .option('--action <a>', 'e.g. read, login, export')
    .option('--resource-type <t>', 'e.g. task, pipeline')
    .option('--resource-id <id>', 'resource id')
    .option('--outcome <o>', 'success|failure|denied')
    .option('--from <iso>', 'from timestamp')
    .option('--to <iso>', 'to timestamp')
    .option('--limit <n>', 'page size (1-1000)', '50')
    .option('--offset <n>', 'skip', '0')
    .action(kit.action(async (ctx, _a, o) => {
      const r = await ctx.client().audit.list({
        actor: o.actor, actor_type: o.actorType, action: o.action, resource_type: o.resourceType, resource_id: o.resourceId, outcome: o.outcome, from: o.from, to: o.to,
        limit: parseIntOption('--limit', o.limit, 1, 1000), offset: parseIntOption('--offset', o.offset, 0, 1e9),
      });
      emit(ctx.out, r, () => (r.entries.length ? `${table<AuditEntry>(r.entries, [
        ['TIME', (e) => e.timestamp], ['ACTOR', (e) => `${e.actor.type}:${e.actor.id ?? '-'}`, 40], ['ACTION', (e) => e.action], ['RESOURCE', (e) => `${e.resource_type}${e.resource_id ? `/${e.resource_id}` : ''}`, 56],
        ['OUTCOME', (e) => e.outcome], ['RISK', (e) => e.risk_level],
      ])}\n${r.entries.length} of ${r.pagination.total}` : 'No audit entries.'));
    }));
  audit.command('verify')
    .description('verify the hash chain; exit 1 when a link is broken')
    .action(kit.action(async (ctx) => {
      const r = await ctx.client().audit.verify();
      emit(ctx.out, r, () => (r.ok ? `Audit chain intact (${r.checked ?? '?'} entries checked).` : `Audit chain BROKEN: ${JSON.stringify(r.first_broken ?? r)}`));
      return r.ok ? EXIT.ok : EXIT.failure;
    }));
}
