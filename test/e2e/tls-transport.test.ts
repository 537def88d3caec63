/**
 * Transport and request limits: HTTPS/WSS with TLS 1.3 only when MCP_TLS_CERT/KEY are set (a
 * self-signed certificate made with openssl), HSTS; the CORS allow-list; the JSON depth limit;
 * MCP_TRUST_PROXY; a 404 that does not echo the path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { loadConfig } from '../../src/config/index.ts';
import { startServer, type McpServer } from '../../src/compose.ts';
import { createLogger } from '../../src/observability/index.ts';
import { ADMIN_PASSWORD, startTestServer, type TestServer } from '../helpers/server.ts';

interface HttpsResult { status: number; headers: Record<string, string | string[] | undefined>; body: string; protocol: string | null }

function httpsCall(url: string, ca: Buffer, opts: { method?: string; body?: unknown; token?: string } = {}): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = httpsRequest(url, {
      method: opts.method ?? 'GET', ca, servername: 'localhost',
      headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      const protocol = (res.socket as import('node:tls').TLSSocket).getProtocol?.() ?? null;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), protocol }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Handshake only: resolves with the negotiated protocol, rejects when refused. */
function handshake(port: number, ca: Buffer, versions: { min: 'TLSv1.2' | 'TLSv1.3'; max: 'TLSv1.2' | 'TLSv1.3' }): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', minVersion: versions.min, maxVersion: versions.max }, () => {
      const p = s.getProtocol();
      s.end();
      resolve(p);
    });
    s.on('error', reject);
  });
}

describe('TLS 1.3 only, HSTS, WSS', () => {
  let dir: string;
  let cert: Buffer;
  let server: McpServer;
  let base: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'mcp-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    cert = readFileSync(path.join(dir, 'cert.pem'));
    const config = loadConfig({
      env: { MCP_TLS_CERT: path.join(dir, 'cert.pem'), MCP_TLS_KEY: path.join(dir, 'key.pem') },
      overrides: { 'server.port': 0, 'server.ws_port': 0, 'server.host': '127.0.0.1', 'store.data_dir': ':memory:', 'log.level': 'silent', 'auth.admin_password': ADMIN_PASSWORD, 'agents.builtin': false },
    });
    server = await startServer({ config, logger: createLogger({ level: 'silent' }) });
    base = server.url;
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS over TLS 1.3 with HSTS and refuses TLS 1.2, on the API and the Socket.IO port', async () => {
    expect(base.startsWith('https://')).toBe(true);
    const health = await httpsCall(`${base}/api/v1/health`, cert);
    expect(health.status).toBe(200);
    expect(health.protocol).toBe('TLSv1.3');
    expect(String(health.headers['strict-transport-security'])).toMatch(/max-age=31536000/);
    expect(health.headers['x-content-type-options']).toBe('nosniff');
    expect(String(health.headers['content-security-policy'])).toContain('upgrade-insecure-requests');
    for (const port of [server.port, server.wsPort!]) {
      expect(await handshake(port, cert, { min: 'TLSv1.3', max: 'TLSv1.3' })).toBe('TLSv1.3');
      await expect(handshake(port, cert, { min: 'TLSv1.2', max: 'TLSv1.2' })).rejects.toThrow();
    }
    // plain HTTP on the TLS port is not served
    await expect(fetch(`http://127.0.0.1:${server.port}/api/v1/health`).then((r) => r.status)).rejects.toThrow();
  });

  it('authenticates and connects Socket.IO over WSS (TLS 1.3)', async () => {
    const login = await httpsCall(`${base}/api/v1/auth/login`, cert, { method: 'POST', body: { username: 'admin', password: ADMIN_PASSWORD } });
    expect(login.status).toBe(200);
    const token = (JSON.parse(login.body) as { access_token: string }).access_token;
    for (const port of [server.port, server.wsPort!]) {
      const socket = io(`https://localhost:${port}/mcp/ws`, { auth: { token }, transports: ['websocket'], ca: cert.toString('utf8'), reconnection: false, forceNew: true });
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      });
      expect(socket.connected).toBe(true);
      socket.close();
    }
  });
});

