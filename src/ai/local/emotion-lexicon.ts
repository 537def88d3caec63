/**
 * A compact emotion lexicon for Plutchik's eight basic emotions (the categories of the NRC
 * Emotion Lexicon, Mohammad & Turney 2013). Written for this project, not copied from NRC (whose
 * licence forbids commercial use): ~450 everyday and clinical English words chosen by hand,
 * with a word listed under every emotion it commonly evokes (e.g. "betrayed" → anger, sadness,
 * disgust, surprise). Entries are lower-case lemmas; lookup also tries simple inflections.
 */

export const EMOTIONS = ['joy', 'sadness', 'anger', 'fear', 'trust', 'disgust', 'surprise', 'anticipation'] as const;
export type Emotion = (typeof EMOTIONS)[number];

const LISTS: Record<Emotion, string> = {
  joy: `happy happiness joy joyful glad delighted delight cheerful content contented pleased pleasure love loved
    lovely loving excited exciting grateful gratitude thankful proud pride relief relieved calm peaceful peace
    hopeful hope enjoy enjoyed fun laugh laughing smile smiling wonderful great good better best amazing awesome
    fantastic celebrate celebration blessed comfortable comfort optimistic optimism confident satisfied
    satisfaction accomplished accomplishment achieve achievement succeed success progress improve improved
    improvement heal healing healthy safe free freedom friend friendship kind kindness warm warmth beautiful
    positive energized motivated motivation inspired inspire thrilled ecstatic elated cheer brighter lighter
    appreciate appreciated appreciation affection bliss encouraged encouraging fine nice supportive support`,
  sadness: `sad sadness unhappy depressed depression down low blue cry crying cried tears tearful grief grieve
    grieving mourn mourning loss lost lose lonely loneliness alone isolated isolation empty emptiness hopeless
    hopelessness helpless helplessness miserable misery hurt hurting pain painful heartbroken heartbreak broken
    sorrow sorry regret regretful guilt guilty shame ashamed disappointed disappointment disappoint despair
    gloomy gloom numb tired exhausted exhaustion worthless failure fail failed abandoned abandon rejected
    rejection betrayed betrayal miss missing died death dead die dying funeral divorce unloved neglected
    neglect suffer suffering struggle struggling burden weak defeated low-energy lethargic withdrawn`,
  anger: `angry anger mad furious fury rage raging irritated irritating irritation annoyed annoying annoy
    frustrated frustrating frustration resent resentment resentful hate hated hatred hostile hostility bitter
    bitterness outraged outrage livid enraged yell yelled yelling scream screamed screaming shout shouted fight
    fighting fought argue argued argument blame blamed unfair injustice betrayed betrayal cheated attack
    attacked violent violence aggressive aggression punch hit threaten threatened disrespect disrespected
    insulted insult offended offend jealous jealousy envy stupid idiot damn pissed cruel abuse abusive
    controlling manipulative selfish rude`,
  fear: `afraid fear fearful scared scary frightened terrified terror panic panicked panicking anxious anxiety
    worry worried worrying nervous nervousness tense tension stress stressed stressful overwhelmed overwhelming
    dread dreading uneasy unsafe danger dangerous threat threatened threatening insecure insecurity paranoid
    phobia horror horrified alarmed alarm vulnerable helpless trapped nightmare nightmares shaking trembling
    apprehensive hesitant uncertain uncertainty doubt unsure risk suicide suicidal harm self-harm attack
    abuse abused violence death die dying losing lose crisis emergency avoid avoiding avoidance flashback
    flashbacks trauma traumatic hypervigilant`,
  trust: `trust trusted trusting trustworthy believe belief faith faithful honest honesty loyal loyalty reliable
    rely depend dependable safe safety secure security support supported supportive friend friendship family
    together team partner confide confident confidence respect respected understood understanding accept
    accepted acceptance care cared caring comfort comfortable listen listened listening help helped helpful
    agree agreement promise committed commitment protect protected stable stability consistent open openness
    validate validated reassure reassured reassurance hope hopeful`,
  disgust: `disgust disgusted disgusting gross sick sickening nauseous nausea revolting repulsive repulsed vile
    awful horrible hate hated loathe loathing despise contempt ashamed shame humiliated humiliation
    embarrassed embarrassing dirty filthy nasty ugly worthless pathetic creepy betrayed abuse abusive cheat
    cheated toxic rotten`,
  surprise: `surprise surprised surprising shocked shock shocking unexpected suddenly sudden astonished amazed
    amazing startled stunned wow unbelievable incredible realize realized realise realised discover discovered
    strange weird confused confusing bewildered`,
  anticipation: `anticipate anticipation expect expecting expectation hope hoping hopeful plan planning plans
    goal goals future tomorrow soon wait waiting eager looking-forward ready prepare preparing preparation
    try trying attempt want wish intend decide decided change changing next upcoming excited nervous worry
    worried dread start starting begin beginning practice practise commit`,
};

const table = new Map<string, Emotion[]>();
for (const emotion of EMOTIONS) {
  for (const word of LISTS[emotion].split(/\s+/)) {
    if (word === '') continue;
    const list = table.get(word) ?? [];
    if (!list.includes(emotion)) list.push(emotion);
    table.set(word, list);
  }
}

export const EMOTION_LEXICON_SIZE = table.size;

/** Emotions evoked by a word (lower-case), trying the word and then simple inflections. */
export function emotionsOf(word: string): readonly Emotion[] {
  const w = word.toLowerCase();
  const direct = table.get(w);
  if (direct) return direct;
  for (const [suffix, repl] of [['ies', 'y'], ['ied', 'y'], ['ness', ''], ['ly', ''], ['ing', ''], ['ing', 'e'], ['ed', ''], ['ed', 'e'], ['es', ''], ['s', '']] as const) {
    if (w.length > suffix.length + 2 && w.endsWith(suffix)) {
      const hit = table.get(w.slice(0, -suffix.length) + repl);
      if (hit) return hit;
    }
  }
  return [];
}
