/** Agent rows for tests that drive the task services directly (no HTTP registration). */
import { AgentRepository } from '../../src/agents/index.ts';
import type { Queryable } from '../../src/store/index.ts';

/** A worker agent's row: `capabilities`, room for `max` tasks, named as its id. */
export async function insertAgent(db: Queryable, agentId: string, capabilities: string[], max: number): Promise<void> {
  await new AgentRepository().insert(db, {
    agent_id: agentId, name: agentId, type: 'general', capabilities, version: '1.0.0', endpoint_url: null, health_check_url: null,
    max_concurrent_tasks: max, metadata: {}, tags: [], role: 'worker', builtin: false, api_key_hash: 'x',
  });
}
