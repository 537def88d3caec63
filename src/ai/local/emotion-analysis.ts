/**
 * Per-turn emotions from the lexicon in emotion-lexicon.ts.
 * - A word counts for every emotion it is listed under, unless negated: one of "not", "no",
 *   "never", "n't", "without", "hardly" within the three preceding tokens.
 * - Turn scores: hits per emotion / total hits (a distribution summing to 1, or all 0 when
 *   the turn has no emotion words); `intensity` = emotion-bearing words / words (0–1);
 *   `dominant` = the emotion with most hits (ties → the order of EMOTIONS), or null.
 * - Conversation summary: the same distribution over all hits, per speaker.
 */
import type { Turn } from './conversation-types.ts';
import { round } from './conversation-types.ts';
import { EMOTIONS, emotionsOf, type Emotion } from './emotion-lexicon.ts';

export type EmotionScores = Record<Emotion, number>;

export interface TurnEmotions {
  scores: EmotionScores;
  dominant: Emotion | null;
  intensity: number;
  hits: number;
}

export interface EmotionSummary {
  scores: EmotionScores;
  dominant: Emotion | null;
  hits: number;
}

const TOKEN_RE = /[a-z]+(?:[-'][a-z]+)*/g;
const NEGATORS = new Set(['not', 'no', 'never', 'without', 'hardly', 'nothing', 'neither', 'nor']);

function zero(): EmotionScores {
  return { joy: 0, sadness: 0, anger: 0, fear: 0, trust: 0, disgust: 0, surprise: 0, anticipation: 0 };
}

function summarise(counts: EmotionScores): { scores: EmotionScores; dominant: Emotion | null; hits: number } {
  const total = EMOTIONS.reduce((n, e) => n + counts[e], 0);
  const scores = zero();
  let dominant: Emotion | null = null;
  for (const e of EMOTIONS) {
    scores[e] = total === 0 ? 0 : round(counts[e] / total);
    if (counts[e] > 0 && (dominant === null || counts[e] > counts[dominant])) dominant = e;
  }
  return { scores, dominant, hits: total };
}

function countEmotions(text: string): { counts: EmotionScores; words: number; emotional: number } {
  const tokens = text.toLowerCase().replace(/[’]/g, "'").match(TOKEN_RE) ?? [];
  const counts = zero();
  let emotional = 0;
  tokens.forEach((tok, i) => {
    const found = emotionsOf(tok);
    if (found.length === 0) return;
    for (let j = Math.max(0, i - 3); j < i; j++) {
      const prev = tokens[j] ?? '';
      if (NEGATORS.has(prev) || prev.endsWith("n't")) return;
    }
    emotional++;
    for (const e of found) counts[e]++;
  });
  return { counts, words: tokens.length, emotional };
}

export function analyzeEmotions(text: string): TurnEmotions {
  const { counts, words, emotional } = countEmotions(text);
  const s = summarise(counts);
  return { scores: s.scores, dominant: s.dominant, intensity: words === 0 ? 0 : round(emotional / words), hits: s.hits };
}

export interface ConversationEmotions {
  turns: TurnEmotions[];
  overall: EmotionSummary;
  by_speaker: Record<string, EmotionSummary>;
}

export function analyzeConversationEmotions(turns: readonly Turn[]): ConversationEmotions {
  const raw = turns.map((t) => countEmotions(t.text));
  const total = zero();
  const perSpeaker = new Map<string, EmotionScores>();
  raw.forEach((r, i) => {
    const sp = turns[i]?.speaker ?? 'unknown';
    const acc = perSpeaker.get(sp) ?? zero();
    for (const e of EMOTIONS) {
      total[e] += r.counts[e];
      acc[e] += r.counts[e];
    }
    perSpeaker.set(sp, acc);
  });
  const by_speaker: Record<string, EmotionSummary> = {};
  for (const [sp, c] of perSpeaker) by_speaker[sp] = summarise(c);
  return {
    turns: raw.map((r) => {
      const s = summarise(r.counts);
      return { scores: s.scores, dominant: s.dominant, intensity: r.words === 0 ? 0 : round(r.emotional / r.words), hits: s.hits };
    }),
    overall: summarise(total),
    by_speaker,
  };
}
