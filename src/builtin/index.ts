/** builtin: the in-process agents that run the local analysers through the normal assignment path. */
export { BuiltinAgents, BUILTIN_AGENT_ID, builtinAgentId, type BuiltinAgentsOptions } from './builtin-agents.ts';
export { localProvider } from './local-provider.ts';
