/**
 * SPEC §2: every response carries the rate-limit headers — also a request refused by the guard
 * (401 without valid credentials: counted by IP; 403 without the permission: counted for the
 * principal), a request whose body fails validation (400: counted before the body is
 * checked) and a request for no route (404, by IP) — and refused requests use up the budget like any other, so a flood of them is
 * answered 429.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, userToken, type ApiResponse, type TestServer } from '../helpers/server.ts';

describe('rate limits on refused requests', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'limits.default_per_min': 5, 'limits.task_create_per_min': 5 });
  });
  afterAll(async () => t?.stop());

  const limitHeaders = (r: ApiResponse) => [r.headers.get('x-ratelimit-limit'), r.headers.get('x-ratelimit-remaining'), r.headers.get('x-ratelimit-reset') !== null];

  it('403s count against the principal\'s own budget', async () => {
    const worker = await userToken(t, 'worker'); // a login: not a guarded route, no budget used
    const r = await t.api('GET', '/api/v1/audit', { token: worker });
    expect(r.status).toBe(403);
    expect(limitHeaders(r)).toEqual(['5', '4', true]);
    const own = await t.api('GET', '/api/v1/tasks', { token: worker });
    expect(own.status).toBe(200);
    expect(own.headers.get('x-ratelimit-remaining')).toBe('3');
  });

  it('a body that fails validation is answered 400 with the headers and counts (a batch per task); then 429', async () => {
    const supervisor = await userToken(t, 'supervisor');
    const post = (body: unknown) => t.api('POST', '/api/v1/tasks/batch', { token: supervisor, body });
    const three = await post({ tasks: [{}, {}, {}] }); // three tasks without a task_type
    expect([three.status, three.body?.error?.code]).toEqual([400, 'VALIDATION_ERROR']);
    expect(limitHeaders(three)).toEqual(['5', '2', true]);
    const notAList = await post({ tasks: 'not a list' });
    expect([notAList.status, ...limitHeaders(notAList)]).toEqual([400, '5', '1', true]);
    const notAnObject = await post(null);
    expect([notAnObject.status, ...limitHeaders(notAnObject)]).toEqual([400, '5', '0', true]);
    const flood = await post({ tasks: [] });
    expect([flood.status, flood.body?.error?.code, flood.headers.get('x-ratelimit-remaining')]).toEqual([429, 'RATE_LIMIT_EXCEEDED', '0']);
  });

  it('401s carry the headers of the IP\'s budget, and once it is used up the answer is 429', async () => {
    // (Logins are counted by IP too: the budget may be partly used when this starts.)
    const seen: Array<{ status: number; code: unknown; limit: string | null; remaining: number }> = [];
    for (let i = 0; i < 8 && seen.at(-1)?.status !== 429; i++) {
      const r = await t.api('GET', '/api/v1/tasks', { token: 'not-a-token' });
      seen.push({ status: r.status, code: r.body?.error?.code, limit: r.headers.get('x-ratelimit-limit'), remaining: Number(r.headers.get('x-ratelimit-remaining')) });
    }
    const refused = seen.slice(0, -1);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused.map((x) => [x.status, x.code, x.limit])).toEqual(refused.map(() => [401, 'INVALID_TOKEN', '5']));
    expect(refused.map((x) => x.remaining)).toEqual(refused.map((_, i) => refused[0]!.remaining - i));
    expect(refused.at(-1)!.remaining).toBe(0);
    expect(seen.at(-1)).toMatchObject({ status: 429, code: 'RATE_LIMIT_EXCEEDED', limit: '5', remaining: 0 });
  });
});

describe('rate limits on requests for no route', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'limits.default_per_min': 3 });
  });
  afterAll(async () => t?.stop());

  it('are answered 404 with the headers of the IP\'s budget, count, and a flood gets 429', async () => {
    const seen: Array<[number, unknown, string | null]> = [];
    for (let i = 0; i < 6 && seen.at(-1)?.[0] !== 429; i++) {
      const r = await t.api('GET', '/api/v1/no-such-route');
      seen.push([r.status, r.body?.error?.code, r.headers.get('x-ratelimit-remaining')]);
    }
    // (The admin's login at start-up took one point of the IP's budget.)
    expect(seen).toEqual([[404, 'NOT_FOUND', '1'], [404, 'NOT_FOUND', '0'], [429, 'RATE_LIMIT_EXCEEDED', '0']]);
  });
});

describe('rate limits on the public endpoints', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'limits.default_per_min': 4, 'limits.probe_per_min': 3 });
  });
  afterAll(async () => t?.stop());

  it('probes carry the headers of their own (generous) budget, and a flood gets 429', async () => {
    const seen: Array<[number, string | null, string | null]> = [];
    for (const path of ['/api/v1/live', '/api/v1/ready', '/api/v1/live', '/api/v1/ready']) {
      const r = await t.api('GET', path);
      seen.push([r.status, r.headers.get('x-ratelimit-limit'), r.headers.get('x-ratelimit-remaining')]);
    }
    expect(seen).toEqual([[200, '3', '2'], [200, '3', '1'], [200, '3', '0'], [429, '3', '0']]);
  });

  it('the API description, its docs page and the JWKS carry the headers of the default budget', async () => {
    const seen: Array<[string, number, string | null, string | null]> = [];
    for (const path of ['/openapi.json', '/.well-known/jwks.json', '/docs', '/openapi.json']) {
      const r = await fetch(`${t.url}${path}`, { redirect: 'manual' });
      seen.push([path, r.status < 400 ? 200 : r.status, r.headers.get('x-ratelimit-limit'), r.headers.get('x-ratelimit-remaining')]);
    }
    // (The admin's login at start-up took one point of the IP's default budget.)
    expect(seen).toEqual([['/openapi.json', 200, '4', '2'], ['/.well-known/jwks.json', 200, '4', '1'], ['/docs', 200, '4', '0'], ['/openapi.json', 429, '4', '0']]);
  });
});

describe('credentials are checked before the body is read', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false });
  });
  afterAll(async () => t?.stop());

  /** Sends the headers and the first bytes of a body announced as `length` bytes, and waits for an answer without sending the rest. */
  const partialPost = (path: string, length: number, headers: Record<string, string> = {}) => new Promise<{ status: number; body: string; limit: string | undefined }>((resolve, reject) => {
    const req = request(`${t.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(length), ...headers } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString('utf8'); });
      res.on('end', () => { req.destroy(); resolve({ status: res.statusCode ?? 0, body, limit: res.headers['x-ratelimit-limit'] as string | undefined }); });
    });
    req.on('error', reject);
    req.setTimeout(5000, () => { req.destroy(); reject(new Error('no answer before the body was complete: the server waited for it')); });
    req.write('{"tasks":[');
  });

  it('a request without valid credentials is refused 401 while its body is still on the way', async () => {
    for (const [path, headers] of [['/api/v1/tasks/batch', {}], ['/api/v1/fhe/aggregate', { authorization: 'Bearer not-a-token' }]] as const) {
      const r = await partialPost(path, 500_000, headers);
      expect(r.status, path).toBe(401);
      expect(JSON.parse(r.body).error.code, path).toBe(headers.authorization ? 'INVALID_TOKEN' : 'MISSING_AUTHENTICATION');
      expect(r.limit, path).toBeDefined();
    }
  });

  it('malformed JSON from a caller without credentials is a 401, not a 400', async () => {
    const r = await t.api('POST', '/api/v1/tasks', { raw: '{not json' });
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('MISSING_AUTHENTICATION');
  });
});
