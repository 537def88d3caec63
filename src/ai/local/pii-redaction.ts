/**
 * PII/PHI detection and redaction (HIPAA Safe Harbor identifiers that text can carry).
 *
 * Detectors, in priority order when spans overlap: EMAIL, SSN, PHONE, DOB, DATE, ADDRESS, NAME.
 * - EMAIL, SSN (ddd-dd-dddd / ddd dd dddd, or 9 digits after "SSN"/"social security"), PHONE
 *   (NANP with separators or +country code), ADDRESS (house number, with a letter as in "221B" +
 *   street name + street suffix, optional directional as in "Avenue NW", optional unit and
 *   "City, ST 12345"): regular expressions.
 * - DOB: a calendar date within 40 characters after "DOB", "date of birth", "born", "birthday";
 *   DATE: any other full calendar date (Safe Harbor removes all dates tied to a person).
 * - NAME: compromise's #Person tagger on sentences that could hold a name (a capitalised word other
 *   than "I" mid-sentence, or a sentence-initial word the lexicon knows as a name), honorific +
 *   surname ("Dr. Patel"), and then every other occurrence of a name already found anywhere
 *   in the conversation (so "Sarah" is redacted even where the tagger lacks context).
 * Findings never carry the matched text. Redaction replaces each span with `[TYPE]`.
 */
import nlp from 'compromise';
import type { Turn } from './conversation-types.ts';

export type PiiType = 'EMAIL' | 'SSN' | 'PHONE' | 'DOB' | 'DATE' | 'ADDRESS' | 'NAME';

export interface PiiFinding {
  type: PiiType;
  start: number;
  end: number;
  turn_index: number;
}

export interface PiiResult {
  findings: PiiFinding[];
  counts: Record<PiiType, number>;
  redacted_turns: Turn[];
}

const PRIORITY: Record<PiiType, number> = { EMAIL: 0, SSN: 1, PHONE: 2, DOB: 3, DATE: 4, ADDRESS: 5, NAME: 6 };
export const PII_TYPES = Object.keys(PRIORITY) as PiiType[];

