/**
 * Bias and inconsiderate-language detection with retext-equality (insensitive, ableist, gendered
 * wording) and retext-profanities (cuss list, "sureness" ≥ 1), positions per turn.
 *
 * Domain adjustments, because this is therapy text:
 * - gendered *relationship* words and pronouns (mother, husband, she …) name real people here,
 *   so those retext-equality rules are ignored (occupational ones such as "chairman" stay);
 * - clinical vocabulary a client must be able to say ("suicide", "abuse", "drunk" …) is not
 *   treated as profanity;
 * - the condescension rules ("just", "simply", "obviously", "of course" …) matter only when the
 *   therapist says them: ignored in other speakers' turns, severity low in the therapist's.
 *
 * Severity: profanities sureness 2 → high, 1 → medium; condescension → low; retext-equality → medium, except the
 * derogatory mental-health/disability rules (e.g. "crazy", "retarded", "cripple") → high.
 * Where two findings cover the same span the higher severity is kept.
 *
 * Score (0–1): W = Σ weights (low 0.5, medium 1, high 2) over findings; words = word count;
 *   score = 1 − exp(−W / max(1, words / 100) / 2)
 * i.e. weighted findings per 100 words (at least one "100-word" unit), squashed so that one
 * high finding in a short text ≈ 0.63, two ≈ 0.86, and a stray finding in a long session stays low.
 */
import { retext } from 'retext';
import retextEquality from 'retext-equality';
import retextProfanities from 'retext-profanities';
import type { Turn } from './conversation-types.ts';
import { round } from './conversation-types.ts';

export type BiasSeverity = 'low' | 'medium' | 'high';

export interface BiasFinding {
  rule: string;
  source: 'equality' | 'profanity';
  phrase: string;
  start: number;
  end: number;
  turn_index: number;
  message: string;
  severity: BiasSeverity;
  suggestions: string[];
}

export interface BiasResult {
  score: number;
  findings: BiasFinding[];
  by_speaker: Record<string, { score: number; findings: number }>;
  word_count: number;
}

export const SEVERITY_WEIGHT: Record<BiasSeverity, number> = { low: 0.5, medium: 1, high: 2 };

const PERSONAL_REFERENCE_RULES = new Set([
  'he-she', 'her-him', 'herself-himself', 'hers-his', 'dad-mom', 'dads-moms', 'husband-wife', 'husbands-wives',
  'brother-sister', 'brothers-sisters', 'boy-girl', 'daughter-son', 'daughters-sons', 'boyfriend-girlfriend',
  'boyfriends-girlfriends', 'gramps-granny', 'granddaughter-grandson', 'granddaughters-grandsons',
  'grandfathers-grandmothers', 'aunt-uncle', 'aunts-uncles', 'nephew-niece', 'nephews-nieces', 'bride-groom',
  'stepbrother-stepsister', 'stepbrothers-stepsisters', 'stepdad-stepmom', 'stepfathers-stepmothers',
  'widow-widower', 'godfather-godmother', 'maternal-paternal', 'maternity-paternity', 'females-males',
]);

const HIGH_EQUALITY_RULES = new Set([
  'retard', 'retards', 'nuts', 'gimp', 'idiot', 'wacko', 'psycho', 'spaz', 'cripple', 'lame', 'moron', 'schizo',
  'crazy', 'insane', 'lunatic', 'invalid', 'handicapped', 'feeble-minded', 'mentally-ill', 'special',
]);

const CONDESCENSION_RULES = new Set(['basically', 'clearly', 'easy', 'everyone-knows', 'just', 'obvious', 'of-course', 'simple', 'straightforward']);

const CLINICAL_TERMS = [
  'suicide', 'suicidal', 'abuse', 'abused', 'abusive', 'drunk', 'drug', 'drugs', 'sex', 'sexual', 'sexually',
  'rape', 'raped', 'alcoholic', 'addict', 'addicted', 'overdose', 'trauma', 'violence', 'violent', 'weapon',
  'gun', 'kill', 'die', 'dead', 'death', 'hell', 'fat', 'hurt', 'pain', 'pregnant', 'period', 'drinking',
];

