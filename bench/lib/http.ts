/** A tiny JSON client for the server under test (keep-alive fetch). */

export interface Resp<T> {
  status: number;
  body: T;
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly text: string, what: string) {
    super(`${what} → HTTP ${status}: ${text.slice(0, 300)}`);
  }
}

export class Api {
  constructor(readonly base: string, public token = '') {}

  async call<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Resp<T>> {
    const h: Record<string, string> = { ...headers };
    if (this.token) h.authorization = `Bearer ${this.token}`;
    if (body !== undefined) h['content-type'] = 'application/json';
    const res = await fetch(`${this.base}${path}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: res.status, body: parsed as T };
  }

  /** Like call() but throws unless the status is one of `ok`. */
  async expect<T = unknown>(ok: number | number[], method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.call<T>(method, path, body);
    const allowed = Array.isArray(ok) ? ok : [ok];
    if (!allowed.includes(r.status)) throw new ApiError(r.status, typeof r.body === 'string' ? r.body : JSON.stringify(r.body), `${method} ${path}`);
    return r.body;
  }
}
