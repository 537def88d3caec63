/**
 * sdk: what users of the MCP server import (`mcp-server/sdk`): `McpAgent` (a worker agent over
 * Socket.IO: delegation, progress, cancellation, heartbeats, token refresh, reconnection, drain)
 * and `McpClient` (a typed REST client), with their error types.
 *
 * A transport: it speaks HTTP and Socket.IO to a server and imports nothing from the server but
 * the request-body types in `src/contracts`.
 */
export { McpAgent, type McpAgentOptions, type AgentEvents, type TaskContext, type TaskHandler, type SdkLogger } from './mcp-agent.ts';
export { McpClient, type McpClientOptions } from './mcp-client.ts';
export { McpApiError, NonRetryableError, toTaskError } from './errors.ts';
export type * from './types.ts';
