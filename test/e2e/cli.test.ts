/**
 * The `mcp` CLI end to end: `node bin/mcp.mjs …` child processes against a real server
 * (exit codes, --json output, stored credentials, pipelines watch, agent run, keys rotate).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, registerAgent, startTestServer, waitFor, type TestServer } from '../helpers/server.ts';
import { generateTotp } from '../../src/security/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/mcp.mjs');

interface Result { code: number | null; stdout: string; stderr: string }

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MCP_') && k !== 'DATABASE_URL' && k !== 'REDIS_URL' && k !== 'NODE_OPTIONS') env[k] = v;
  return { ...env, MCP_LOG_LEVEL: 'silent', ...extra };
}

function mcp(args: string[], env: Record<string, string>, input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: cleanEnv(env) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

// Every command is a fresh Node process (tsx start-up, and PGlite for the server-side ones): slow on a loaded machine.
describe('mcp CLI against a running server', { timeout: 180_000 }, () => {
  let t: TestServer;
  let home: string;
  let env: Record<string, string>;
  /** With MCP_TOKEN: the tests below the login test do not depend on it (stored credentials are tested there). */
  let authed: Record<string, string>;

  beforeAll(async () => {
    t = await startTestServer({ 'limits.default_per_min': 100000, 'limits.task_create_per_min': 100000, 'limits.register_per_min': 100000 });
    home = mkdtempSync(path.join(os.tmpdir(), 'mcp-cli-'));
    env = { HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), MCP_URL: t.url };
    authed = { ...env, XDG_CONFIG_HOME: path.join(home, 'token-only'), MCP_TOKEN: t.adminToken };
  });
  afterAll(async () => {
    await t?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('without a login, REST commands exit 4; usage errors exit 2', async () => {
    const r = await mcp(['tasks', 'ls'], env);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('MISSING_AUTHENTICATION');
    expect((await mcp(['frobnicate'], env)).code).toBe(2);
    expect((await mcp(['tasks', 'ls', '--no-such-option'], env)).code).toBe(2);
    expect((await mcp(['tasks', 'create'], env)).code).toBe(2); // --type is required
    const busy = await mcp(['migrate'], { ...env, MCP_PORT: String(t.server.port), MCP_DATA_DIR: path.join(home, 'data') });
    expect(busy.code).toBe(2);
    expect(busy.stderr).toContain('stop the server first');
    const help = await mcp(['--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Exit codes:[\s\S]*3 {2}not found[\s\S]*4 {2}authentication/);
  });

  it('login stores the tokens in ~/.config/mcp/credentials.json with mode 0600', async () => {
    const bad = await mcp(['login', '-u', 'admin', '-p', 'wrong-password-123'], env);
    expect(bad.code).toBe(4);
    expect(bad.stderr).toContain('INVALID_CREDENTIALS');
    const r = await mcp(['login', '-u', 'admin'], env, `${ADMIN_PASSWORD}\n`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Logged in');
    const file = path.join(home, '.config/mcp/credentials.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const creds = JSON.parse(readFileSync(file, 'utf8'));
    expect(creds.current).toBe(t.url);
    expect(creds.servers[t.url]).toMatchObject({ username: 'admin', role: 'admin' });
    expect(creds.servers[t.url].access_token.split('.')).toHaveLength(3);
    expect(JSON.stringify(creds)).not.toContain(ADMIN_PASSWORD);
    const who = await mcp(['whoami', '--json'], env);
    expect(JSON.parse(who.stdout)).toMatchObject({ type: 'user', user: { username: 'admin' } });
  });

  it('tasks create + tasks ls --json + tasks show; an unknown task exits 3', async () => {
    const c = await mcp(['tasks', 'create', '--type', 'cli_job', '--capabilities', 'cli_cap', '--params', '{"text":"hello"}', '--priority', 'high', '--json'], authed);
    expect(c.code).toBe(0);
    const created = JSON.parse(c.stdout);
    expect(created).toMatchObject({ status: 'pending' });
    const ls = await mcp(['tasks', 'ls', '--type', 'cli_job', '--json'], authed);
    expect(ls.code).toBe(0);
    const listed = JSON.parse(ls.stdout);
    expect(listed.tasks.map((x: { task_id: string }) => x.task_id)).toEqual([created.task_id]);
    expect(listed.tasks[0]).toMatchObject({ task_type: 'cli_job', priority: 8, required_capabilities: ['cli_cap'] });
    const table = await mcp(['tasks', 'ls', '--type', 'cli_job'], authed);
    expect(table.stdout.split('\n')[0]).toMatch(/^TASK_ID\s+TYPE\s+STATUS/);
    expect(table.stdout).toContain(created.task_id);
    const show = await mcp(['tasks', 'show', created.task_id], authed);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('"text": "hello"');

    const missing = await mcp(['tasks', 'show', '0190a0b0-0000-7000-8000-000000000000'], authed);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('TASK_NOT_FOUND');
    const missingJson = await mcp(['--json', 'agents', 'show', 'no-such-agent'], authed);
    expect(missingJson.code).toBe(3);
    expect(JSON.parse(missingJson.stderr)).toMatchObject({ error: { code: 'AGENT_NOT_FOUND', status: 404 }, exit_code: 3 });
    const badJson = await mcp(['tasks', 'create', '--type', 'x', '--params', '{oops'], authed);
    expect(badJson.code).toBe(2);

    const cancel = await mcp(['tasks', 'cancel', created.task_id, '--json'], authed);
    expect(cancel.code).toBe(0);
    expect(JSON.parse(cancel.stdout).status).toBe('cancelled');
  });

  it('agents ls shows registered agents; drain and rm work', async () => {
    await registerAgent(t, { agent_id: 'cli-listed-agent', capabilities: ['cli_cap'] });
    const r = await mcp(['agents', 'ls'], authed);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^AGENT_ID\s+NAME\s+TYPE\s+STATUS/);
    expect(r.stdout).toContain('cli-listed-agent');
    expect(r.stdout).toContain('builtin-local');
    expect((await mcp(['agents', 'drain', 'cli-listed-agent'], authed)).code).toBe(0);
    expect((await t.api('GET', '/api/v1/agents/cli-listed-agent', { token: t.adminToken })).body.draining).toBe(true);
    expect((await mcp(['agents', 'rm', 'cli-listed-agent'], authed)).code).toBe(0);
    expect((await mcp(['agents', 'show', 'cli-listed-agent'], authed)).code).toBe(3);
  });

  it('users add / ls / disable, audit ls / verify', async () => {
    const add = await mcp(['users', 'add', 'cli-supervisor', '--role', 'supervisor', '-p', 'a-long-password-1', '--json'], authed);
    expect(add.code).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ username: 'cli-supervisor', role: 'supervisor', disabled: false });
    const ls = await mcp(['users', 'ls'], authed);
    expect(ls.stdout).toMatch(/cli-supervisor\s+supervisor\s+false/);
    const dis = await mcp(['users', 'disable', 'cli-supervisor', '--json'], authed);
    expect(dis.code).toBe(0);
    expect(JSON.parse(dis.stdout).disabled).toBe(true);
    const login = await mcp(['--json', 'login', '-u', 'cli-supervisor', '-p', 'a-long-password-1'], { ...env, XDG_CONFIG_HOME: path.join(home, 'other') });
    expect(login.code).toBe(4);

    const audit = await mcp(['audit', 'ls', '--action', 'login', '--json'], authed);
    expect(audit.code).toBe(0);
    expect(JSON.parse(audit.stdout).entries.length).toBeGreaterThan(0);
    const verify = await mcp(['audit', 'verify'], authed);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain('intact');
  });

  it('mfa setup prints the secret and recovery codes; mfa verify turns MFA on, after which login needs --totp', async () => {
    const me = { ...env, XDG_CONFIG_HOME: path.join(home, 'mfa-user') };
    expect((await mcp(['users', 'add', 'cli-mfa', '--role', 'worker', '-p', 'a-long-password-2'], authed)).code).toBe(0);
    expect((await mcp(['login', '-u', 'cli-mfa', '-p', 'a-long-password-2'], me)).code).toBe(0);
    const setup = await mcp(['mfa', 'setup', '--json'], me);
    expect(setup.code).toBe(0);
    const { secret, recovery_codes } = JSON.parse(setup.stdout) as { secret: string; recovery_codes: string[] };
    expect(recovery_codes).toHaveLength(10);
    const wrong = await mcp(['mfa', 'verify', '000000'], me);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('INVALID_PARAMETERS');
    const ok = await mcp(['mfa', 'verify', generateTotp(secret, Date.now())], me);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('MFA is on');
    const noCode = await mcp(['login', '-u', 'cli-mfa', '-p', 'a-long-password-2'], me);
    expect(noCode.code).toBe(4);
    expect(noCode.stderr).toContain('MFA_REQUIRED');
    expect((await mcp(['login', '-u', 'cli-mfa', '-p', 'a-long-password-2', '--totp', recovery_codes[0]!], me)).code).toBe(0);
  });

  it('pipelines run --watch draws per-stage bars and exits 0 when the run completes', async () => {
    const transcript = 'Therapist: How have you been feeling this week?\nClient: A bit anxious, but better than last week.\nTherapist: That sounds like progress.';
    const r = await mcp(['pipelines', 'run', '--text', transcript, '--name', 'cli-run', '--watch', '--timeout', '150'], authed);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const stage of ['ingestion', 'standardization', 'validation', 'processing', 'quality_assessment', 'export']) expect(r.stdout).toMatch(new RegExp(`${stage}\\s+\\[#{24}\\] 100%\\s+completed`));
    expect(r.stdout).toMatch(/completed\.\s*$/);
    const ls = await mcp(['pipelines', 'ls', '--json'], authed);
    const run = JSON.parse(ls.stdout).pipelines.find((p: { name: string }) => p.name === 'cli-run');
    expect(run).toMatchObject({ status: 'completed', progress: 1 });
    const show = await mcp(['pipelines', 'show', run.pipeline_id], authed);
    expect(show.stdout).toMatch(/status:\s+completed/);
    expect((await mcp(['pipelines', 'watch', '0190a0b0-0000-7000-8000-000000000000'], authed)).code).toBe(3);
  });

  it('agent run --register starts an SDK worker that takes work and drains on SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'agent', 'run', '--register', '--agent-id', 'cli-worker', '--types', 'sentiment_analysis', '--concurrency', '2'], { cwd: ROOT, env: cleanEnv(authed) });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      await waitFor(() => stderr.includes('agent running') || child.exitCode !== null, 120_000);
      expect(stderr).toContain('agent running');
      expect(stderr).toMatch(/MCP_AGENT_ID=cli-worker MCP_AGENT_KEY=\S+/);
      const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'sentiment_analysis', parameters: { text: 'I feel wonderful and grateful today.' } } });
      const id = created.body.task_id as string;
      const done = await waitFor(async () => { const x = (await t.api('GET', `/api/v1/tasks/${id}`, { token: t.adminToken })).body; return x.status === 'completed' && x; }, 60_000);
      expect(done.assigned_agent).toBe('cli-worker');
      expect(done.result.label).toBe('positive');
      expect(done.result.compound).toBeGreaterThan(0.5);
      // The agent logs once the server acknowledged its result, which may land after the read above.
      await waitFor(() => stderr.includes('task completed'), 10_000);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toContain('agent stopped');
    expect((await t.api('GET', '/api/v1/agents/cli-worker', { token: t.adminToken })).body.draining).toBe(true);
  });
});

