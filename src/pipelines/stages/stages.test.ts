import { describe, expect, it } from 'vitest';
import { loadFixture, loadLabels } from '../../../test/fixtures/transcripts/load-fixture.ts';
import { LOCAL_STAGE_HANDLERS, MENTAL_HEALTH_STAGES, STANDALONE_TASK_TYPES, StageFailure, TECHDECK_STAGES } from './index.ts';

type Output = Record<string, unknown>;

async function run(stage: string, parameters: Record<string, unknown>, progress?: number[]): Promise<Output> {
  const handler = LOCAL_STAGE_HANDLERS[stage];
  if (!handler) throw new Error(`no handler ${stage}`);
  return handler({ task_type: stage, parameters, reportProgress: progress ? (p) => progress.push(p) : undefined });
}

async function failure(stage: string, parameters: Record<string, unknown>): Promise<StageFailure> {
  try {
    await run(stage, parameters);
  } catch (e) {
    if (e instanceof StageFailure) return e;
    throw e;
  }
  throw new Error('expected a StageFailure');
}

async function techdeck(inputData: Record<string, unknown>, config: Record<string, unknown> = {}): Promise<Record<string, Output>> {
  const outputs: Record<string, Output> = {};
  let prev: string | undefined;
  for (const stage of TECHDECK_STAGES) {
    const parameters = prev === undefined ? { input_data: inputData, config } : { inputs: { [prev]: outputs[prev] }, config };
    outputs[stage] = await run(stage, parameters);
    prev = stage;
  }
  return outputs;
}

const piiLabels = loadLabels<Record<string, unknown>>('pii-session.labels.json');
const piiValues = ['EMAIL', 'PHONE', 'SSN', 'DOB', 'ADDRESS', 'NAME'].flatMap((k) => piiLabels[k] as string[]);

describe('registry', () => {
  it('has a handler for every stage and known task type', () => {
    expect(Object.keys(LOCAL_STAGE_HANDLERS).sort()).toEqual([...TECHDECK_STAGES, ...MENTAL_HEALTH_STAGES, ...STANDALONE_TASK_TYPES].sort());
  });
});

describe('techdeck chain', () => {
  it('runs ingestion → export over the 50-turn session and exports no PII', async () => {
    const out = await techdeck({ format: 'text', content: loadFixture('session-50-turns.txt') });
    expect(out.ingestion).toMatchObject({ format: 'text', record_count: 1 });
    expect(out.standardization).toMatchObject({ conversation_count: 1, turn_count: 50, speaker_recognition_rate: 1 });
    expect(out.validation).toMatchObject({ redacted: true, pii_remaining: 0, bias_score: 0, completeness: 1 });
    expect((out.validation?.pii_found as Record<string, number>).EMAIL).toBe(1);
    const summary = out.processing?.summary as { empathy: { overall: number }; confidence: number };
    expect(summary.empathy.overall).toBeGreaterThan(0.5);
    expect(out.quality_assessment).toMatchObject({ passed: true, reasons: [] });
    const exp = out.export as { formats: { json: string; jsonl: string; csv: string }; record_count: number; turn_count: number };
    expect(exp.record_count).toBe(1);
    expect(exp.turn_count).toBe(50);
    for (const text of Object.values(exp.formats)) {
      for (const secret of ['jordan.reyes@examplemail.com', '(555) 214-8890', '214-8890', 'Karen', 'Whitfield', 'Jordan']) expect(text).not.toContain(secret);
    }
    expect(exp.formats.csv.split('\n')[0]).toMatch(/^conversation_id,turn_index,speaker,text,sentiment_compound/);
    expect(exp.formats.jsonl.trim().split('\n')).toHaveLength(1);
    const exported = JSON.parse(exp.formats.json) as { turns: { speaker: string; sentiment: { label: string } }[]; empathy: { cognitive: number } }[];
    expect(exported[0]?.turns).toHaveLength(50);
    expect(exported[0]?.turns[48]?.sentiment.label).toBe('positive');
    // Every output is JSON-serialisable plain data.
    for (const o of Object.values(out)) expect(JSON.parse(JSON.stringify(o))).toEqual(o);
  });

  it('keeps every hand-labelled identifier out of all three export formats', async () => {
    const out = await techdeck({ format: 'text', content: loadFixture('pii-session.txt') }, { completeness_min: 0 });
    const formats = (out.export as { formats: Record<string, string> }).formats;
    for (const [name, text] of Object.entries(formats)) {
      for (const secret of piiValues) expect(text, `${name} leaks ${secret}`).not.toContain(secret);
    }
    expect(formats.csv).toContain('[EMAIL]');
  });

  it('runs over JSONL and CSV inputs, grouping turn rows by conversation', async () => {
    const jsonl = await techdeck({ format: 'jsonl', content: loadFixture('sessions.jsonl') }, { completeness_min: 0, confidence_min: 0 });
    expect(jsonl.export).toMatchObject({ record_count: 2, turn_count: 4 });
    const csv = await techdeck({ format: 'csv', content: loadFixture('sessions.csv') }, { completeness_min: 0, confidence_min: 0 });
    expect(csv.standardization?.conversation_count).toBe(2);
  });

  it('fails quality_assessment with reasons when a threshold is tight', async () => {
    const outputs: Record<string, Output> = {};
    outputs.ingestion = await run('ingestion', { input_data: { text: loadFixture('hostile-session.txt') } });
    outputs.standardization = await run('standardization', { inputs: { ingestion: outputs.ingestion } });
    outputs.validation = await run('validation', { inputs: { standardization: outputs.standardization } });
    outputs.processing = await run('processing', { inputs: { validation: outputs.validation } });
    const e = await failure('quality_assessment', { inputs: { processing: outputs.processing }, config: { quality_thresholds: { bias_score_max: 0.2, confidence_min: 0.9 } } });
    expect(e.code).toBe('QUALITY_GATE_FAILED');
    expect(e.retryable).toBe(false);
    const details = e.details as { reasons: string[]; metrics: { bias_score: number } };
    expect(details.metrics.bias_score).toBeGreaterThan(0.9);
    expect(details.reasons).toHaveLength(2);
    expect(details.reasons[0]).toMatch(/^bias_score 0\.\d+ exceeds the maximum 0\.2$/);
    expect(details.reasons[1]).toMatch(/^confidence .* is below the minimum 0\.9$/);
  });

  it('reports progress', async () => {
    const progress: number[] = [];
    await run('validation', { input_data: { text: loadFixture('empathic-session.txt') } }, progress);
    expect(progress.at(-1)).toBe(1);
  });
});

