/**
 * Process entry: load config (exit 2 when invalid), start the server, print where it is, and
 * shut down gracefully on SIGTERM/SIGINT.
 */
import { ConfigError, loadConfig, type Config } from './config/index.ts';
import { startServer, type McpServer } from './compose.ts';

export async function main(overrides?: Record<string, unknown>): Promise<McpServer> {
  let config: Readonly<Config>;
  try {
    config = loadConfig({ overrides, prettyInTerminal: true });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const server = await startServer({ config });
  const lines = [
    '',
    `  MCP server ${server.services.version} is running`,
    `  API        ${server.url}/api/v1`,
    `  Docs       ${server.url}/docs`,
    `  Socket.IO  ${server.url}/mcp/ws`,
    `  Store      ${server.services.db.kind}${server.services.db.kind === 'pglite' ? ` (${config.store.data_dir})` : ''}, coordination ${server.services.coord.kind}`,
  ];
  if (server.generatedAdminPassword) {
    lines.push('', `  First start: created user 'admin' with password: ${server.generatedAdminPassword}`, '  (shown once; set MCP_ADMIN_PASSWORD to choose it)');
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), config.server.shutdown_grace_ms + 5000);
    force.unref();
    server.stop().then(() => process.exit(0), (err: unknown) => {
      server.logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  return server;
}

const invokedDirectly = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) {
  main().catch((err: unknown) => {
    process.stderr.write(`Failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
