/**
 * Pipeline definitions (SPEC §7.1, §7.2): the built-in templates and the validation of custom
 * DAGs of stages. Pure: no I/O. A validated stage list is returned in a topological order that
 * keeps the declared order wherever the dependencies allow it.
 */
import { ValidationError, type FieldError } from '../core/index.ts';
import { TASK_TYPE_CAPABILITIES } from '../contracts/tasks.ts';
import type { StageDefinitionInput } from '../contracts/pipelines.ts';

/** A stage with every default applied. */
export interface StageDefinition {
  stage: string;
  name: string;
  task_type: string;
  depends_on: string[];
  required_capabilities: string[] | null;
  timeout_seconds: number | null;
  max_retries: number | null;
  config: Record<string, unknown>;
}

export interface PipelineTemplate {
  name: string;
  description: string;
  stages: StageDefinition[];
  builtin: boolean;
  created_by: string | null;
  created_at: string | null;
}

const title = (s: string) => s.split(/[_-]/).map((w) => (w ? w[0]!.toUpperCase() + w.slice(1) : w)).join(' ');

function chain(stages: Array<[string, string[]]>): StageDefinition[] {
  return stages.map(([stage, deps]) => ({
    stage, name: title(stage), task_type: stage, depends_on: deps, required_capabilities: null, timeout_seconds: null, max_retries: null, config: {},
  }));
}

export const BUILTIN_TEMPLATES: Readonly<Record<string, PipelineTemplate>> = Object.freeze({
  techdeck: {
    name: 'techdeck',
    description: 'The 6-stage TechDeck pipeline, strictly in order: ingestion → standardization → validation (PII redaction, bias) → processing (sentiment, emotions, empathy) → quality_assessment (gates) → export (JSON, JSONL, CSV).',
    stages: chain([
      ['ingestion', []],
      ['standardization', ['ingestion']],
      ['validation', ['standardization']],
      ['processing', ['validation']],
      ['quality_assessment', ['processing']],
      ['export', ['quality_assessment']],
    ]),
    builtin: true,
    created_by: null,
    created_at: null,
  },
  mental_health_analysis: {
    name: 'mental_health_analysis',
    description: 'Mental-health session analysis as a DAG: text_preprocessing → (bias_detection ‖ emotion_analysis) → empathy_scoring → therapeutic_recommendations → report_generation.',
    stages: chain([
      ['text_preprocessing', []],
      ['bias_detection', ['text_preprocessing']],
      ['emotion_analysis', ['text_preprocessing']],
      ['empathy_scoring', ['bias_detection', 'emotion_analysis']],
      ['therapeutic_recommendations', ['empathy_scoring']],
      ['report_generation', ['therapeutic_recommendations']],
    ]),
    builtin: true,
    created_by: null,
    created_at: null,
  },
});

export const DEFAULT_TEMPLATE = 'techdeck';

/** Finds one dependency cycle (as a closed path a → b → … → a), or null. */
export function findCycle(stages: ReadonlyArray<{ stage: string; depends_on: readonly string[] }>): string[] | null {
  const deps = new Map(stages.map((s) => [s.stage, s.depends_on]));
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (n: string): string[] | null => {
    const st = state.get(n);
    if (st === 'done') return null;
    if (st === 'visiting') return [...path.slice(path.indexOf(n)), n];
    state.set(n, 'visiting');
    path.push(n);
    for (const d of deps.get(n) ?? []) {
      if (!deps.has(d)) continue;
      const c = visit(d);
      if (c) return c;
    }
    path.pop();
    state.set(n, 'done');
    return null;
  };
  for (const s of stages) {
    const c = visit(s.stage);
    if (c) return c.reverse();
  }
  return null;
}

/**
 * Validates a DAG of stages; every problem is reported (field names the stage's index and the
 * message names the stage). Throws VALIDATION_ERROR; returns the stages in topological order.
 */
