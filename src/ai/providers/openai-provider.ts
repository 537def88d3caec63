/**
 * The `openai` provider (SPEC §10) on the official SDK. `baseURL` (OPENAI_BASE_URL) reaches any
 * OpenAI-compatible server — how custom and self-hosted models plug in. Retries and timeouts are
 * the guard's (GuardedProvider), so the SDK's own are off.
 */
import OpenAI from 'openai';
import type { AiProvider, AnalyzeContext } from '../ai-provider.ts';
import { ANALYSIS_PROMPTS, parseAnswer, promptFor } from './analysis-prompts.ts';

export interface OpenAiProviderOptions {
  apiKey: string;
  baseURL?: string;
  model: string;
}

export class OpenAiProvider implements AiProvider {
  readonly name = 'openai';
  private readonly client: OpenAI;

  constructor(private readonly o: OpenAiProviderOptions) {
    this.client = new OpenAI({ apiKey: o.apiKey, ...(o.baseURL ? { baseURL: o.baseURL } : {}), maxRetries: 0 });
  }

  supports(taskType: string): boolean {
    return taskType in ANALYSIS_PROMPTS;
  }

  async analyze(taskType: string, input: Record<string, unknown>, ctx?: AnalyzeContext): Promise<Record<string, unknown>> {
    const { system, user } = promptFor(taskType, input);
    const r = await this.client.chat.completions.create({
      model: this.o.model,
      messages: [{ role: 'system', content: system }, { role: 'user', content: user }],
      response_format: { type: 'json_object' },
      temperature: 0,
    }, { ...(ctx?.signal ? { signal: ctx.signal } : {}) });
    return parseAnswer(this.name, taskType, r.choices[0]?.message?.content);
  }
}
