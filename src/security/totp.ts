/**
 * TOTP second factor (RFC 6238 via otplib v13): 30 s step, SHA-1, 6 digits, ±1 step accepted,
 * and a code is never accepted twice — the caller stores the step of the last accepted code and
 * passes it back; any code for that step or an earlier one is refused.
 *
 * Recovery codes: 16 random Crockford base32 characters (80 bits) shown once as
 * `XXXX-XXXX-XXXX-XXXX`; only their SHA-256 is stored. A plain hash is enough because the
 * codes are high-entropy random values, not passwords.
 */
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { generateSecret as otpGenerateSecret, generateSync, generateURI, verifySync } from 'otplib';

export const TOTP_PERIOD_SECONDS = 30;
export const TOTP_DIGITS = 6;
/** Steps accepted either side of the current one. */
export const TOTP_WINDOW_STEPS = 1;
/** Secret size in bytes (160 bits, the RFC 4226 recommendation). */
const SECRET_BYTES = 20;

const RECOVERY_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const RECOVERY_CODE_CHARS = 16;

export type TotpVerification = { ok: true; step: number } | { ok: false };

/** A new random Base32 secret for an authenticator app. */
export function generateSecret(): string {
  return otpGenerateSecret({ length: SECRET_BYTES });
}

/** The `otpauth://totp/…` URI to show as a QR code. */
export function otpauthUrl(username: string, secret: string, issuer = 'MCP Server'): string {
  return generateURI({
    issuer,
    label: username,
    secret,
    algorithm: 'sha1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
  });
}

/** The TOTP time step containing `now` (ms since the epoch). */
export function totpStep(now: number = Date.now()): number {
  return Math.floor(now / 1000 / TOTP_PERIOD_SECONDS);
}

/** The code for the step containing `now` (what an authenticator app would show). */
export function generateTotp(secret: string, now: number = Date.now()): string {
  return generateSync({
    secret,
    algorithm: 'sha1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
    epoch: Math.floor(now / 1000),
  });
}

/**
 * Checks `code` against the steps `current − 1 … current + 1`. Refuses a code whose step is
 * ≤ `lastUsedStep` (replay). On success returns the matched step, which the caller must store
 * as the new `lastUsedStep` (atomically, e.g. `UPDATE … WHERE last_step < $step`).
 */
export function verifyTotp(secret: string, code: string, lastUsedStep: number | null, now: number = Date.now()): TotpVerification {
  const token = typeof code === 'string' ? code.replace(/\s+/g, '') : '';
  if (!/^[0-9]{6}$/.test(token)) return { ok: false };
  const result = verifySync({
    secret,
    token,
    algorithm: 'sha1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
    epoch: Math.floor(now / 1000),
    epochTolerance: TOTP_WINDOW_STEPS * TOTP_PERIOD_SECONDS,
    ...(lastUsedStep === null ? {} : { afterTimeStep: lastUsedStep }),
  });
  if (!result.valid || !('timeStep' in result)) return { ok: false };
  const step = result.timeStep;
  // Belt and braces: enforce the window and the replay rule here too, whatever the library does.
  if (Math.abs(step - totpStep(now)) > TOTP_WINDOW_STEPS) return { ok: false };
  if (lastUsedStep !== null && step <= lastUsedStep) return { ok: false };
  return { ok: true, step };
}

function randomRecoveryCode(): string {
  let raw = '';
  for (let i = 0; i < RECOVERY_CODE_CHARS; i++) raw += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)];
  return raw.match(/.{4}/g)?.join('-') ?? raw;
}

/** `n` fresh recovery codes (shown to the user once; store only `hashRecoveryCode` of each). */
export function generateRecoveryCodes(n = 10): string[] {
  if (!Number.isSafeInteger(n) || n < 1 || n > 100) throw new RangeError('n must be an integer from 1 to 100.');
  const codes = new Set<string>();
  while (codes.size < n) codes.add(randomRecoveryCode());
  return [...codes];
}

/**
 * Canonical form of a typed recovery code: case, spaces and dashes ignored, and the Crockford
 * look-alikes `O` → `0`, `I`/`L` → `1`.
 */
export function normalizeRecoveryCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]+/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
}

/** SHA-256 hex of the normalised code. */
export function hashRecoveryCode(code: string): string {
  return createHash('sha256').update(normalizeRecoveryCode(code), 'utf8').digest('hex');
}

/**
 * The stored hash `code` matches, or null. Compares against every hash in constant time per
 * hash; the caller deletes the matched hash so each code works once.
 */
export function matchRecoveryCode(code: string, hashes: readonly string[]): string | null {
  const candidate = Buffer.from(hashRecoveryCode(code), 'hex');
  let match: string | null = null;
  for (const hash of hashes) {
    const stored = Buffer.from(hash, 'hex');
    if (stored.length === candidate.length && timingSafeEqual(stored, candidate) && match === null) match = hash;
  }
  return match;
}
