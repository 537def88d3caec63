/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core) against a real
 * server: sign in, live agents, the task queue updating from Socket.IO and its filters, dead-letter
 * retry, alert acknowledgement, the live charts — and hostile text shown as text. Runs when
 * Chromium is installed; required under CI (`.ci/run` installs it).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, connectSocket, registerAgent, startTestServer, userToken, waitFor, type TestServer } from '../helpers/server.ts';
import { generateTotp } from '../../src/security/index.ts';

const CHROMIUM = process.env.MCP_TEST_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM && process.env.CI === 'true') throw new Error(`Chromium is required under CI (${CHROMIUM}); .ci/run installs it.`);
const HOSTILE = '<img src=x onerror="window.__pwned=1">';

describe.skipIf(!HAVE_CHROMIUM)('dashboard in Chromium', () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;
  let agent: Socket;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'limits.default_per_min': 100000 });
    const reg = await registerAgent(t, { agent_id: 'browser-agent', name: HOSTILE, capabilities: ['browser_cap'] });
    agent = await connectSocket(t.wsUrl, reg.access_token, {
      setup: (s) => s.on('task:delegate', (task: { task_id: string; attempt: number }, ack?: (a: unknown) => void) => {
        ack?.({ ok: true });
        s.emit('task:result', { task_id: task.task_id, attempt: task.attempt, success: true, data: { ok: true } });
      }),
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('dialog', (d) => { pageErrors.push(`dialog: ${d.message()}`); void d.dismiss(); });
  });
  afterAll(async () => {
    await browser?.close();
    agent?.close();
    await t?.stop();
  });

  const rowText = async (selector = 'main table') => (await page.locator(selector).count()) ? page.locator(selector).innerText() : '';

  it('signs in (a wrong password is refused), and shows the live agents with hostile text as text', async () => {
    await page.goto(t.url);
    await page.fill('input[name=username]', 'admin');
    await page.fill('input[name=password]', 'wrong-password-123');
    await page.click('button[type=submit]');
    await page.waitForSelector('.error');
    expect(await page.innerText('.error')).toBe('Wrong username or password.');
    await page.fill('input[name=password]', ADMIN_PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForSelector('nav');
    await page.waitForSelector('.live.on');
    expect(await page.innerText('nav')).toMatch(/Agents[\s\S]*Audit log[\s\S]*Security alerts/);
    await waitFor(async () => (await rowText()).includes('browser-agent'));
    expect(await rowText()).toContain(HOSTILE); // shown as text…
    expect(await page.locator('main img').count()).toBe(0); // …not as markup
    expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  });

  it('updates the task queue from live events, and filters it', async () => {
    await page.click('nav a[data-view=tasks]');
    await page.waitForSelector('form[data-form=task-filters]');
    const parked = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'browser_parked', required_capabilities: ['nobody_has_this'] } });
    const done = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'browser_done', required_capabilities: ['browser_cap'] } });
    // No reload: the socket's task events re-read the open view.
    await waitFor(async () => { const text = await rowText(); return text.includes('browser_parked') && /browser_done\s+completed/.test(text); });
    await page.selectOption('select[name=status]', 'pending');
    await page.click('form[data-form=task-filters] button');
    await waitFor(async () => { const text = await rowText(); return text.includes(parked.body.task_id.slice(-12)) && !text.includes('browser_done'); });
    expect(done.status).toBe(201);
  });

  it('retries a dead-lettered task and acknowledges an alert', async () => {
    const dead = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'browser_dead', required_capabilities: ['nobody_has_this'] } });
    await t.server.services.db.query(`UPDATE tasks SET status = 'failed', dead_letter = true, error = '{"code":"BROWSER_X","message":"m","retryable":false}'::jsonb WHERE task_id = $1`, [dead.body.task_id]);
    await page.click('nav a[data-view=dead-letter]');
    await waitFor(async () => (await rowText()).includes('BROWSER_X'));
    await page.click(`button[data-action=retry][data-task="${dead.body.task_id}"]`);
    await waitFor(async () => !(await page.innerText('main')).includes('BROWSER_X'));
    expect((await t.api('GET', `/api/v1/tasks/${dead.body.task_id}`, { token: t.adminToken })).body.dead_letter).toBe(false);

    const supervisor = await userToken(t, 'supervisor');
    for (let i = 0; i < 20; i++) await t.api('GET', '/api/v1/audit', { token: supervisor });
    await page.click('nav a[data-view=alerts]');
    await waitFor(async () => (await page.locator('button[data-action=ack]').count()) > 0);
    await page.locator('button[data-action=ack]').first().click();
    await waitFor(async () => (await rowText()).includes('acknowledged by user:admin'));
  });

  it('charts completions from live events', async () => {
    await page.click('nav a[data-view=charts]');
    await page.waitForSelector('svg.chart');
    for (let i = 0; i < 3; i++) await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'browser_chart', required_capabilities: ['browser_cap'] } });
    await waitFor(async () => /\b[3-9] completed/.test(await page.innerText('main h2')), 15_000);
    expect(await page.locator('svg.chart').count()).toBe(3);
    expect(pageErrors).toEqual([]);
  });
});

describe.skipIf(!HAVE_CHROMIUM)('dashboard in Chromium: MFA enrolment when the grace period is over', () => {
  let t: TestServer;
  let browser: Browser;
  const pageErrors: string[] = [];
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'auth.mfa_grace_period': 0 }); // admin must enrol before anything else
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('signs in, is taken to enrolment, turns MFA on with a code from the secret shown, then sees the agents', async () => {
    const page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('dialog', (d) => { pageErrors.push(`dialog: ${d.message()}`); void d.dismiss(); });
    await page.goto(t.url);
    await page.fill('input[name=username]', 'admin');
    await page.fill('input[name=password]', ADMIN_PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForSelector('button[data-action=mfa-start]');
    expect(await page.innerText('main')).toContain('grace period is over');
    await page.click('button[data-action=mfa-start]');
    const secret = await (await page.waitForSelector('code.secret')).innerText();
    expect(await page.locator('ul.codes li').count()).toBe(10);
    await page.fill('input[name=code]', '000000');
    await page.click('form[data-form=mfa-verify] button');
    await page.waitForSelector('.error');
    expect(await page.innerText('main')).toContain('That code is not valid');
    await page.fill('input[name=code]', generateTotp(secret, Date.now()));
    await page.click('form[data-form=mfa-verify] button');
    await waitFor(async () => (await page.innerText('main')).includes('No agents registered.'));
    expect(await page.locator('nav a[data-view=mfa]').count()).toBe(0);
    const users = await t.api('GET', '/api/v1/users', { token: t.adminToken });
    expect(users.body.users[0]).toMatchObject({ username: 'admin', mfa_enabled: true });
    expect(pageErrors).toEqual([]);
  });
});
