/**
 * Reading a handler's `parameters`: the first stage's `input_data`, or the outputs of the stages
 * it depends on (`inputs`), falling back down the chain (records → conversations → redacted
 * conversations) so that any stage can also run on raw `input_data` as a standalone task.
 */
import {
  InputError, detectPii, countRemainingPii, checkConversation, isObject, parseInput, standardizeRecords,
  type AnalysedConversation, type AnalysedTurn, type Conversation, type ParsedInput, type ParsedRecord, type InputFormat,
} from '../../ai/local/index.ts';
import { StageFailure, validationFailure } from './stage-failure.ts';

export interface StageParameters {
  input_data?: unknown;
  inputs: Record<string, Record<string, unknown>>;
  context: Record<string, unknown>;
  config: Record<string, unknown>;
  text?: string;
}

/** Longest accepted turn (characters); longer turns are almost always a parsing mistake. */
export const MAX_TURN_CHARS = 50_000;

export function readParameters(parameters: unknown): StageParameters {
  if (!isObject(parameters)) throw validationFailure('parameters must be an object');
  const inputs: Record<string, Record<string, unknown>> = {};
  if (parameters.inputs !== undefined) {
    if (!isObject(parameters.inputs)) throw validationFailure('parameters.inputs must be an object keyed by stage name');
    // The key is the caller's, not a name from a template: it is counted, never echoed.
    for (const [i, [k, v]] of Object.entries(parameters.inputs).entries()) {
      if (!isObject(v)) throw validationFailure(`parameters.inputs entry ${i} must be the object output of the stage it is named after`, { input_index: i });
      inputs[k] = v;
    }
  }
  const context = isObject(parameters.context) ? parameters.context : {};
  const config = isObject(parameters.config) ? parameters.config : {};
  const out: StageParameters = { inputs, context, config };
  if (parameters.input_data !== undefined) out.input_data = parameters.input_data;
  if (typeof parameters.text === 'string') out.text = parameters.text;
  return out;
}

export function toStageFailure(e: unknown): unknown {
  if (e instanceof InputError) {
    const details: Record<string, number> = {};
    if (e.record_index !== undefined) details.record_index = e.record_index;
    if (e.line !== undefined) details.line = e.line;
    if (e.column !== undefined) details.column = e.column;
    return validationFailure(e.message, details);
  }
  return e;
}

/**
 * Free text for a standalone task: `{text}` or `input_data: {text}` (no `content`). Analysed as
 * one turn so that offsets are relative to the text given.
 */
export function standaloneText(p: StageParameters): string | undefined {
  if (p.text !== undefined) return p.text;
  const d = p.input_data;
  if (isObject(d) && typeof d.text === 'string' && d.content === undefined && Object.keys(p.inputs).length === 0) return d.text;
  return undefined;
}

function inputDataOrText(p: StageParameters): Record<string, unknown> | undefined {
  if (isObject(p.input_data)) return p.input_data;
  if (p.text !== undefined) return { text: p.text };
  return undefined;
}

export function parseFromParameters(p: StageParameters): ParsedInput {
  const data = inputDataOrText(p);
  if (data === undefined) throw validationFailure('input_data is required: {format, content} or {text}');
  try {
    return parseInput(data);
  } catch (e) {
    throw toStageFailure(e);
  }
}

