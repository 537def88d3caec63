#!/usr/bin/env -S npx tsx
/**
 * A minimal worker agent on the MCP Agent SDK.
 *
 *   # once: register an agent (admin token), keep the API key it prints
 *   mcp login -u admin
 *   mcp agent run --register --agent-id demo-worker --types sentiment_analysis   # or register via REST
 *
 *   MCP_URL=http://localhost:8080 MCP_AGENT_ID=demo-worker MCP_AGENT_KEY=mcp_ak_… npx tsx examples/word-count-agent.mjs
 *
 * The agent must hold the `text_analysis` capability; create work with
 *   mcp tasks create --type word_count --capabilities text_analysis --text "some words to count"
 *
 * Shows: handlers by task type, progress reports, honouring cancellation through ctx.signal,
 * NonRetryableError for input that no retry can fix, and a graceful drain on SIGTERM.
 * (Plain JavaScript so it runs as is; the SDK is TypeScript and fully typed.)
 */
import { McpAgent, NonRetryableError } from 'mcp-server/sdk';

const { MCP_URL = 'http://localhost:8080', MCP_AGENT_ID, MCP_AGENT_KEY } = process.env;
if (!MCP_AGENT_ID || !MCP_AGENT_KEY) {
  console.error('Set MCP_AGENT_ID and MCP_AGENT_KEY (the API key printed when the agent was registered).');
  process.exit(2);
}

const agent = new McpAgent({
  url: MCP_URL,
  agentId: MCP_AGENT_ID,
  apiKey: MCP_AGENT_KEY,
  concurrency: 4,
  handleSignals: true, // SIGTERM/SIGINT → drain: finish running tasks, take no new ones, disconnect
  logger: console,
  handlers: {
    async word_count(task, ctx) {
      const text = task.parameters?.text;
      if (typeof text !== 'string') throw new NonRetryableError('parameters.text must be a string', 'BAD_INPUT');
      const words = text.split(/\s+/).filter(Boolean);
      const counts = {};
      for (let i = 0; i < words.length; i++) {
        if (ctx.signal.aborted) throw ctx.signal.reason; // the task was cancelled
        const w = words[i].toLowerCase().replace(/[^\p{L}\p{N}'-]/gu, '');
        if (w) counts[w] = (counts[w] ?? 0) + 1;
        if (i % 1000 === 999) await ctx.progress(i / words.length, `${i + 1} words`);
      }
      return { words: words.length, distinct: Object.keys(counts).length, top: Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 10) };
    },
  },
});

agent.on('task', (t) => console.info(`task ${t.task_id} (${t.task_type}, attempt ${t.attempt})`));
agent.on('completed', (e) => console.info(`completed ${e.task.task_id} in ${e.duration_ms} ms`));
agent.on('failed', (e) => console.warn(`failed ${e.task.task_id}: ${e.error.code} (retryable: ${e.error.retryable})`));
agent.on('error', (err) => console.error(err.message));
agent.on('stopped', () => process.exit(0));

await agent.start();
console.info(`agent ${MCP_AGENT_ID} connected to ${MCP_URL}; Ctrl-C to drain and stop`);