describe('mcp CLI server-side commands', { timeout: 300_000 }, () => {
  it('migrate, keys rotate --signing and config print (secrets redacted) on a data directory', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-cli-data-'));
    try {
      const env = { HOME: dir, MCP_DATA_DIR: dir, MCP_PORT: '1' }; // port 1: no server there, so the store-in-use check passes
      const m = await mcp(['migrate', '--json'], env);
      expect(m.code).toBe(0);
      expect(JSON.parse(m.stdout)).toMatchObject({ store: 'pglite' });
      expect(JSON.parse(m.stdout).applied.length).toBeGreaterThan(0);
      const again = await mcp(['migrate', '--json'], env);
      expect(JSON.parse(again.stdout).applied).toEqual([]);
      const k = await mcp(['keys', 'rotate', '--signing', '--json'], env);
      expect(k.stderr).toBe('');
      expect(k.code).toBe(0);
      const r = JSON.parse(k.stdout);
      expect(r.field).toBeNull();
      expect(r.signing.kid).toMatch(/\S{8,}/);
      const f = JSON.parse((await mcp(['keys', 'rotate', '--json'], env)).stdout);
      expect(f.field).toMatchObject({ kid: 'k2', version: 2 });

      const cfg = await mcp(['config', 'print', '--json'], { ...env, MCP_PASSWORD_PEPPER: 'pepper-value-that-is-secret' });
      expect(cfg.code).toBe(0);
      const rows = JSON.parse(cfg.stdout) as Array<{ env: string; value: unknown }>;
      expect(rows.find((x) => x.env === 'MCP_PASSWORD_PEPPER')?.value).toBe('[REDACTED]');
      expect(rows.find((x) => x.env === 'MCP_DATA_DIR')?.value).toBe(dir);
      expect(cfg.stdout).not.toContain('pepper-value-that-is-secret');
      const bad = await mcp(['config', 'print'], { ...env, MCP_PORT: 'not-a-port' });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('MCP_PORT');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
