/**
 * The analysed conversation — what validation, processing and the DAG stages progressively fill
 * in — plus the structural checks behind `completeness` and the analysis `confidence`.
 * Turn text here is always the redacted text.
 */
import type { Conversation, Speaker } from './conversation-types.ts';
import { round } from './conversation-types.ts';
import type { BiasResult } from './bias-detection.ts';
import type { EmotionSummary, TurnEmotions } from './emotion-analysis.ts';
import type { EmpathyScore } from './empathy-scoring.ts';
import type { PiiFinding, PiiType } from './pii-redaction.ts';
import type { SentimentScore, SentimentTrend } from './sentiment-analysis.ts';
import type { Recommendation } from './therapeutic-recommendations.ts';

export interface AnalysedTurn {
  turn_index: number;
  speaker: Speaker;
  text: string;
  sentiment?: SentimentScore;
  emotions?: TurnEmotions;
}

export interface ConversationChecks {
  /** check name → passed */
  results: Record<string, boolean>;
  /** passed / total, 0–1 */
  completeness: number;
}

export interface AnalysedConversation {
  conversation_id: string;
  turns: AnalysedTurn[];
  checks?: ConversationChecks;
  pii?: { counts: Record<PiiType, number>; findings: PiiFinding[]; remaining: number };
  bias?: BiasResult;
  sentiment?: { overall: SentimentScore; by_speaker: Record<string, SentimentTrend> };
  emotions?: { overall: EmotionSummary; by_speaker: Record<string, EmotionSummary> };
  empathy?: EmpathyScore;
  recommendations?: Recommendation[];
  confidence?: number;
}

/**
 * Structural checks (each counts equally toward completeness):
 * has_therapist, has_client, min_turns (≥ 4 turns), no_empty_turns, speakers_recognised
 * (≥ 80 % of turns have a known role), alternation (≥ 1 change of speaker per 3 turns).
 */
export function checkConversation(conv: Pick<Conversation, 'turns'>): ConversationChecks {
  const turns = conv.turns;
  const known = turns.filter((t) => t.speaker !== 'unknown' && !t.speaker.startsWith('participant_')).length;
  let changes = 0;
  for (let i = 1; i < turns.length; i++) if (turns[i]?.speaker !== turns[i - 1]?.speaker) changes++;
  const results: Record<string, boolean> = {
    has_therapist: turns.some((t) => t.speaker === 'therapist'),
    has_client: turns.some((t) => t.speaker === 'client'),
    min_turns: turns.length >= 4,
    no_empty_turns: turns.every((t) => t.text.trim() !== ''),
    speakers_recognised: turns.length > 0 && known / turns.length >= 0.8,
    alternation: turns.length > 1 && changes >= Math.floor((turns.length - 1) / 3),
  };
  const values = Object.values(results);
  return { results, completeness: round(values.filter(Boolean).length / values.length) };
}

/**
 * Analysis confidence, 0–1: 0.4 × speaker recognition + 0.3 × min(1, words / 300)
 * + 0.3 × empathy confidence (therapist turns / 10). Short, unlabelled or therapist-less
 * transcripts give weak evidence for every score computed from them.
 */
export function analysisConfidence(conv: Pick<Conversation, 'turns'>, empathyConfidence: number): number {
  const turns = conv.turns;
  if (turns.length === 0) return 0;
  const known = turns.filter((t) => t.speaker !== 'unknown' && !t.speaker.startsWith('participant_')).length / turns.length;
  const words = turns.reduce((n, t) => n + (t.text.match(/[A-Za-z0-9']+/g)?.length ?? 0), 0);
  return round(0.4 * known + 0.3 * Math.min(1, words / 300) + 0.3 * empathyConfidence);
}