describe('CORS allow-list, JSON depth limit, trust proxy, 404 without the path', () => {
  let t: TestServer;
  let proxied: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'server.cors_origins': ['https://dashboard.example'] });
    proxied = await startTestServer({ 'agents.builtin': false, 'server.trust_proxy': true });
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
    await proxied?.stop();
  });

  it('answers CORS only for allowed origins', async () => {
    const preflight = (origin: string) => fetch(`${t.url}/api/v1/tasks`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
    const ok = await preflight('https://dashboard.example');
    expect(ok.status).toBeLessThan(300);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://dashboard.example');
    const evil = await preflight('https://evil.example');
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    const get = await fetch(`${t.url}/api/v1/health`, { headers: { origin: 'https://evil.example' } });
    expect(get.headers.get('access-control-allow-origin')).toBeNull();
    const allowedGet = await fetch(`${t.url}/api/v1/health`, { headers: { origin: 'https://dashboard.example' } });
    expect(allowedGet.headers.get('access-control-allow-origin')).toBe('https://dashboard.example');
    // none by default
    const none = await fetch(`${proxied.url}/api/v1/health`, { headers: { origin: 'https://dashboard.example' } });
    expect(none.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('refuses JSON bodies nested deeper than 32 levels with 400, accepts 32', async () => {
    const nest = (depth: number) => {
      let v: unknown = 'leaf';
      for (let i = 0; i < depth; i++) v = { n: v };
      return v;
    };
    const create = (parameters: unknown) => t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'x', required_capabilities: ['x'], parameters } });
    // the body object is level 1, parameters level 2: 31 levels inside parameters make 32
    expect((await create(nest(31))).status).toBe(201);
    const deep = await create(nest(32));
    expect(deep.status).toBe(400);
    expect(deep.body.error.code).toBe('VALIDATION_ERROR');
    expect(deep.body.error.details.field_errors[0].field).toBe('(body)');
    const hostile = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, raw: '['.repeat(200_000) + ']'.repeat(200_000) });
    expect(hostile.status).toBe(400);
    // brackets inside strings do not count; prototype poisoning is still refused
    expect((await create({ text: '[[[[{{{{'.repeat(20) })).status).toBe(201);
    const poison = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, raw: '{"task_type":"x","required_capabilities":["x"],"parameters":{"__proto__":{"admin":true}}}' });
    expect(poison.status).toBe(400);
    const malformed = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, raw: '{"task_type":' });
    expect(malformed.status).toBe(400);
  });

  it('uses X-Forwarded-For only when MCP_TRUST_PROXY is on (audited client IP)', async () => {
    const ipOf = async (s: TestServer) => {
      const c = await s.api('POST', '/api/v1/tasks', { token: s.adminToken, body: { task_type: 'x', required_capabilities: ['x'], parameters: {} } });
      const id = c.body.task_id as string;
      await s.api('GET', `/api/v1/tasks/${id}`, { token: s.adminToken, headers: { 'x-forwarded-for': '203.0.113.7' } });
      const audit = await s.api('GET', `/api/v1/audit?resource_type=task&resource_id=${id}&action=read`, { token: s.adminToken });
      return (audit.body.entries as Array<{ actor: { ip: string } }>)[0]!.actor.ip;
    };
    expect(await ipOf(proxied)).toBe('203.0.113.7');
    expect(await ipOf(t)).toBe('127.0.0.1');
  });

  it('answers unknown routes with NOT_FOUND without echoing the path', async () => {
    const secret = 'patient-Jane-Roe-1971';
    const r = await t.api('GET', `/api/v1/nothing/${secret}?q=${secret}`, { token: t.adminToken });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('NOT_FOUND');
    expect(r.text).not.toContain(secret);
    expect(r.text).not.toContain('/nothing');
  });
});
