/**
 * The `mental_health_analysis` DAG (SPEC §7.2): text_preprocessing → (bias_detection ‖
 * emotion_analysis) → empathy_scoring → therapeutic_recommendations → report_generation.
 * Every output after preprocessing carries the redacted, progressively analysed conversations,
 * merged by conversation_id when a stage has several parents. bias_detection and
 * emotion_analysis also run standalone on `{text}` (one turn, offsets relative to the text).
 */
import {
  analyzeEmotions, analyzeSentiment, detectBiasInText, formatExport, round,
  type AnalysedConversation, type Recommendation,
} from '../../ai/local/index.ts';
import { meanOf, qualityMetrics, turnCount, withAffect, withBias, withEmpathy, withRecommendations } from './conversation-steps.ts';
import { getAnalysedConversations, getConversations, readParameters, redactConversation, standaloneText } from './stage-inputs.ts';
import type { StageContext, StageHandler } from './stage-types.ts';
import { EXPORT_CONTENT_TYPES, validationSummary } from './techdeck-stages.ts';

function analyse<T>(ctx: StageContext, conversations: readonly T[], step: (c: T) => AnalysedConversation, label: string): AnalysedConversation[] {
  return conversations.map((c, i) => {
    const r = step(c);
    ctx.reportProgress?.((i + 1) / conversations.length, `${label} ${i + 1}/${conversations.length}`);
    return r;
  });
}

/** Parse, standardize, redact PII, structural checks. */
export const textPreprocessing: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const { conversations, speaker_recognition_rate, warnings } = getConversations(p);
  const analysed = analyse(ctx, conversations, (c) => redactConversation(c), 'preprocessed');
  const summary = validationSummary(analysed);
  delete summary.bias_score;
  delete summary.bias_findings;
  return { redacted: true, ...summary, speaker_recognition_rate: speaker_recognition_rate ?? null, warnings, conversations: analysed };
};

export const biasDetection: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const text = standaloneText(p);
  if (text !== undefined) return { ...detectBiasInText(text) };
  const analysed = analyse(ctx, getAnalysedConversations(p), withBias, 'bias checked');
  return {
    redacted: true,
    bias_score: round(Math.max(0, ...analysed.map((c) => c.bias?.score ?? 0))),
    findings_count: analysed.reduce((n, c) => n + (c.bias?.findings.length ?? 0), 0),
    conversations: analysed,
  };
};

export const emotionAnalysis: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const text = standaloneText(p);
  if (text !== undefined) return { emotions: analyzeEmotions(text), sentiment: analyzeSentiment(text) };
  const analysed = analyse(ctx, getAnalysedConversations(p), withAffect, 'emotions analysed');
  return {
    redacted: true,
    sentiment_compound_mean: meanOf(analysed.map((c) => c.sentiment?.overall.compound ?? 0)),
    dominant_emotions: Object.fromEntries(analysed.map((c) => [c.conversation_id, c.emotions?.overall.dominant ?? null])),
    conversations: analysed,
  };
};

/** Empathy of the therapist turns. `{text}` is parsed as a labelled transcript (speakers matter). */
export const empathyScoring: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const analysed = analyse(ctx, getAnalysedConversations(p), withEmpathy, 'empathy scored');
  return {
    redacted: true,
    empathy: {
      overall: meanOf(analysed.map((c) => c.empathy?.overall ?? 0)),
      cognitive: meanOf(analysed.map((c) => c.empathy?.cognitive ?? 0)),
      emotional: meanOf(analysed.map((c) => c.empathy?.emotional ?? 0)),
      compassionate: meanOf(analysed.map((c) => c.empathy?.compassionate ?? 0)),
    },
    conversations: analysed,
  };
};

export const therapeuticRecommendations: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const analysed = analyse(ctx, getAnalysedConversations(p), withRecommendations, 'recommendations');
  const all: (Recommendation & { conversation_id: string })[] = analysed.flatMap((c) => (c.recommendations ?? []).map((r) => ({ ...r, conversation_id: c.conversation_id })));
  return { redacted: true, recommendation_count: all.length, critical: all.filter((r) => r.priority === 'critical').length, conversations: analysed };
};

/** The final report plus the same JSON / JSONL / CSV formats as the techdeck export. */
export const reportGeneration: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const analysed = analyse(ctx, getAnalysedConversations(p), withRecommendations, 'reported');
  const metrics = qualityMetrics(analysed);
  const conversations = analysed.map((c) => ({
    conversation_id: c.conversation_id,
    turn_count: c.turns.length,
    sentiment: c.sentiment?.overall ?? null,
    client_trend: c.sentiment?.by_speaker.client ?? null,
    dominant_emotion: c.emotions?.overall.dominant ?? null,
    client_dominant_emotion: c.emotions?.by_speaker.client?.dominant ?? null,
    empathy: c.empathy ?? null,
    bias_score: c.bias?.score ?? null,
    bias_findings: c.bias?.findings.length ?? 0,
    pii_redacted: c.pii ? Object.values(c.pii.counts).reduce((a, b) => a + b, 0) : 0,
    recommendations: c.recommendations ?? [],
  }));
  const narrative = analysed.map((c) => narrate(c)).join('\n\n');
  return {
    report: {
      context: pickContext(p.context),
      conversation_count: analysed.length,
      turn_count: turnCount(analysed),
      metrics,
      conversations,
      narrative,
    },
    formats: formatExport(analysed),
    content_types: EXPORT_CONTENT_TYPES,
    record_count: analysed.length,
  };
};

/** Only non-identifying context keys go into the report (patient/session ids stay in the store). */
function pickContext(context: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['session_type', 'modality', 'language']) if (typeof context[k] === 'string') out[k] = context[k];
  return out;
}

function narrate(c: AnalysedConversation): string {
  const lines = [`Conversation ${c.conversation_id}: ${c.turns.length} turns.`];
  const trend = c.sentiment?.by_speaker.client;
  if (trend) lines.push(`Client sentiment averaged ${trend.mean} (${trend.direction}; first half ${trend.first_half_mean}, second half ${trend.second_half_mean}).`);
  const emo = c.emotions?.by_speaker.client?.dominant;
  if (emo) lines.push(`The client's most frequent emotion was ${emo}.`);
  if (c.empathy) lines.push(`Therapist empathy ${c.empathy.overall} (cognitive ${c.empathy.cognitive}, emotional ${c.empathy.emotional}, compassionate ${c.empathy.compassionate}).`);
  if (c.bias) lines.push(`Bias score ${c.bias.score} with ${c.bias.findings.length} flagged phrase(s).`);
  const recs = c.recommendations ?? [];
  if (recs.length > 0) lines.push(`Recommendations: ${recs.map((r) => `[${r.priority}] ${r.title}`).join('; ')}.`);
  return lines.join(' ');
}
