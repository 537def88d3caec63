/**
 * The `google` provider (SPEC §10) on the official Google GenAI SDK (Gemini API). `baseUrl`
 * points the SDK at another endpoint (a proxy, or a local stand-in in tests). Retries and
 * timeouts are the guard's (GuardedProvider).
 */
import { GoogleGenAI } from '@google/genai';
import type { AiProvider, AnalyzeContext } from '../ai-provider.ts';
import { ANALYSIS_PROMPTS, parseAnswer, promptFor } from './analysis-prompts.ts';

export interface GoogleProviderOptions {
  apiKey: string;
  baseUrl?: string;
  model: string;
}

export class GoogleProvider implements AiProvider {
  readonly name = 'google';
  private readonly client: GoogleGenAI;

  constructor(private readonly o: GoogleProviderOptions) {
    this.client = new GoogleGenAI({ apiKey: o.apiKey, ...(o.baseUrl ? { httpOptions: { baseUrl: o.baseUrl } } : {}) });
  }

  supports(taskType: string): boolean {
    return taskType in ANALYSIS_PROMPTS;
  }

  async analyze(taskType: string, input: Record<string, unknown>, ctx?: AnalyzeContext): Promise<Record<string, unknown>> {
    const { system, user } = promptFor(taskType, input);
    const r = await this.client.models.generateContent({
      model: this.o.model,
      contents: user,
      config: { systemInstruction: system, responseMimeType: 'application/json', temperature: 0, ...(ctx?.signal ? { abortSignal: ctx.signal } : {}) },
    });
    return parseAnswer(this.name, taskType, r.text);
  }
}