function findOutput(p: StageParameters, preferred: readonly string[], accept: (o: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
  for (const name of preferred) {
    const o = p.inputs[name];
    if (o !== undefined && accept(o)) return o;
  }
  for (const name of Object.keys(p.inputs).sort()) {
    const o = p.inputs[name];
    if (o !== undefined && accept(o)) return o;
  }
  return undefined;
}

const isRecordsOutput = (o: Record<string, unknown>): boolean => Array.isArray(o.records) && typeof o.format === 'string';
const isRawConversations = (o: Record<string, unknown>): boolean => Array.isArray(o.conversations) && o.redacted !== true;
const isRedactedConversations = (o: Record<string, unknown>): boolean => Array.isArray(o.conversations) && o.redacted === true;

/** Parsed records: `inputs.ingestion`, else parse `input_data`. */
export function getRecords(p: StageParameters): ParsedInput {
  const out = findOutput(p, ['ingestion'], isRecordsOutput);
  if (out === undefined) return parseFromParameters(p);
  const records = out.records as unknown[];
  const parsed: ParsedRecord[] = records.map((r, i) => {
    if (!isObject(r) || typeof r.index !== 'number' || typeof r.line !== 'number' || !('data' in r)) {
      throw validationFailure(`inputs.ingestion.records[${i}] must be {index, line, data}`, { record_index: i });
    }
    return { index: r.index, line: r.line, data: r.data };
  });
  return { format: out.format as InputFormat, records: parsed };
}

/**
 * Where a conversation came from, for messages: its position, plus the record index and line when
 * standardization recorded them. Never its conversation_id: that is the input's own
 * session/conversation id, often a patient or session identifier (PHI, SPEC §9), and stage
 * messages end up unencrypted in tasks.error, pipeline_stages.error, pipelines.error and events.
 */
function conversationAt(c: Record<string, unknown>, i: number): string {
  const src = isObject(c.source) && typeof c.source.record_index === 'number' && typeof c.source.line === 'number' ? c.source : undefined;
  return src ? `conversation index ${i} (record index ${src.record_index as number}, line ${src.line as number})` : `conversation index ${i}`;
}

function validateConversation(c: unknown, i: number, where: string): Conversation {
  if (!isObject(c) || typeof c.conversation_id !== 'string' || !Array.isArray(c.turns)) {
    throw validationFailure(`${where}.conversations[${i}] must be {conversation_id, turns}`, { conversation_index: i });
  }
  const turns = c.turns.map((t, ti) => {
    if (!isObject(t) || typeof t.speaker !== 'string' || typeof t.text !== 'string') {
      throw validationFailure(`${where}.conversations[${i}].turns[${ti}] must be {speaker, text}`, { conversation_index: i, turn_index: ti });
    }
    if (t.text.length > MAX_TURN_CHARS) {
      throw validationFailure(`${conversationAt(c, i)} turn ${ti} is ${t.text.length} characters; the limit is ${MAX_TURN_CHARS}`, { conversation_index: i, turn_index: ti });
    }
    return { speaker: t.speaker, text: t.text };
  });
  if (turns.length === 0) throw validationFailure(`${conversationAt(c, i)} has no turns`, { conversation_index: i });
  return { conversation_id: c.conversation_id, turns };
}

/** Canonical (unredacted) conversations: `inputs.standardization`, else standardize the records. */
export function getConversations(p: StageParameters): { conversations: Conversation[]; speaker_recognition_rate?: number; warnings: string[] } {
  const out = findOutput(p, ['standardization'], isRawConversations);
  if (out !== undefined) {
    return { conversations: (out.conversations as unknown[]).map((c, i) => validateConversation(c, i, 'inputs.standardization')), warnings: [] };
  }
  // (Standardization's messages name records by index and line, never by the input's ids.)
  try {
    const r = standardizeRecords(getRecords(p));
    r.conversations.forEach((c, i) => validateConversation(c, i, 'standardization'));
    return r;
  } catch (e) {
    throw toStageFailure(e);
  }
}

/** Redaction + structural checks of one canonical conversation (what validation/preprocessing add). */
export function redactConversation(c: Conversation): AnalysedConversation {
  const pii = detectPii(c.turns);
  const turns: AnalysedTurn[] = pii.redacted_turns.map((t, i) => ({ turn_index: i, speaker: t.speaker, text: t.text }));
  return {
    conversation_id: c.conversation_id,
    turns,
    checks: checkConversation(c),
    pii: { counts: pii.counts, findings: pii.findings, remaining: countRemainingPii(pii.redacted_turns) },
  };
}

/**
 * Redacted, analysed conversations: every dependency output marked `redacted: true`, merged by
 * conversation_id (fields of later stages win; turns merged by index). Without such inputs the
 * raw input is standardized and redacted here.
 */
export function getAnalysedConversations(p: StageParameters): AnalysedConversation[] {
  const outputs = Object.keys(p.inputs).sort().map((k) => p.inputs[k]).filter((o): o is Record<string, unknown> => o !== undefined && isRedactedConversations(o));
  if (outputs.length === 0) return getConversations(p).conversations.map(redactConversation);
  const merged = new Map<string, AnalysedConversation>();
  for (const out of outputs) {
    (out.conversations as unknown[]).forEach((raw, i) => {
      const c = validateConversation(raw, i, 'inputs');
      const full = raw as AnalysedConversation;
      const prev = merged.get(c.conversation_id);
      if (prev === undefined) {
        merged.set(c.conversation_id, { ...full, turns: full.turns.map((t, ti) => ({ ...t, turn_index: ti })) });
        return;
      }
      const turns = prev.turns.map((t, ti) => ({ ...t, ...(full.turns[ti] ?? {}), turn_index: ti }));
      merged.set(c.conversation_id, { ...prev, ...full, turns });
    });
  }
  return [...merged.values()];
}

/**
 * Conversations for an analysis that runs on raw or redacted text alike (sentiment, PII): the raw
 * ones when the parameters give them (a standardization output, ingestion records or the input
 * itself), else the redacted conversations of the stages it depends on — e.g. after
 * text_preprocessing or validation in a custom template (SPEC §7.3: a stage's input is the
 * outputs of the stages it depends on).
 */
export function getConversationsForAnalysis(p: StageParameters): Array<Conversation | AnalysedConversation> {
  const raw = findOutput(p, ['standardization'], isRawConversations) ?? findOutput(p, ['ingestion'], isRecordsOutput) ?? inputDataOrText(p);
  const redacted = Object.values(p.inputs).some(isRedactedConversations);
  return raw === undefined && redacted ? getAnalysedConversations(p) : getConversations(p).conversations;
}

export function missingInput(stage: string, needs: string): StageFailure {
  return new StageFailure('VALIDATION_ERROR', `${stage} needs ${needs}`, { retryable: false });
}
