/**
 * FieldCipher: field-by-field AES-256-GCM encryption of classified values (SPEC §9).
 *
 * Stored form: `enc:v1:<kid>:<base64url(nonce[12] | ciphertext | tag[16])>`.
 * - a fresh random 96-bit nonce per call, so equal plaintexts never produce equal ciphertexts;
 * - the associated data is `${table}.${column}.${rowId}`: a ciphertext copied to another row,
 *   column or table fails authentication (table and column must be plain identifiers, so the
 *   string is unambiguous);
 * - the key id is in the clear so old ciphertexts keep decrypting after a rotation, and
 *   `reencrypt` moves them to the current key.
 * Values are serialised with JSON, so whatever JSON cannot represent is changed on the way
 * (`-0` → `0`, `undefined` properties dropped, `Date` → ISO string); `undefined`, functions,
 * symbols and bigints are refused.
 *
 * Every decryption problem throws `DecryptionError` (fail closed); nothing is ever returned
 * for a ciphertext that did not authenticate.
 */
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { AppError, type FieldCodec } from '../core/index.ts';
import { isDataClassification, requiresEncryption, type DataClassification } from './classification.ts';
import { keyVersion, type KeyId, type KeyRing } from './key-ring.ts';

export const CIPHERTEXT_PREFIX = 'enc:v1:';
const ALGORITHM = 'aes-256-gcm';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Nonces come from the CSPRNG in 12 KiB refills rather than one call per value (every task's
 * parameters and result are sealed: a call per nonce was a measurable share of the hot path).
 * Each nonce is a fresh, never reused slice; a refill overwrites only slices already consumed
 * (`encrypt` copies the nonce into its output before returning).
 */
const noncePool = Buffer.allocUnsafe(NONCE_BYTES * 1024);
let nonceOffset = noncePool.length;
function nextNonce(): Buffer {
  if (nonceOffset + NONCE_BYTES > noncePool.length) {
    randomFillSync(noncePool);
    nonceOffset = 0;
  }
  const nonce = noncePool.subarray(nonceOffset, nonceOffset + NONCE_BYTES);
  nonceOffset += NONCE_BYTES;
  return nonce;
}
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Where a value lives; bound into the ciphertext as associated data. */
export interface FieldAad {
  /** SQL table name (identifier characters only). */
  table: string;
  /** Column (or JSON field) name (identifier characters only). */
  column: string;
  /** The row's primary key. */
  rowId: string | number;
}

export type DecryptionFailure = 'malformed' | 'unknown_key' | 'authentication_failed' | 'invalid_payload' | 'invalid_aad';

/**
 * A stored value could not be decrypted: malformed, unknown key, tampered with, or moved to
 * another row/column/table. Internal (500, not exposed); the message never holds the value.
 */
export class DecryptionError extends AppError {
  readonly reason: DecryptionFailure;

  constructor(reason: DecryptionFailure, cause?: unknown) {
    super('INTERNAL_ERROR', `Decryption failed (${reason}).`, { cause, expose: false, retryable: false });
    this.name = 'DecryptionError';
    this.reason = reason;
  }
}

/** True when `value` looks like a FieldCipher ciphertext (prefix check only, not validity). */
export function isEncrypted(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(CIPHERTEXT_PREFIX);
}

interface ParsedCiphertext {
  kid: KeyId;
  nonce: Buffer;
  body: Buffer;
  tag: Buffer;
}

function parse(ciphertext: string): ParsedCiphertext {
  if (!isEncrypted(ciphertext)) throw new DecryptionError('malformed');
  const rest = ciphertext.slice(CIPHERTEXT_PREFIX.length);
  const sep = rest.indexOf(':');
  if (sep <= 0) throw new DecryptionError('malformed');
  const kid = rest.slice(0, sep);
  const payload = rest.slice(sep + 1);
  if (keyVersion(kid) === null || !BASE64URL.test(payload)) throw new DecryptionError('malformed');
  const bytes = Buffer.from(payload, 'base64url');
  // Node's decoder ignores stray bits in the last character; insist on the canonical encoding so
  // that any change to the stored string is detected, not only changes to the decoded bytes.
  if (bytes.toString('base64url') !== payload || bytes.length < NONCE_BYTES + TAG_BYTES + 1) {
    throw new DecryptionError('malformed');
  }
  return {
    kid,
    nonce: bytes.subarray(0, NONCE_BYTES),
    body: bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES),
    tag: bytes.subarray(bytes.length - TAG_BYTES),
  };
}

/** The key id of a ciphertext, or null when it is not one. */
export function keyIdOf(ciphertext: string): KeyId | null {
  try {
    return parse(ciphertext).kid;
  } catch {
    return null;
  }
}

function aadString(aad: FieldAad): string | null {
  if (!IDENTIFIER.test(aad.table) || !IDENTIFIER.test(aad.column)) return null;
  const rowId = typeof aad.rowId === 'number' ? (Number.isSafeInteger(aad.rowId) ? String(aad.rowId) : '') : aad.rowId;
  if (typeof rowId !== 'string' || rowId.length === 0) return null;
  return `${aad.table}.${aad.column}.${rowId}`;
}

