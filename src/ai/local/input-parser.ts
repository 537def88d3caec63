/**
 * Input parsing for the ingestion stage: `{format, content}` or `{text}` → records.
 * Every failure is an InputError naming the record index (0-based) and the 1-based line.
 */
import { parse as parseCsv } from 'csv-parse/sync';
import { findJsonSyntaxError } from './json-syntax.ts';
import { InputError, type InputFormat, type ParsedInput, type ParsedRecord } from './conversation-types.ts';

export const INPUT_FORMATS: readonly InputFormat[] = ['text', 'json', 'jsonl', 'csv'];

/** Maximum accepted content size (characters); larger inputs belong in batch tasks. */
export const MAX_INPUT_CHARS = 5_000_000;

export interface InputData {
  format?: string;
  content?: unknown;
  text?: unknown;
}

/** Parse pipeline `input_data`. A missing format is detected from the content. */
export function parseInput(input: InputData): ParsedInput {
  if (input.content === undefined && typeof input.text === 'string') {
    return parseContent('text', input.text);
  }
  if (input.content === undefined || input.content === null) {
    throw new InputError('input_data must have `content` (with `format`) or `text`');
  }
  let format: InputFormat;
  if (input.format === undefined) {
    format = typeof input.content === 'string' ? detectFormat(input.content) : 'json';
  } else if (typeof input.format === 'string' && (INPUT_FORMATS as readonly string[]).includes(input.format)) {
    format = input.format as InputFormat;
  } else {
    throw new InputError(`input_data.format must be one of ${INPUT_FORMATS.join(', ')}`);
  }
  if (format === 'json' && typeof input.content !== 'string') {
    // Already-parsed JSON (the REST body carried an object or array).
    return { format, records: recordsFromValue(input.content, () => 1) };
  }
  if (typeof input.content !== 'string') {
    throw new InputError(`input_data.content must be a string for format ${format}`);
  }
  return parseContent(format, input.content);
}

export function parseContent(format: InputFormat, content: string): ParsedInput {
  if (content.length > MAX_INPUT_CHARS) {
    throw new InputError(`input content is ${content.length} characters; the limit is ${MAX_INPUT_CHARS}`);
  }
  switch (format) {
    case 'text':
      if (content.trim() === '') throw new InputError('text input is empty', { record_index: 0, line: 1 });
      return { format, records: [{ index: 0, line: 1, data: content }] };
    case 'json':
      return { format, records: parseJson(content) };
    case 'jsonl':
      return { format, records: parseJsonl(content) };
    case 'csv':
      return { format, records: parseCsvRecords(content) };
  }
}

/** Best-effort format detection: JSON document, JSON lines, CSV with a header row, else text. */
export function detectFormat(content: string): InputFormat {
  const trimmed = content.trim();
  const lines = trimmed.split(/\r?\n/).filter((l) => l.trim() !== '');
  const first = lines[0] ?? '';
  if (trimmed.startsWith('[')) return 'json';
  if (trimmed.startsWith('{')) {
    if (lines.length > 1 && lines.every((l) => l.trim().startsWith('{') && l.trim().endsWith('}'))) return 'jsonl';
    return 'json';
  }
  if (lines.length > 1 && /^[\w" ]+(,[\w" ]+)+$/.test(first) && /(^|,)"?(text|transcript|content|utterance|message)"?(,|$)/i.test(first)) {
    return 'csv';
  }
  return 'text';
}

