#!/usr/bin/env -S npx tsx
/**
 * The typed REST client: sign in, start a pipeline run over a transcript, wait for it, print
 * the per-stage outcome and the CSV export.
 *
 *   MCP_URL=http://localhost:8080 MCP_USER=admin MCP_PASSWORD=… npx tsx examples/rest-client.mjs
 */
import { McpApiError, McpClient } from 'mcp-server/sdk';

const { MCP_URL = 'http://localhost:8080', MCP_USER = 'admin', MCP_PASSWORD } = process.env;
const client = new McpClient({ url: MCP_URL });

try {
  await client.auth.login(MCP_USER, MCP_PASSWORD ?? '');
  const transcript = [
    'Therapist: What brings you in today?',
    'Client: I have been feeling overwhelmed at work and I cannot sleep.',
    'Therapist: That sounds exhausting. Tell me more about what a typical night looks like.',
  ].join('\n');
  const run = await client.pipelines.create({ template: 'techdeck', name: 'sdk example', input_data: { text: transcript } }, { idempotencyKey: `example-${Date.now()}` });
  let detail = await client.pipelines.get(run.pipeline_id);
  while (!['completed', 'partially_completed', 'failed', 'cancelled'].includes(detail.status)) {
    await new Promise((r) => setTimeout(r, 500));
    detail = await client.pipelines.get(run.pipeline_id);
  }
  for (const s of detail.stages) console.log(`${s.stage.padEnd(20)} ${s.status}`);
  if (detail.status === 'completed') console.log(await client.pipelines.output(run.pipeline_id, 'csv'));
  process.exitCode = detail.status === 'completed' ? 0 : 1;
} catch (err) {
  if (err instanceof McpApiError) console.error(`${err.status} ${err.code}: ${err.message} (request ${err.requestId})`);
  else console.error(err);
  process.exitCode = 1;
}
