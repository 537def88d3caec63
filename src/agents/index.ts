/**
 * agents: the registry of agents — registration, credentials exchange, discovery, presence
 * (heartbeats in the coordination layer), health, performance scoring. Task assignment lives in
 * tasks/, which reads agents through this surface.
 */
export { AgentService, type AgentServiceOptions, type AgentView, type AgentPresence } from './agent-service.ts';
export { AgentRepository, type AgentRecord, type AgentFilter } from './agent-repository.ts';
export { performanceScore, scoreOf, successRate, averageResponseSeconds } from './scoring.ts';
export { AgentOutcomes } from './agent-outcomes.ts';