const processor = retext()
  .use(retextEquality)
  .use(retextProfanities, { sureness: 1, ignore: CLINICAL_TERMS })
  .freeze();

const WORD_COUNT_RE = /[A-Za-z0-9']+/g;

export function countWords(text: string): number {
  let n = 0;
  for (const _ of text.matchAll(WORD_COUNT_RE)) n++;
  return n;
}

export function biasScore(findings: readonly { severity: BiasSeverity }[], words: number): number {
  const w = findings.reduce((sum, f) => sum + SEVERITY_WEIGHT[f.severity], 0);
  return round(1 - Math.exp(-w / Math.max(1, words / 100) / 2));
}

const SEP = '\n\n';

/** Findings for every turn; offsets are relative to the turn's own text. */
export function detectBias(turns: readonly Turn[]): BiasResult {
  // One retext pass over the whole conversation (much faster than one per turn), mapped back.
  const bases: number[] = [];
  let joined = '';
  turns.forEach((t, i) => {
    if (i > 0) joined += SEP;
    bases.push(joined.length);
    joined += t.text;
  });
  const file = processor.processSync(joined);
  const raw: BiasFinding[] = [];
  for (const m of file.messages) {
    const start = m.place && 'start' in m.place ? m.place.start.offset : undefined;
    const end = m.place && 'end' in m.place ? m.place.end.offset : undefined;
    if (start === undefined || end === undefined || m.ruleId === undefined) continue;
    const isProfanity = m.source === 'retext-profanities';
    if (!isProfanity && PERSONAL_REFERENCE_RULES.has(m.ruleId)) continue;
    let turnIndex = 0;
    while (turnIndex + 1 < bases.length && (bases[turnIndex + 1] ?? Infinity) <= start) turnIndex++;
    const base = bases[turnIndex] ?? 0;
    const condescension = !isProfanity && CONDESCENSION_RULES.has(m.ruleId);
    if (condescension && turns[turnIndex]?.speaker !== 'therapist') continue;
    const sureness = (m as { profanitySeverity?: number }).profanitySeverity;
    const severity: BiasSeverity = isProfanity
      ? sureness === 2 ? 'high' : sureness === 1 ? 'medium' : 'low'
      : condescension ? 'low' : HIGH_EQUALITY_RULES.has(m.ruleId) ? 'high' : 'medium';
    raw.push({
      rule: m.ruleId,
      source: isProfanity ? 'profanity' : 'equality',
      phrase: joined.slice(start, end),
      start: start - base,
      end: end - base,
      turn_index: turnIndex,
      message: m.reason,
      severity,
      suggestions: Array.isArray(m.expected) ? m.expected.filter((e): e is string => typeof e === 'string') : [],
    });
  }
  // One finding per span, the most severe; ordered by position.
  const bySpan = new Map<string, BiasFinding>();
  for (const f of raw) {
    const key = `${f.turn_index}:${f.start}:${f.end}`;
    const prev = bySpan.get(key);
    if (prev === undefined || SEVERITY_WEIGHT[f.severity] > SEVERITY_WEIGHT[prev.severity]) {
      bySpan.set(key, prev && prev.suggestions.length > 0 && f.suggestions.length === 0 ? { ...f, suggestions: prev.suggestions } : f);
    }
  }
  const findings = [...bySpan.values()].sort((a, b) => a.turn_index - b.turn_index || a.start - b.start);
  const words = turns.reduce((n, t) => n + countWords(t.text), 0);
  const by_speaker: BiasResult['by_speaker'] = {};
  const speakers = [...new Set(turns.map((t) => t.speaker))];
  for (const sp of speakers) {
    const f = findings.filter((x) => turns[x.turn_index]?.speaker === sp);
    const w = turns.filter((t) => t.speaker === sp).reduce((n, t) => n + countWords(t.text), 0);
    by_speaker[sp] = { score: biasScore(f, w), findings: f.length };
  }
  return { score: biasScore(findings, words), findings, by_speaker, word_count: words };
}

/** Bias findings in one free text (offsets relative to it, turn_index 0). */
export function detectBiasInText(text: string): BiasResult {
  return detectBias([{ speaker: 'unknown', text }]);
}
