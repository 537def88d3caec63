import { describe, expect, it } from 'vitest';
import { loadFixture } from '../../../test/fixtures/transcripts/load-fixture.ts';
import { analyzeConversationEmotions, analyzeEmotions } from './emotion-analysis.ts';
import { emotionsOf } from './emotion-lexicon.ts';
import { scoreEmpathy } from './empathy-scoring.ts';
import { analyzeConversationSentiment, analyzeSentiment, sentimentTrend } from './sentiment-analysis.ts';
import { parseSpeakerTurns } from './speaker-turns.ts';
import { recommend } from './therapeutic-recommendations.ts';

const hostile = parseSpeakerTurns(loadFixture('hostile-session.txt'));
const empathic = parseSpeakerTurns(loadFixture('empathic-session.txt'));
const session = parseSpeakerTurns(loadFixture('session-50-turns.txt'));

describe('sentiment (VADER)', () => {
  it('scores a clearly hostile turn negative and a warm turn positive', () => {
    const hostileTurn = analyzeSentiment(hostile[3]?.text ?? '');
    expect(hostileTurn.label).toBe('negative');
    expect(hostileTurn.compound).toBeLessThan(-0.7);
    const warm = analyzeSentiment(session[48]?.text ?? '');
    expect(warm.label).toBe('positive');
    expect(warm.compound).toBeGreaterThan(0.5);
  });

  it('computes per-speaker trends', () => {
    const s = analyzeConversationSentiment(session);
    expect(s.turns).toHaveLength(50);
    expect(s.by_speaker.client?.turns).toBe(25);
    expect(s.by_speaker.client?.direction).toBe('improving');
    expect(analyzeConversationSentiment(hostile).by_speaker.client?.mean).toBeLessThan(-0.4);
    expect(sentimentTrend([0.5, 0.4, -0.2, -0.6]).direction).toBe('declining');
    expect(sentimentTrend([0.1, 0.1, 0.1]).direction).toBe('stable');
  });
});

describe('emotions (lexicon)', () => {
  it('finds the emotions a turn expresses and respects negation', () => {
    expect(analyzeEmotions('I feel so scared and anxious.').dominant).toBe('fear');
    expect(analyzeEmotions("I'm furious, I hate this.").dominant).toBe('anger');
    expect(analyzeEmotions('I am not afraid.').hits).toBe(0);
    expect(emotionsOf('worrying')).toContain('fear');
    const e = analyzeEmotions('I feel hopeless and lonely and I cry every night.');
    expect(e.dominant).toBe('sadness');
    expect(Object.values(e.scores).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 2);
  });

  it('summarises by speaker', () => {
    const e = analyzeConversationEmotions(session);
    expect(e.by_speaker.client?.dominant).toBe('fear');
    expect(analyzeConversationEmotions(hostile).by_speaker.client?.dominant).toBe('anger');
  });
});

describe('empathy', () => {
  it('scores an empathic therapist above a dismissive one, per component', () => {
    const good = scoreEmpathy(empathic);
    const bad = scoreEmpathy(hostile);
    expect(good.overall).toBeGreaterThan(0.7);
    expect(bad.overall).toBeLessThan(0.1);
    for (const k of ['cognitive', 'emotional', 'compassionate'] as const) expect(good[k]).toBeGreaterThan(bad[k]);
    expect(bad.features.dismissive).toBeGreaterThanOrEqual(3);
    expect(good.features.reflections).toBe(4);
  });

  it('is zero with zero confidence when there is no therapist turn', () => {
    expect(scoreEmpathy([{ speaker: 'client', text: 'Hello' }])).toMatchObject({ overall: 0, confidence: 0, therapist_turns: 0 });
  });
});

describe('recommendations', () => {
  it('puts a safety assessment first when the client uses risk language', () => {
    const turns = [
      { speaker: 'therapist', text: 'How have you been?' },
      { speaker: 'client', text: "Honestly I've been thinking about killing myself." },
    ];
    const recs = recommend({ turns, empathy: scoreEmpathy(turns) });
    expect(recs[0]?.id).toBe('safety_risk');
    expect(recs[0]?.priority).toBe('critical');
    expect(recs[0]?.evidence).toEqual({ turn_indexes: [1] });
  });

  it('flags dismissive language and low empathy in the hostile session', () => {
    const s = analyzeConversationSentiment(hostile);
    const recs = recommend({ turns: hostile, client_trend: s.by_speaker.client, empathy: scoreEmpathy(hostile) });
    const ids = recs.map((r) => r.id);
    expect(ids).toContain('low_empathy');
    expect(ids).toContain('dismissive_language');
    expect(ids).toContain('persistent_negative_affect');
    expect(ids).not.toContain('strong_alliance');
  });

  it('recommends anxiety work and reinforcement for the 50-turn session', () => {
    const s = analyzeConversationSentiment(session);
    const e = analyzeConversationEmotions(session);
    const recs = recommend({ turns: session, client_trend: s.by_speaker.client, client_emotions: e.by_speaker.client, empathy: scoreEmpathy(session) });
    expect(recs.map((r) => r.id)).toEqual(['emotion_fear', 'improving_affect']);
  });
});
