/**
 * Export of analysed conversations to JSON (an array), JSONL (one conversation per line) and
 * CSV (one row per turn with conversation-level scores repeated). Callers pass redacted
 * conversations only; this module adds no data of its own.
 */
import { stringify } from 'csv-stringify/sync';
import type { AnalysedConversation } from './conversation-analysis.ts';
import { EMOTIONS } from './emotion-lexicon.ts';

export interface ExportFormats {
  json: string;
  jsonl: string;
  csv: string;
}

export const CSV_COLUMNS = [
  'conversation_id', 'turn_index', 'speaker', 'text',
  'sentiment_compound', 'sentiment_label', 'dominant_emotion', ...EMOTIONS.map((e) => `emotion_${e}`),
  'bias_findings', 'conversation_bias_score', 'empathy_overall', 'empathy_cognitive', 'empathy_emotional',
  'empathy_compassionate', 'completeness', 'confidence', 'pii_redacted',
] as const;

/** Spreadsheet formula injection guard (OWASP): cells starting with = + @ or a control char get a leading '. */
function neutraliseFormula(text: string): string {
  return /^[=+@\t\r]/.test(text) ? `'${text}` : text;
}

function csvRows(conversations: readonly AnalysedConversation[]): Record<string, string | number>[] {
  const rows: Record<string, string | number>[] = [];
  for (const c of conversations) {
    const piiRedacted = c.pii ? Object.values(c.pii.counts).reduce((a, b) => a + b, 0) : '';
    for (const t of c.turns) {
      const row: Record<string, string | number> = {
        conversation_id: c.conversation_id,
        turn_index: t.turn_index,
        speaker: t.speaker,
        text: neutraliseFormula(t.text),
        sentiment_compound: t.sentiment?.compound ?? '',
        sentiment_label: t.sentiment?.label ?? '',
        dominant_emotion: t.emotions?.dominant ?? '',
        bias_findings: c.bias ? c.bias.findings.filter((f) => f.turn_index === t.turn_index).length : '',
        conversation_bias_score: c.bias?.score ?? '',
        empathy_overall: c.empathy?.overall ?? '',
        empathy_cognitive: c.empathy?.cognitive ?? '',
        empathy_emotional: c.empathy?.emotional ?? '',
        empathy_compassionate: c.empathy?.compassionate ?? '',
        completeness: c.checks?.completeness ?? '',
        confidence: c.confidence ?? '',
        pii_redacted: piiRedacted,
      };
      for (const e of EMOTIONS) row[`emotion_${e}`] = t.emotions?.scores[e] ?? '';
      rows.push(row);
    }
  }
  return rows;
}

export function formatExport(conversations: readonly AnalysedConversation[]): ExportFormats {
  return {
    json: JSON.stringify(conversations, null, 2),
    jsonl: conversations.map((c) => JSON.stringify(c)).join('\n') + (conversations.length > 0 ? '\n' : ''),
    csv: stringify(csvRows(conversations), { header: true, columns: [...CSV_COLUMNS] }),
  };
}
