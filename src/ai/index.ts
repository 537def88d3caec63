/**
 * ai: analysis providers. Today the `local` provider (offline analysers over npm libraries:
 * parsing, speaker turns, PII redaction, bias, sentiment/emotions, empathy, recommendations,
 * quality gates, export). Remote providers (OpenAI-compatible, Google) and the routing hub plug
 * in here behind the same functions. No transport, no persistence.
 */
export * from './local/index.ts';
export { AiHub, isFinalFailure, type AiProvider, type AnalysisOutcome } from './ai-provider.ts';
