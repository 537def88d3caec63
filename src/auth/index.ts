/**
 * auth: who the caller is and what it may do. Passwords, JWT signing keys and tokens, the RBAC
 * table, users, agent API keys. Not here: HTTP plumbing (http/), agent registry (agents/).
 */
export * from './rbac.ts';
export { PasswordHasher, assertPasswordPolicy, MIN_PASSWORD_LENGTH } from './passwords.ts';
export { SigningKeys, JWT_ALG, plainSealer, type SecretSealer } from './signing-keys.ts';
export { TokenService, type TokenPair, type VerifiedToken, type TokenServiceOptions } from './token-service.ts';
export { SyncedRevocationList, REVOCATION_CHANNEL, type RevocationList } from './revocation-list.ts';
export { UserService, toPublicUser, USER_SORTS, type UserRow, type PublicUser, type LoginLimiters, type MfaVerifier } from './user-service.ts';
export { PrincipalState, type PrincipalStateOptions } from './principal-state.ts';
export { NO_MFA_REQUIREMENT, mfaEnrolmentRequired, startMfaGrace, type MfaPolicy } from './mfa-policy.ts';
export { ApiKeys } from './api-keys.ts';
