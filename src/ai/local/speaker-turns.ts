/**
 * Standardization: parsed records → canonical conversations `{conversation_id, turns}`.
 *
 * Accepted record shapes (first match wins):
 * - a string: a transcript with speaker labels ("Therapist: …", "C: …");
 * - `{turns: [{speaker|role|from, text|content|utterance|message}]}`;
 * - `{messages: [{role, content}]}` (chat format: `user` → client, `assistant` → therapist);
 * - `{transcript|text|content: string}`: a labelled transcript;
 * - a turn row `{speaker|role, text|…, conversation_id?}` (CSV / JSONL one row per turn): rows are
 *   grouped by `conversation_id` (or `session_id`) in order of first appearance.
 * The conversation id comes from `conversation_id`, `session_id` or `id`, else `conversation-<n>`.
 * Unknown speaker labels become `participant_<n>` — never the raw label, which is often a name.
 */
import { InputError, type Conversation, type ParsedInput, type Speaker, type Turn } from './conversation-types.ts';
import { isObject } from './input-parser.ts';

const ROLE_ALIASES: Record<string, Speaker> = {
  therapist: 'therapist', t: 'therapist', counselor: 'therapist', counsellor: 'therapist', clinician: 'therapist',
  psychologist: 'therapist', psychiatrist: 'therapist', doctor: 'therapist', dr: 'therapist', provider: 'therapist',
  coach: 'therapist', interviewer: 'therapist', assistant: 'therapist', th: 'therapist', therapist_ai: 'therapist',
  client: 'client', c: 'client', patient: 'client', p: 'client', pt: 'client', user: 'client', cl: 'client',
  member: 'client', consumer: 'client', interviewee: 'client', service_user: 'client',
  mother: 'mother', mom: 'mother', father: 'father', dad: 'father', parent: 'parent', partner: 'partner',
  spouse: 'spouse', husband: 'spouse', wife: 'spouse', caregiver: 'caregiver', guardian: 'guardian',
  family: 'family', family_member: 'family', sibling: 'sibling', child: 'child', interpreter: 'interpreter',
  supervisor: 'supervisor', system: 'system',
};

/** Map a speaker label to its canonical role; `undefined` when the label is not a known role. */
export function canonicalRole(label: string): Speaker | undefined {
  const key = label.trim().toLowerCase().replace(/[.\s-]+/g, '_').replace(/^_+|_+$/g, '');
  return ROLE_ALIASES[key];
}

// "Therapist:", "T:", "Dr.:", "Client -", "[Counselor]:", "**Patient**:" …; at most 3 words.
const LABEL_RE = /^\s*[[(*]*\s*([A-Za-z][A-Za-z.'_-]*(?:\s[A-Za-z][A-Za-z.'_-]*){0,2})\s*[\])*]*\s*(:|\s[-–—]\s)\s*/;

class SpeakerNamer {
  private readonly others = new Map<string, string>();
  name(label: string): Speaker {
    const role = canonicalRole(label);
    if (role !== undefined) return role;
    const key = label.trim().toLowerCase();
    let named = this.others.get(key);
    if (named === undefined) {
      named = `participant_${this.others.size + 1}`;
      this.others.set(key, named);
    }
    return named;
  }
}

/**
 * Split a labelled transcript into turns. Lines without a label continue the previous turn.
 * Unknown labels count as speakers only if the transcript also uses a known role label, so a
 * line like "Note: …" in unlabelled prose stays text. Without any label → one `unknown` turn.
 */
export function parseSpeakerTurns(text: string, namer: SpeakerNamer = new SpeakerNamer()): Turn[] {
  const lines = text.split(/\r?\n/);
  const labelled = lines.map((line) => {
    const m = LABEL_RE.exec(line);
    if (m?.[1] === undefined) return undefined;
    const known = canonicalRole(m[1]) !== undefined;
    // A dash only separates a known role ("T - …"); "Yeah - I know" is text.
    if (!known && m[2] !== ':') return undefined;
    return { label: m[1], rest: line.slice(m[0].length), known };
  });
  const anyKnown = labelled.some((l) => l?.known === true);
  const turns: Turn[] = [];
  let current: Turn | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const lab = labelled[i];
    if (lab !== undefined && (lab.known || anyKnown)) {
      current = { speaker: namer.name(lab.label), text: lab.rest.trim() };
      turns.push(current);
    } else if (line.trim() !== '') {
      if (current === undefined) {
        current = { speaker: 'unknown', text: line.trim() };
        turns.push(current);
      } else {
        current.text = current.text === '' ? line.trim() : `${current.text} ${line.trim()}`;
      }
    }
  }
  return turns.filter((t) => t.text !== '');
}

const TEXT_KEYS = ['text', 'content', 'utterance', 'message', 'body'] as const;
const SPEAKER_KEYS = ['speaker', 'role', 'from', 'author', 'speaker_role'] as const;
const TRANSCRIPT_KEYS = ['transcript', 'text', 'content', 'session_text'] as const;

