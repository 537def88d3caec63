/**
 * KeyRing: the versioned 256-bit keys used for field encryption, plus fixed-purpose keys for
 * blind indexes and the audit chain, all derived with HKDF-SHA256 from one master key.
 *
 * Why derived and not stored: every data key `kN` is `HKDF(master, salt, 'mcp-field-key-v' + N)`,
 * so the whole ring is reproducible from the master key and the number of versions alone
 * (rotation only has to persist a counter, never key material). The master key itself is
 * never used directly to encrypt anything.
 *
 * Keys are held as `KeyObject`s so they cannot be mutated and do not print their bytes when
 * logged.
 */
import { createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { AppError } from '../core/index.ts';

/** Master and data keys are 256 bits. */
export const KEY_BYTES = 32;

/** Fixed HKDF salt: domain separation for this application (not a secret). */
const HKDF_SALT = Buffer.from('mcp-server/key-ring/v1', 'utf8');
const FIELD_KEY_INFO_PREFIX = 'mcp-field-key-v';
const BLIND_INDEX_INFO = 'mcp-blind-index-key-v1';
const AUDIT_CHAIN_INFO = 'mcp-audit-chain-key-v1';

const KID_PATTERN = /^k([1-9][0-9]*)$/;

/** Key ids look like `k1`, `k2`, … (the number is the key version). */
export type KeyId = string;

/**
 * A key ring problem (bad master key, insecure or refused key file). 500 and not exposed:
 * these are configuration faults, and their messages never contain key material.
 */
export class KeyRingError extends AppError {
  constructor(message: string, cause?: unknown) {
    super('INTERNAL_ERROR', message, { cause, expose: false, retryable: false });
    this.name = 'KeyRingError';
  }
}

export interface LoadKeyFileOptions {
  /**
   * When true the call is refused: production must supply an explicit master key from its
   * secret store, never a key generated on disk by the server itself.
   */
  production?: boolean;
  /** Passed to `fromMasterKey`: how many rotations have happened (default 0 → only `k1`). */
  extraVersions?: number;
}

export interface KeyRingOptions {
  /**
   * How many versions beyond the current one `find`/`get` may derive on demand (default 0).
   * A server process that has not yet heard of a rotation made by another process can then
   * still decrypt values written under the new key (keys are derived, so nothing needs to be
   * fetched); it keeps *writing* with its current key until it syncs. A bounded window, so a
   * forged key id cannot make the ring derive and cache keys without limit. Decryption still
   * authenticates: a ciphertext relabelled with another key id fails.
   */
  lookahead?: number;
}

export interface MasterKeyFile {
  masterKey: Buffer;
  /** True when this call generated and wrote the file. */
  created: boolean;
}

function deriveKey(master: KeyObject, info: string): KeyObject {
  return createSecretKey(Buffer.from(hkdfSync('sha256', master, HKDF_SALT, info, KEY_BYTES)));
}

/**
 * Parses a master key: a 32-byte Buffer, or a string holding 32 bytes as hex (64 chars) or
 * base64 / base64url (surrounding whitespace ignored).
 */
export function parseMasterKey(masterKey: Buffer | Uint8Array | string): Buffer {
  let bytes: Buffer;
  if (typeof masterKey === 'string') {
    const s = masterKey.trim();
    if (/^[0-9a-fA-F]{64}$/.test(s)) {
      bytes = Buffer.from(s, 'hex');
    } else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) {
      bytes = Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    } else {
      throw new KeyRingError('The master key must be 32 bytes given as hex or base64.');
    }
  } else {
    bytes = Buffer.from(masterKey);
  }
  if (bytes.length !== KEY_BYTES) {
    throw new KeyRingError(`The master key must be exactly ${KEY_BYTES} bytes (got ${bytes.length}).`);
  }
  return bytes;
}