function requireAad(aad: FieldAad): Buffer {
  const s = aadString(aad);
  if (s === null) {
    throw new AppError('INTERNAL_ERROR', 'Invalid encryption context: table/column must be identifiers and rowId non-empty.', {
      expose: false,
      retryable: false,
    });
  }
  return Buffer.from(s, 'utf8');
}

/** Implements the core `FieldCodec` port that repositories use (ARCHITECTURE §1.6). */
export class FieldCipher implements FieldCodec {
  readonly #keys: KeyRing;

  constructor(keyRing: KeyRing) {
    this.#keys = keyRing;
  }

  /** Encrypts `value` (JSON-serialised) with the current key, bound to `aad`. */
  encrypt(value: unknown, aad: FieldAad): string {
    const aadBytes = requireAad(aad);
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (e) {
      throw new AppError('INTERNAL_ERROR', 'The value cannot be serialised for encryption.', { cause: e, expose: false });
    }
    if (json === undefined) {
      throw new AppError('INTERNAL_ERROR', 'The value cannot be serialised for encryption.', { expose: false });
    }
    const kid = this.#keys.current;
    const nonce = nextNonce();
    const cipher = createCipheriv(ALGORITHM, this.#keys.get(kid), nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(aadBytes);
    const body = Buffer.concat([cipher.update(json, 'utf8'), cipher.final()]);
    const payload = Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url');
    return `${CIPHERTEXT_PREFIX}${kid}:${payload}`;
  }

  /** Decrypts a ciphertext made by `encrypt` for the same `aad`; throws `DecryptionError` otherwise. */
  decrypt<T = unknown>(ciphertext: string, aad: FieldAad): T {
    if (typeof ciphertext !== 'string') throw new DecryptionError('malformed');
    const parsed = parse(ciphertext);
    const key = this.#keys.find(parsed.kid);
    if (!key) throw new DecryptionError('unknown_key');
    const aadText = aadString(aad);
    if (aadText === null) throw new DecryptionError('invalid_aad');
    let json: string;
    try {
      const decipher = createDecipheriv(ALGORITHM, key, parsed.nonce, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(aadText, 'utf8'));
      decipher.setAuthTag(parsed.tag);
      json = Buffer.concat([decipher.update(parsed.body), decipher.final()]).toString('utf8');
    } catch (e) {
      throw new DecryptionError('authentication_failed', e);
    }
    try {
      return JSON.parse(json) as T;
    } catch (e) {
      throw new DecryptionError('invalid_payload', e);
    }
  }

  /** True when the ciphertext was written with a key other than the current one. */
  needsReencrypt(ciphertext: string): boolean {
    const kid = keyIdOf(ciphertext);
    return kid !== null && kid !== this.#keys.current;
  }

  /**
   * Decrypts with whatever key wrote it and encrypts again with the current key (rotation).
   * Always produces a fresh ciphertext, even when the key is already current.
   */
  reencrypt(ciphertext: string, aad: FieldAad): string {
    return this.encrypt(this.decrypt(ciphertext, aad), aad);
  }

  /**
   * The stored form of a value of this classification: a ciphertext for `phi` and `restricted`,
   * plain `JSON.stringify(value)` otherwise. A JSON text never starts with `enc:`, so `open`
   * can tell the two apart.
   */
  sealForClassification(value: unknown, classification: DataClassification, aad: FieldAad): string {
    if (requiresEncryption(classification)) return this.encrypt(value, aad);
    const json = JSON.stringify(value) as string | undefined;
    if (json === undefined) {
      throw new AppError('INTERNAL_ERROR', 'The value cannot be serialised.', { expose: false });
    }
    return json;
  }

  /**
   * `FieldCodec.seal`: `sealForClassification` for a classification given as a string. An
   * unknown classification is treated as `phi` (encrypted): fail safe, never fail open.
   */
  seal(value: unknown, classification: string, aad: FieldAad): string {
    return this.sealForClassification(value, isDataClassification(classification) ? classification : 'phi', aad);
  }

  /**
   * Reverses `sealForClassification`: decrypts a ciphertext, parses plain JSON otherwise.
   * Pass the column's `classification` when known: a `phi`/`restricted` value stored in the
   * clear is then refused (a downgrade by someone with write access to the table).
   */
  open<T = unknown>(stored: string, aad: FieldAad, classification?: DataClassification): T {
    if (isEncrypted(stored)) return this.decrypt<T>(stored, aad);
    if (typeof stored !== 'string' || (classification !== undefined && requiresEncryption(classification))) {
      throw new DecryptionError('malformed');
    }
    try {
      return JSON.parse(stored) as T;
    } catch (e) {
      throw new DecryptionError('invalid_payload', e);
    }
  }
}
