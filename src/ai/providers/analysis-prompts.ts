/**
 * What a remote model is asked for each analysis task type, and the check of its answer
 * (SPEC §10). Every prompt asks for one JSON object with named keys; an answer that is not such
 * an object is an InvalidOutputError (counted in the provider's quality figures; the hub falls
 * back to the next provider).
 */
import { InvalidOutputError } from '../guarded-provider.ts';
import { inputText, missingText, type AiProvider, type AnalyzeContext } from '../ai-provider.ts';

interface PromptSpec {
  instruction: string;
  /** Keys the answer must have. */
  keys: readonly string[];
}

export const ANALYSIS_PROMPTS: Readonly<Record<string, PromptSpec>> = Object.freeze({
  sentiment_analysis: {
    instruction: 'Rate the sentiment of the text. Answer {"label": "positive" | "neutral" | "negative", "score": number from -1 to 1}.',
    keys: ['label', 'score'],
  },
  emotion_analysis: {
    instruction: 'Find the emotions expressed in the text. Answer {"emotions": {emotion name: intensity from 0 to 1}, "dominant": emotion name}.',
    keys: ['emotions', 'dominant'],
  },
  bias_detection: {
    instruction: 'Find biased, stigmatising or inconsiderate language in the text. Answer {"bias_score": number from 0 to 1, "findings": [{"text", "category", "severity": "low" | "medium" | "high", "suggestion"}]}.',
    keys: ['bias_score', 'findings'],
  },
  pii_detection: {
    instruction: 'Find personal identifiers (names, dates, phone numbers, addresses, ids) in the text. Answer {"findings": [{"type", "text"}], "redacted_text": the text with each one replaced by [TYPE]}.',
    keys: ['findings', 'redacted_text'],
  },
  empathy_scoring: {
    instruction: 'Rate how empathic the therapist\'s turns in the conversation are. Answer {"score": number from 0 to 1, "rationale": short string}.',
    keys: ['score', 'rationale'],
  },
  therapeutic_recommendations: {
    instruction: 'Suggest next therapeutic steps for the conversation. Answer {"recommendations": [{"priority": "low" | "medium" | "high", "recommendation": string}]}.',
    keys: ['recommendations'],
  },
  text_analysis: {
    instruction: 'Summarise the text and name its main topics. Answer {"summary": string, "topics": [string]}.',
    keys: ['summary', 'topics'],
  },
});

const SYSTEM = 'You analyse therapy-session text for clinicians. Reply with exactly one JSON object and nothing else.';

/** The system and user messages for a task type; a missing or empty `text` is a final failure (no provider could do better). */
export function promptFor(taskType: string, input: Record<string, unknown>): { system: string; user: string } {
  const spec = ANALYSIS_PROMPTS[taskType];
  if (!spec) throw Object.assign(new Error(`No prompt for '${taskType}'.`), { code: 'UNSUPPORTED_TASK_TYPE', retryable: false });
  const text = inputText(input);
  if (text === null) throw missingText();
  const context = input.context === undefined ? '' : `\nContext: ${JSON.stringify(input.context)}`;
  return { system: `${SYSTEM}\n${spec.instruction}`, user: `Text:\n${text}${context}` };
}

/** The model's answer as the task type's result, or InvalidOutputError. */
export function parseAnswer(provider: string, taskType: string, content: string | null | undefined): Record<string, unknown> {
  if (!content) throw new InvalidOutputError(provider, 'empty answer');
  let parsed: unknown;
  try {
    parsed = JSON.parse(content.trim().replace(/^```(?:json)?\s*|\s*```$/g, ''));
  } catch {
    throw new InvalidOutputError(provider, 'not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidOutputError(provider, 'not a JSON object');
  const missing = (ANALYSIS_PROMPTS[taskType]?.keys ?? []).filter((k) => !(k in parsed));
  if (missing.length) throw new InvalidOutputError(provider, `missing ${missing.join(', ')}`);
  return parsed as Record<string, unknown>;
}

/** How a remote model is reached: key, model, and optionally another endpoint (a proxy, a compatible server). */
export interface RemoteModelOptions {
  apiKey: string;
  baseUrl?: string;
  model: string;
}

/**
 * A provider that asks a remote model with the prompts above: subclasses only send the system and
 * user messages and return the answer's text (`signal` aborts the request).
 */
export abstract class PromptedProvider implements AiProvider {
  abstract readonly name: string;

  /** The analysis task types, on an input with a `text` to send (else the route's next provider runs it). */
  supports(taskType: string, input?: Record<string, unknown>): boolean {
    return taskType in ANALYSIS_PROMPTS && (input === undefined || inputText(input) !== null);
  }

  async analyze(taskType: string, input: Record<string, unknown>, ctx?: AnalyzeContext): Promise<Record<string, unknown>> {
    const { system, user } = promptFor(taskType, input);
    return parseAnswer(this.name, taskType, await this.complete(system, user, ctx?.signal));
  }

  protected abstract complete(system: string, user: string, signal?: AbortSignal): Promise<string | null | undefined>;
}
