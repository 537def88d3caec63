/**
 * The canonical shapes every local analyser speaks. All of them are plain JSON data so that
 * stage outputs can be stored, encrypted and sent over the wire unchanged.
 */

/** Canonical speaker roles; unknown labels become `participant_N` (never the raw label, which may be a name). */
export type Speaker = 'therapist' | 'client' | 'unknown' | (string & {});

export interface Turn {
  speaker: Speaker;
  text: string;
}

/** `{conversation_id, turns}` — the output of standardization (SPEC §7.1 stage 2). */
export interface Conversation {
  conversation_id: string;
  turns: Turn[];
  /** Non-PHI facts about the source (record index, line, whether speakers were recognised). */
  source?: { record_index: number; line: number; format: InputFormat };
}

export type InputFormat = 'text' | 'json' | 'jsonl' | 'csv';

/** One parsed input record before standardization; `line` is 1-based in the original content. */
export interface ParsedRecord {
  index: number;
  line: number;
  data: unknown;
}

export interface ParsedInput {
  format: InputFormat;
  records: ParsedRecord[];
}

/** Thrown by parsers and standardization for malformed input; names the record and the line. */
export class InputError extends Error {
  readonly record_index: number | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;

  constructor(message: string, where: { record_index?: number; line?: number; column?: number } = {}) {
    super(message);
    this.name = 'InputError';
    this.record_index = where.record_index;
    this.line = where.line;
    this.column = where.column;
  }
}

export function round(value: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function clamp01(value: number): number {
  if (!Number.isFinite(value)) return 0;
  return Math.min(1, Math.max(0, value));
}