function firstString(obj: Record<string, unknown>, keys: readonly string[]): string | undefined {
  for (const k of keys) {
    const v = obj[k];
    if (typeof v === 'string') return v;
  }
  return undefined;
}

function idOf(obj: Record<string, unknown>): string | undefined {
  for (const k of ['conversation_id', 'session_id', 'id']) {
    const v = obj[k];
    if (typeof v === 'string' && v.trim() !== '') return v.trim();
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  }
  return undefined;
}

function isTurnRow(obj: Record<string, unknown>): boolean {
  return firstString(obj, SPEAKER_KEYS) !== undefined && firstString(obj, TEXT_KEYS) !== undefined && !('turns' in obj) && !('messages' in obj);
}

export interface StandardizeResult {
  conversations: Conversation[];
  /** Fraction of turns whose speaker is a recognised role (therapist, client, family …). */
  speaker_recognition_rate: number;
  warnings: string[];
}

/** Convert every parsed record to a canonical conversation; throws InputError naming the record. */
export function standardizeRecords(input: ParsedInput): StandardizeResult {
  const conversations: Conversation[] = [];
  const grouped = new Map<string, Conversation>();
  // One namer per conversation of one-row-per-turn input: rows by Alice, Bob, Alice are
  // participant_1, participant_2, participant_1 (a namer per row named each participant_1).
  const rowNamers = new Map<string, SpeakerNamer>();
  const warnings: string[] = [];
  for (const record of input.records) {
    const where = { record_index: record.index, line: record.line };
    const at = `record index ${record.index} (line ${record.line})`;
    const data = record.data;
    const source = { record_index: record.index, line: record.line, format: input.format };
    if (typeof data === 'string') {
      const turns = parseSpeakerTurns(data);
      if (turns.length === 0) throw new InputError(`${at} holds no text`, where);
      conversations.push({ conversation_id: `conversation-${conversations.length + 1}`, turns, source });
      continue;
    }
    if (!isObject(data)) throw new InputError(`${at} must be an object or a transcript string`, where);
    if (isTurnRow(data)) {
      const id = idOf(data) ?? 'conversation-1';
      let rowNamer = rowNamers.get(id);
      if (rowNamer === undefined) rowNamers.set(id, (rowNamer = new SpeakerNamer()));
      const speaker = rowNamer.name(firstString(data, SPEAKER_KEYS) ?? '');
      const text = (firstString(data, TEXT_KEYS) ?? '').trim();
      let conv = grouped.get(id);
      if (conv === undefined) {
        conv = { conversation_id: id, turns: [], source };
        grouped.set(id, conv);
        conversations.push(conv);
      }
      if (text === '') warnings.push(`${at}: empty turn skipped`);
      else conv.turns.push({ speaker, text });
      continue;
    }
    const id = idOf(data) ?? `conversation-${conversations.length + 1}`;
    const namer = new SpeakerNamer();
    let turns: Turn[];
    if (Array.isArray(data.turns) || Array.isArray(data.messages)) {
      const list = (Array.isArray(data.turns) ? data.turns : data.messages) as unknown[];
      const field = Array.isArray(data.turns) ? 'turns' : 'messages';
      turns = [];
      list.forEach((t, ti) => {
        if (!isObject(t)) throw new InputError(`${at}: ${field}[${ti}] must be an object`, where);
        const text = firstString(t, TEXT_KEYS);
        if (text === undefined) throw new InputError(`${at}: ${field}[${ti}] has no text (expected one of ${TEXT_KEYS.join(', ')})`, where);
        const label = firstString(t, SPEAKER_KEYS);
        if (label === undefined) throw new InputError(`${at}: ${field}[${ti}] has no speaker (expected one of ${SPEAKER_KEYS.join(', ')})`, where);
        if (text.trim() === '') warnings.push(`${at}: ${field}[${ti}] is empty and was skipped`);
        else turns.push({ speaker: namer.name(label), text: text.trim() });
      });
    } else {
      const transcript = firstString(data, TRANSCRIPT_KEYS);
      if (transcript === undefined) {
        throw new InputError(`${at} has neither turns, messages, a speaker+text row nor a transcript field (${TRANSCRIPT_KEYS.join(', ')})`, where);
      }
      turns = parseSpeakerTurns(transcript, namer);
    }
    if (turns.length === 0) throw new InputError(`${at} holds no non-empty turns`, where);
    conversations.push({ conversation_id: id, turns, source });
  }
  const all = conversations.flatMap((c) => c.turns);
  const recognised = all.filter((t) => t.speaker !== 'unknown' && !t.speaker.startsWith('participant_')).length;
  for (const c of conversations) {
    if (c.turns.length === 0) {
      // Named by where it starts, never by its id: an input's conversation or session id may be PHI.
      throw new InputError(`record index ${c.source?.record_index ?? '?'} (line ${c.source?.line ?? '?'}) has no non-empty turns`, {
        ...(c.source ? { record_index: c.source.record_index, line: c.source.line } : {}),
      });
    }
  }
  return {
    conversations,
    speaker_recognition_rate: all.length === 0 ? 0 : Math.round((recognised / all.length) * 10_000) / 10_000,
    warnings,
  };
}
