/**
 * ai: analysis providers and the hub that routes a task type to them (SPEC §10). The `local`
 * provider's offline analysers (parsing, speaker turns, PII redaction, bias, sentiment/emotions,
 * empathy, recommendations, quality gates, export); remote providers on the official SDKs
 * (`openai`: OpenAI and any compatible server; `google`: Gemini); each provider behind a guard
 * (timeout, retries, circuit breaker, rate limit, quality figures). No transport, no persistence.
 */
export * from './local/index.ts';
export { AiHub, AllProvidersFailedError, failureCode, inputText, isFinalFailure, missingText, type AiProvider, type AnalysisOutcome, type AnalyzeContext } from './ai-provider.ts';
export {
  GuardedProvider, InvalidOutputError, ProviderRateLimitedError, ProviderUnavailableError,
  type ProviderGuardOptions, type ProviderStatus,
} from './guarded-provider.ts';
export { OpenAiProvider } from './providers/openai-provider.ts';
export { GoogleProvider } from './providers/google-provider.ts';
export type { RemoteModelOptions } from './providers/analysis-prompts.ts';
