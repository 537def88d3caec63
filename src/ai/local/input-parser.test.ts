import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadFixture } from '../../../test/fixtures/transcripts/load-fixture.ts';
import { InputError } from './conversation-types.ts';
import { detectFormat, parseInput } from './input-parser.ts';
import { findJsonSyntaxError } from './json-syntax.ts';
import { parseSpeakerTurns, standardizeRecords } from './speaker-turns.ts';

function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (e) {
    if (e instanceof InputError) return e;
    throw e;
  }
  throw new Error('expected an InputError');
}

describe('parseInput', () => {
  it('reports the line and record of a malformed JSONL line', () => {
    const e = inputError(() => parseInput({ format: 'jsonl', content: loadFixture('malformed.jsonl') }));
    expect(e.line).toBe(3);
    expect(e.record_index).toBe(2);
    expect(e.message).toMatch(/record index 2 on line 3/);
  });

  it('reports line and column of a JSON syntax error without quoting the input', () => {
    const e = inputError(() => parseInput({ format: 'json', content: loadFixture('malformed.json') }));
    expect(e.line).toBe(12);
    expect(e.column).toBe(32);
    expect(e.message).not.toContain('Welcome back');
  });

  it('reports the line and record of a malformed CSV record', () => {
    const e = inputError(() => parseInput({ format: 'csv', content: loadFixture('malformed.csv') }));
    expect(e.line).toBe(4);
    expect(e.record_index).toBe(2);
    expect(e.message).not.toContain('about that');
  });

  it('names the record and line of a record without text', () => {
    const parsed = parseInput({ format: 'json', content: loadFixture('missing-text.json') });
    expect(parsed.records.map((r) => r.line)).toEqual([2, 3]);
    const e = inputError(() => standardizeRecords(parsed));
    expect(e.record_index).toBe(1);
    expect(e.line).toBe(3);
    expect(e.message).toMatch(/turns\[1\] has no text/);
  });

  it('parses JSONL turn rows and turn arrays, skipping blank lines', () => {
    const parsed = parseInput({ format: 'jsonl', content: loadFixture('sessions.jsonl') });
    expect(parsed.records.map((r) => r.line)).toEqual([1, 2, 4]);
    const { conversations } = standardizeRecords(parsed);
    expect(conversations.map((c) => [c.conversation_id, c.turns.map((t) => t.speaker)])).toEqual([
      ['a', ['therapist', 'client']],
      ['b', ['therapist', 'client']],
    ]);
  });

  it('names the participants of one-row-per-turn input per conversation, not per row; an empty one by record and line, not id', () => {
    const csv = 'session_id,speaker,text\ns-1,Alice,Hi\ns-1,Bob,Hello\ns-1,Alice,How are you\ns-2,Bob,Hey\ns-2,Carol,Yo\n';
    const { conversations } = standardizeRecords(parseInput({ format: 'csv', content: csv }));
    expect(conversations.map((c) => [c.conversation_id, c.turns.map((t) => t.speaker)])).toEqual([
      ['s-1', ['participant_1', 'participant_2', 'participant_1']],
      ['s-2', ['participant_1', 'participant_2']],
    ]);
    const e = inputError(() => standardizeRecords(parseInput({ format: 'csv', content: 'session_id,speaker,text\nPATIENT-JANE-DOE,client,\n' })));
    expect(e.message).toBe('record index 0 (line 2) has no non-empty turns');
  });

  it('parses CSV with multi-line quoted fields and gives start lines', () => {
    const parsed = parseInput({ format: 'csv', content: loadFixture('sessions.csv') });
    expect(parsed.records.map((r) => r.line)).toEqual([2, 3, 5, 6]);
    const { conversations } = standardizeRecords(parsed);
    expect(conversations).toHaveLength(2);
    expect(conversations[0]?.turns[1]).toEqual({ speaker: 'client', text: "Not great, I guess. Work is stressful,\nand I can't sleep." });
  });

  it('accepts {text} and already-parsed JSON, and rejects unknown formats', () => {
    expect(parseInput({ text: 'T: hi\nC: hello' }).format).toBe('text');
    expect(parseInput({ format: 'json', content: [{ text: 'T: hi' }] }).records).toHaveLength(1);
    expect(inputError(() => parseInput({ format: 'xml', content: '<a/>' })).message).toMatch(/format must be one of/);
    expect(inputError(() => parseInput({ format: 'jsonl', content: '\n\n' })).message).toMatch(/no records/);
  });

  it('detects formats', () => {
    expect(detectFormat('[{"a":1}]')).toBe('json');
    expect(detectFormat('{"a":1}\n{"a":2}')).toBe('jsonl');
    expect(detectFormat('speaker,text\nT,hi')).toBe('csv');
    expect(detectFormat('Therapist: hello, how are you?')).toBe('text');
  });
});

describe('findJsonSyntaxError', () => {
  it('agrees with JSON.parse on validity (property)', () => {
    fc.assert(
      fc.property(fc.json(), fc.nat(), fc.string({ maxLength: 3 }), (json, cut, junk) => {
        const pos = json.length === 0 ? 0 : cut % json.length;
        const text = json.slice(0, pos) + junk + json.slice(pos);
        let valid = true;
        try {
          JSON.parse(text);
        } catch {
          valid = false;
        }
        expect(findJsonSyntaxError(text) === undefined).toBe(valid);
      }),
      { numRuns: 500 },
    );
  });

  it('JSONL parsing names the exact line of the one corrupted record (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 8 }), { minKeys: 1 }), { minLength: 1, maxLength: 8 }), fc.nat(), (objs, k) => {
        const lines = objs.map((o) => JSON.stringify(o));
        const bad = k % lines.length;
        lines[bad] = (lines[bad] ?? '').slice(0, -1); // drop the closing brace
        const e = inputError(() => parseInput({ format: 'jsonl', content: lines.join('\n') }));
        expect(e.line).toBe(bad + 1);
        expect(e.record_index).toBe(bad);
      }),
      { numRuns: 200 },
    );
  });
});

describe('parseSpeakerTurns', () => {
  it('recognises role labels and aliases, joins continuation lines', () => {
    const turns = parseSpeakerTurns('Counselor: Hello.\nPatient: Hi,\nstill here.\nT - How so?\nC: Fine.\n[Client]: ok\nDr.: Good.');
    expect(turns).toEqual([
      { speaker: 'therapist', text: 'Hello.' },
      { speaker: 'client', text: 'Hi, still here.' },
      { speaker: 'therapist', text: 'How so?' },
      { speaker: 'client', text: 'Fine.' },
      { speaker: 'client', text: 'ok' },
      { speaker: 'therapist', text: 'Good.' },
    ]);
  });

  it('never exposes an unknown label (often a name) as the speaker', () => {
    const turns = parseSpeakerTurns('Therapist: Hi both.\nMaria: Hello.\nDavid: Hey.\nMaria: Again.');
    expect(turns.map((t) => t.speaker)).toEqual(['therapist', 'participant_1', 'participant_2', 'participant_1']);
  });

  it('keeps unlabelled prose as one unknown turn and "Yeah - I know" as text', () => {
    expect(parseSpeakerTurns('Note: this is prose.\nMore prose.')).toEqual([{ speaker: 'unknown', text: 'Note: this is prose. More prose.' }]);
    expect(parseSpeakerTurns('Client: I see.\nYeah - I know.')).toEqual([{ speaker: 'client', text: 'I see. Yeah - I know.' }]);
  });
});
