import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import type { AnalysedConversation } from './conversation-analysis.ts';
import { checkConversation } from './conversation-analysis.ts';
import { CSV_COLUMNS, formatExport } from './export-format.ts';
import { DEFAULT_QUALITY_THRESHOLDS, evaluateQualityGates, resolveThresholds } from './quality-gates.ts';

describe('quality gates', () => {
  const metrics = { bias_score: 0.2, completeness: 0.9, pii_remaining: 0, confidence: 0.8 };

  it('passes with the defaults and fails a tight threshold with reasons', () => {
    expect(evaluateQualityGates(metrics).passed).toBe(true);
    const r = evaluateQualityGates(metrics, { bias_score_max: 0.1, confidence_min: 0.95 });
    expect(r.passed).toBe(false);
    expect(r.reasons).toEqual(['bias_score 0.2 exceeds the maximum 0.1', 'confidence 0.8 is below the minimum 0.95']);
    expect(r.gates.find((g) => g.name === 'completeness')).toMatchObject({ value: 0.9, threshold: 0.6, passed: true });
  });

  it('fails on any PII left over', () => {
    expect(evaluateQualityGates({ ...metrics, pii_remaining: 1 }).reasons).toEqual(['pii_remaining 1 exceeds the maximum 0']);
  });

  it('reads thresholds from config, ignoring junk', () => {
    expect(resolveThresholds({ quality_thresholds: { bias_score_max: 0.3 }, confidence_min: 0.5, completeness_min: 'x' })).toEqual({
      ...DEFAULT_QUALITY_THRESHOLDS,
      bias_score_max: 0.3,
      confidence_min: 0.5,
    });
  });
});

describe('structural checks', () => {
  it('scores completeness as the share of checks passed', () => {
    expect(checkConversation({ turns: [{ speaker: 'client', text: 'hi' }] }).completeness).toBe(0.5); // has_client, no_empty_turns, speakers_recognised of 6
  });
});

describe('formatExport', () => {
  const conv: AnalysedConversation = {
    conversation_id: 'c1',
    turns: [
      { turn_index: 0, speaker: 'therapist', text: 'Hello, [NAME].', sentiment: { compound: 0.1, neg: 0, neu: 0.9, pos: 0.1, label: 'positive' } },
      { turn_index: 1, speaker: 'client', text: '=cmd, "quoted"\nnext line' },
    ],
  };

  it('writes JSON, JSONL and CSV that read back to the same data', () => {
    const f = formatExport([conv, { ...conv, conversation_id: 'c2' }]);
    expect(JSON.parse(f.json)).toEqual([conv, { ...conv, conversation_id: 'c2' }]);
    expect(f.jsonl.trim().split('\n').map((l) => JSON.parse(l) as { conversation_id: string }).map((c) => c.conversation_id)).toEqual(['c1', 'c2']);
    const rows = parse<Record<string, string>>(f.csv, { columns: true });
    expect(Object.keys(rows[0] ?? {})).toEqual([...CSV_COLUMNS]);
    expect(rows).toHaveLength(4);
    expect(rows[0]).toMatchObject({ conversation_id: 'c1', turn_index: '0', speaker: 'therapist', text: 'Hello, [NAME].', sentiment_compound: '0.1' });
    expect(rows[1]?.text).toBe('\'=cmd, "quoted"\nnext line');
  });
});
