/**
 * Stored logins (`mcp login`): one entry per server URL in a JSON file with mode 0600 (its
 * directory 0700). Holds the access and refresh tokens, never the password.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface StoredLogin {
  username: string;
  role?: string;
  access_token: string;
  refresh_token: string;
  saved_at: string;
}

export interface CredentialsFile {
  /** The server used when neither --url nor MCP_URL is given. */
  current?: string;
  servers: Record<string, StoredLogin>;
}

export function normalizeUrl(url: string): string {
  return url.trim().replace(/\/+$/, '').replace(/\/api\/v1$/, '');
}

export function readCredentials(file: string): CredentialsFile {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<CredentialsFile>;
    return { current: parsed.current, servers: parsed.servers && typeof parsed.servers === 'object' ? parsed.servers : {} };
  } catch {
    return { servers: {} };
  }
}

export function writeCredentials(file: string, creds: CredentialsFile): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function saveLogin(file: string, url: string, login: StoredLogin): void {
  const creds = readCredentials(file);
  const key = normalizeUrl(url);
  creds.servers[key] = login;
  creds.current = key;
  writeCredentials(file, creds);
}

export function forgetLogin(file: string, url: string): boolean {
  const creds = readCredentials(file);
  const key = normalizeUrl(url);
  if (!creds.servers[key]) return false;
  delete creds.servers[key];
  if (creds.current === key) creds.current = Object.keys(creds.servers)[0];
  writeCredentials(file, creds);
  return true;
}