describe('validation errors', () => {
  it('names the line and record of malformed JSONL', async () => {
    const e = await failure('ingestion', { input_data: { format: 'jsonl', content: loadFixture('malformed.jsonl') } });
    expect(e.code).toBe('VALIDATION_ERROR');
    expect(e.retryable).toBe(false);
    expect(e.message).toMatch(/line 3/);
    expect(e.details).toMatchObject({ record_index: 2, line: 3 });
  });

  it('names the record of a turn without text, at standardization', async () => {
    const ingestion = await run('ingestion', { input_data: { format: 'json', content: loadFixture('missing-text.json') } });
    const e = await failure('standardization', { inputs: { ingestion } });
    expect(e.code).toBe('VALIDATION_ERROR');
    expect(e.details).toEqual({ record_index: 1, line: 3 });
  });

  it('never names a conversation by its id (the input\'s session id): record index and line only', async () => {
    const id = 'PATIENT-JANE-DOE-1987';
    const empty = await failure('standardization', { input_data: { format: 'csv', content: `session_id,speaker,text\n${id},client,\n` } });
    expect(empty.message).toContain('record index 0 (line 2)');
    expect(empty.details).toEqual({ record_index: 0, line: 2 });
    const long = await failure('standardization', { input_data: { format: 'json', content: JSON.stringify([{ conversation_id: id, turns: [{ speaker: 'client', text: 'x'.repeat(50_001) }] }]) } });
    expect(long.message).toContain('conversation index 0 (record index 0, line 1) turn 0');
    const none = await failure('validation', { inputs: { standardization: { conversations: [{ conversation_id: id, turns: [] }] } } });
    expect(none.message).toBe('conversation index 0 has no turns');
    const key = await failure('validation', { inputs: { [id]: 'not an object' } });
    for (const e of [empty, long, none, key]) expect(JSON.stringify(e.toJSON())).not.toContain(id);
  });

  it('rejects missing input and malformed dependency outputs', async () => {
    expect((await failure('ingestion', {})).message).toMatch(/input_data is required/);
    expect((await failure('validation', { inputs: { standardization: { conversations: [{ conversation_id: 'x' }] } } })).message).toMatch(/conversations\[0\] must be/);
    expect((await failure('processing', { inputs: 'nope' })).code).toBe('VALIDATION_ERROR');
  });
});

