/**
 * The role → permission table (SPEC §3), the one place authorization rules live.
 * `task:read` for workers is limited to their own tasks by the task service, not here.
 */
import { ForbiddenError } from '../core/index.ts';
export const ROLES = ['worker', 'supervisor', 'admin', 'system'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  'task:execute', 'task:read', 'task:create', 'task:manage',
  'pipeline:read', 'pipeline:create', 'pipeline:manage',
  'agent:read', 'agent:register', 'agent:manage',
  'system:health', 'system:metrics', 'audit:read', 'security:alerts',
  'system:config', 'user:manage', 'phi:read',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const W = ['task:execute', 'task:read', 'agent:read', 'system:health'] as const;
const S = [...W, 'task:create', 'task:manage', 'pipeline:read', 'pipeline:create'] as const;
const OPS = [...S, 'pipeline:manage', 'agent:register', 'agent:manage', 'system:metrics', 'audit:read', 'security:alerts', 'phi:read'] as const;

export const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<Permission>>> = {
  worker: new Set<Permission>(W),
  supervisor: new Set<Permission>(S),
  admin: new Set<Permission>([...OPS, 'system:config', 'user:manage']),
  system: new Set<Permission>(OPS),
};

export function hasPermission(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].has(permission);
}

/**
 * Whether a caller of role `caller` may give role `target` to a principal (register an agent with
 * it, issue an enrollment token for it, change an agent to it): only when `target` holds no
 * permission the caller lacks. No one mints a principal stronger than itself — a `system` caller
 * cannot make an `admin` (user:manage, system:config); an admin may grant any role.
 */
export function canGrantRole(caller: Role, target: Role): boolean {
  for (const p of ROLE_PERMISSIONS[target]) if (!ROLE_PERMISSIONS[caller].has(p)) return false;
  return true;
}

/**
 * Refuses to give `role` to a principal when it holds a permission the caller lacks (see
 * `canGrantRole`): agent registration, agent role change, enrollment-token creation.
 */
export function assertMayGrantRole(caller: Pick<Principal, 'role'>, role: Role | undefined): void {
  if (role !== undefined && !canGrantRole(caller.role, role)) {
    throw new ForbiddenError('INSUFFICIENT_PERMISSIONS', `A ${caller.role} caller may not grant the ${role} role: it has permissions the caller lacks.`, { role });
  }
}

export function permissionsOf(role: Role): Permission[] {
  return PERMISSIONS.filter((p) => ROLE_PERMISSIONS[role].has(p));
}

/** An authenticated caller: a person (user) or a process (agent). */
export interface Principal {
  type: 'user' | 'agent';
  /** user_id or agent_id */
  id: string;
  role: Role;
  /** username for users, agent_id for agents; safe to log. */
  name: string;
  /** Access token id, for logout/revocation. */
  jti?: string;
  /** Access token expiry (epoch seconds). */
  exp?: number;
  /** A user whose role must enrol MFA and whose grace period is over (auth/mfa-policy.ts): only enrolment routes. */
  mfaOverdue?: true;
  /** A user whose role must enrol MFA, within the grace period: when it ends (epoch ms). */
  mfaDeadline?: number;
}

export function principalKey(p: Pick<Principal, 'type' | 'id'>): string {
  return `${p.type}:${p.id}`;
}
