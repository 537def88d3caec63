/**
 * Checks a run's `input_data` at creation (SPEC §7): `{format, content}` or `{text}`, parsed
 * once so that malformed input is refused with a 400 naming the record and line instead of a
 * failed ingestion stage later. Messages never quote the content.
 */
import { ValidationError, type FieldError } from '../core/index.ts';
import { InputError, parseInput } from '../ai/local/index.ts';

export interface InputDataBody {
  format?: 'text' | 'json' | 'jsonl' | 'csv';
  content?: unknown;
  text?: string;
}

export function checkInputData(d: InputDataBody): Record<string, unknown> {
  const errors: FieldError[] = [];
  if (d.text !== undefined) {
    if (d.content !== undefined) errors.push({ field: 'input_data.text', message: 'give either {format, content} or {text}, not both' });
    if (d.text.trim() === '') errors.push({ field: 'input_data.text', message: 'is empty' });
  } else if (d.content === undefined || d.content === null) {
    errors.push({ field: 'input_data.content', message: 'is required (or give input_data.text)' });
  } else if (typeof d.content !== 'string' && d.format !== undefined && d.format !== 'json') {
    errors.push({ field: 'input_data.content', message: `must be a string for format ${d.format}` });
  }
  if (errors.length) throw new ValidationError('input_data is invalid.', errors);
  const normalized: Record<string, unknown> = d.text !== undefined ? { text: d.text } : { ...(d.format ? { format: d.format } : {}), content: d.content };
  try {
    parseInput(normalized);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    const where = [e.record_index !== undefined ? `record ${e.record_index}` : '', e.line !== undefined ? `line ${e.line}` : '', e.column !== undefined ? `column ${e.column}` : ''].filter(Boolean).join(', ');
    const field = d.text !== undefined ? 'input_data.text' : 'input_data.content';
    throw new ValidationError('input_data could not be parsed.', [{ field, message: where && !e.message.includes(where) ? `${where}: ${e.message}` : e.message }]);
  }
  return normalized;
}