describe('mental_health_analysis DAG', () => {
  it('runs text_preprocessing → (bias ‖ emotion) → empathy → recommendations → report', async () => {
    const tp = await run('text_preprocessing', { input_data: { text: loadFixture('hostile-session.txt') } });
    const [bd, ea] = await Promise.all([
      run('bias_detection', { inputs: { text_preprocessing: tp } }),
      run('emotion_analysis', { inputs: { text_preprocessing: tp } }),
    ]);
    expect(bd.bias_score).toBeGreaterThan(0.9);
    const es = await run('empathy_scoring', { inputs: { bias_detection: bd, emotion_analysis: ea } });
    expect((es.empathy as { overall: number }).overall).toBeLessThan(0.1);
    const tr = await run('therapeutic_recommendations', { inputs: { empathy_scoring: es } });
    const rg = await run('report_generation', { inputs: { therapeutic_recommendations: tr }, context: { session_type: 'individual', patient_id: 'p-123' } });
    const report = rg.report as { context: Record<string, unknown>; conversations: { recommendations: { id: string }[]; bias_findings: number }[]; narrative: string };
    expect(report.context).toEqual({ session_type: 'individual' });
    expect(report.conversations[0]?.bias_findings).toBeGreaterThan(3);
    expect(report.conversations[0]?.recommendations.map((r) => r.id)).toEqual(expect.arrayContaining(['dismissive_language', 'low_empathy', 'inconsiderate_language']));
    expect(report.narrative).toMatch(/Therapist empathy 0/);
    expect(Object.keys(rg.formats as object).sort()).toEqual(['csv', 'json', 'jsonl']);
  });

  it('scores the empathic transcript above the dismissive one end to end', async () => {
    const score = async (name: string): Promise<number> => {
      const out = await run('empathy_scoring', { input_data: { text: loadFixture(name) } });
      return (out.empathy as { overall: number }).overall;
    };
    expect(await score('empathic-session.txt')).toBeGreaterThan(await score('hostile-session.txt') + 0.5);
  });
});

describe('standalone task types', () => {
  it('sentiment_analysis and pii_detection run after text_preprocessing on its redacted conversations', async () => {
    const prep = await run('text_preprocessing', { input_data: { text: 'Therapist: How are you, Jordan?\nClient: Awful. Call me at 555-214-8890, I feel hopeless.' } });
    expect(prep.redacted).toBe(true);
    const sent = await run('sentiment_analysis', { inputs: { prep } });
    const conv = (sent.conversations as Array<{ overall: { compound: number }; turns: unknown[] }>)[0]!;
    expect(conv.turns).toHaveLength(2);
    expect(conv.overall.compound).toBeLessThan(0);
    const pii = await run('pii_detection', { inputs: { prep } });
    expect(pii).toMatchObject({ redacted: true });
    expect(JSON.stringify(pii)).not.toContain('214-8890');
    expect((pii.conversations as unknown[]).length).toBe(1);
  });

  it('sentiment_analysis on {text}', async () => {
    const out = await run('sentiment_analysis', { text: 'I love how supportive you are. But I hate my job.' });
    expect(out.label).toBeDefined();
    const sentences = out.sentences as { label: string; start: number; end: number }[];
    expect(sentences.map((s) => s.label)).toEqual(['positive', 'negative']);
    expect(sentences[1]?.start).toBe(30);
  });

  it('pii_detection on {text} keeps offsets into the text', async () => {
    const text = 'Email me at sam.t@example.org or call 617-555-0101.';
    const out = await run('pii_detection', { input_data: { text } });
    const findings = out.findings as { type: string; start: number; end: number }[];
    expect(findings.map((f) => [f.type, text.slice(f.start, f.end)])).toEqual([
      ['EMAIL', 'sam.t@example.org'],
      ['PHONE', '617-555-0101'],
    ]);
    expect(out.redacted_text).toBe('Email me at [EMAIL] or call [PHONE].');
  });

  it('bias_detection and emotion_analysis on {text}', async () => {
    const bias = await run('bias_detection', { text: 'That is so lame.' });
    expect((bias.findings as { phrase: string; start: number }[])[0]).toMatchObject({ phrase: 'lame', start: 11 });
    const emo = await run('emotion_analysis', { text: 'I am terrified and panicking.' });
    expect((emo.emotions as { dominant: string }).dominant).toBe('fear');
  });
});
