/** Agent rows and the agent service for tests that drive the services directly (no HTTP registration). */
import { AgentRepository, AgentService } from '../../src/agents/index.ts';
import { ApiKeys, SigningKeys, SyncedRevocationList, TokenService } from '../../src/auth/index.ts';
import type { Coordination } from '../../src/coordination/index.ts';
import { EventBus } from '../../src/core/index.ts';
import type { Db, Queryable } from '../../src/store/index.ts';

/** A worker agent's row: `capabilities`, room for `max` tasks, named as its id. */
export async function insertAgent(db: Queryable, agentId: string, capabilities: string[], max: number): Promise<void> {
  await new AgentRepository().insert(db, {
    agent_id: agentId, name: agentId, type: 'general', capabilities, version: '1.0.0', endpoint_url: null, health_check_url: null,
    max_concurrent_tasks: max, metadata: {}, tags: [], role: 'worker', builtin: false, api_key_hash: 'x',
  });
}

/** A real AgentService on `db` and `coord` (agent timeout 5 s, REST 60 s); its credentials are never used here. */
export function agentService(db: Db, coord: Coordination, bus = new EventBus()): AgentService {
  const lifetimes = { user_access_ttl: 900, user_refresh_ttl: 3600, agent_access_ttl: 900, agent_refresh_ttl: 3600 };
  const tokens = new TokenService(db, new SigningKeys(db), { issuer: 'test', audience: 'test', lifetimes }, new SyncedRevocationList(db, null, { syncMs: 60_000 }), bus);
  return new AgentService(db, coord, bus, new ApiKeys('test-pepper'), tokens, { timeoutSeconds: 5, restTimeoutSeconds: 60, heartbeatIntervalSeconds: 1 });
}
