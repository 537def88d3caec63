/**
 * The dashboard's connection to the server: REST with the signed-in user's tokens (kept in
 * memory only — a reload signs out — and refreshed once on TOKEN_EXPIRED), and one Socket.IO
 * connection subscribed to the topics the role may see, answering `auth:expired` with a fresh
 * token. `fetch` and `io` are passed in, so the same code runs in the browser and in tests.
 */

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class DashboardClient {
  /** @param {{ baseUrl: string, fetch: typeof fetch, io: Function }} o */
  constructor(o) {
    this.baseUrl = o.baseUrl.replace(/\/+$/, '');
    this.fetchImpl = o.fetch;
    this.io = o.io;
    this.access = null;
    this.refreshToken = null;
    this.user = null;
    this.socket = null;
  }

  /** @param {string} username @param {string} password @param {string} [totpCode] @returns {Promise<any>} the signed-in user */
  async login(username, password, totpCode) {
    const body = { username, password, ...(totpCode ? { totp_code: totpCode } : {}) };
    const r = await this.send('POST', '/api/v1/auth/login', body, false);
    this.access = r.access_token;
    this.refreshToken = r.refresh_token;
    this.user = r.user;
    return r.user;
  }

  async logout() {
    const token = this.access;
    this.close();
    if (token) await this.raw('POST', '/api/v1/auth/logout', { refresh_token: this.refreshToken ?? undefined }, token).catch(() => {});
    this.access = this.refreshToken = this.user = null;
  }

  async refresh() {
    const r = await this.send('POST', '/api/v1/auth/refresh', { refresh_token: this.refreshToken }, false);
    this.access = r.access_token;
    this.refreshToken = r.refresh_token;
    return r.access_token;
  }

  /** @param {string} path under /api/v1 @param {Record<string, unknown>} [query] @returns {Promise<any>} */
  get(path, query = {}) {
    const q = Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== '');
    const qs = q.length ? `?${new URLSearchParams(q.map(([k, v]) => [k, String(v)])).toString()}` : '';
    return this.send('GET', `/api/v1${path}${qs}`);
  }

  /** @param {string} path under /api/v1 @param {unknown} [body] @returns {Promise<any>} */
  post(path, body = {}) {
    return this.send('POST', `/api/v1${path}`, body);
  }

  async raw(method, path, body, token) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    return this.fetchImpl(`${this.baseUrl}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  }

  /** @returns {Promise<any>} the parsed JSON answer; ApiError for a non-2xx */
  async send(method, path, body, authed = true) {
    let res = await this.raw(method, path, body, authed ? this.access : null);
    if (authed && res.status === 401 && this.refreshToken) {
      const code = (await res.clone().json().catch(() => null))?.error?.code;
      if (code === 'TOKEN_EXPIRED') {
        await this.refresh();
        res = await this.raw(method, path, body, this.access);
      }
    }
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (!res.ok) throw new ApiError(res.status, json?.error?.code ?? `HTTP_${res.status}`, json?.error?.message ?? res.statusText);
    return json;
  }

  /**
   * Connects the real-time channel and subscribes to `topics`; `onEvent(name, payload)` gets every
   * server event, `onState(connected)` the connection's state. Returns the socket.
   * @param {string[]} topics
   * @param {(name: string, payload: any) => void} onEvent
   * @param {(connected: boolean) => void} [onState]
   */
  connect(topics, onEvent, onState = (_connected) => {}) {
    this.close();
    const socket = this.io(`${this.baseUrl}/mcp/ws`, { auth: (cb) => cb({ token: this.access }), transports: ['websocket'], reconnection: true });
    this.socket = socket;
    socket.on('connect', () => {
      onState(true);
      for (const topic of topics) socket.emit('subscribe', { topic }, () => {});
    });
    socket.on('disconnect', () => onState(false));
    socket.on('connect_error', () => onState(false));
    socket.on('auth:expired', async () => {
      try {
        socket.emit('auth:refresh', { token: await this.refresh() }, () => {});
      } catch {
        socket.disconnect();
      }
    });
    socket.onAny((name, payload) => {
      if (name !== 'auth:expired') onEvent(name, payload);
    });
    return socket;
  }

  close() {
    this.socket?.close();
    this.socket = null;
  }
}

/** The topics a role may subscribe to (workers may not watch every task). */
export function topicsFor(role) {
  return role === 'worker' ? ['agents', 'system'] : ['agents', 'tasks', 'pipelines', 'system'];
}
