import { describe, expect, it } from 'vitest';
import {
  TOTP_PERIOD_SECONDS,
  generateRecoveryCodes,
  generateSecret,
  generateTotp,
  hashRecoveryCode,
  matchRecoveryCode,
  normalizeRecoveryCode,
  otpauthUrl,
  totpStep,
  verifyTotp,
} from './totp.ts';

// RFC 6238 appendix B secret ("12345678901234567890") in Base32.
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const STEP_MS = TOTP_PERIOD_SECONDS * 1000;
// The middle of a step, so that "±n steps" is unambiguous.
const NOW = 1_750_000_005_000;
const STEP = totpStep(NOW);

describe('TOTP', () => {
  it('matches the RFC 6238 SHA-1 test vectors (last 6 digits)', () => {
    expect(generateTotp(RFC_SECRET, 59_000)).toBe('287082');
    expect(generateTotp(RFC_SECRET, 1_111_111_109_000)).toBe('081804');
    expect(generateTotp(RFC_SECRET, 1_234_567_890_000)).toBe('005924');
    expect(generateTotp(RFC_SECRET, 20_000_000_000_000)).toBe('353130');
  });

  it('generateSecret gives distinct 160-bit Base32 secrets', () => {
    const a = generateSecret();
    const b = generateSecret();
    expect(a).toMatch(/^[A-Z2-7]{32}$/);
    expect(a).not.toBe(b);
    expect(generateTotp(a, NOW)).toMatch(/^[0-9]{6}$/);
  });

  it('otpauthUrl names the issuer, account and parameters', () => {
    const url = new URL(otpauthUrl('alice@example.com', RFC_SECRET));
    expect(url.protocol).toBe('otpauth:');
    expect(url.host).toBe('totp');
    expect(decodeURIComponent(url.pathname)).toBe('/MCP Server:alice@example.com');
    expect(url.searchParams.get('secret')).toBe(RFC_SECRET);
    expect(url.searchParams.get('issuer')).toBe('MCP Server');
    expect(new URL(otpauthUrl('bob', RFC_SECRET, 'Acme')).searchParams.get('issuer')).toBe('Acme');
  });

  it('accepts the current code and returns its step', () => {
    const secret = generateSecret();
    expect(verifyTotp(secret, generateTotp(secret, NOW), null, NOW)).toEqual({ ok: true, step: STEP });
  });

  it.each([-1, 1])('accepts a code %i step(s) away', (delta) => {
    const secret = generateSecret();
    const code = generateTotp(secret, NOW + delta * STEP_MS);
    expect(verifyTotp(secret, code, null, NOW)).toEqual({ ok: true, step: STEP + delta });
  });

  it.each([-2, 2, -3, 3, 10])('refuses a code %i steps away', (delta) => {
    // Fixed secret and time: deterministic, and checked not to collide with an in-window code.
    const code = generateTotp(RFC_SECRET, NOW + delta * STEP_MS);
    const inWindow = [-1, 0, 1].map((d) => generateTotp(RFC_SECRET, NOW + d * STEP_MS));
    expect(inWindow).not.toContain(code);
    expect(verifyTotp(RFC_SECRET, code, null, NOW)).toEqual({ ok: false });
  });

  it('window edges: the first and last millisecond of the step behave the same', () => {
    const secret = generateSecret();
    const start = STEP * STEP_MS;
    const end = start + STEP_MS - 1;
    for (const now of [start, end]) {
      expect(verifyTotp(secret, generateTotp(secret, now - STEP_MS), null, now)).toEqual({ ok: true, step: STEP - 1 });
      expect(verifyTotp(secret, generateTotp(secret, now + STEP_MS), null, now)).toEqual({ ok: true, step: STEP + 1 });
    }
  });

  it('never accepts the same step twice, nor an older one', () => {
    const secret = generateSecret();
    const code = generateTotp(secret, NOW);
    const first = verifyTotp(secret, code, null, NOW);
    expect(first).toEqual({ ok: true, step: STEP });
    if (!first.ok) return;
    expect(verifyTotp(secret, code, first.step, NOW)).toEqual({ ok: false });
    expect(verifyTotp(secret, code, first.step, NOW + 10_000)).toEqual({ ok: false });
    // An older (still in-window) code after a newer one was used.
    const previous = generateTotp(secret, NOW - STEP_MS);
    expect(verifyTotp(secret, previous, first.step, NOW)).toEqual({ ok: false });
    // The next step's code is still fine.
    const next = generateTotp(secret, NOW + STEP_MS);
    expect(verifyTotp(secret, next, first.step, NOW + STEP_MS)).toEqual({ ok: true, step: STEP + 1 });
  });

  it('refuses malformed codes and the wrong secret without throwing', () => {
    const secret = generateSecret();
    const code = generateTotp(secret, NOW);
    for (const bad of ['', '12345', '1234567', 'abcdef', '12 34 5', `${code}0`]) {
      expect(verifyTotp(secret, bad, null, NOW)).toEqual({ ok: false });
    }
    const rfcCode = generateTotp(RFC_SECRET, NOW);
    const other = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
    expect([-1, 0, 1].map((d) => generateTotp(other, NOW + d * STEP_MS))).not.toContain(rfcCode);
    expect(verifyTotp(other, rfcCode, null, NOW)).toEqual({ ok: false });
    expect(verifyTotp(RFC_SECRET, rfcCode, null, NOW)).toEqual({ ok: true, step: STEP });
    // Spaces typed by the user are tolerated.
    expect(verifyTotp(secret, `${code.slice(0, 3)} ${code.slice(3)}`, null, NOW)).toEqual({ ok: true, step: STEP });
  });
});

