import { describe, expect, it } from 'vitest';
import { ValidationError } from '../core/index.ts';
import { BUILTIN_TEMPLATES, criticalPathSeconds, descendants, findCycle, sinkStages, validateStages } from './pipeline-templates.ts';
import { runProgress } from './pipeline-view.ts';
import { checkInputData } from './pipeline-input.ts';

function fieldErrors(fn: () => unknown): Array<{ field: string; message: string }> {
  try {
    fn();
  } catch (e) {
    if (e instanceof ValidationError) return (e.details as { field_errors: Array<{ field: string; message: string }> }).field_errors;
    throw e;
  }
  throw new Error('expected a ValidationError');
}

describe('built-in templates', () => {
  it('techdeck is a strict chain of the six stages', () => {
    const t = BUILTIN_TEMPLATES.techdeck!;
    expect(t.stages.map((s) => [s.stage, s.depends_on])).toEqual([
      ['ingestion', []], ['standardization', ['ingestion']], ['validation', ['standardization']], ['processing', ['validation']],
      ['quality_assessment', ['processing']], ['export', ['quality_assessment']],
    ]);
    expect(sinkStages(t.stages).map((s) => s.stage)).toEqual(['export']);
  });

  it('mental_health_analysis runs bias and emotion in parallel and ends in the report', () => {
    const t = BUILTIN_TEMPLATES.mental_health_analysis!;
    const deps = Object.fromEntries(t.stages.map((s) => [s.stage, s.depends_on]));
    expect(deps.bias_detection).toEqual(['text_preprocessing']);
    expect(deps.emotion_analysis).toEqual(['text_preprocessing']);
    expect(deps.empathy_scoring).toEqual(['bias_detection', 'emotion_analysis']);
    expect(sinkStages(t.stages).map((s) => s.stage)).toEqual(['report_generation']);
    // two parallel 1 s stages count once on the critical path
    expect(criticalPathSeconds(t.stages, () => 1)).toBe(5);
    expect([...descendants(t.stages, 'bias_detection')].sort()).toEqual(['empathy_scoring', 'report_generation', 'therapeutic_recommendations']);
  });
});

describe('validateStages', () => {
  it('orders a valid DAG topologically, stable on the declared order, with defaults', () => {
    const out = validateStages([
      { stage: 'c', task_type: 'export', depends_on: ['a', 'b'] },
      { stage: 'a', task_type: 'ingestion' },
      { stage: 'b', depends_on: ['a', 'a'], required_capabilities: ['x'] },
    ]);
    expect(out.map((s) => s.stage)).toEqual(['a', 'b', 'c']);
    expect(out[1]).toEqual({ stage: 'b', name: 'B', task_type: 'b', depends_on: ['a'], required_capabilities: ['x'], timeout_seconds: null, max_retries: null, config: {} });
  });

  it('names the cycle in flow order', () => {
    expect(findCycle([{ stage: 'a', depends_on: ['c'] }, { stage: 'b', depends_on: ['a'] }, { stage: 'c', depends_on: ['b'] }])).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle([{ stage: 'a', depends_on: [] }, { stage: 'b', depends_on: ['a'] }])).toBeNull();
    expect(fieldErrors(() => validateStages([
      { stage: 'root', task_type: 'ingestion' },
      { stage: 'x', task_type: 'export', depends_on: ['root', 'y'] },
      { stage: 'y', task_type: 'export', depends_on: ['x'] },
    ]))).toEqual([{ field: 'stages[1].depends_on', message: 'dependency cycle: x → y → x' }]);
  });

  it('reports every problem at once, each naming its stage', () => {
    const errors = fieldErrors(() => validateStages([
      { stage: 'a', task_type: 'ingestion', depends_on: ['a'] },
      { stage: 'b', task_type: 'made_up' },
      { stage: 'a', task_type: 'export', depends_on: ['ghost'] },
    ], 'body.stages'));
    expect(errors).toEqual([
      { field: 'body.stages[2].stage', message: "duplicate stage 'a' (also body.stages[0])" },
      { field: 'body.stages[0].depends_on', message: "stage 'a' depends on itself" },
      { field: 'body.stages[1].required_capabilities', message: "stage 'b': task_type 'made_up' is not a known type, so required_capabilities is required" },
      { field: 'body.stages[2].depends_on', message: "stage 'a' depends on unknown stage 'ghost'" },
    ]);
  });
});

describe('progress and input', () => {
  it('progress = completed / total + running progress / total', () => {
    expect(runProgress([
      { status: 'completed', task_progress: 1 }, { status: 'running', task_progress: 0.5 }, { status: 'ready', task_progress: 0 }, { status: 'pending', task_progress: null },
    ])).toBe(0.375);
    expect(runProgress([])).toBe(0);
  });

  it('accepts {format, content} or {text} and refuses malformed input naming the line', () => {
    expect(checkInputData({ text: 'Client: hello' })).toEqual({ text: 'Client: hello' });
    expect(checkInputData({ format: 'json', content: [{ text: 'hi' }] })).toEqual({ format: 'json', content: [{ text: 'hi' }] });
    expect(fieldErrors(() => checkInputData({}))).toEqual([{ field: 'input_data.content', message: 'is required (or give input_data.text)' }]);
    expect(fieldErrors(() => checkInputData({ text: 'x', content: 'y' }))[0]!.field).toBe('input_data.text');
    expect(fieldErrors(() => checkInputData({ format: 'csv', content: { a: 1 } }))).toEqual([{ field: 'input_data.content', message: 'must be a string for format csv' }]);
    const [e] = fieldErrors(() => checkInputData({ format: 'jsonl', content: '{"text": "a"}\n{"text": "b"\n' }));
    expect(e!.field).toBe('input_data.content');
    expect(e!.message).toMatch(/line 2/);
  });
});
