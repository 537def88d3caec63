import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadFixture, loadLabels } from '../../../test/fixtures/transcripts/load-fixture.ts';
import { countRemainingPii, detectPii, redactPii } from './pii-redaction.ts';
import { parseSpeakerTurns } from './speaker-turns.ts';

type Labels = Record<'EMAIL' | 'PHONE' | 'SSN' | 'DOB' | 'ADDRESS' | 'NAME', string[]>;

describe('detectPii on the hand-labelled PII session', () => {
  const turns = parseSpeakerTurns(loadFixture('pii-session.txt'));
  const labels = loadLabels<Labels>('pii-session.labels.json');
  const result = detectPii(turns);
  const redacted = result.redacted_turns.map((t) => t.text).join('\n');

  it('removes every labelled identifier from the redacted text', () => {
    for (const type of ['EMAIL', 'PHONE', 'SSN', 'DOB', 'ADDRESS', 'NAME'] as const) {
      for (const value of labels[type]) expect(redacted, `${type} ${value}`).not.toContain(value);
    }
  });

  it('counts and places each type', () => {
    expect(result.counts).toMatchObject({ EMAIL: 2, PHONE: 3, SSN: 1, DOB: 1, ADDRESS: 1 });
    expect(result.counts.NAME).toBeGreaterThanOrEqual(5);
    expect(result.redacted_turns[1]?.text).toBe('Sure. My name is [NAME], my email is [EMAIL] and my cell is [PHONE].');
    expect(result.redacted_turns[4]?.text).toBe('Got it. Are you still living at [ADDRESS]?');
    expect(result.redacted_turns[3]?.text).toBe('My DOB is [DOB]. My social security number is [SSN] if you need it for insurance.');
    // Offsets point at the identifier in the original turn.
    const email = result.findings.find((f) => f.type === 'EMAIL');
    expect(email && turns[email.turn_index]?.text.slice(email.start, email.end)).toBe('maria.lopez82@gmail.com');
    const ssn = result.findings.find((f) => f.type === 'SSN');
    expect(ssn && turns[ssn.turn_index]?.text.slice(ssn.start, ssn.end)).toBe('523-45-6789');
  });

  it('findings carry no identifier text and the redacted turns leave none behind', () => {
    expect(JSON.stringify(result.findings)).not.toMatch(/@|\d{3}-\d{2}-\d{4}/);
    expect(countRemainingPii(result.redacted_turns)).toBe(0);
    expect(countRemainingPii(turns)).toBeGreaterThanOrEqual(8);
  });

  it('keeps ordinary clinical text intact', () => {
    expect(result.redacted_turns[0]?.text).toBe('Before we start, can you confirm your contact details for the file?');
    expect(redactPii('I felt anxious on Monday and slept badly.').redacted_text).toBe('I felt anxious on Monday and slept badly.');
  });
});

describe('redaction properties', () => {
  const word = fc.stringMatching(/^[a-z]{1,8}$/);
  const sentence = fc.array(word, { maxLength: 8 }).map((w) => w.join(' '));
  const email = fc.tuple(fc.stringMatching(/^[a-z][a-z0-9.]{0,10}[a-z0-9]$/), fc.stringMatching(/^[a-z]{2,10}$/), fc.constantFrom('com', 'org', 'net', 'io')).map(([u, d, t]) => `${u}@${d}.${t}`);
  const phone = fc.tuple(fc.integer({ min: 200, max: 999 }), fc.integer({ min: 200, max: 999 }), fc.integer({ min: 0, max: 9999 }), fc.constantFrom('-', '.', ' '))
    .map(([a, b, c, sep]) => `${a}${sep}${b}${sep}${String(c).padStart(4, '0')}`);
  const ssn = fc.tuple(fc.integer({ min: 1, max: 665 }), fc.integer({ min: 1, max: 99 }), fc.integer({ min: 1, max: 9999 }))
    .map(([a, b, c]) => `${String(a).padStart(3, '0')}-${String(b).padStart(2, '0')}-${String(c).padStart(4, '0')}`);

  it('never leaves an inserted email, phone number or SSN in the redacted text', () => {
    fc.assert(
      fc.property(sentence, fc.oneof(email, phone, ssn), sentence, (before, secret, after) => {
        const text = `${before} ${secret} ${after}`;
        const r = redactPii(text);
        expect(r.redacted_text).not.toContain(secret);
        expect(r.findings.length).toBeGreaterThanOrEqual(1);
      }),
      { numRuns: 300 },
    );
  });

  it('leaves text without identifiers unchanged', () => {
    fc.assert(
      fc.property(sentence, (text) => {
        expect(redactPii(text).redacted_text).toBe(text);
      }),
      { numRuns: 200 },
    );
  });

  it('redacts whole street addresses: a house number with a letter, a directional after the street, the city, state and ZIP', () => {
    expect(redactPii('I live at 1600 Pennsylvania Avenue NW, Washington, DC 20500 now.').redacted_text).toBe('I live at [ADDRESS] now.');
    expect(redactPii('Meet me at 221B Baker Street tomorrow.').redacted_text).toBe('Meet me at [ADDRESS] tomorrow.');
    expect(redactPii('She was at 45 Elm Street east of town.').redacted_text).toBe('She was at [ADDRESS] east of town.');
    expect(redactPii('Call 311 about it, 2 of us went.').redacted_text).toBe('Call 311 about it, 2 of us went.');
  });
});
