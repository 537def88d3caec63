/**
 * Standalone task types (SPEC §6): `sentiment_analysis` and `pii_detection`. `{text}` is
 * analysed as one text (offsets relative to it); `input_data: {format, content}` as conversations;
 * as pipeline stages, the conversations of their dependencies — raw, or the redacted ones of
 * text_preprocessing / validation (`getConversationsForAnalysis`). Outputs never echo unredacted text.
 */
import { analyzeConversationSentiment, analyzeSentiment, detectPii, redactPii, PII_TYPES } from '../../ai/local/index.ts';
import { getConversationsForAnalysis, readParameters, standaloneText } from './stage-inputs.ts';
import type { StageHandler } from './stage-types.ts';

const SENTENCE_RE = /[^.!?\n]+[.!?]*/g;

export const sentimentAnalysis: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const text = standaloneText(p);
  if (text !== undefined) {
    const sentences = [...text.matchAll(SENTENCE_RE)]
      .filter((m) => m[0].trim() !== '')
      .map((m) => {
        const s = analyzeSentiment(m[0]);
        return { start: m.index ?? 0, end: (m.index ?? 0) + m[0].length, compound: s.compound, label: s.label };
      });
    ctx.reportProgress?.(1);
    return { ...analyzeSentiment(text), sentences };
  }
  const conversations = getConversationsForAnalysis(p);
  return {
    conversations: conversations.map((c) => {
      const s = analyzeConversationSentiment(c.turns);
      return {
        conversation_id: c.conversation_id,
        overall: s.overall,
        by_speaker: s.by_speaker,
        turns: s.turns.map((t, i) => ({ turn_index: i, speaker: c.turns[i]?.speaker ?? 'unknown', ...t })),
      };
    }),
  };
};

export const piiDetection: StageHandler = async (ctx) => {
  const p = readParameters(ctx.parameters);
  const text = standaloneText(p);
  if (text !== undefined) {
    const r = redactPii(text);
    ctx.reportProgress?.(1);
    return { findings: r.findings, counts: r.counts, total: r.findings.length, redacted_text: r.redacted_text };
  }
  const conversations = getConversationsForAnalysis(p);
  const counts = Object.fromEntries(PII_TYPES.map((k) => [k, 0])) as Record<string, number>;
  const out = conversations.map((c) => {
    const r = detectPii(c.turns);
    for (const [k, v] of Object.entries(r.counts)) counts[k] = (counts[k] ?? 0) + v;
    return { conversation_id: c.conversation_id, findings: r.findings, counts: r.counts, turns: r.redacted_turns };
  });
  return { redacted: true, counts, total: Object.values(counts).reduce((a, b) => a + b, 0), conversations: out };
};
