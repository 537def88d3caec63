/**
 * pipelines/stages — the task handlers the built-in agents run (SPEC §7.1, §7.2, §7.4): one per
 * pipeline stage and per local task type, all offline and deterministic over ai/local. Belongs
 * here: reading a task's parameters, composing the local analysers, shaping stage outputs.
 * Does not belong here: scheduling, leases, persistence, agents (pipelines/tasks/agents do that).
 *
 * Parameter contract — a handler receives `parameters`:
 *   {
 *     input_data?: {format: "text"|"json"|"jsonl"|"csv", content} | {text},   // first stage
 *     inputs?:     {<stage name>: <that stage's output>},                     // later stages
 *     context?:    {session_type, patient_id, session_id, quality_thresholds?, …},
 *     config?:     {quality_thresholds?: {bias_score_max, completeness_min, pii_remaining_max,
 *                   confidence_min}, or the same keys at top level},
 *     text?:       string                                                     // standalone
 *   }
 * The first stage parses `input_data`; later stages read their dependencies from `inputs`
 * (standardization ← inputs.ingestion, validation ← inputs.standardization, …). Any stage given
 * only `input_data` runs the earlier steps itself, so each is also usable as a standalone task.
 * Outputs from validation / text_preprocessing onward carry `redacted: true` and
 * `conversations` whose turn text is redacted; a stage with several parents merges them by
 * conversation_id. Outputs are JSON-serialisable plain data.
 *
 * Failures: bad input → StageFailure VALIDATION_ERROR (retryable false) naming the record index and
 * line; a failed quality gate → StageFailure QUALITY_GATE_FAILED with {reasons, gates, metrics}.
 *
 * Outputs (one line each):
 *   ingestion            → {format, record_count, records: [{index, line, data}]}
 *   standardization      → {conversation_count, turn_count, speaker_recognition_rate, warnings, conversations: [{conversation_id, turns: [{speaker, text}]}]}
 *   validation           → {redacted, conversation_count, turn_count, pii_found, pii_remaining, bias_score, bias_findings, completeness, issues, conversations (+checks, pii, bias)}
 *   processing           → {redacted, summary: {sentiment_compound_mean, empathy, confidence, …}, conversations (+per-turn sentiment/emotions, empathy, confidence)}
 *   quality_assessment   → {redacted, passed, gates, reasons, metrics, thresholds, conversations} or QUALITY_GATE_FAILED
 *   export               → {formats: {json, jsonl, csv}, content_types, record_count, conversation_count, turn_count, quality}
 *   text_preprocessing   → {redacted, conversation_count, turn_count, pii_found, pii_remaining, completeness, issues, speaker_recognition_rate, warnings, conversations}
 *   bias_detection       → {redacted, bias_score, findings_count, conversations (+bias)} | {text}: {score, findings, by_speaker, word_count}
 *   emotion_analysis     → {redacted, sentiment_compound_mean, dominant_emotions, conversations (+sentiment/emotions)} | {text}: {emotions, sentiment}
 *   empathy_scoring      → {redacted, empathy: {overall, cognitive, emotional, compassionate}, conversations (+empathy)}
 *   therapeutic_recommendations → {redacted, recommendation_count, critical, conversations (+recommendations)}
 *   report_generation    → {report: {context, conversation_count, turn_count, metrics, conversations, narrative}, formats, content_types, record_count}
 *   sentiment_analysis   → {text}: {compound, neg, neu, pos, label, sentences} | {conversations: [{conversation_id, overall, by_speaker, turns}]}
 *   pii_detection        → {text}: {findings, counts, total, redacted_text} | {redacted, counts, total, conversations}
 */
import { biasDetection, emotionAnalysis, empathyScoring, reportGeneration, textPreprocessing, therapeuticRecommendations } from './mental-health-stages.ts';
import { piiDetection, sentimentAnalysis } from './standalone-stages.ts';
import { StageFailure } from './stage-failure.ts';
import { toStageFailure } from './stage-inputs.ts';
import type { StageHandler } from './stage-types.ts';
import { exportStage, ingestion, processing, qualityAssessment, standardization, validation } from './techdeck-stages.ts';

export { StageFailure } from './stage-failure.ts';
export type { StageContext, StageHandler } from './stage-types.ts';
export { EXPORT_CONTENT_TYPES } from './techdeck-stages.ts';

/** Wrap a handler so that anything but a StageFailure from bad input surfaces as one. */
function guarded(handler: StageHandler): StageHandler {
  return async (ctx) => {
    try {
      return await handler(ctx);
    } catch (e) {
      const mapped = toStageFailure(e);
      if (mapped instanceof StageFailure) throw mapped;
      throw new StageFailure('STAGE_FAILED', `${ctx.task_type} failed unexpectedly`, { retryable: true, cause: e });
    }
  };
}

export const TECHDECK_STAGES = ['ingestion', 'standardization', 'validation', 'processing', 'quality_assessment', 'export'] as const;
export const MENTAL_HEALTH_STAGES = ['text_preprocessing', 'bias_detection', 'emotion_analysis', 'empathy_scoring', 'therapeutic_recommendations', 'report_generation'] as const;
export const STANDALONE_TASK_TYPES = ['sentiment_analysis', 'pii_detection'] as const;

export const LOCAL_STAGE_HANDLERS: Record<string, StageHandler> = Object.freeze({
  ingestion: guarded(ingestion),
  standardization: guarded(standardization),
  validation: guarded(validation),
  processing: guarded(processing),
  quality_assessment: guarded(qualityAssessment),
  export: guarded(exportStage),
  text_preprocessing: guarded(textPreprocessing),
  bias_detection: guarded(biasDetection),
  emotion_analysis: guarded(emotionAnalysis),
  empathy_scoring: guarded(empathyScoring),
  therapeutic_recommendations: guarded(therapeuticRecommendations),
  report_generation: guarded(reportGeneration),
  sentiment_analysis: guarded(sentimentAnalysis),
  pii_detection: guarded(piiDetection),
});
