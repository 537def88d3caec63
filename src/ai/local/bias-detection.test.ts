import { describe, expect, it } from 'vitest';
import { loadFixture, loadLabels, turnTexts } from '../../../test/fixtures/transcripts/load-fixture.ts';
import { biasScore, detectBias, detectBiasInText } from './bias-detection.ts';
import { parseSpeakerTurns } from './speaker-turns.ts';

interface Labels {
  findings: { turn_index: number; phrase: string; start: number; end: number }[];
}

describe('detectBias', () => {
  const transcript = loadFixture('biased-session.txt');
  const turns = parseSpeakerTurns(transcript);
  const result = detectBias(turns);

  it('finds every hand-labelled phrase at its exact offsets', () => {
    const texts = turnTexts(transcript);
    for (const label of loadLabels<Labels>('biased-session.labels.json').findings) {
      expect(texts[label.turn_index]?.slice(label.start, label.end)).toBe(label.phrase);
      const hit = result.findings.find((f) => f.turn_index === label.turn_index && f.start === label.start);
      expect(hit, label.phrase).toMatchObject({ phrase: label.phrase, end: label.end });
    }
  });

  it('grades severity and explains each finding', () => {
    const retarded = result.findings.find((f) => f.phrase === 'retarded');
    expect(retarded?.severity).toBe('high');
    expect(retarded?.message).toMatch(/insensitive|profane/);
    const chairman = result.findings.find((f) => f.phrase === 'chairman');
    expect(chairman).toMatchObject({ severity: 'medium', rule: 'chairman-chairwoman' });
    expect(chairman?.suggestions).toContain('chair');
  });

  it('scores a biased conversation high and a clean one zero', () => {
    expect(result.score).toBeGreaterThan(0.8);
    expect(detectBias(parseSpeakerTurns(loadFixture('empathic-session.txt'))).score).toBe(0);
    expect(detectBias(parseSpeakerTurns(loadFixture('session-50-turns.txt'))).findings).toEqual([]);
  });

  it('ignores family words, pronouns and clinical vocabulary', () => {
    const r = detectBiasInText('My mother and my husband said she was worried about my drinking and the abuse. I had suicidal thoughts.');
    expect(r.findings).toEqual([]);
  });

  it('flags condescension only in therapist turns, as low severity', () => {
    const r = detectBias([
      { speaker: 'client', text: 'I just want to sleep.' },
      { speaker: 'therapist', text: 'Obviously you should just relax.' },
    ]);
    expect(r.findings.map((f) => [f.turn_index, f.phrase, f.severity])).toEqual([
      [1, 'Obviously', 'low'],
      [1, 'just', 'low'],
    ]);
  });

  it('uses the documented score formula', () => {
    expect(biasScore([], 50)).toBe(0);
    expect(biasScore([{ severity: 'high' }], 20)).toBeCloseTo(1 - Math.exp(-1), 4);
    expect(biasScore([{ severity: 'medium' }], 1000)).toBeCloseTo(1 - Math.exp(-0.05), 4);
  });
});
