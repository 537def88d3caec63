/** What the server attaches to a request: its principal (after auth) and error code (metrics). */
import type { Principal, VerifiedToken } from '../auth/index.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    token: VerifiedToken | null;
    errorCode?: string;
    idempotency?: { principal: string; key: string } | null;
  }
  interface FastifyContextConfig {
    /** Rate-limit class (SPEC §9); default `default`. */
    rateClass?: RateClass;
    /** POSTs that create something honour Idempotency-Key. */
    idempotent?: boolean;
    /** Public route: no bearer token required. */
    public?: boolean;
    /** Reachable by a user whose MFA enrolment is overdue (auth/mfa-policy.ts): enrolment, /auth/me, logout. */
    mfaEnrolment?: boolean;
  }
}

export type RateClass = 'default' | 'register' | 'task_create' | 'delegate' | 'health' | 'probe';
