/** Shows a freshly registered agent's credentials once (they are not stored by the CLI). */
import type { CliContext } from '../cli-context.ts';

export function saveAgentNote(ctx: CliContext, agentId: string, apiKey: string): void {
  const note = ctx.out.json
    ? JSON.stringify({ registered: { agent_id: agentId, api_key: apiKey } })
    : `Registered agent ${agentId}. Its API key (shown once; keep it to run the agent again):\n  MCP_AGENT_ID=${agentId} MCP_AGENT_KEY=${apiKey}`;
  ctx.out.stderr(note);
}