/** The numeric version of a key id, or null when the id is not of the form `kN`. */
export function keyVersion(kid: string): number | null {
  const m = KID_PATTERN.exec(kid);
  if (!m?.[1]) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * Reads the master key file at `path`, or creates it with a fresh random key (file mode 0600,
 * directory 0700) when it does not exist. For the embedded single-node default only: refused
 * when `production` is set, and refused when the existing file is readable by group/others.
 */
export function loadOrCreateMasterKeyFile(path: string, options: { production?: boolean } = {}): MasterKeyFile {
  if (options.production) {
    throw new KeyRingError('Production requires an explicit master key; a generated key file is refused.');
  }
  const fresh = randomBytes(KEY_BYTES);
  let created = false;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // 'wx': never overwrite — if two processes race, the loser reads the winner's key.
    writeFileSync(path, `${fresh.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    created = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new KeyRingError('Could not create the master key file.', e);
    }
  }
  if (created) {
    // The umask can only remove bits, but be explicit in case the file system ignored `mode`.
    if (process.platform !== 'win32') chmodSync(path, 0o600);
    return { masterKey: fresh, created };
  }
  fresh.fill(0);
  if (process.platform !== 'win32') {
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new KeyRingError(
        `The master key file is accessible by other users (mode ${mode.toString(8)}); run chmod 600 on it.`,
      );
    }
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new KeyRingError('Could not read the master key file.', e);
  }
  return { masterKey: parseMasterKey(text), created: false };
}

export class KeyRing {
  readonly #master: KeyObject;
  readonly #keys = new Map<KeyId, KeyObject>();
  readonly #ahead = new Map<KeyId, KeyObject>();
  readonly #lookahead: number;
  #version = 0;
  /** HMAC key for blind indexes. Fixed (does not rotate): rotating it would orphan every index. */
  readonly blindIndexKey: KeyObject;
  /** HMAC key for the audit hash chain. Fixed for the same reason. */
  readonly auditChainKey: KeyObject;

  private constructor(master: Buffer, versions: number, lookahead: number) {
    this.#master = createSecretKey(master);
    this.#lookahead = lookahead;
    this.blindIndexKey = deriveKey(this.#master, BLIND_INDEX_INFO);
    this.auditChainKey = deriveKey(this.#master, AUDIT_CHAIN_INFO);
    for (let i = 0; i < versions; i++) this.rotate();
  }

  /**
   * Builds the ring from a master key. The ring holds `k1 … k(1 + extraVersions)`; the newest is
   * current. `extraVersions` is the number of rotations performed so far (persisted elsewhere).
   */
  static fromMasterKey(masterKey: Buffer | Uint8Array | string, extraVersions = 0, options: KeyRingOptions = {}): KeyRing {
    if (!Number.isSafeInteger(extraVersions) || extraVersions < 0) {
      throw new KeyRingError('extraVersions must be a non-negative integer.');
    }
    const lookahead = options.lookahead ?? 0;
    if (!Number.isSafeInteger(lookahead) || lookahead < 0 || lookahead > 64) {
      throw new KeyRingError('lookahead must be an integer between 0 and 64.');
    }
    const bytes = parseMasterKey(masterKey);
    try {
      return new KeyRing(bytes, 1 + extraVersions, lookahead);
    } finally {
      bytes.fill(0);
    }
  }

  /** `loadOrCreateMasterKeyFile` + `fromMasterKey`. Refused when `production` is set. */
  static loadOrCreateKeyFile(path: string, options: LoadKeyFileOptions = {}): KeyRing {
    const { masterKey } = loadOrCreateMasterKeyFile(path, options);
    return KeyRing.fromMasterKey(masterKey, options.extraVersions ?? 0);
  }

  /** The id of the key new ciphertexts are written with. */
  get current(): KeyId {
    return `k${this.#version}`;
  }

  /** The current key. */
  get currentKey(): KeyObject {
    return this.get(this.current);
  }

  /** Number of versions in the ring (= the current version). */
  get versions(): number {
    return this.#version;
  }

  /** All key ids, oldest first. */
  get kids(): readonly KeyId[] {
    return [...this.#keys.keys()];
  }

  /** Adds the next key version, makes it current and returns its id. */
  rotate(): KeyId {
    const next = this.#version + 1;
    const kid = `k${next}`;
    this.#keys.set(kid, this.#ahead.get(kid) ?? deriveKey(this.#master, `${FIELD_KEY_INFO_PREFIX}${next}`));
    this.#ahead.delete(kid);
    this.#version = next;
    return kid;
  }

  /**
   * Rotates until the ring holds `versions` versions (a rotation persisted by another process).
   * Never goes back. Returns the kids added.
   */
  syncTo(versions: number): KeyId[] {
    const added: KeyId[] = [];
    while (this.#version < versions) added.push(this.rotate());
    return added;
  }

  has(kid: string): boolean {
    return this.#keys.has(kid);
  }

  /** The key with this id; throws `KeyRingError` for an unknown id. */
  get(kid: string): KeyObject {
    const key = this.#keys.get(kid);
    if (!key) throw new KeyRingError(`Unknown key id ${JSON.stringify(kid.slice(0, 16))}.`);
    return key;
  }

  /**
   * Like `get` but undefined for an unknown id. With a `lookahead` (see `KeyRingOptions`), a
   * version up to that many beyond the current one is derived on demand.
   */
  find(kid: string): KeyObject | undefined {
    const key = this.#keys.get(kid);
    if (key || this.#lookahead === 0) return key;
    const v = keyVersion(kid);
    if (v === null || v <= this.#version || v > this.#version + this.#lookahead) return undefined;
    let ahead = this.#ahead.get(kid);
    if (!ahead) {
      ahead = deriveKey(this.#master, `${FIELD_KEY_INFO_PREFIX}${v}`);
      this.#ahead.set(kid, ahead);
    }
    return ahead;
  }
}