export function lineColumnAt(content: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, content.length);
  for (let i = 0; i < end; i++) {
    if (content.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

function parseJson(content: string): ParsedRecord[] {
  if (content.trim() === '') throw new InputError('JSON input is empty', { line: 1 });
  let value: unknown;
  try {
    value = JSON.parse(content);
  } catch {
    throw jsonSyntaxError(content, 'JSON input');
  }
  const starts = recordStartOffsets(content);
  return recordsFromValue(value, (i) => {
    const off = starts[i];
    return off === undefined ? 1 : lineColumnAt(content, off).line;
  });
}

/** Top level: an array of records, `{conversations: [...]}` / `{records: [...]}`, or one record. */
function recordsFromValue(value: unknown, lineOf: (i: number) => number): ParsedRecord[] {
  let items: unknown[];
  if (Array.isArray(value)) items = value;
  else if (isObject(value) && Array.isArray(value.conversations)) items = value.conversations;
  else if (isObject(value) && Array.isArray(value.records)) items = value.records;
  else if (isObject(value) || typeof value === 'string') items = [value];
  else throw new InputError('JSON input must be an object, an array of records or a transcript string', { line: 1 });
  if (items.length === 0) throw new InputError('JSON input holds no records', { line: 1 });
  return items.map((data, index) => ({ index, line: lineOf(index), data }));
}

/**
 * Offsets where each record begins: the elements of a top-level array, or of the first array
 * value of a top-level object (`{"conversations": [...]}`). A tiny scanner, so that record
 * errors can name their line without a position-aware JSON parser.
 */
function recordStartOffsets(content: string): number[] {
  const starts: number[] = [];
  let depth = 0;
  let inString = false;
  let targetDepth = -1;
  let expectElement = false;
  for (let i = 0; i < content.length; i++) {
    const ch = content[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (expectElement && ch !== undefined && !/\s/.test(ch) && ch !== ']') {
      starts.push(i);
      expectElement = false;
    }
    if (ch === '"') inString = true;
    else if (ch === '[' || ch === '{') {
      depth++;
      if (ch === '[' && targetDepth === -1 && (depth === 1 || depth === 2)) {
        targetDepth = depth;
        expectElement = true;
      }
    } else if (ch === ']' || ch === '}') {
      if (depth === targetDepth && ch === ']') return starts;
      depth--;
    } else if (ch === ',' && depth === targetDepth) expectElement = true;
  }
  return starts;
}

function parseJsonl(content: string): ParsedRecord[] {
  const records: ParsedRecord[] = [];
  const lines = content.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? '').replace(/\r$/, '');
    if (raw.trim() === '') continue;
    const index = records.length;
    try {
      records.push({ index, line: i + 1, data: JSON.parse(raw) });
    } catch {
      const problem = findJsonSyntaxError(raw);
      const column = (problem?.offset ?? 0) + 1;
      throw new InputError(
        `JSONL record index ${index} on line ${i + 1}, column ${column} is not valid JSON: ${problem?.reason ?? 'invalid JSON'}`,
        { record_index: index, line: i + 1, column },
      );
    }
  }
  if (records.length === 0) throw new InputError('JSONL input holds no records', { line: 1 });
  return records;
}

const CSV_REASONS: Record<string, string> = {
  CSV_INVALID_CLOSING_QUOTE: 'a quoted field is followed by characters other than a delimiter',
  CSV_QUOTE_NOT_CLOSED: 'a quoted field is never closed',
  CSV_RECORD_INCONSISTENT_COLUMNS: 'the record has a different number of fields than the header',
  CSV_RECORD_INCONSISTENT_FIELDS_LENGTH: 'the record has a different number of fields than the header',
  CSV_INVALID_OPENING_QUOTE: 'a quote appears inside an unquoted field',
  CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE: 'a quoted field is followed by characters other than a delimiter',
};

function parseCsvRecords(content: string): ParsedRecord[] {
  type CsvRow = { record: Record<string, string>; info: { lines: number }; raw: string };
  let rows: CsvRow[];
  try {
    rows = parseCsv<CsvRow>(content, {
      columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()),
      info: true,
      raw: true,
      skip_empty_lines: true,
      bom: true,
    });
  } catch (e) {
    const err = e as { code?: string; lines?: number; records?: number };
    const line = typeof err.lines === 'number' ? err.lines : undefined;
    const recordIndex = typeof err.records === 'number' ? err.records : undefined;
    // Reasons come from the error code: csv-parse messages quote the offending input.
    const reason = CSV_REASONS[err.code ?? ''] ?? (err.code ?? 'invalid CSV').toLowerCase().replace(/_/g, ' ');
    throw new InputError(
      `CSV record index ${recordIndex ?? '?'} on line ${line ?? '?'} is malformed: ${reason}`,
      { ...(recordIndex !== undefined ? { record_index: recordIndex } : {}), ...(line !== undefined ? { line } : {}) },
    );
  }
  if (rows.length === 0) throw new InputError('CSV input has a header but no records', { line: 1 });
  return rows.map((row, index) => {
    const newlines = row.raw.replace(/\r?\n$/, '').split('\n').length - 1;
    return { index, line: row.info.lines - newlines, data: row.record };
  });
}

function jsonSyntaxError(content: string, what: string): InputError {
  const problem = findJsonSyntaxError(content) ?? { offset: 0, reason: 'invalid JSON' };
  const { line, column } = lineColumnAt(content, problem.offset);
  return new InputError(`${what} is not valid JSON at line ${line}, column ${column}: ${problem.reason}`, { line, column });
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