const EMAIL_RE = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
const SSN_RE = /\b(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}\b/g;
const SSN_CONTEXT_RE = /\b(?:ssn|social security(?: number| no\.?| #)?)\s*(?:is|:|#|was)?\s*(\d{9})\b/gi;
const PHONE_RE = /(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\w)|(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,4}[\s.-]?\d{3,4}(?!\w)|(?<=\b(?:phone|cell|mobile|call me at|number is|text me at)\s{1,3})\d{10}\b/gi;
const MONTHS = 'jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?';
const DATE_SRC = `\\b(?:\\d{1,2}[/.-]\\d{1,2}[/.-](?:\\d{4}|\\d{2})|\\d{4}-\\d{2}-\\d{2}|(?:${MONTHS})\\.?\\s+\\d{1,2}(?:st|nd|rd|th)?,?\\s+\\d{4}|\\d{1,2}(?:st|nd|rd|th)?\\s+(?:of\\s+)?(?:${MONTHS})\\.?,?\\s+\\d{4})\\b`;
const DATE_RE = new RegExp(DATE_SRC, 'gi');
const DOB_CONTEXT_RE = /\b(?:dob|d\.o\.b\.?|date of birth|birth ?date|born(?: on)?|birthday(?: is)?)\b/gi;
const STREET_SUFFIX = 'street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|way|terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl';
const ADDRESS_RE = new RegExp(
  `\\b\\d{1,6}[A-Za-z]?\\s+(?:[NSEW]\\.?\\s+)?(?:[A-Z0-9][A-Za-z0-9'-]*\\s+){1,4}(?:${STREET_SUFFIX})\\b\\.?` +
    // A post-directional ("Avenue NW"), so the city, state and ZIP after it are part of the address.
    `(?:\\s+(?:[NS][EW]?|[EW])\\b\\.?)?` +
    `(?:,?\\s+(?:apt|apartment|unit|suite|ste|#)\\.?\\s*#?[A-Za-z0-9-]+)?` +
    `(?:,\\s*[A-Z][A-Za-z]+(?:\\s[A-Z][A-Za-z]+){0,2},?\\s+[A-Z]{2}(?:\\s+\\d{5}(?:-\\d{4})?)?)?`,
  'gi',
);
const HONORIFIC_NAME_RE = /\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor)\.?\s+[A-Z][a-zA-Z'-]+(?:\s+[A-Z][a-zA-Z'-]+)?/g;
const NAME_INTRO_RE = /\b(?:my name is|name's|i am called|call me)\s+([A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+)?)/g;

// Capitalised words that are never names in this domain (roles, days, pronoun-ish, interjections).
const NOT_NAMES = new Set([
  'i', "i'm", "i've", "i'd", "i'll", 'therapist', 'client', 'patient', 'counselor', 'doctor', 'god', 'ok', 'okay',
  'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday', 'mom', 'dad', 'mum',
]);
const PERSON_LEX_TAGS = new Set(['FirstName', 'MaleName', 'FemaleName', 'LastName', 'Honorific', 'Person']);
const lexicon = (nlp.model() as { one: { lexicon: Record<string, string | string[]> } }).one.lexicon;

function lexTags(word: string): string[] {
  const t = lexicon[word.toLowerCase()];
  return t === undefined ? [] : Array.isArray(t) ? t : [t];
}

interface Span {
  type: PiiType;
  start: number;
  end: number;
}

function matchAll(re: RegExp, text: string, type: PiiType, group = 0): Span[] {
  const out: Span[] = [];
  re.lastIndex = 0;
  for (const m of text.matchAll(re)) {
    const g = m[group];
    if (g === undefined || m.index === undefined) continue;
    const start = group === 0 ? m.index : m.index + m[0].indexOf(g);
    out.push({ type, start, end: start + g.length });
  }
  return out;
}

/** Regex detectors only (everything except tagger-found names); cheap and deterministic. */
export function detectPatternPii(text: string): Span[] {
  const spans: Span[] = [
    ...matchAll(EMAIL_RE, text, 'EMAIL'),
    ...matchAll(SSN_RE, text, 'SSN'),
    ...matchAll(SSN_CONTEXT_RE, text, 'SSN', 1),
    ...matchAll(PHONE_RE, text, 'PHONE'),
    ...matchAll(ADDRESS_RE, text, 'ADDRESS').filter((s) => /[a-z]/i.test(text.slice(s.start, s.end).replace(/^\d+\s+/, ''))),
  ];
  const birthContexts = matchAll(DOB_CONTEXT_RE, text, 'DOB');
  for (const d of matchAll(DATE_RE, text, 'DATE')) {
    const isDob = birthContexts.some((c) => c.end <= d.start && d.start - c.end <= 40);
    spans.push({ ...d, type: isDob ? 'DOB' : 'DATE' });
  }
  spans.push(...matchAll(HONORIFIC_NAME_RE, text, 'NAME'), ...matchAll(NAME_INTRO_RE, text, 'NAME', 1));
  return spans;
}

const SENTENCE_RE = /[^.!?\n]+(?:[.!?]+|$)/g;
const WORD_RE = /[A-Za-z][A-Za-z'-]*/g;

/** Sentences worth running the (comparatively slow) tagger on. */
function nameCandidateSentences(text: string): { start: number; text: string }[] {
  const out: { start: number; text: string }[] = [];
  for (const m of text.matchAll(SENTENCE_RE)) {
    if (m.index === undefined) continue;
    let first = true;
    let candidate = false;
    for (const w of m[0].matchAll(WORD_RE)) {
      const word = w[0];
      const capital = word[0] !== undefined && word[0] >= 'A' && word[0] <= 'Z';
      if (capital && !NOT_NAMES.has(word.toLowerCase())) {
        const tags = lexTags(word);
        if (!first || tags.some((t) => PERSON_LEX_TAGS.has(t))) {
          candidate = true;
          break;
        }
      }
      first = false;
    }
    if (candidate) out.push({ start: m.index, text: m[0] });
  }
  return out;
}

function taggerNames(text: string): Span[] {
  const spans: Span[] = [];
  for (const sentence of nameCandidateSentences(text)) {
    const people = nlp(sentence.text).match('#Person+').json({ offset: true }) as { offset: { start: number; length: number }; text: string }[];
    for (const p of people) {
      let start = sentence.start + p.offset.start;
      let end = start + p.offset.length;
      // compromise offsets can include trailing punctuation; trim to the name itself.
      while (end > start && !/[A-Za-z]/.test(text[end - 1] ?? '')) end--;
      while (start < end && !/[A-Za-z]/.test(text[start] ?? '')) start++;
      // …and drop lower-case words the tagger folded in ("sister Sarah" → "Sarah").
      for (let m = /^[a-z][A-Za-z'-]*\s+/.exec(text.slice(start, end)); m; m = /^[a-z][A-Za-z'-]*\s+/.exec(text.slice(start, end))) start += m[0].length;
      const value = text.slice(start, end);
      if (!/[A-Z]/.test(value) || NOT_NAMES.has(value.toLowerCase())) continue;
      spans.push({ type: 'NAME', start, end });
    }
  }
  return spans;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Keep the highest-priority span where spans overlap (ties: the longer, then the earlier). */
function resolveOverlaps(spans: Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => PRIORITY[a.type] - PRIORITY[b.type] || (b.end - b.start) - (a.end - a.start) || a.start - b.start);
  const kept: Span[] = [];
  for (const s of sorted) {
    if (s.end <= s.start) continue;
    if (kept.some((k) => s.start < k.end && k.start < s.end)) continue;
    kept.push(s);
  }
  return kept.sort((a, b) => a.start - b.start);
}

export function redactText(text: string, spans: readonly { type: PiiType; start: number; end: number }[]): string {
  let out = '';
  let pos = 0;
  for (const s of [...spans].sort((a, b) => a.start - b.start)) {
    if (s.start < pos) continue;
    out += text.slice(pos, s.start) + `[${s.type}]`;
    pos = s.end;
  }
  return out + text.slice(pos);
}

/** Detect and redact PII across the turns of one conversation. */
export function detectPii(turns: readonly Turn[]): PiiResult {
  const perTurn = turns.map((t) => [...detectPatternPii(t.text), ...taggerNames(t.text)]);
  // Second pass: any name found anywhere is redacted wherever it appears (whole word, same case).
  const nameWords = new Set<string>();
  turns.forEach((t, i) => {
    for (const s of perTurn[i] ?? []) {
      if (s.type !== 'NAME') continue;
      for (const w of t.text.slice(s.start, s.end).matchAll(WORD_RE)) {
        const word = w[0];
        if (word.length >= 3 && /^[A-Z]/.test(word) && !/^(Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor)$/.test(word) && !NOT_NAMES.has(word.toLowerCase())) nameWords.add(word);
      }
    }
  });
  const nameRe = nameWords.size === 0 ? undefined : new RegExp(`\\b(?:${[...nameWords].map(escapeRe).join('|')})\\b`, 'g');
  const findings: PiiFinding[] = [];
  const redacted: Turn[] = [];
  turns.forEach((t, turnIndex) => {
    const spans = perTurn[turnIndex] ?? [];
    if (nameRe) spans.push(...matchAll(nameRe, t.text, 'NAME'));
    const kept = resolveOverlaps(spans);
    for (const s of kept) findings.push({ type: s.type, start: s.start, end: s.end, turn_index: turnIndex });
    redacted.push({ speaker: t.speaker, text: redactText(t.text, kept) });
  });
  const counts = Object.fromEntries(PII_TYPES.map((k) => [k, 0])) as Record<PiiType, number>;
  for (const f of findings) counts[f.type]++;
  return { findings, counts, redacted_turns: redacted };
}

/** Detect and redact PII in one free text (offsets relative to that text, turn_index 0). */
export function redactPii(text: string): { findings: PiiFinding[]; counts: Record<PiiType, number>; redacted_text: string } {
  const r = detectPii([{ speaker: 'unknown', text }]);
  return { findings: r.findings, counts: r.counts, redacted_text: r.redacted_turns[0]?.text ?? '' };
}

/**
 * Identifiers still present in already-redacted turns, by the pattern detectors (names are
 * excluded: the tagger would need the unredacted context). Used by the `pii_remaining` gate.
 */
export function countRemainingPii(turns: readonly Turn[]): number {
  let n = 0;
  for (const t of turns) n += resolveOverlaps(detectPatternPii(t.text).filter((s) => s.type !== 'NAME' && s.type !== 'DATE')).length;
  return n;
}
