/** Agent REST bodies (SPEC §5). */
import Type, { type Static } from 'typebox';
import { Id, JsonObject, ListQuery, MAX_INT32 } from './common.ts';

export const AGENT_TYPES = ['bias-detector', 'emotion-analyzer', 'therapist', 'text-processor', 'report-generator', 'pipeline-worker', 'general'] as const;
export const AGENT_STATUSES = ['active', 'busy', 'inactive', 'maintenance', 'error', 'offline'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];


export const AgentType = Type.Enum(AGENT_TYPES);
export const Capability = Type.String({ pattern: '^[a-z][a-z0-9_.-]{0,63}$' });
export const Capabilities = Type.Array(Capability, { minItems: 1, maxItems: 50, uniqueItems: true });
export const SemVer = Type.String({ pattern: '^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-[0-9A-Za-z.-]+)?(?:\\+[0-9A-Za-z.-]+)?$', description: 'Semantic version' });
export const RoleSchema = Type.Enum(['worker', 'supervisor', 'admin', 'system'] as const);
const Url = Type.String({ format: 'uri', maxLength: 2048 });
const Tags = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 50 });

export const RegisterAgentBody = Type.Object({
  agent_id: Type.Optional(Id),
  name: Type.String({ minLength: 1, maxLength: 100 }),
  type: AgentType,
  capabilities: Capabilities,
  version: SemVer,
  endpoint_url: Type.Optional(Url),
  health_check_url: Type.Optional(Url),
  max_concurrent_tasks: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 5 })),
  metadata: Type.Optional(JsonObject),
  tags: Type.Optional(Tags),
  /**
   * Default `worker` (SPEC §3). Only a role the caller could hold itself (`canGrantRole`, checked
   * by the route): a `system` caller may not register an `admin` agent — that would hand it an
   * admin token and the admin-only permissions. With an enrollment token it must be the token's role.
   */
  role: Type.Optional(RoleSchema),
}, { additionalProperties: false });
export type RegisterAgentInput = Static<typeof RegisterAgentBody>;

export const UpdateAgentBody = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  type: Type.Optional(AgentType),
  capabilities: Type.Optional(Capabilities),
  version: Type.Optional(SemVer),
  endpoint_url: Type.Optional(Url),
  health_check_url: Type.Optional(Url),
  max_concurrent_tasks: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  metadata: Type.Optional(JsonObject),
  tags: Type.Optional(Tags),
  status: Type.Optional(Type.Enum(['active', 'inactive', 'maintenance'] as const)),
  /** Needs agent:manage, and only a role the caller could grant (`canGrantRole`): no escalation to admin by `system`. */
  role: Type.Optional(RoleSchema),
}, { additionalProperties: false });
export type UpdateAgentInput = Static<typeof UpdateAgentBody>;
/** Fields an agent may change on itself without agent:manage. */
export const SELF_UPDATABLE = ['capabilities', 'metadata', 'max_concurrent_tasks'] as const;

export const SystemMetrics = Type.Object({
  cpu_usage: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  memory_usage: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  disk_usage: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
}, { additionalProperties: false });

export const HeartbeatBody = Type.Object({
  status: Type.Optional(Type.Enum(['active', 'busy', 'inactive', 'maintenance', 'error'] as const)),
  current_tasks: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: MAX_INT32 }), Type.Array(Type.String({ maxLength: 64 }), { maxItems: 1000 })])),
  system_metrics: Type.Optional(SystemMetrics),
}, { additionalProperties: false });
export type HeartbeatInput = Static<typeof HeartbeatBody>;

/**
 * `GET /agents?sort=` values (SPEC §2). `status` and `score` are the values the list shows (live
 * `busy`, score with outcomes not yet flushed). Default `registered_at:asc`.
 */
export const AGENT_SORTS = ['registered_at:asc', 'registered_at:desc', 'name:asc', 'name:desc', 'status:asc', 'status:desc', 'score:asc', 'score:desc'] as const;
export type AgentSort = (typeof AGENT_SORTS)[number];

export const ListAgentsQuery = Type.Object({
  status: Type.Optional(Type.Enum(AGENT_STATUSES)),
  type: Type.Optional(AgentType),
  capability: Type.Optional(Capability),
  ...ListQuery,
  sort: Type.Optional(Type.Enum(AGENT_SORTS)),
}, { additionalProperties: false });

export const DiscoverQuery = Type.Object({
  capabilities: Type.String({ minLength: 1, maxLength: 3300, description: 'Comma-separated; agents must hold all.' }),
  type: Type.Optional(AgentType),
  status: Type.Optional(Type.Enum(AGENT_STATUSES)),
  ...ListQuery,
}, { additionalProperties: false });

/** GET /agents/enrollment-tokens: a page, newest first (SPEC §2 lists). */
export const ListEnrollmentTokensQuery = Type.Object({ ...ListQuery }, { additionalProperties: false });

export const TokenExchangeBody = Type.Object({
  agent_id: Id,
  api_key: Type.String({ minLength: 1, maxLength: 200 }),
}, { additionalProperties: false });
