/**
 * security: data protection primitives and, later, the services built on them.
 *
 * Belongs here: data classification; the key ring (versioned keys derived from a master key);
 * field encryption (AES-256-GCM bound to table/column/row); blind indexes; masking for callers
 * without `phi:read`; the audit hash chain; TOTP and recovery codes; and the services built on
 * them: the audit log (audit-log.ts), PHI-read auditing (phi-access.ts), security alerts and
 * breach detection, MFA enrolment and login checks, agent enrollment tokens, the retention job,
 * key rotation with background re-encryption (key-rotation.ts), JSON input limits, and
 * aggregation over CKKS-encrypted numbers (fhe-aggregator.ts, Microsoft SEAL).
 *
 * Does not belong here: HTTP or Socket.IO (routes live in http/, realtime/), authentication
 * flows and RBAC (auth/). The primitives are pure; the services take the store (`Db`) and the
 * coordination port; only `loadOrCreateMasterKeyFile` touches the file system.
 */
export {
  DATA_CLASSIFICATIONS,
  DEFAULT_CLASSIFICATION,
  isDataClassification,
  requiresEncryption,
  type DataClassification,
} from './classification.ts';
export {
  KEY_BYTES,
  KeyRing,
  KeyRingError,
  keyVersion,
  loadOrCreateMasterKeyFile,
  parseMasterKey,
  type KeyId,
  type KeyRingOptions,
  type LoadKeyFileOptions,
  type MasterKeyFile,
} from './key-ring.ts';
export {
  CIPHERTEXT_PREFIX,
  DecryptionError,
  FieldCipher,
  isEncrypted,
  keyIdOf,
  type DecryptionFailure,
  type FieldAad,
} from './field-cipher.ts';
export {
  BLIND_INDEX_LENGTH,
  BLIND_INDEX_PURPOSES,
  BlindIndex,
  normalizeForBlindIndex,
  type BlindIndexPurpose,
} from './blind-index.ts';
export { maskConfidential, maskPhi, maskRestricted, maskString, maskValue } from './masking.ts';
export {
  AUDIT_ACTIONS,
  AUDIT_BODY_KEYS,
  GENESIS_HASH,
  canonicalJson,
  chainEntry,
  computeEntryHash,
  verifyChain,
  type AuditAction,
  type AuditActor,
  type AuditActorType,
  type AuditEntryBody,
  type AuditOutcome,
  type AuditRiskLevel,
  type ChainBreakReason,
  type ChainVerification,
  type ChainedAuditEntry,
  type KnownAuditAction,
  type VerifyChainOptions,
} from './audit-chain.ts';
export {
  TOTP_DIGITS,
  TOTP_PERIOD_SECONDS,
  TOTP_WINDOW_STEPS,
  generateRecoveryCodes,
  generateSecret,
  generateTotp,
  hashRecoveryCode,
  matchRecoveryCode,
  normalizeRecoveryCode,
  otpauthUrl,
  totpStep,
  verifyTotp,
  type TotpVerification,
} from './totp.ts';
export {
  AuditLog,
  pendingAuditSelect,
  SYSTEM_ACTOR,
  actorOf,
  defaultRiskLevel,
  type AuditContext,
  type AuditEntryInput,
  type AuditFilters,
  type AuditLogOptions,
  type PendingAudit,
  type AuditPage,
  type AuditVerification,
  type StoredAuditEntry,
} from './audit-log.ts';
export {
  ALERT_RULES,
  ALERT_SORTS,
  SecurityAlerts,
  type AlertFilters,
  type AlertSort,
  type AlertInput,
  type AlertSeverity,
  type SecurityAlert,
  type SecurityAlertsOptions,
} from './security-alerts.ts';
export { BreachDetector, type BreachDetectorOptions } from './breach-detector.ts';
export { MfaService, type MfaMethod, type MfaServiceOptions, type MfaSetup, type MfaUser } from './mfa-service.ts';
export {
  ENROLLMENT_MAX_TTL_SECONDS,
  ENROLLMENT_MAX_USES,
  ENROLLMENT_TOKEN_PREFIX,
  EnrollmentTokens,
  hashEnrollmentToken,
  isEnrollmentToken,
  type EnrollmentGrant,
  type EnrollmentRole,
  type EnrollmentTokenInput,
  type IssuedEnrollmentToken,
} from './enrollment-tokens.ts';
export { DEFAULT_RETENTION, RetentionJob, type RetentionJobOptions, type RetentionPeriods, type RetentionResult, type RetentionTarget } from './retention-job.ts';
export { PhiAccessLog, type DeliveredPhi, type PhiAccessLogOptions, type PhiFailureInput, type PhiReadInput } from './phi-access.ts';
export {
  KEYS_CHANNEL,
  KeyRotation,
  SEALED_COLUMNS,
  longestTokenLifetime,
  rotateKeys,
  type ColumnStats,
  type KeyRotationOptions,
  type KeyStatus,
  type ReencryptResult,
  type RotatableSigningKeys,
  type RotateKeysOptions,
  type RotateKeysResult,
  type SealedColumn,
} from './key-rotation.ts';
export { DEFAULT_JSON_MAX_DEPTH, jsonDepthExceeds } from './json-limits.ts';
export { FheAggregator, FHE_OPERATIONS, type FheOperation, type FheParams, type FheResult } from './fhe-aggregator.ts';