export function validateStages(input: readonly StageDefinitionInput[], field = 'stages'): StageDefinition[] {
  const errors: FieldError[] = [];
  const at = (i: number, f: string) => `${field}[${i}].${f}`;
  const seen = new Map<string, number>();
  input.forEach((s, i) => {
    const first = seen.get(s.stage);
    if (first !== undefined) errors.push({ field: at(i, 'stage'), message: `duplicate stage '${s.stage}' (also ${field}[${first}])` });
    else seen.set(s.stage, i);
  });
  input.forEach((s, i) => {
    const deps = s.depends_on ?? [];
    for (const d of deps) {
      if (d === s.stage) errors.push({ field: at(i, 'depends_on'), message: `stage '${s.stage}' depends on itself` });
      else if (!seen.has(d)) errors.push({ field: at(i, 'depends_on'), message: `stage '${s.stage}' depends on unknown stage '${d}'` });
    }
    const type = s.task_type ?? s.stage;
    if (!s.required_capabilities && !TASK_TYPE_CAPABILITIES[type]) {
      errors.push({ field: at(i, 'required_capabilities'), message: `stage '${s.stage}': task_type '${type}' is not a known type, so required_capabilities is required` });
    }
  });
  if (errors.length === 0) {
    const cycle = findCycle(input.map((s) => ({ stage: s.stage, depends_on: s.depends_on ?? [] })));
    if (cycle) {
      const i = seen.get(cycle[0]!) ?? 0;
      errors.push({ field: at(i, 'depends_on'), message: `dependency cycle: ${cycle.join(' → ')}` });
    }
  }
  if (errors.length) throw new ValidationError('The pipeline stages do not form a valid DAG.', errors);

  const defs: StageDefinition[] = input.map((s) => ({
    stage: s.stage,
    name: s.name ?? title(s.stage),
    task_type: s.task_type ?? s.stage,
    depends_on: [...new Set(s.depends_on ?? [])],
    required_capabilities: s.required_capabilities ?? null,
    timeout_seconds: s.timeout_seconds ?? null,
    max_retries: s.max_retries ?? null,
    config: s.config ?? {},
  }));
  return topologicalOrder(defs);
}

/** Kahn's algorithm, stable on the declared order. Assumes an acyclic input. */
export function topologicalOrder(stages: readonly StageDefinition[]): StageDefinition[] {
  const out: StageDefinition[] = [];
  const done = new Set<string>();
  const rest = [...stages];
  while (rest.length) {
    const i = rest.findIndex((s) => s.depends_on.every((d) => done.has(d)));
    if (i < 0) throw new Error('cycle');
    const [s] = rest.splice(i, 1);
    out.push(s!);
    done.add(s!.stage);
  }
  return out;
}

/** Stages nothing depends on (the pipeline's output comes from them). */
export function sinkStages<T extends { stage: string; depends_on: readonly string[] }>(stages: readonly T[]): T[] {
  const used = new Set(stages.flatMap((s) => s.depends_on));
  return stages.filter((s) => !used.has(s.stage));
}

/** Every stage that depends, directly or not, on `stage`. */
export function descendants(stages: ReadonlyArray<{ stage: string; depends_on: readonly string[] }>, stage: string): Set<string> {
  const out = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of stages) {
      if (out.has(s.stage)) continue;
      if (s.depends_on.some((d) => d === stage || out.has(d))) {
        out.add(s.stage);
        grew = true;
      }
    }
  }
  return out;
}

/**
 * Length of the longest dependency path, each stage weighted by `seconds(stage)`: the estimated
 * duration of a run when stages start as soon as their dependencies finish.
 */
export function criticalPathSeconds(stages: readonly StageDefinition[], seconds: (s: StageDefinition) => number): number {
  const finish = new Map<string, number>();
  for (const s of topologicalOrder(stages)) {
    const start = Math.max(0, ...s.depends_on.map((d) => finish.get(d) ?? 0));
    finish.set(s.stage, start + seconds(s));
  }
  return Math.max(0, ...finish.values());
}
