/**
 * A small parser for the Prometheus text exposition format (what /metrics serves), plus the
 * HTTP helpers the observability and deploy tests share.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** metric family name → type (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
}

const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      for (const lm of m[3].matchAll(LABEL_RE)) labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const v = m[4]!;
    samples.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return { samples, types };
}

/** Metric family names exported (histogram _bucket/_sum/_count folded into the family). */
export function familyNames(e: Exposition): Set<string> {
  return new Set(e.types.keys());
}

/** Every sample name that can appear in a PromQL query (families plus _bucket/_sum/_count). */
export function queryableNames(e: Exposition): Set<string> {
  const out = new Set<string>(e.types.keys());
  for (const s of e.samples) out.add(s.name);
  for (const [name, type] of e.types) {
    if (type === 'histogram') for (const suf of ['_bucket', '_sum', '_count']) out.add(name + suf);
    if (type === 'summary') for (const suf of ['_sum', '_count']) out.add(name + suf);
  }
  return out;
}

export function find(e: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
  return e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** Sum of the values of the samples matching name + labels (0 when none). */
export function total(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  return find(e, name, labels).reduce((a, s) => a + s.value, 0);
}

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function http(base: string, method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Polls `fn` until it returns a truthy value or the timeout passes (then returns the last value). */
export async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let v = await fn();
  while (!ok(v) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    v = await fn();
  }
  return v;
}
