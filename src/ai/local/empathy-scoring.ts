/**
 * Empathy of the therapist's side of a conversation, from linguistic features of therapist turns
 * (after the EPITOME framework's split — Sharma et al., EMNLP 2020 — into understanding,
 * emotional reaction and supportive exploration, here named as the spec asks):
 *
 * - cognitive — understanding the client's perspective: reflections ("it sounds like", "you
 *   feel", "what I'm hearing", "so you're saying", "you mentioned") and open questions
 *   (a question starting with what/how/tell me/can you say more/help me understand …);
 * - emotional — affective resonance and validation: "that makes sense", "understandable",
 *   "that must be", "I can imagine", "no wonder", "I hear you", "it's okay to feel", and naming
 *   the client's feeling ("you … sad/anxious/…" via the emotion lexicon);
 * - compassionate — supportive, collaborative care: "I'm here", "you're not alone", "we can",
 *   "let's", "together", "thank you for sharing", "proud of you", "take care of yourself" …
 *
 * For each component: coverage c = therapist turns with ≥ 1 feature / therapist turns, and
 *   component = (1 − exp(−3c)) × (1 − d)
 * where d = fraction of therapist turns with a dismissive feature ("calm down", "get over it",
 * "you're overreacting", "not a big deal", "that's ridiculous", "whatever", "I don't have time" …).
 * Tone (VADER) is deliberately not used: reflecting a painful feeling ("that must be
 * frightening") is empathic and scores negative.
 * overall = mean of the three. `confidence` = min(1, therapist turns / 10): scores from a handful
 * of turns are weak evidence. No therapist turns → all scores 0, confidence 0.
 */
import type { Turn } from './conversation-types.ts';
import { round } from './conversation-types.ts';
import { emotionsOf } from './emotion-lexicon.ts';

export interface EmpathyScore {
  overall: number;
  cognitive: number;
  emotional: number;
  compassionate: number;
  confidence: number;
  therapist_turns: number;
  features: { reflections: number; open_questions: number; validations: number; feeling_labels: number; supportive: number; dismissive: number };
}

const REFLECTION_RE = /\b(?:it sounds like|sounds like|it seems (?:like )?|seems like you|what i(?:'m| am) hearing|i hear that|so you(?:'re| are)? (?:saying|feeling|telling)|you(?:'re| are) feeling|you feel|you felt|you(?:'ve| have) been feeling|you mentioned|you said|if i understand|in other words|correct me if|it's like you|you're telling me|you're worried|you're afraid)\b/i;
const OPEN_QUESTION_RE = /(?:^|[.!?]\s+)(?:what|how|tell me|could you (?:tell|say|describe|share)|can you (?:tell|say|describe|share)|would you (?:tell|say|describe|share)|help me understand|in what way|when you|where do you)\b[^?]*\?/i;
const VALIDATION_RE = /\b(?:that makes sense|makes (?:a lot of |complete |total )?sense|understandable|of course you|no wonder|that must (?:be|have been)|must be (?:hard|difficult|painful|exhausting|frustrating|scary|overwhelming)|that sounds (?:hard|difficult|painful|exhausting|frustrating|scary|overwhelming|really)|i can imagine|i can see (?:why|how)|i hear you|it(?:'s| is) (?:okay|ok|normal|natural|understandable) to (?:feel|be)|your feelings are valid|that(?:'s| is) valid|anyone would|i(?:'m| am) (?:so )?sorry (?:you|that|to hear))\b/i;
const SUPPORTIVE_RE = /\b(?:i(?:'m| am) here|you(?:'re| are) not alone|we can|we could|let(?:'s| us)|together|thank you for (?:sharing|telling|trusting|being)|i(?:'m| am) glad you|proud of you|that took (?:courage|strength)|you(?:'ve| have) (?:done|shown|made)|take care of yourself|what would (?:help|feel|be helpful)|how can i (?:help|support)|i want to (?:help|support|understand)|support you|you deserve|be gentle with yourself|small steps?|one step at a time|strength|brave|courage)\b/i;
const DISMISSIVE_RE = /\b(?:calm down|get over (?:it|yourself)|just get over|you(?:'re| are) overreacting|overreacting|not (?:a|that) big (?:of a )?deal|that(?:'s| is) (?:ridiculous|stupid|silly|nonsense|dramatic)|whatever|i don'?t have time|not my problem|stop (?:complaining|whining|crying)|man up|toughen up|everyone (?:feels|has|goes through) (?:that|this)|it could be worse|you should just|just (?:relax|cheer up|stop|snap out)|snap out of it|you always|you never|i don'?t care|deal with it|so what|too sensitive|it(?:'s| is) all in your head)\b/i;
const YOU_FEELING_RE = /\byou(?:'re| are| feel| felt| seem| sound| must feel| might feel)?\s+(?:\w+\s+){0,2}?(\w+)/gi;

function namesClientFeeling(text: string): boolean {
  for (const m of text.matchAll(YOU_FEELING_RE)) {
    const word = m[1];
    if (word !== undefined && emotionsOf(word).length > 0) return true;
  }
  return false;
}

const saturate = (coverage: number): number => 1 - Math.exp(-3 * coverage);

export function scoreEmpathy(turns: readonly Turn[]): EmpathyScore {
  const therapist = turns.filter((t) => t.speaker === 'therapist');
  const n = therapist.length;
  const features = { reflections: 0, open_questions: 0, validations: 0, feeling_labels: 0, supportive: 0, dismissive: 0 };
  if (n === 0) {
    return { overall: 0, cognitive: 0, emotional: 0, compassionate: 0, confidence: 0, therapist_turns: 0, features };
  }
  let cog = 0;
  let emo = 0;
  let comp = 0;
  let dis = 0;
  for (const t of therapist) {
    const reflection = REFLECTION_RE.test(t.text);
    const question = OPEN_QUESTION_RE.test(t.text);
    const validation = VALIDATION_RE.test(t.text);
    const feeling = namesClientFeeling(t.text);
    const supportive = SUPPORTIVE_RE.test(t.text);
    const dismissive = DISMISSIVE_RE.test(t.text);
    if (reflection) features.reflections++;
    if (question) features.open_questions++;
    if (validation) features.validations++;
    if (feeling) features.feeling_labels++;
    if (supportive) features.supportive++;
    if (dismissive) features.dismissive++;
    if (reflection || question) cog++;
    if (validation || feeling) emo++;
    if (supportive) comp++;
    if (dismissive) dis++;
  }
  const penalty = 1 - dis / n;
  const cognitive = saturate(cog / n) * penalty;
  const emotional = saturate(emo / n) * penalty;
  const compassionate = saturate(comp / n) * penalty;
  return {
    overall: round((cognitive + emotional + compassionate) / 3),
    cognitive: round(cognitive),
    emotional: round(emotional),
    compassionate: round(compassionate),
    confidence: round(Math.min(1, n / 10)),
    therapist_turns: n,
    features,
  };
}
