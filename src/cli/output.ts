/** Output and exit codes shared by the commands: tables, key/value blocks, `--json`, error mapping. */
// The SDK's error module directly (not its index): keeps socket.io-client off the start-up path.
import { McpApiError } from '../sdk/index.ts';

/** src/config's ConfigError, recognised by name so that the CLI does not load the config schema up front. */
const isConfigError = (err: unknown): boolean => err instanceof Error && err.name === 'ConfigError';

/** Exit codes (documented in `mcp --help`). */
export const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3, auth: 4 } as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  failure (the server refused or the operation failed; a watched run did not complete)
  2  usage or configuration error (bad command, option or value; invalid server config)
  3  not found (no such agent, task, pipeline or user)
  4  authentication or permission problem (not logged in, token expired, forbidden)

Environment: MCP_URL (server, default http://127.0.0.1:8080), MCP_TOKEN (access token),
MCP_CREDENTIALS (credentials file, default ~/.config/mcp/credentials.json), MCP_PASSWORD
(login), MCP_AGENT_ID / MCP_AGENT_KEY (agent run). Server commands read the server's
configuration (MCP_* variables, MCP_CONFIG).`;

/** A failure the CLI itself detects, with the exit code it means. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT.failure) {
    super(message);
    this.name = 'CliError';
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  if (isConfigError(err)) return EXIT.usage;
  if (err instanceof McpApiError) {
    if (err.status === 401 || err.status === 403) return EXIT.auth;
    if (err.status === 404) return EXIT.notFound;
    if (err.status === 400 || err.status === 422) return EXIT.usage;
    return EXIT.failure;
  }
  return EXIT.failure;
}

export interface Out {
  json: boolean;
  stdout(text: string): void;
  stderr(text: string): void;
}

export function makeOut(json: boolean): Out {
  return { json, stdout: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`), stderr: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`) };
}

export function reportError(out: Out, err: unknown): number {
  const code = exitCodeFor(err);
  if (out.json) {
    const body = err instanceof McpApiError
      ? { code: err.code, status: err.status, message: err.message, details: err.details, request_id: err.requestId }
      : { code: isConfigError(err) ? 'INVALID_CONFIG' : 'CLI_ERROR', message: (err as Error).message ?? String(err) };
    out.stderr(JSON.stringify({ error: body, exit_code: code }));
  } else if (err instanceof McpApiError) {
    const hint = code === EXIT.auth ? (err.status === 401 ? ' (run `mcp login`, or set MCP_TOKEN)' : '') : '';
    out.stderr(`error: ${err.code}: ${err.message}${hint}${err.requestId ? ` [request ${err.requestId}]` : ''}`);
    const fe = (err.details as { field_errors?: Array<{ field: string; message: string }> } | undefined)?.field_errors;
    for (const f of fe ?? []) out.stderr(`  - ${f.field}: ${f.message}`);
  } else {
    out.stderr(`error: ${(err as Error).message ?? String(err)}`);
  }
  return code;
}

const cell = (v: unknown): string => {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.map(cell).join(',');
  return JSON.stringify(v);
};

export type Column<T> = [header: string, get: (row: T) => unknown, maxWidth?: number];

/** A plain-text table; cells longer than their column's max width are cut with `…`. */
export function table<T>(rows: readonly T[], columns: ReadonlyArray<Column<T>>): string {
  const cells = rows.map((r) => columns.map(([, get, max]) => {
    const s = cell(get(r)).replace(/\s+/g, ' ');
    return max && s.length > max ? `${s.slice(0, max - 1)}…` : s;
  }));
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(columns.map(([h]) => h)), ...cells.map(line)].join('\n');
}

/** `key: value` lines, aligned. */
export function keyValues(pairs: ReadonlyArray<[string, unknown]>): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(w + 2)}${cell(v)}`).join('\n');
}

/** Prints `data` as JSON with `--json`, else the human rendering. */
export function emit(out: Out, data: unknown, human: () => string): void {
  out.stdout(out.json ? JSON.stringify(data, null, 2) : human());
}

/** A text progress bar: `[##########..........]  50%`. */
export function bar(fraction: number, width = 24): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const filled = Math.round(f * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(f * 100)).padStart(3)}%`;
}

export function parseJsonOption(name: string, raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw new CliError(`${name} must be JSON: ${(err as Error).message}`, EXIT.usage);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CliError(`${name} must be a JSON object`, EXIT.usage);
  return v as Record<string, unknown>;
}

export function parseIntOption(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new CliError(`${name} must be an integer from ${min} to ${max}, got '${raw}'`, EXIT.usage);
  return n;
}
