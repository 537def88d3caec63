/** What every command gets: global options resolved into an output sink and an authenticated client. */
// The REST client module directly (not the SDK index): keeps socket.io-client off the start-up path.
import { McpClient } from '../sdk/index.ts';
import { cliEnvironment, type CliEnvironment } from './cli-env.ts';
import { normalizeUrl, readCredentials, saveLogin } from './credentials.ts';
import { makeOut, type Out } from './output.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface GlobalOptions {
  url?: string;
  json?: boolean;
  token?: string;
}

export interface CliContext {
  env: CliEnvironment;
  out: Out;
  url: string;
  /** A client using --token / MCP_TOKEN / the stored login for `url` (refreshed tokens are saved back). */
  client(): McpClient;
}

export function makeContext(g: GlobalOptions): CliContext {
  const env = cliEnvironment();
  const out = makeOut(!!g.json);
  const creds = readCredentials(env.credentialsFile);
  const url = normalizeUrl(g.url ?? env.url ?? creds.current ?? DEFAULT_URL);
  return {
    env,
    out,
    url,
    client: () => {
      const explicit = g.token ?? env.token;
      if (explicit) return new McpClient({ url, accessToken: explicit, userAgent: 'mcp-cli' });
      const stored = creds.servers[url];
      return new McpClient({
        url,
        accessToken: stored?.access_token,
        refreshToken: stored?.refresh_token,
        userAgent: 'mcp-cli',
        onTokens: (t) => { if (stored) saveLogin(env.credentialsFile, url, { ...stored, access_token: t.access_token, refresh_token: t.refresh_token, saved_at: new Date().toISOString() }); },
      });
    },
  };
}
