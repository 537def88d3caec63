import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadConfig } from './index.ts';
import { ADMIN_PASSWORD_MIN_LENGTH } from './load-config.ts';
import { MIN_PASSWORD_LENGTH } from '../auth/index.ts';

describe('loadConfig', () => {
  it('applies defaults, then file, then environment, then overrides', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-cfg-'));
    const file = path.join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ server: { port: 9000, ws_port: 9001 }, log: { level: 'debug' } }));
    const cfg = loadConfig({ env: { MCP_CONFIG: file, MCP_WS_PORT: '7001', MCP_BUILTIN_AGENTS: 'false', MCP_CORS_ORIGINS: 'https://a.example, https://b.example' }, overrides: { 'log.level': 'warn' } });
    expect(cfg.server.port).toBe(9000);
    expect(cfg.server.ws_port).toBe(7001);
    expect(cfg.log.level).toBe('warn');
    expect(cfg.agents.builtin).toBe(false);
    expect(cfg.server.cors_origins).toEqual(['https://a.example', 'https://b.example']);
    expect(cfg.tasks.retry_base_ms).toBe(1000);
    expect(Object.isFrozen(cfg.server)).toBe(true);
  });

  it('reports every bad value by its environment name', () => {
    let err: unknown;
    try {
      loadConfig({ env: { MCP_PORT: 'eighty', MCP_LOG_LEVEL: 'loud', MCP_BUILTIN_AGENTS: 'maybe', MCP_TLS_CERT: '/x.pem' } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toContain('MCP_PORT');
    expect(problems).toContain('an integer');
    expect(problems).toContain('MCP_LOG_LEVEL');
    expect(problems).toContain('MCP_BUILTIN_AGENTS');
    expect(problems).toContain('MCP_TLS_CERT and MCP_TLS_KEY');
  });

  it('reads AI routes as JSON from the environment and refuses unknown providers or bad JSON', () => {
    const cfg = loadConfig({ env: { MCP_AI_ROUTES: '{"bias_detection":["openai","local"]}', MCP_AI_DEFAULT_ROUTE: 'flask,local' } });
    expect(cfg.ai.routes).toEqual({ bias_detection: ['openai', 'local'] });
    expect(cfg.ai.default_route).toEqual(['flask', 'local']);
    expect(cfg.ai.timeout_ms).toBe(30000);
    for (const bad of ['{"bias_detection":["skynet"]}', '{bias_detection: openai}', '{"bias_detection":[]}']) {
      expect(() => loadConfig({ env: { MCP_AI_ROUTES: bad } })).toThrow(/MCP_AI_ROUTES/);
    }
  });

  it('names what was expected and what was given as typed', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ env });
      } catch (e) {
        return (e as ConfigError).problems;
      }
      return [];
    };
    expect(problems({ MCP_PORT: 'abc' })).toEqual(['MCP_PORT (server.port): expected an integer ≥ 0 ≤ 65535, got "abc"']);
    expect(problems({ MCP_AI_ROUTES: '{bad' })).toEqual(['MCP_AI_ROUTES (ai.routes): expected a JSON object, got "{bad"']);
  });

  it('refuses keys of the config file that name no setting', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-cfg-'));
    const file = path.join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ agents: { bultin: false, builtin: true }, bogus: {}, server: { port: 9000 }, ai: { routes: { anything: ['local'] } } }));
    expect(() => loadConfig({ env: { MCP_CONFIG: file } })).toThrow(ConfigError);
    try {
      loadConfig({ env: { MCP_CONFIG: file } });
    } catch (e) {
      expect((e as ConfigError).problems).toEqual(['MCP_CONFIG: "agents.bultin" is not a setting (see docs/config.md)', 'MCP_CONFIG: "bogus" is not a setting (see docs/config.md)']);
    }
  });

  it('refuses a first-start admin password shorter than the password policy, without showing it', () => {
    expect(ADMIN_PASSWORD_MIN_LENGTH).toBe(MIN_PASSWORD_LENGTH);
    expect(() => loadConfig({ env: { MCP_ADMIN_PASSWORD: 'short-pw' } })).toThrow(/MCP_ADMIN_PASSWORD \(auth\.admin_password\): expected at least 12 characters.*got \(hidden\)$/s);
    expect(() => loadConfig({ env: { MCP_ADMIN_PASSWORD: 'short-pw' } })).not.toThrow(/short-pw/);
    expect(loadConfig({ env: { MCP_ADMIN_PASSWORD: 'long-enough-pw' } }).auth.admin_password).toBe('long-enough-pw');
  });

  it('refuses generated secrets in production', () => {
    expect(() => loadConfig({ env: { NODE_ENV: 'production' } })).toThrow(/MCP_MASTER_KEY.*required/s);
    const ok = loadConfig({ env: { NODE_ENV: 'production', MCP_MASTER_KEY: 'k'.repeat(44), MCP_PASSWORD_PEPPER: 'p', MCP_SIGNING_KEY: 'pem' } });
    expect(ok.env).toBe('production');
  });

  it('redacts secrets when printed', () => {
    const rows = describeConfig(loadConfig({ env: { MCP_ADMIN_PASSWORD: 'super-secret-value', DATABASE_URL: 'postgres://u:pw@h/db' } }));
    const text = JSON.stringify(rows);
    expect(text).not.toContain('super-secret-value');
    expect(text).not.toContain('pw@h');
    expect(rows.find((r) => r.env === 'MCP_ADMIN_PASSWORD')?.value).toBe('[REDACTED]');
  });

  it('makes the server process exit with code 2 on an invalid value', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...process.env, MCP_PORT: 'not-a-port', MCP_DATA_DIR: ':memory:' }, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('MCP_PORT');
  });
});
