/**
 * Analysis steps over redacted conversations. Each adds its fields only when they are missing,
 * so a stage can run after any subset of earlier stages (or none) and never redo work.
 */
import {
  analysisConfidence, analyzeConversationEmotions, analyzeConversationSentiment, checkConversation, countRemainingPii,
  detectBias, recommend, round, scoreEmpathy,
  type AnalysedConversation, type QualityMetrics,
} from '../../ai/local/index.ts';

export function withBias(c: AnalysedConversation): AnalysedConversation {
  return c.bias ? c : { ...c, bias: detectBias(c.turns) };
}

export function withAffect(c: AnalysedConversation): AnalysedConversation {
  if (c.sentiment && c.emotions && c.turns.every((t) => t.sentiment && t.emotions)) return c;
  const s = analyzeConversationSentiment(c.turns);
  const e = analyzeConversationEmotions(c.turns);
  return {
    ...c,
    turns: c.turns.map((t, i) => ({ ...t, ...(s.turns[i] ? { sentiment: s.turns[i] } : {}), ...(e.turns[i] ? { emotions: e.turns[i] } : {}) })),
    sentiment: { overall: s.overall, by_speaker: s.by_speaker },
    emotions: { overall: e.overall, by_speaker: e.by_speaker },
  };
}

export function withEmpathy(c: AnalysedConversation): AnalysedConversation {
  const empathy = c.empathy ?? scoreEmpathy(c.turns);
  return { ...c, empathy, confidence: c.confidence ?? analysisConfidence(c, empathy.confidence) };
}

export function withRecommendations(c: AnalysedConversation): AnalysedConversation {
  if (c.recommendations) return c;
  const full = withEmpathy(withBias(withAffect(c)));
  return {
    ...full,
    recommendations: recommend({
      turns: full.turns,
      client_trend: full.sentiment?.by_speaker.client,
      client_emotions: full.emotions?.by_speaker.client,
      empathy: full.empathy,
      bias_findings: full.bias?.findings,
    }),
  };
}

const mean = (xs: number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);

/**
 * Run-level quality metrics: bias_score = the worst conversation's score; completeness and
 * confidence = means over conversations; pii_remaining = total identifiers left after redaction.
 */
export function qualityMetrics(conversations: readonly AnalysedConversation[]): QualityMetrics {
  return {
    bias_score: round(Math.max(0, ...conversations.map((c) => c.bias?.score ?? detectBias(c.turns).score))),
    completeness: round(mean(conversations.map((c) => (c.checks ?? checkConversation(c)).completeness))),
    pii_remaining: conversations.reduce((n, c) => n + (c.pii?.remaining ?? countRemainingPii(c.turns)), 0),
    confidence: round(mean(conversations.map((c) => c.confidence ?? withEmpathy(c).confidence ?? 0))),
  };
}

export function turnCount(conversations: readonly { turns: readonly unknown[] }[]): number {
  return conversations.reduce((n, c) => n + c.turns.length, 0);
}

export function meanOf(values: number[]): number {
  return round(mean(values));
}
