/**
 * deploy/ is part of the product: the alert rules and the dashboard may only reference metrics
 * (and labels) a running server actually exports; the Kubernetes, compose, nginx, Docker and
 * Prometheus files parse and carry the probes, bounds and wiring SPEC §11/§12 ask for.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/index.ts';
import { startServer, type McpServer } from '../../src/compose.ts';
import { http, parseExposition, queryableNames } from './prom-text.ts';

const DEPLOY = path.resolve(import.meta.dirname, '../../deploy');
const read = (p: string) => readFileSync(path.join(DEPLOY, p), 'utf8');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

/** Series Prometheus itself synthesises for every scrape target. */
const PROMETHEUS_BUILTINS = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);
/** Labels Prometheus attaches to every series. */
const TARGET_LABELS = new Set(['instance', 'job']);
const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset',
  'sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'predict_linear', 'histogram_quantile', 'absent', 'absent_over_time',
  'vector', 'scalar', 'time', 'abs', 'ceil', 'floor', 'round', 'clamp_min', 'clamp_max', 'label_replace', 'sort', 'sort_desc',
  'avg_over_time', 'max_over_time', 'min_over_time', 'sum_over_time', 'count_over_time', 'last_over_time', 'inf', 'nan',
]);

export interface Selector {
  metric: string;
  labels: string[];
}

/** Metric names and the label names each selector matches on, from a PromQL expression. */
export function selectors(expr: string): Selector[] {
  const out: Selector[] = [];
  const src = expr
    .replace(/\$__\w+|\$\{?\w+\}?/g, '5m') // Grafana variables
    .replace(/\[[^\]]*\]/g, ''); // range/subquery durations
  const re = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?|(\{[^}]*\})|"(?:[^"\\]|\\.)*"|\(|\)|[^\s]/g;
  let groupingDepth = -1; // inside by (...)/without (...)/on (...): label names, not metrics
  let depth = 0;
  let prevWord = '';
  for (const m of src.matchAll(re)) {
    const tok = m[0];
    if (tok === '(') {
      depth++;
      if (['by', 'without', 'on', 'ignoring', 'group_left', 'group_right'].includes(prevWord) && groupingDepth < 0) groupingDepth = depth;
      prevWord = '';
      continue;
    }
    if (tok === ')') {
      if (depth === groupingDepth) groupingDepth = -1;
      depth--;
      prevWord = '';
      continue;
    }
    const word = m[1];
    if (!word) {
      prevWord = '';
      continue;
    }
    prevWord = word;
    if (groupingDepth >= 0 || PROMQL_WORDS.has(word) || /^\d/.test(word)) continue;
    // a function call is followed by "(" — every function we use is in PROMQL_WORDS
    const labels = m[2] ? [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)].map((x) => x[1]!) : [];
    out.push({ metric: word, labels });
  }
  return out;
}

