/**
 * Per-turn sentiment with VADER (Hutto & Gilbert, ICWSM 2014): `compound` in [−1, 1] and the
 * neg/neu/pos proportions. Labels use VADER's published thresholds: ≥ 0.05 positive,
 * ≤ −0.05 negative, otherwise neutral.
 *
 * Trend (per speaker): least-squares slope of compound over that speaker's turn order, plus the
 * difference between the mean of the second and the first half of those turns.
 */
import vader from 'vader-sentiment';
import type { Turn } from './conversation-types.ts';
import { round } from './conversation-types.ts';

export type SentimentLabel = 'positive' | 'neutral' | 'negative';

export interface SentimentScore {
  compound: number;
  neg: number;
  neu: number;
  pos: number;
  label: SentimentLabel;
}

export interface SentimentTrend {
  turns: number;
  mean: number;
  slope: number;
  first_half_mean: number;
  second_half_mean: number;
  shift: number;
  direction: 'improving' | 'declining' | 'stable';
}

export function sentimentLabel(compound: number): SentimentLabel {
  return compound >= 0.05 ? 'positive' : compound <= -0.05 ? 'negative' : 'neutral';
}

export function analyzeSentiment(text: string): SentimentScore {
  const s = vader.SentimentIntensityAnalyzer.polarity_scores(text);
  return { compound: round(s.compound), neg: round(s.neg), neu: round(s.neu), pos: round(s.pos), label: sentimentLabel(s.compound) };
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function sentimentTrend(values: readonly number[]): SentimentTrend {
  const n = values.length;
  const m = mean(values);
  let slope = 0;
  if (n > 1) {
    const xm = (n - 1) / 2;
    let num = 0;
    let den = 0;
    values.forEach((y, x) => {
      num += (x - xm) * (y - m);
      den += (x - xm) ** 2;
    });
    slope = den === 0 ? 0 : num / den;
  }
  const half = Math.floor(n / 2);
  const first = mean(values.slice(0, Math.max(1, half)));
  const second = mean(values.slice(half));
  const shift = n > 1 ? second - first : 0;
  // Declining/improving when the halves differ by ≥ 0.15 compound, or the fitted line moves ≥ 0.3 across the session.
  const span = slope * Math.max(0, n - 1);
  const direction = shift <= -0.15 || span <= -0.3 ? 'declining' : shift >= 0.15 || span >= 0.3 ? 'improving' : 'stable';
  return { turns: n, mean: round(m), slope: round(slope), first_half_mean: round(first), second_half_mean: round(second), shift: round(shift), direction };
}

export interface ConversationSentiment {
  turns: SentimentScore[];
  overall: SentimentScore;
  by_speaker: Record<string, SentimentTrend>;
}

export function analyzeConversationSentiment(turns: readonly Turn[]): ConversationSentiment {
  const scores = turns.map((t) => analyzeSentiment(t.text));
  const by_speaker: Record<string, SentimentTrend> = {};
  for (const sp of [...new Set(turns.map((t) => t.speaker))]) {
    by_speaker[sp] = sentimentTrend(scores.filter((_, i) => turns[i]?.speaker === sp).map((s) => s.compound));
  }
  const avg = (k: 'compound' | 'neg' | 'neu' | 'pos'): number => round(mean(scores.map((s) => s[k])));
  const compound = avg('compound');
  return { turns: scores, overall: { compound, neg: avg('neg'), neu: avg('neu'), pos: avg('pos'), label: sentimentLabel(compound) }, by_speaker };
}
