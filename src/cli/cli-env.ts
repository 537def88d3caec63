/**
 * The CLI's only direct environment reads (a documented exception to "only src/config reads
 * process.env"): the client-side settings that are not server configuration — where the server
 * is, a token for scripts, where credentials are kept, and an agent's identity for `agent run`.
 * Server settings (`start`, `migrate`, `config print`, `keys rotate`) go through src/config.
 */
import os from 'node:os';
import path from 'node:path';

export interface CliEnvironment {
  /** MCP_URL: the server to talk to. */
  url: string | undefined;
  /** MCP_TOKEN: an access token to use instead of stored credentials. */
  token: string | undefined;
  /** MCP_CREDENTIALS, else $XDG_CONFIG_HOME/mcp/credentials.json, else ~/.config/mcp/credentials.json. */
  credentialsFile: string;
  /** MCP_AGENT_ID / MCP_AGENT_KEY: `mcp agent run` credentials. */
  agentId: string | undefined;
  agentKey: string | undefined;
  /** MCP_PASSWORD: `mcp login` without a prompt (CI). */
  password: string | undefined;
  /** NO_COLOR / non-TTY: plain output. */
  noColor: boolean;
}

export function cliEnvironment(): CliEnvironment {
  // eslint-disable-next-line no-restricted-properties -- the CLI's client-side settings (see the file comment); server settings go through src/config
  const env = process.env;
  const nonEmpty = (v: string | undefined) => (v && v.trim() ? v.trim() : undefined);
  const configHome = nonEmpty(env.XDG_CONFIG_HOME) ?? path.join(os.homedir(), '.config');
  return {
    url: nonEmpty(env.MCP_URL),
    token: nonEmpty(env.MCP_TOKEN),
    credentialsFile: nonEmpty(env.MCP_CREDENTIALS) ?? path.join(configHome, 'mcp', 'credentials.json'),
    agentId: nonEmpty(env.MCP_AGENT_ID),
    agentKey: nonEmpty(env.MCP_AGENT_KEY),
    password: env.MCP_PASSWORD,
    noColor: env.NO_COLOR !== undefined,
  };
}