/** Label names used in by()/without() clauses. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter(Boolean));
}

let server: McpServer;
let exported: Set<string>;
const labelNames = new Map<string, Set<string>>();

beforeAll(async () => {
  const config = loadConfig({ env: {}, overrides: { 'server.port': 0, 'server.ws_port': 0, 'store.data_dir': ':memory:', 'log.level': 'silent', 'auth.admin_password': 'admin-password-123', 'agents.builtin': false } });
  server = await startServer({ config });
  const r = await http(server.url, 'GET', '/metrics');
  expect(r.status).toBe(200);
  const e = parseExposition(r.text);
  exported = queryableNames(e);
  for (const metric of server.metrics.registry.getMetricsAsArray()) {
    const m = metric as unknown as { name: string; labelNames?: string[] };
    const names = new Set(m.labelNames ?? []);
    labelNames.set(m.name, names);
    for (const suf of ['_bucket', '_sum', '_count', '_total']) labelNames.set(m.name + suf, new Set([...names, ...(suf === '_bucket' ? ['le'] : [])]));
  }
  // default process metrics label sets are not described by labelNames; take them from samples
  for (const s of e.samples) {
    const set = labelNames.get(s.name) ?? new Set<string>();
    for (const k of Object.keys(s.labels)) set.add(k);
    labelNames.set(s.name, set);
  }
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

function checkExpr(where: string, expr: string): void {
  const sels = selectors(expr);
  expect(sels.length, `${where}: no metric found in ${expr}`).toBeGreaterThan(0);
  for (const s of sels) {
    if (PROMETHEUS_BUILTINS.has(s.metric)) continue;
    expect(exported.has(s.metric), `${where}: ${s.metric} is not exported by the server`).toBe(true);
    const known = labelNames.get(s.metric) ?? new Set();
    for (const l of s.labels) expect(known.has(l) || TARGET_LABELS.has(l), `${where}: ${s.metric} has no label ${l}`).toBe(true);
  }
  const allLabels = new Set<string>(['le', ...TARGET_LABELS]);
  for (const s of sels) for (const l of labelNames.get(s.metric) ?? []) allLabels.add(l);
  for (const l of groupingLabels(expr)) expect(allLabels.has(l), `${where}: grouping label ${l} exists on none of ${sels.map((s) => s.metric).join(', ')}`).toBe(true);
}

describe('PromQL selector extraction (the checker must itself be right)', () => {
  it('finds metrics and matcher labels, skips functions, groupings and durations', () => {
    expect(selectors('sum by (route) (rate(mcp_x_count{status=~"5..", route!="/a"}[5m])) / sum(rate(mcp_x_count[5m])) > 0.05')).toEqual([
      { metric: 'mcp_x_count', labels: ['status', 'route'] },
      { metric: 'mcp_x_count', labels: [] },
    ]);
    expect(selectors('(sum(max by (a, b) (m{s=~"x|y"})) or on() vector(0)) == 0')).toEqual([{ metric: 'm', labels: ['s'] }]);
    expect(selectors('deriv(sum(max by (priority) (q))[10m:1m]) > 0')).toEqual([{ metric: 'q', labels: [] }]);
    expect(selectors('rate(x_total[$__rate_interval])')).toEqual([{ metric: 'x_total', labels: [] }]);
  });
});

describe('deploy/prometheus/alerts.yml', () => {
  const doc = parse(read('prometheus/alerts.yml'));
  const rules: Any[] = doc.groups.flatMap((g: Any) => g.rules);
  const byName = new Map<string, Any>(rules.map((r) => [r.alert, r]));

  it('is well-formed: every rule has an alert name, expr, severity and summary; names are unique', () => {
    expect(rules.length).toBeGreaterThanOrEqual(5);
    expect(byName.size).toBe(rules.length);
    for (const r of rules) {
      expect(typeof r.alert).toBe('string');
      expect(typeof r.expr).toBe('string');
      expect(['critical', 'warning', 'info']).toContain(r.labels?.severity);
      expect(typeof r.annotations?.summary).toBe('string');
      if (r.for !== undefined) expect(r.for).toMatch(/^\d+[smh]$/);
    }
  });

  it('has the SPEC §11 alerts with their thresholds', () => {
    expect(byName.get('McpHighErrorRate').expr).toMatch(/status=~"5\.\."[\s\S]*>\s*0\.05/);
    expect(byName.get('McpApiLatencyP95High').expr).toMatch(/histogram_quantile\(0\.95,[\s\S]*mcp_request_duration_seconds_bucket[\s\S]*>\s*0\.2\b/);
    const queue = byName.get('McpTaskQueueGrowing');
    expect(queue.expr).toMatch(/deriv\([\s\S]*mcp_task_queue_depth[\s\S]*\[10m:/);
    expect(queue.for).toBe('10m');
    expect(byName.get('McpNoActiveAgents').expr).toMatch(/mcp_agents_active\{status=~"active\|busy"\}[\s\S]*== 0/);
    expect(byName.get('McpCircuitBreakerOpen').expr).toMatch(/mcp_circuit_breaker_state\) == 2/);
  });

  it('references only metrics and labels the server exports', () => {
    for (const r of rules) checkExpr(`alert ${r.alert}`, r.expr);
  });

  it('passes promtool check rules (when promtool is installed)', (ctx) => {
    const which = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    // CI fetches promtool (.ci/run); there its absence is a failure, not a skip.
    if (which.error && process.env.CI === 'true') throw new Error('promtool is required under CI=true (.ci/run puts it in .cache/bin)');
    if (which.error) {
      ctx.skip('promtool is not on PATH: `promtool check rules` not run (syntax is covered by the checks above)');
      return;
    }
    const res = spawnSync('promtool', ['check', 'rules', path.join(DEPLOY, 'prometheus/alerts.yml')], { encoding: 'utf8' });
    expect(res.status, res.stdout + res.stderr).toBe(0);
  });
});

describe('deploy/prometheus/prometheus.yml', () => {
  it('loads the alert rules and scrapes both compose instances at /metrics', () => {
    const doc = parse(read('prometheus/prometheus.yml'));
    expect(doc.rule_files).toContain('/etc/prometheus/alerts.yml');
    const job = doc.scrape_configs.find((j: Any) => j.job_name === 'mcp-server');
    expect(job.metrics_path).toBe('/metrics');
    expect(job.static_configs[0].targets).toEqual(['mcp-1:8080', 'mcp-2:8080']);
  });
});

describe('deploy/grafana/mcp-dashboard.json', () => {
  const dash = JSON.parse(read('grafana/mcp-dashboard.json'));

  it('is a valid dashboard: unique panel ids, every panel has queries, layout inside 24 columns', () => {
    expect(dash.uid).toBe('mcp-server');
    const ids = dash.panels.map((p: Any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dash.panels) {
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    }
  });

  it('charts every SPEC §11 metric', () => {
    const used = new Set(dash.panels.flatMap((p: Any) => p.targets.flatMap((t: Any) => selectors(t.expr).map((s) => s.metric.replace(/_(bucket|count|sum)$/, '')))));
    for (const name of ['mcp_tasks_created_total', 'mcp_tasks_completed_total', 'mcp_task_duration_seconds', 'mcp_task_queue_depth', 'mcp_agents_active',
      'mcp_pipelines_active', 'mcp_pipeline_duration_seconds', 'mcp_request_duration_seconds', 'mcp_errors_total', 'mcp_external_service_duration_seconds',
      'mcp_circuit_breaker_state', 'mcp_ws_connections', 'mcp_ws_latency_seconds', 'mcp_rate_limited_total', 'mcp_security_alerts_total']) {
      expect(used.has(name), name).toBe(true);
    }
  });

  it('references only metrics and labels the server exports', () => {
    for (const p of dash.panels) for (const t of p.targets) checkExpr(`panel "${p.title}"`, t.expr);
  });
});

describe('deploy/k8s', () => {
  const docs: Any[] = readdirSync(path.join(DEPLOY, 'k8s'))
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => parseAllDocuments(read(`k8s/${f}`)).map((d) => {
      expect(d.errors, f).toEqual([]);
      return { ...d.toJS(), __file: f };
    }));
  const kind = (k: string) => docs.filter((d) => d.kind === k);

  it('every manifest parses and names apiVersion, kind and metadata.name', () => {
    expect(docs.length).toBeGreaterThanOrEqual(7);
    for (const d of docs) {
      if (d.kind === 'Kustomization') continue;
      expect(typeof d.apiVersion, d.__file).toBe('string');
      expect(typeof d.metadata?.name, d.__file).toBe('string');
    }
  });

  it('Deployment: liveness on /api/v1/live, readiness on /api/v1/ready, non-root, config and secret refs', () => {
    const [dep] = kind('Deployment');
    const pod = dep.spec.template.spec;
    const c = pod.containers[0];
    expect(c.livenessProbe.httpGet.path).toBe('/api/v1/live');
    expect(c.readinessProbe.httpGet.path).toBe('/api/v1/ready');
    expect(c.ports.map((p: Any) => p.containerPort).sort()).toEqual([8080, 8081]);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(c.resources.requests.cpu).toBeDefined(); // HPA CPU utilisation needs a request
    const cm = c.envFrom.find((e: Any) => e.configMapRef).configMapRef.name;
    const secret = c.envFrom.find((e: Any) => e.secretRef).secretRef.name;
    expect(kind('ConfigMap').map((m) => m.metadata.name)).toContain(cm);
    expect(kind('Secret').map((m) => m.metadata.name)).toContain(secret);
    const secretKeys = Object.keys(kind('Secret')[0].stringData);
    for (const k of ['DATABASE_URL', 'REDIS_URL', 'MCP_MASTER_KEY', 'MCP_PASSWORD_PEPPER', 'MCP_SIGNING_KEY']) expect(secretKeys).toContain(k);
    expect(kind('ConfigMap')[0].data.NODE_ENV).toBe('production');
    expect(kind('ConfigMap')[0].data.MCP_TRUST_PROXY, 'clients behind the ingress keep their own address').toBe('true');
    // Grace period must cover the server's shutdown grace.
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(Number(kind('ConfigMap')[0].data.MCP_SHUTDOWN_GRACE_MS));
  });

  it('HPA scales the Deployment 2–10 at 70 % CPU; PDB and Service select its pods', () => {
    const [dep] = kind('Deployment');
    const podLabels = dep.spec.template.metadata.labels;
    const [hpa] = kind('HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: dep.metadata.name });
    expect(hpa.spec.minReplicas).toBe(2);
    expect(hpa.spec.maxReplicas).toBe(10);
    expect(hpa.spec.metrics[0].resource).toEqual({ name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } });
    const [pdb] = kind('PodDisruptionBudget');
    expect(pdb.spec.selector.matchLabels).toEqual(dep.spec.selector.matchLabels);
    expect(pdb.spec.minAvailable).toBeLessThan(hpa.spec.minReplicas);
    const [svc] = kind('Service');
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(podLabels[k]).toBe(v);
  });

  it('the kustomization lists existing files and (when kubectl is installed) renders', (ctx) => {
    const [k] = kind('Kustomization');
    const files = readdirSync(path.join(DEPLOY, 'k8s'));
    for (const r of k.resources) expect(files).toContain(r);
    expect(k.resources).not.toContain('secret.example.yaml'); // the template never ships placeholder secrets
    const which = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
    if (which.error) {
      ctx.skip('kubectl is not on PATH: `kubectl kustomize` not run');
      return;
    }
    const rendered = parseAllDocuments(execFileSync('kubectl', ['kustomize', path.join(DEPLOY, 'k8s')], { encoding: 'utf8' })).map((d) => d.toJS());
    expect(rendered.map((d: Any) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'Namespace', 'PodDisruptionBudget', 'Service']);
  });
});

describe('deploy/docker-compose.yml, nginx, Dockerfile', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true });

  it('compose: two server instances sharing PostgreSQL + Redis, secrets required from the environment, nginx in front', () => {
    const s = compose.services;
    for (const name of ['postgres', 'redis', 'mcp-1', 'mcp-2', 'nginx']) expect(s[name], name).toBeDefined();
    for (const name of ['mcp-1', 'mcp-2']) {
      const env = s[name].environment;
      expect(env.NODE_ENV).toBe('production');
      expect(env.DATABASE_URL).toMatch(/^postgres:\/\/.*@postgres:5432\//);
      expect(env.REDIS_URL).toMatch(/^redis:\/\/.*@redis:6379/);
      for (const k of ['MCP_MASTER_KEY', 'MCP_PASSWORD_PEPPER', 'MCP_SIGNING_KEY']) expect(env[k], k).toMatch(new RegExp(`^\\$\\{${k}:\\?`));
      expect(s[name].build.dockerfile).toBe('deploy/Dockerfile');
      expect(Object.keys(s[name].depends_on).sort()).toEqual(['postgres', 'redis']);
      expect(env.MCP_TRUST_PROXY, 'clients behind nginx keep their own address').toBe('true');
    }
    expect(s.nginx.ports).toContain('8080:80');
  });

  it('nginx: sticky upstream of both instances, WebSocket upgrade for Socket.IO and /mcp/ws', () => {
    const conf = read('nginx/nginx.conf');
    const upstream = /upstream mcp_api \{([^}]*)\}/.exec(conf)![1]!;
    expect(upstream).toMatch(/\bip_hash;/);
    expect([...upstream.matchAll(/server (\S+?):8080/g)].map((m) => m[1])).toEqual(['mcp-1', 'mcp-2']);
    for (const loc of ['/socket.io/', '/mcp/ws']) {
      const block = new RegExp(`location ${loc.replace(/\//g, '\\/')} \\{([^}]*)\\}`).exec(conf)![1]!;
      expect(block, loc).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
      expect(block, loc).toMatch(/proxy_set_header Connection \$connection_upgrade;/);
      expect(block, loc).toMatch(/include \/etc\/nginx\/proxy-headers\.conf;/);
    }
    expect(conf).toMatch(/map \$http_upgrade \$connection_upgrade/);
    expect(conf).toMatch(/Sticky sessions \(ip_hash\)/); // the why is documented
    // The edge overwrites X-Forwarded-For (never appends a client-sent one): the servers trust it.
    expect(read('nginx/proxy-headers.conf')).toMatch(/^proxy_set_header X-Forwarded-For \$remote_addr;$/m);
    const mounts: string[] = compose.services.nginx.volumes;
    expect(mounts.some((m) => m.startsWith('./nginx/proxy-headers.conf:/etc/nginx/proxy-headers.conf'))).toBe(true);
  });

  it('Dockerfile: node:20-slim, npm ci, non-root, HEALTHCHECK on /api/v1/live, tsx entry', () => {
    const df = read('Dockerfile');
    expect(df).toMatch(/^FROM node:20-slim/m);
    expect(df).toMatch(/RUN npm ci\b/);
    expect(df).toMatch(/^USER node$/m);
    expect(df).toMatch(/^HEALTHCHECK [\s\S]*\/api\/v1\/live/m);
    expect(df).toMatch(/^CMD \["node", "--import", "tsx", "src\/main\.ts"\]$/m);
    // every COPY source exists in the repository
    for (const m of df.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1]!.split(/\s+/)) expect(() => readFileSync(path.resolve(DEPLOY, '..', src)), src).not.toThrow(/ENOENT/);
    }
  });
});
