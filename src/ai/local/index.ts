/**
 * ai/local — the offline, deterministic text analysis behind the `local` AI provider and the
 * built-in agents (SPEC §7.1, §7.2, §7.4, §10). Pure functions over plain data: no network, no
 * randomness, no I/O, no clocks. Belongs here: parsing of pipeline input, speaker-turn
 * standardization, PII/PHI detection and redaction, bias / inconsiderate-language detection,
 * VADER sentiment, lexicon emotions, empathy scoring, rule-based recommendations, quality gates,
 * export formatting. Does not belong here: tasks, pipelines, storage, providers that call a
 * network service (those live in ai/providers and pipelines/stages, which import this surface).
 */
export * from './conversation-types.ts';
export { parseInput, parseContent, detectFormat, lineColumnAt, isObject, INPUT_FORMATS, MAX_INPUT_CHARS, type InputData } from './input-parser.ts';
export { findJsonSyntaxError, type JsonSyntaxProblem } from './json-syntax.ts';
export { parseSpeakerTurns, standardizeRecords, canonicalRole, type StandardizeResult } from './speaker-turns.ts';
export { detectPii, redactPii, redactText, detectPatternPii, countRemainingPii, PII_TYPES, type PiiType, type PiiFinding, type PiiResult } from './pii-redaction.ts';
export { detectBias, detectBiasInText, biasScore, countWords, SEVERITY_WEIGHT, type BiasFinding, type BiasResult, type BiasSeverity } from './bias-detection.ts';
export {
  analyzeSentiment, analyzeConversationSentiment, sentimentTrend, sentimentLabel,
  type SentimentScore, type SentimentLabel, type SentimentTrend, type ConversationSentiment,
} from './sentiment-analysis.ts';
export { EMOTIONS, emotionsOf, EMOTION_LEXICON_SIZE, type Emotion } from './emotion-lexicon.ts';
export { analyzeEmotions, analyzeConversationEmotions, type EmotionScores, type TurnEmotions, type EmotionSummary, type ConversationEmotions } from './emotion-analysis.ts';
export { scoreEmpathy, type EmpathyScore } from './empathy-scoring.ts';
export { recommend, type Recommendation, type RecommendationInput, type RecommendationPriority } from './therapeutic-recommendations.ts';
export {
  evaluateQualityGates, resolveThresholds, DEFAULT_QUALITY_THRESHOLDS,
  type QualityThresholds, type QualityMetrics, type QualityGate, type QualityGateResult,
} from './quality-gates.ts';
export { checkConversation, analysisConfidence, type AnalysedConversation, type AnalysedTurn, type ConversationChecks } from './conversation-analysis.ts';
export { formatExport, CSV_COLUMNS, type ExportFormats } from './export-format.ts';
export { warmUpLocalAnalysers } from './warm-up.ts';
