/**
 * The `openai` provider (SPEC §10) on the official SDK. `baseUrl` (OPENAI_BASE_URL) reaches any
 * OpenAI-compatible server — how custom and self-hosted models plug in. Retries and timeouts are
 * the guard's (GuardedProvider), so the SDK's own are off.
 */
import OpenAI from 'openai';
import { PromptedProvider, type RemoteModelOptions } from './analysis-prompts.ts';

export class OpenAiProvider extends PromptedProvider {
  readonly name = 'openai';
  private readonly client: OpenAI;

  constructor(private readonly o: RemoteModelOptions) {
    super();
    this.client = new OpenAI({ apiKey: o.apiKey, ...(o.baseUrl ? { baseURL: o.baseUrl } : {}), maxRetries: 0 });
  }

  protected async complete(system: string, user: string, signal?: AbortSignal): Promise<string | null | undefined> {
    const r = await this.client.chat.completions.create({
      model: this.o.model,
      messages: [{ role: 'system', content: system }, { role: 'user', content: user }],
      response_format: { type: 'json_object' },
      temperature: 0,
    }, { ...(signal ? { signal } : {}) });
    return r.choices[0]?.message?.content;
  }
}
