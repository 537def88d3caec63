/**
 * A typed REST client for the MCP server (SPEC §4–§9). Every failure is an `McpApiError`
 * carrying the server's `{code, message, details, request_id}`. The client keeps the token pair
 * it was given or obtained (login, agent token exchange) and, on a 401 `TOKEN_EXPIRED`, refreshes
 * it once — through the refresh token, else by re-exchanging the agent's API key — and retries.
 */
import { McpApiError } from './errors.ts';
import type {
  Agent, AgentListQuery, AuditEntry, AuditQuery, AuditVerification, CreatedTask, CreatePipelineInput, CreateTaskInput, CreateTemplateInput,
  DelegatedTask, EnrollmentTokenSummary, Health, HeartbeatInput, IssuedEnrollmentToken, LoginResponse, MfaSetup, OutputFormat, Pagination, Pipeline, PipelineDetail, PipelineListQuery, PublicUser,
  RegisterAgentInput, RegisteredAgent, RequestOptions, Role, Task, TaskDetail, TaskErrorInput, TaskListQuery, TokenPair, UpdateAgentInput, ListOptions,
} from './types.ts';

export interface McpClientOptions {
  /** Server base URL, e.g. `http://localhost:8080` (the `/api/v1` prefix is added). */
  url: string;
  accessToken?: string;
  refreshToken?: string;
  /** Agent credentials: used to obtain tokens on demand and to recover when refreshing fails. */
  agent?: { agentId: string; apiKey: string };
  /** Per-request timeout (ms); default 30 000. */
  timeoutMs?: number;
  /** Called whenever the client obtains a new token pair (persist it, hand it to a socket…). */
  onTokens?: (tokens: TokenPair) => void;
  /** A custom fetch (tests, proxies). */
  fetch?: typeof fetch;
  userAgent?: string;
}

type Query = Record<string, string | number | boolean | undefined | null>;

interface CallOptions extends RequestOptions {
  query?: Query;
  body?: unknown;
  /** Public endpoint: no Authorization header, no refresh on 401. */
  anonymous?: boolean;
  /** Return the body as text instead of parsing JSON. */
  text?: boolean;
}