describe('recovery codes', () => {
  it('generates n distinct XXXX-XXXX-XXXX-XXXX codes (default 10)', () => {
    const codes = generateRecoveryCodes();
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const c of codes) expect(c).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
    expect(generateRecoveryCodes(3)).toHaveLength(3);
    expect(() => generateRecoveryCodes(0)).toThrow(RangeError);
  });

  it('hashes to SHA-256 hex, insensitive to case, dashes, spaces and Crockford look-alikes', () => {
    const h = hashRecoveryCode('AB1C-D0EF-GH1J-KMNP');
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(hashRecoveryCode('AB1C-D0EF-GH1J-KMNQ')).not.toBe(h);
    expect(hashRecoveryCode('ab1c d0ef ghij kmnp')).toBe(h);
    expect(hashRecoveryCode('abic-doef-gh1j-kmnp')).toBe(h);
    expect(hashRecoveryCode(' AB1CD0EFGH1JKMNP ')).toBe(h);
    expect(hashRecoveryCode('ABLC-D0EF-GH1J-KMNP')).toBe(h);
    expect(normalizeRecoveryCode('ab-io-l o')).toBe('AB1010');
  });

  it('matchRecoveryCode returns the matching stored hash or null', () => {
    const codes = generateRecoveryCodes(5);
    const hashes = codes.map(hashRecoveryCode);
    expect(matchRecoveryCode(codes[2]!, hashes)).toBe(hashes[2]);
    expect(matchRecoveryCode(codes[2]!.toLowerCase().replace(/-/g, ''), hashes)).toBe(hashes[2]);
    expect(matchRecoveryCode('0000-0000-0000-0000', hashes)).toBeNull();
    expect(matchRecoveryCode(codes[0]!, [])).toBeNull();
    expect(matchRecoveryCode(codes[0]!, ['not-hex', ...hashes])).toBe(hashes[0]);
    // Once the caller deletes the used hash the code no longer works.
    expect(matchRecoveryCode(codes[2]!, hashes.filter((h) => h !== hashes[2]))).toBeNull();
  });
});
