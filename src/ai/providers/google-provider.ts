/**
 * The `google` provider (SPEC §10) on the official Google GenAI SDK (Gemini API). `baseUrl`
 * points the SDK at another endpoint (a proxy, or a local stand-in in tests). Retries and
 * timeouts are the guard's (GuardedProvider).
 */
import { GoogleGenAI } from '@google/genai';
import { PromptedProvider, type RemoteModelOptions } from './analysis-prompts.ts';

export class GoogleProvider extends PromptedProvider {
  readonly name = 'google';
  private readonly client: GoogleGenAI;

  constructor(private readonly o: RemoteModelOptions) {
    super();
    this.client = new GoogleGenAI({ apiKey: o.apiKey, ...(o.baseUrl ? { httpOptions: { baseUrl: o.baseUrl } } : {}) });
  }

  protected async complete(system: string, user: string, signal?: AbortSignal): Promise<string | undefined> {
    const r = await this.client.models.generateContent({
      model: this.o.model,
      contents: user,
      config: { systemInstruction: system, responseMimeType: 'application/json', temperature: 0, ...(signal ? { abortSignal: signal } : {}) },
    });
    return r.text;
  }
}
