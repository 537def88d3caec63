/**
 * Rule-based therapeutic recommendations for the clinician, from the analysis of a session.
 * Each rule is listed below with its trigger; output order is priority (critical → low), then
 * rule order, so the same analysis always yields the same list.
 *
 *  R1 safety_risk (critical): a client turn contains risk language (suicide, self-harm,
 *     "kill myself", "end it all", "don't want to live", "better off without me" …).
 *  R2 declining_affect (high): the client's sentiment trend is `declining`.
 *  R3 persistent_negative_affect (high): client mean compound ≤ −0.3 (over ≥ 3 client turns).
 *  R4 improving_affect (low): the client's trend is `improving` — reinforce what worked.
 *  R5 emotion_<dominant> (medium): the client's dominant emotion is fear / sadness / anger /
 *     disgust, with ≥ 3 emotion hits — a matching evidence-based technique.
 *  R6 low_empathy (high if overall < 0.25, else medium): overall empathy < 0.45, naming the
 *     weakest component; R7 per component < 0.3 (cognitive → reflections and open questions,
 *     emotional → validation, compassionate → collaborative support).
 *  R8 dismissive_language (high): ≥ 1 dismissive therapist turn.
 *  R9 inconsiderate_language (medium, high if any high-severity): bias findings in therapist
 *     turns, with the flagged phrases' rules and suggested alternatives.
 *  R10 strong_alliance (low): empathy ≥ 0.7 and no therapist bias findings.
 */
import type { Turn } from './conversation-types.ts';
import type { BiasFinding } from './bias-detection.ts';
import type { EmpathyScore } from './empathy-scoring.ts';
import type { EmotionSummary } from './emotion-analysis.ts';
import type { SentimentTrend } from './sentiment-analysis.ts';

export type RecommendationPriority = 'critical' | 'high' | 'medium' | 'low';

export interface Recommendation {
  id: string;
  category: 'safety' | 'affect' | 'emotion' | 'empathy' | 'language' | 'alliance';
  priority: RecommendationPriority;
  title: string;
  rationale: string;
  evidence: Record<string, unknown>;
}

export interface RecommendationInput {
  turns: readonly Turn[];
  client_trend?: SentimentTrend | undefined;
  client_emotions?: EmotionSummary | undefined;
  empathy?: EmpathyScore | undefined;
  bias_findings?: readonly BiasFinding[] | undefined;
}

