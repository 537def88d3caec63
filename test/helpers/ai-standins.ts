/**
 * Local HTTP servers standing in for the far edges (ARCHITECTURE: only AI providers and the Flask
 * service are stood in for): they speak the real wire protocols, so the official SDKs and the
 * Flask adapter run unchanged against them. Each records what it received and answers through a
 * handler the test can swap.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- arbitrary JSON as sent
}

export type Answer = { status: number; body: unknown } | 'hang';

export interface StandIn {
  url: string;
  received: Received[];
  /** Answers the next requests (replaces the previous handler). */
  handle(fn: (r: Received) => Answer | Promise<Answer>): void;
  close(): Promise<void>;
}

export async function startStandIn(initial: (r: Received) => Answer | Promise<Answer>): Promise<StandIn> {
  let handler = initial;
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => { data += c.toString('utf8'); });
    req.on('end', () => {
      const r: Received = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: data ? JSON.parse(data) : null };
      received.push(r);
      void Promise.resolve(handler(r)).then((a) => {
        if (a === 'hang') return; // never answers: the caller's timeout must end it
        res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    handle: (fn) => { handler = fn; },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** An OpenAI chat completion (POST /v1/chat/completions) whose message is `content`. */
export function openAiCompletion(content: string, model = 'gpt-4o-mini'): Answer {
  return {
    status: 200,
    body: {
      id: 'chatcmpl-standin', object: 'chat.completion', created: Math.floor(Date.now() / 1000), model,
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 20, completion_tokens: 10, total_tokens: 30 },
    },
  };
}

/** A Gemini generateContent answer (POST /v1beta/models/{model}:generateContent) whose text is `text`. */
export function geminiResponse(text: string): Answer {
  return {
    status: 200,
    body: {
      candidates: [{ content: { parts: [{ text }], role: 'model' }, finishReason: 'STOP', index: 0 }],
      usageMetadata: { promptTokenCount: 20, candidatesTokenCount: 10, totalTokenCount: 30 },
      modelVersion: 'gemini-2.0-flash',
    },
  };
}

/** An error body as the OpenAI API sends it. */
export function openAiError(status: number, message = 'The server had an error'): Answer {
  return { status, body: { error: { message, type: 'server_error', param: null, code: null } } };
}

/** The Flask service: POST /analyze → `analysis`; GET /health → 200 while `up()`. */
export function flaskHandler(state: { up: boolean; analysis?: Record<string, unknown> }): (r: Received) => Answer {
  return (r) => {
    if (r.path === '/health') return state.up ? { status: 200, body: { status: 'healthy' } } : { status: 503, body: { status: 'down' } };
    if (r.path === '/analyze' && r.method === 'POST') {
      if (!state.up) return { status: 503, body: { error: 'down' } };
      return { status: 200, body: { analysis: state.analysis ?? { emotions: { sadness: 0.7 } }, confidence: 0.82, processing_time: 0.05 } };
    }
    return { status: 404, body: { error: 'not found' } };
  };
}
