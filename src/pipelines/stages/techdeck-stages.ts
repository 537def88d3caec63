/**
 * The six TechDeck stages (SPEC §7.1), strictly in order. Each reads its predecessor from
 * `parameters.inputs.<stage>` (or falls back to `input_data`) and returns plain JSON.
 */
import {
  evaluateQualityGates, formatExport, resolveThresholds, round, type AnalysedConversation,
} from '../../ai/local/index.ts';
import { qualityMetrics, turnCount, withAffect, withBias, withEmpathy, meanOf } from './conversation-steps.ts';
import { StageFailure } from './stage-failure.ts';
import { getAnalysedConversations, getConversations, parseFromParameters, readParameters, redactConversation, type StageParameters } from './stage-inputs.ts';
import type { StageContext, StageHandler } from './stage-types.ts';

function progress(ctx: StageContext, p: number, message?: string): void {
  ctx.reportProgress?.(Math.min(1, Math.max(0, p)), message);
}

function eachWithProgress<T, R>(ctx: StageContext, items: readonly T[], fn: (item: T) => R, label: string): R[] {
  return items.map((item, i) => {
    const r = fn(item);
    progress(ctx, (i + 1) / items.length, `${label} ${i + 1}/${items.length}`);
    return r;
  });
}

export const ingestion: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const parsed = parseFromParameters(p);
  progress(ctx, 1, `parsed ${parsed.records.length} records`);
  return { format: parsed.format, record_count: parsed.records.length, records: parsed.records };
};

export const standardization: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const r = getConversations(p);
  progress(ctx, 1, `standardized ${r.conversations.length} conversations`);
  return {
    conversation_count: r.conversations.length,
    turn_count: turnCount(r.conversations),
    speaker_recognition_rate: r.speaker_recognition_rate ?? null,
    warnings: r.warnings,
    conversations: r.conversations,
  };
};

/** Schema/content checks, PII redaction and bias on the redacted text. Output turns are redacted. */
export const validation: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const { conversations } = getConversations(p);
  const analysed = eachWithProgress(ctx, conversations, (c) => withBias(redactConversation(c)), 'validated');
  return { redacted: true, ...validationSummary(analysed), conversations: analysed };
};

export function validationSummary(conversations: readonly AnalysedConversation[]): Record<string, unknown> {
  const piiFound: Record<string, number> = {};
  for (const c of conversations) for (const [k, v] of Object.entries(c.pii?.counts ?? {})) piiFound[k] = (piiFound[k] ?? 0) + v;
  const issues = conversations.flatMap((c) =>
    Object.entries(c.checks?.results ?? {}).filter(([, ok]) => !ok).map(([name]) => `${c.conversation_id}: ${name} failed`),
  );
  return {
    conversation_count: conversations.length,
    turn_count: turnCount(conversations),
    pii_found: piiFound,
    pii_remaining: conversations.reduce((n, c) => n + (c.pii?.remaining ?? 0), 0),
    bias_score: round(Math.max(0, ...conversations.map((c) => c.bias?.score ?? 0))),
    bias_findings: conversations.reduce((n, c) => n + (c.bias?.findings.length ?? 0), 0),
    completeness: meanOf(conversations.map((c) => c.checks?.completeness ?? 0)),
    issues,
  };
}

/** Per-turn sentiment and emotions, empathy (cognitive / emotional / compassionate), confidence. */
export const processing: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const conversations = getAnalysedConversations(p);
  const analysed = eachWithProgress(ctx, conversations, (c) => withEmpathy(withAffect(c)), 'processed');
  return { redacted: true, summary: processingSummary(analysed), conversations: analysed };
};

export function processingSummary(conversations: readonly AnalysedConversation[]): Record<string, unknown> {
  return {
    conversation_count: conversations.length,
    turn_count: turnCount(conversations),
    sentiment_compound_mean: meanOf(conversations.map((c) => c.sentiment?.overall.compound ?? 0)),
    empathy: {
      overall: meanOf(conversations.map((c) => c.empathy?.overall ?? 0)),
      cognitive: meanOf(conversations.map((c) => c.empathy?.cognitive ?? 0)),
      emotional: meanOf(conversations.map((c) => c.empathy?.emotional ?? 0)),
      compassionate: meanOf(conversations.map((c) => c.empathy?.compassionate ?? 0)),
    },
    confidence: meanOf(conversations.map((c) => c.confidence ?? 0)),
  };
}

/** Quality gates over the run; a failed gate throws QUALITY_GATE_FAILED with the reasons. */
export const qualityAssessment: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const conversations = getAnalysedConversations(p).map((c) => withEmpathy(withBias(c)));
  const metrics = qualityMetrics(conversations);
  const result = evaluateQualityGates(metrics, resolveThresholds(thresholdConfig(p)));
  progress(ctx, 1, result.passed ? 'quality gates passed' : 'quality gates failed');
  if (!result.passed) {
    throw new StageFailure('QUALITY_GATE_FAILED', `Quality gates failed: ${result.reasons.join('; ')}`, {
      retryable: false,
      details: { reasons: result.reasons, gates: result.gates, metrics, thresholds: result.thresholds },
    });
  }
  return { redacted: true, passed: true, gates: result.gates, reasons: result.reasons, metrics, thresholds: result.thresholds, conversations };
};

/** Thresholds: `config.quality_thresholds`, `config.*`, or `context.quality_thresholds`. */
function thresholdConfig(p: StageParameters): Record<string, unknown> {
  const fromContext = p.context.quality_thresholds;
  return typeof fromContext === 'object' && fromContext !== null && p.config.quality_thresholds === undefined
    ? { ...p.config, quality_thresholds: fromContext }
    : p.config;
}

export const EXPORT_CONTENT_TYPES = { json: 'application/json', jsonl: 'application/x-ndjson', csv: 'text/csv' } as const;

/** JSON / JSONL / CSV of the de-identified analysed conversations. */
export const exportStage: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const conversations = getAnalysedConversations(p).map((c) => withEmpathy(withAffect(withBias(c))));
  const formats = formatExport(conversations);
  const quality = p.inputs.quality_assessment;
  progress(ctx, 1, `exported ${conversations.length} conversations`);
  return {
    formats,
    content_types: EXPORT_CONTENT_TYPES,
    record_count: conversations.length,
    conversation_count: conversations.length,
    turn_count: turnCount(conversations),
    quality: quality ? { passed: quality.passed ?? null, gates: quality.gates ?? [], metrics: quality.metrics ?? null } : null,
  };
};