const RISK_RE = /\b(?:suicid\w*|kill(?:ing)? myself|end(?:ing)? (?:it all|my life)|take my (?:own )?life|self[- ]harm\w*|hurt(?:ing)? myself|cut(?:ting)? myself|don'?t want to (?:live|be alive|be here|wake up)|better off (?:dead|without me)|no reason to live|want to die|wish i (?:was|were) dead|overdos\w*)\b/i;

const EMOTION_TECHNIQUES: Partial<Record<string, { title: string; rationale: string }>> = {
  fear: {
    title: 'Address anxiety with grounding and cognitive restructuring',
    rationale: 'Fear/anxiety language dominates the client\'s turns; consider grounding (5-4-3-2-1), paced breathing, and examining catastrophic predictions (CBT), or graded exposure for avoidance.',
  },
  sadness: {
    title: 'Consider behavioural activation and a depression screen',
    rationale: 'Sadness language dominates the client\'s turns; consider behavioural activation (scheduling valued, pleasant activities) and a standardised screen such as the PHQ-9.',
  },
  anger: {
    title: 'Work on emotion regulation for anger',
    rationale: 'Anger language dominates the client\'s turns; consider identifying triggers and early body cues, time-outs, and DBT emotion-regulation or assertive-communication skills.',
  },
  disgust: {
    title: 'Explore shame and self-criticism',
    rationale: 'Disgust/shame language dominates the client\'s turns; consider compassion-focused work on self-criticism and exploring sources of shame.',
  },
};

const COMPONENT_ADVICE = {
  cognitive: 'Use more reflections ("it sounds like…", "you feel…") and open questions ("what was that like for you?") to show understanding of the client\'s perspective.',
  emotional: 'Validate and name the client\'s feelings ("that makes sense", "that must be painful") before moving to problem solving.',
  compassionate: 'Offer collaborative support ("we can work on this together", "what would help right now?") and acknowledge the client\'s effort.',
} as const;

const ORDER: Record<RecommendationPriority, number> = { critical: 0, high: 1, medium: 2, low: 3 };

export function recommend(input: RecommendationInput): Recommendation[] {
  const recs: Recommendation[] = [];
  const clientRisk = input.turns.flatMap((t, i) => (t.speaker === 'client' && RISK_RE.test(t.text) ? [i] : []));
  if (clientRisk.length > 0) {
    recs.push({
      id: 'safety_risk', category: 'safety', priority: 'critical',
      title: 'Conduct a suicide/self-harm risk assessment now',
      rationale: 'The client used risk language. Assess ideation, plan, means and protective factors (e.g. C-SSRS), agree a safety plan, and follow your crisis protocol.',
      evidence: { turn_indexes: clientRisk },
    });
  }
  const trend = input.client_trend;
  if (trend && trend.turns >= 2 && trend.direction === 'declining') {
    recs.push({
      id: 'declining_affect', category: 'affect', priority: 'high',
      title: 'Explore what shifted as the session went on',
      rationale: 'The client\'s sentiment declined over the session; check in about what came up, and leave time to contain difficult material before ending.',
      evidence: { first_half_mean: trend.first_half_mean, second_half_mean: trend.second_half_mean, slope: trend.slope },
    });
  }
  if (trend && trend.turns >= 3 && trend.mean <= -0.3) {
    recs.push({
      id: 'persistent_negative_affect', category: 'affect', priority: 'high',
      title: 'Persistent negative affect: review mood and functioning',
      rationale: 'The client\'s turns are negative on average; review mood, sleep, appetite and functioning, and consider a standardised measure (PHQ-9 / GAD-7).',
      evidence: { client_mean_compound: trend.mean },
    });
  }
  const emo = input.client_emotions;
  if (emo?.dominant && emo.hits >= 3) {
    const technique = EMOTION_TECHNIQUES[emo.dominant];
    if (technique) {
      recs.push({ id: `emotion_${emo.dominant}`, category: 'emotion', priority: 'medium', ...technique, evidence: { dominant: emo.dominant, scores: emo.scores, hits: emo.hits } });
    }
  }
  const emp = input.empathy;
  if (emp && emp.therapist_turns > 0) {
    const components = (['cognitive', 'emotional', 'compassionate'] as const).map((k) => [k, emp[k]] as const);
    const weakest = [...components].sort((a, b) => a[1] - b[1])[0];
    if (emp.overall < 0.45 && weakest) {
      recs.push({
        id: 'low_empathy', category: 'empathy', priority: emp.overall < 0.25 ? 'high' : 'medium',
        title: 'Strengthen empathic responding',
        rationale: `Overall empathy is low; the weakest component is ${weakest[0]}. ${COMPONENT_ADVICE[weakest[0]]}`,
        evidence: { overall: emp.overall, cognitive: emp.cognitive, emotional: emp.emotional, compassionate: emp.compassionate },
      });
    }
    for (const [k, v] of components) {
      if (v < 0.3 && !(emp.overall < 0.45 && weakest?.[0] === k)) {
        recs.push({ id: `low_${k}_empathy`, category: 'empathy', priority: 'medium', title: `Low ${k} empathy`, rationale: COMPONENT_ADVICE[k], evidence: { [k]: v } });
      }
    }
    if (emp.features.dismissive > 0) {
      recs.push({
        id: 'dismissive_language', category: 'language', priority: 'high',
        title: 'Avoid dismissive or minimising responses',
        rationale: 'Some therapist turns minimise or dismiss the client\'s experience (e.g. "calm down", "not a big deal"); replace them with reflection and validation.',
        evidence: { dismissive_turns: emp.features.dismissive },
      });
    }
  }
  const therapistBias = (input.bias_findings ?? []).filter((f) => input.turns[f.turn_index]?.speaker === 'therapist');
  if (therapistBias.length > 0) {
    recs.push({
      id: 'inconsiderate_language', category: 'language', priority: therapistBias.some((f) => f.severity === 'high') ? 'high' : 'medium',
      title: 'Review potentially biased or inconsiderate wording',
      rationale: 'The therapist used wording flagged as insensitive or profane; prefer neutral, person-first language.',
      evidence: { findings: therapistBias.map((f) => ({ turn_index: f.turn_index, rule: f.rule, phrase: f.phrase, suggestions: f.suggestions.slice(0, 3) })) },
    });
  }
  if (trend && trend.turns >= 2 && trend.direction === 'improving') {
    recs.push({
      id: 'improving_affect', category: 'affect', priority: 'low',
      title: 'Reinforce what helped in this session',
      rationale: 'The client\'s sentiment improved over the session; name the shift with the client and consider building the helpful elements into homework.',
      evidence: { first_half_mean: trend.first_half_mean, second_half_mean: trend.second_half_mean },
    });
  }
  if (emp && emp.overall >= 0.7 && therapistBias.length === 0) {
    recs.push({
      id: 'strong_alliance', category: 'alliance', priority: 'low',
      title: 'Maintain the therapeutic alliance',
      rationale: 'Empathic responding is strong and no inconsiderate language was found; continue the current approach.',
      evidence: { overall: emp.overall },
    });
  }
  return recs
    .map((r, i) => ({ r, i }))
    .sort((a, b) => ORDER[a.r.priority] - ORDER[b.r.priority] || a.i - b.i)
    .map(({ r }) => r);
}
