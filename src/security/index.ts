/**
 * security: data protection primitives and, later, the services built on them.
 *
 * Belongs here: data classification; the key ring (versioned keys derived from a master key);
 * field encryption (AES-256-GCM bound to table/column/row); blind indexes; masking for callers
 * without `phi:read`; the audit hash chain; TOTP and recovery codes; later rate limits, breach
 * detection, the audit repository and FHE.
 *
 * Does not belong here: HTTP or Socket.IO (routes live in http/, realtime/), authentication
 * flows and RBAC (auth/), and SQL — except in future `*-repository.ts` files of this folder.
 * Everything exported today is pure (no database, no network); only `loadOrCreateMasterKeyFile`
 * touches the file system.
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