function qs(query: Query | undefined): string {
  if (!query) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

const seg = (id: string) => encodeURIComponent(id);

export class McpClient {
  readonly baseUrl: string;
  private accessToken: string | undefined;
  private refreshToken: string | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly o: McpClientOptions) {
    this.baseUrl = o.url.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
    this.accessToken = o.accessToken;
    this.refreshToken = o.refreshToken;
    this.fetchImpl = o.fetch ?? fetch;
  }

  /** The current access token (after login, exchange or refresh). */
  get token(): string | undefined {
    return this.accessToken;
  }

  /** Replaces the tokens the client uses. */
  setTokens(tokens: { access_token?: string; refresh_token?: string }): void {
    if (tokens.access_token) this.accessToken = tokens.access_token;
    if (tokens.refresh_token) this.refreshToken = tokens.refresh_token;
  }

  private adopt<T extends TokenPair>(pair: T): T {
    this.accessToken = pair.access_token;
    this.refreshToken = pair.refresh_token;
    this.o.onTokens?.(pair);
    return pair;
  }

  /** Low-level call: `path` is relative to `/api/v1` (or absolute when it starts with `/.well-known` etc.). */
  async request<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
    if (!opts.anonymous && !this.accessToken && this.o.agent) await this.renewTokens();
    try {
      return await this.send<T>(method, path, opts);
    } catch (err) {
      const renewable = err instanceof McpApiError && err.status === 401 && err.code === 'TOKEN_EXPIRED' && !opts.anonymous && (this.refreshToken || this.o.agent);
      if (!renewable) throw err;
      await this.renewTokens();
      return this.send<T>(method, path, opts);
    }
  }

  private async send<T>(method: string, path: string, opts: CallOptions): Promise<T> {
    const url = `${this.baseUrl}${path.startsWith('/api/') || path.startsWith('/.well-known') || path === '/metrics' ? '' : '/api/v1'}${path}${qs(opts.query)}`;
    const headers: Record<string, string> = { accept: opts.text ? '*/*' : 'application/json' };
    if (this.o.userAgent) headers['user-agent'] = this.o.userAgent;
    if (!opts.anonymous && this.accessToken) headers.authorization = `Bearer ${this.accessToken}`;
    if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const timeout = AbortSignal.timeout(this.o.timeoutMs ?? 30_000);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body, signal });
    } catch (err) {
      const e = err as Error;
      const timedOut = e.name === 'TimeoutError';
      throw new McpApiError(0, timedOut ? 'TIMEOUT' : 'NETWORK_ERROR', timedOut ? `${method} ${path} timed out.` : `Could not reach ${this.baseUrl}: ${(e.cause as Error | undefined)?.message ?? e.message}`);
    }
    const text = await res.text();
    const requestId = res.headers.get('x-request-id') ?? undefined;
    if (!res.ok) {
      let env: { error?: { code?: string; message?: string; details?: Record<string, unknown>; request_id?: string } } | undefined;
      try { env = JSON.parse(text) as typeof env; } catch { /* not JSON */ }
      const e = env?.error;
      throw new McpApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? (text.slice(0, 200) || res.statusText), e?.details, e?.request_id ?? requestId);
    }
    if (opts.text) return text as T;
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      return text as T;
    }
  }

  /** Gets a fresh pair: the refresh token first, the agent's API key when that fails. Concurrent callers share one attempt. */
  async renewTokens(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        if (this.refreshToken) {
          try {
            await this.auth.refresh(this.refreshToken);
            return;
          } catch (err) {
            if (!this.o.agent) throw err;
          }
        }
        if (!this.o.agent) throw new McpApiError(401, 'MISSING_AUTHENTICATION', 'No credentials to renew the access token with.');
        await this.auth.token(this.o.agent.agentId, this.o.agent.apiKey);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  // ---- auth ---------------------------------------------------------------------------------
  readonly auth = {
    login: async (username: string, password: string, totpCode?: string): Promise<LoginResponse> =>
      this.adopt(await this.send<LoginResponse>('POST', '/auth/login', { anonymous: true, body: { username, password, ...(totpCode ? { totp_code: totpCode } : {}) } })),
    refresh: async (refreshToken = this.refreshToken): Promise<TokenPair> => {
      if (!refreshToken) throw new McpApiError(401, 'MISSING_AUTHENTICATION', 'No refresh token.');
      return this.adopt(await this.send<TokenPair>('POST', '/auth/refresh', { anonymous: true, body: { refresh_token: refreshToken } }));
    },
    /** Agent API key → token pair (SPEC §4.2). */
    token: async (agentId: string, apiKey: string): Promise<TokenPair> =>
      this.adopt(await this.send<TokenPair>('POST', '/auth/token', { anonymous: true, body: { agent_id: agentId, api_key: apiKey } })),
    logout: async (): Promise<void> => {
      await this.request<void>('POST', '/auth/logout', { body: this.refreshToken ? { refresh_token: this.refreshToken } : {} });
      this.accessToken = undefined;
      this.refreshToken = undefined;
    },
    me: () => this.request<{ type: 'user'; user: PublicUser } | { type: 'agent'; agent: Agent }>('GET', '/auth/me'),
    /** Starts TOTP enrolment: the secret for an authenticator app and one-time recovery codes. */
    mfaSetup: () => this.request<MfaSetup>('POST', '/auth/mfa/setup', { body: {} }),
    /** Confirms enrolment with a current code from the app; MFA is on from then. */
    mfaVerify: (code: string) => this.request<{ mfa_enabled: true }>('POST', '/auth/mfa/verify', { body: { code } }),
  };

  // ---- health -------------------------------------------------------------------------------
  readonly health = {
    get: () => this.request<Health>('GET', '/health', { anonymous: !this.accessToken }),
    detailed: () => this.request<Health>('GET', '/health/detailed'),
    live: () => this.request<{ status: string }>('GET', '/live', { anonymous: true }),
    ready: () => this.request<{ status: string }>('GET', '/ready', { anonymous: true }),
  };

  // ---- agents -------------------------------------------------------------------------------
  readonly agents = {
    register: (body: RegisterAgentInput, o: RequestOptions = {}) => this.request<RegisteredAgent>('POST', '/agents/register', { ...o, body }),
    list: (q: AgentListQuery = {}) => this.request<{ agents: Agent[]; pagination: Pagination }>('GET', '/agents', { query: { ...q } }),
    discover: (capabilities: string[], q: { type?: string; status?: string; limit?: number; offset?: number } = {}) =>
      this.request<{ agents: Agent[]; capabilities: string[]; count: number; pagination: Pagination }>('GET', '/agents/discover', { query: { capabilities: capabilities.join(','), ...q } }),
    get: (agentId: string) => this.request<Agent>('GET', `/agents/${seg(agentId)}`),
    update: (agentId: string, body: UpdateAgentInput) => this.request<Agent>('PUT', `/agents/${seg(agentId)}`, { body }),
    remove: (agentId: string) => this.request<void>('DELETE', `/agents/${seg(agentId)}`),
    drain: (agentId: string) => this.request<{ agent_id: string; status: string; draining: boolean; current_tasks: unknown }>('POST', `/agents/${seg(agentId)}/drain`),
    heartbeat: (agentId: string, body: HeartbeatInput = {}) => this.request<{ status: 'acknowledged'; next_heartbeat: string }>('POST', `/agents/${seg(agentId)}/heartbeat`, { body }),
    health: (agentId: string) => this.request<Record<string, unknown>>('GET', `/agents/${seg(agentId)}/health`),
    metrics: (agentId: string) => this.request<Record<string, unknown>>('GET', `/agents/${seg(agentId)}/metrics`),
    enrollmentToken: (body: { uses: number; ttl_seconds: number; role?: Role }, o: RequestOptions = {}) =>
      this.request<IssuedEnrollmentToken>('POST', '/agents/enrollment-tokens', { ...o, body }),
    /** Enrollment tokens, newest first: what each grants and has left (never the token itself). */
    enrollmentTokens: (q: ListOptions = {}) => this.request<{ enrollment_tokens: EnrollmentTokenSummary[]; pagination: Pagination }>('GET', '/agents/enrollment-tokens', { query: { ...q } }),
    /** Revokes an enrollment token: it registers no more agents (those it registered keep working). */
    revokeEnrollmentToken: (tokenId: string) => this.request<void>('DELETE', `/agents/enrollment-tokens/${seg(tokenId)}`),
  };

  // ---- tasks --------------------------------------------------------------------------------
  readonly tasks = {
    create: (body: CreateTaskInput, o: RequestOptions = {}) => this.request<CreatedTask>('POST', '/tasks', { ...o, body }),
    createBatch: (tasks: CreateTaskInput[], o: RequestOptions = {}) =>
      this.request<{ task_ids: string[]; count: number; created_at: string }>('POST', '/tasks/batch', { ...o, body: { tasks } }),
    list: (q: TaskListQuery = {}) => this.request<{ tasks: Task[]; pagination: Pagination }>('GET', '/tasks', { query: { ...q } }),
    get: (taskId: string) => this.request<TaskDetail>('GET', `/tasks/${seg(taskId)}`),
    deadLetter: (q: ListOptions = {}) => this.request<{ tasks: Task[]; pagination: Pagination }>('GET', '/tasks/dead-letter', { query: { ...q } }),
    cancel: (taskId: string, reason?: string) => this.request<Task>('POST', `/tasks/${seg(taskId)}/cancel`, { body: reason ? { reason } : {} }),
    retry: (taskId: string) => this.request<Task>('POST', `/tasks/${seg(taskId)}/retry`),
    delegate: (taskId: string, body: { agent_id?: string; strategy?: CreateTaskInput['strategy'] } = {}) =>
      this.request<{ task_id: string; status: string; assigned_agent?: string; attempt?: number; queue_position?: number }>('POST', `/tasks/${seg(taskId)}/delegate`, { body }),
    // agent side (REST transport, for agents without a socket)
    claim: (max = 1, waitMs = 0) => this.request<{ tasks: DelegatedTask[]; count: number }>('POST', '/tasks/claim', { body: { max, wait_ms: waitMs } }),
    accept: (taskId: string, attempt?: number) => this.request<Task>('POST', `/tasks/${seg(taskId)}/accept`, { body: attempt ? { attempt } : {} }),
    progress: (taskId: string, attempt: number, progress: number, message?: string) =>
      this.request<{ lease_expires_at: string }>('POST', `/tasks/${seg(taskId)}/progress`, { body: { attempt, progress, ...(message ? { message } : {}) } }),
    complete: (taskId: string, attempt: number, result: unknown, metadata?: { processing_time?: number; model_version?: string; [k: string]: unknown }) =>
      this.request<{ task_id: string; status: string; attempt: number; duplicate?: boolean }>('POST', `/tasks/${seg(taskId)}/complete`, { body: { attempt, result, ...(metadata ? { metadata } : {}) } }),
    fail: (taskId: string, attempt: number, error: TaskErrorInput) =>
      this.request<{ task_id: string; status: string; attempt: number; will_retry?: boolean; dead_letter?: boolean }>('POST', `/tasks/${seg(taskId)}/fail`, { body: { attempt, error } }),
  };

  // ---- pipelines ----------------------------------------------------------------------------
  readonly pipelines = {
    templates: (q: ListOptions = {}) => this.request<{ templates: Array<Record<string, unknown>>; pagination: Pagination }>('GET', '/pipelines/templates', { query: { ...q } }),
    createTemplate: (body: CreateTemplateInput, o: RequestOptions = {}) => this.request<Record<string, unknown>>('POST', '/pipelines/templates', { ...o, body }),
    create: (body: CreatePipelineInput, o: RequestOptions = {}) =>
      this.request<{ pipeline_id: string; status: string; created_at: string; estimated_duration: number | null }>('POST', '/pipelines', { ...o, body }),
    list: (q: PipelineListQuery = {}) => this.request<{ pipelines: Pipeline[]; pagination: Pagination }>('GET', '/pipelines', { query: { ...q } }),
    get: (pipelineId: string) => this.request<PipelineDetail>('GET', `/pipelines/${seg(pipelineId)}`),
    progress: (pipelineId: string) => this.request<Record<string, unknown>>('GET', `/pipelines/${seg(pipelineId)}/progress`),
    /** The exported artifact as text (JSON, JSONL or CSV). */
    output: (pipelineId: string, format: OutputFormat = 'json') => this.request<string>('GET', `/pipelines/${seg(pipelineId)}/output`, { query: { format }, text: true }),
    cancel: (pipelineId: string, reason?: string) => this.request<Record<string, unknown>>('POST', `/pipelines/${seg(pipelineId)}/cancel`, { body: reason ? { reason } : {} }),
    pause: (pipelineId: string) => this.request<Record<string, unknown>>('POST', `/pipelines/${seg(pipelineId)}/pause`, { body: {} }),
    resume: (pipelineId: string) => this.request<Record<string, unknown>>('POST', `/pipelines/${seg(pipelineId)}/resume`, { body: {} }),
    retryStage: (pipelineId: string, stage: string) => this.request<Record<string, unknown>>('POST', `/pipelines/${seg(pipelineId)}/stages/${seg(stage)}/retry`),
  };

  // ---- users --------------------------------------------------------------------------------
  readonly users = {
    list: (q: ListOptions = {}) => this.request<{ users: PublicUser[]; pagination: Pagination }>('GET', '/users', { query: { ...q } }),
    create: (body: { username: string; password: string; role: Role }, o: RequestOptions = {}) => this.request<PublicUser>('POST', '/users', { ...o, body }),
    get: (userId: string) => this.request<PublicUser>('GET', `/users/${seg(userId)}`),
    update: (userId: string, body: { role?: Role; disabled?: boolean; password?: string }) => this.request<PublicUser>('PATCH', `/users/${seg(userId)}`, { body }),
    remove: (userId: string) => this.request<void>('DELETE', `/users/${seg(userId)}`),
  };

  // ---- audit and security -------------------------------------------------------------------
  readonly audit = {
    list: (q: AuditQuery = {}) => this.request<{ entries: AuditEntry[]; pagination: Pagination }>('GET', '/audit', { query: { ...q } }),
    verify: () => this.request<AuditVerification>('GET', '/audit/verify'),
  };

  readonly security = {
    alerts: (q: ListOptions & { rule?: string; severity?: string; acknowledged?: boolean } = {}) =>
      this.request<{ alerts: Array<Record<string, unknown>>; pagination: Pagination }>('GET', '/security/alerts', { query: { ...q } }),
    ackAlert: (alertId: string) => this.request<Record<string, unknown>>('POST', `/security/alerts/${seg(alertId)}/ack`),
  };
}
