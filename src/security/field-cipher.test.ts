import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FieldCodec } from '../core/index.ts';
import { DecryptionError, FieldCipher, isEncrypted, keyIdOf, type FieldAad } from './field-cipher.ts';
import { KeyRing } from './key-ring.ts';

const MASTER = Buffer.alloc(32, 0x5a);
const AAD: FieldAad = { table: 'tasks', column: 'parameters', rowId: '0190f1c2-7d3e-7abc-9def-0123456789ab' };

function setup(): { ring: KeyRing; cipher: FieldCipher } {
  const ring = KeyRing.fromMasterKey(MASTER);
  return { ring, cipher: new FieldCipher(ring) };
}

function decryptFailure(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DecryptionError);
    return (e as DecryptionError).reason;
  }
  throw new Error('expected a DecryptionError, but decryption succeeded');
}

/** JSON cannot represent -0; the cipher documents that it comes back as 0. */
function withoutNegativeZero(v: unknown): unknown {
  if (Object.is(v, -0)) return 0;
  if (Array.isArray(v)) return v.map(withoutNegativeZero);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      Object.defineProperty(out, k, { value: withoutNegativeZero(x), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return v;
}

describe('FieldCipher', () => {
  it('round-trips values and the stored form has the documented shape', () => {
    const { cipher } = setup();
    const value = { patient_id: 'P-123', notes: 'Patient reports anxiety 😟', scores: [1, 2.5, null], ok: true };
    const ct = cipher.encrypt(value, AAD);
    expect(ct).toMatch(/^enc:v1:k1:[A-Za-z0-9_-]+$/);
    expect(isEncrypted(ct)).toBe(true);
    expect(keyIdOf(ct)).toBe('k1');
    expect(ct).not.toContain('P-123');
    expect(cipher.decrypt(ct, AAD)).toEqual(value);
    // 12-byte nonce + plaintext + 16-byte tag
    const payload = Buffer.from(ct.split(':')[3] ?? '', 'base64url');
    expect(payload.length).toBe(12 + Buffer.byteLength(JSON.stringify(value)) + 16);
  });

  it.each([['a string'], [''], [0], [-12.5], [true], [false], [null], [[]], [{}], [{ nested: { deep: ['x'] } }]])(
    'round-trips %j',
    (value) => {
      const { cipher } = setup();
      expect(cipher.decrypt(cipher.encrypt(value, AAD), AAD)).toEqual(value);
    },
  );

  it('accepts numeric row ids', () => {
    const { cipher } = setup();
    const aad = { table: 'users', column: 'totp_secret', rowId: 42 };
    expect(cipher.decrypt(cipher.encrypt('s', aad), aad)).toBe('s');
    expect(cipher.decrypt(cipher.encrypt('s', aad), { ...aad, rowId: '42' })).toBe('s');
  });

  it('encrypts the same plaintext to different ciphertexts (fresh nonce)', () => {
    const { cipher } = setup();
    // 2,500 values: more than two refills of the nonce pool (1,024 nonces each).
    const list = Array.from({ length: 2500 }, () => cipher.encrypt('same', AAD));
    expect(new Set(list).size).toBe(2500);
    const nonces = new Set(list.map((ct) => Buffer.from(ct.split(':')[3] ?? '', 'base64url').subarray(0, 12).toString('hex')));
    expect(nonces.size).toBe(2500);
    for (const ct of list.slice(0, 5).concat(list.slice(-5))) expect(cipher.decrypt(ct, AAD)).toBe('same');
  });

  it('fails closed when any single bit of the payload bytes is flipped', () => {
    const { cipher } = setup();
    const ct = cipher.encrypt({ v: 'secret' }, AAD);
    const [prefix, version, kid, payload] = ct.split(':') as [string, string, string, string];
    const bytes = Buffer.from(payload, 'base64url');
    let attempts = 0;
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = Buffer.from(bytes);
        copy[i] = (copy[i] ?? 0) ^ (1 << bit);
        const tampered = `${prefix}:${version}:${kid}:${copy.toString('base64url')}`;
        expect(decryptFailure(() => cipher.decrypt(tampered, AAD))).toBe('authentication_failed');
        attempts++;
      }
    }
    expect(attempts).toBe(bytes.length * 8);
  });

  it('fails closed when any single bit of any character of the stored string is flipped', () => {
    const { cipher } = setup();
    const ct = cipher.encrypt('x', AAD);
    const reasons = new Set<string>();
    for (let i = 0; i < ct.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const ch = String.fromCharCode(ct.charCodeAt(i) ^ (1 << bit));
        const tampered = ct.slice(0, i) + ch + ct.slice(i + 1);
        reasons.add(decryptFailure(() => cipher.decrypt(tampered, AAD)));
      }
    }
    expect([...reasons].sort()).toEqual(['authentication_failed', 'malformed', 'unknown_key']);
  });

  it('fails closed for truncation, extension and garbage', () => {
    const { cipher } = setup();
    const ct = cipher.encrypt('x', AAD);
    for (const bad of [ct.slice(0, -1), ct.slice(0, -4), `${ct}AAAA`, 'enc:v1:k1:', 'enc:v1:k1', 'enc:v2:k1:AAAA', 'enc:v1::AAAA', 'plain', '']) {
      expect(['malformed', 'authentication_failed']).toContain(decryptFailure(() => cipher.decrypt(bad, AAD)));
    }
  });

  it.each([
    ['another row', { ...AAD, rowId: '0190f1c2-7d3e-7abc-9def-0123456789ac' }],
    ['another column', { ...AAD, column: 'result' }],
    ['another table', { ...AAD, table: 'pipelines' }],
  ])('a ciphertext moved to %s fails', (_label, moved) => {
    const { cipher } = setup();
    const ct = cipher.encrypt('secret', AAD);
    expect(decryptFailure(() => cipher.decrypt(ct, moved))).toBe('authentication_failed');
  });

  it('refuses ambiguous contexts: identifiers only for table/column, non-empty rowId', () => {
    const { cipher } = setup();
    expect(() => cipher.encrypt('x', { table: 'a.b', column: 'c', rowId: '1' })).toThrow(/Invalid encryption context/);
    expect(() => cipher.encrypt('x', { table: 'a', column: '', rowId: '1' })).toThrow(/Invalid encryption context/);
    expect(() => cipher.encrypt('x', { table: 'a', column: 'b', rowId: '' })).toThrow(/Invalid encryption context/);
    expect(() => cipher.encrypt('x', { table: 'a', column: 'b', rowId: 1.5 })).toThrow(/Invalid encryption context/);
    const ct = cipher.encrypt('x', AAD);
    expect(decryptFailure(() => cipher.decrypt(ct, { ...AAD, table: 'tasks.parameters' }))).toBe('invalid_aad');
  });

  it('refuses values JSON cannot represent', () => {
    const { cipher } = setup();
    expect(() => cipher.encrypt(undefined, AAD)).toThrow(/cannot be serialised/);
    expect(() => cipher.encrypt(() => 1, AAD)).toThrow(/cannot be serialised/);
    expect(() => cipher.encrypt(10n, AAD)).toThrow(/cannot be serialised/);
  });

  it('fails with unknown_key for a kid the ring does not hold, and a different master cannot decrypt', () => {
    const { cipher } = setup();
    const ct = cipher.encrypt('x', AAD);
    expect(decryptFailure(() => cipher.decrypt(ct.replace(':k1:', ':k9:'), AAD))).toBe('unknown_key');
    const other = new FieldCipher(KeyRing.fromMasterKey(Buffer.alloc(32, 1)));
    expect(decryptFailure(() => other.decrypt(ct, AAD))).toBe('authentication_failed');
  });

  it('a DecryptionError does not expose its message or any value', () => {
    const { cipher } = setup();
    try {
      cipher.decrypt(cipher.encrypt('P-SECRET', AAD), { ...AAD, rowId: 'other' });
      expect.unreachable();
    } catch (e) {
      const err = e as DecryptionError;
      expect(err.status).toBe(500);
      expect(err.toJSON()).toEqual({ code: 'INTERNAL_ERROR', message: 'An internal error occurred.' });
      expect(String(err.message)).not.toContain('P-SECRET');
    }
  });

  it('after rotate, old-kid ciphertexts still decrypt and reencrypt moves them to the new kid', () => {
    const { ring, cipher } = setup();
    const old = cipher.encrypt({ a: 1 }, AAD);
    expect(cipher.needsReencrypt(old)).toBe(false);
    expect(ring.rotate()).toBe('k2');
    expect(cipher.needsReencrypt(old)).toBe(true);
    expect(cipher.decrypt(old, AAD)).toEqual({ a: 1 });
    const fresh = cipher.encrypt({ b: 2 }, AAD);
    expect(keyIdOf(fresh)).toBe('k2');
    const moved = cipher.reencrypt(old, AAD);
    expect(keyIdOf(moved)).toBe('k2');
    expect(cipher.needsReencrypt(moved)).toBe(false);
    expect(cipher.decrypt(moved, AAD)).toEqual({ a: 1 });
    // A ring rebuilt from the master key alone reads both generations.
    const rebuilt = new FieldCipher(KeyRing.fromMasterKey(MASTER, 1));
    expect(rebuilt.decrypt(old, AAD)).toEqual({ a: 1 });
    expect(rebuilt.decrypt(moved, AAD)).toEqual({ a: 1 });
    // ...but a ring that has not seen the rotation refuses the new kid.
    expect(decryptFailure(() => new FieldCipher(KeyRing.fromMasterKey(MASTER)).decrypt(moved, AAD))).toBe('unknown_key');
    // reencrypt still authenticates the context: it cannot launder a moved ciphertext.
    expect(decryptFailure(() => cipher.reencrypt(old, { ...AAD, rowId: 'elsewhere' }))).toBe('authentication_failed');
  });

  it('property: decrypt(encrypt(x)) deep-equals x for arbitrary JSON values (-0 becomes 0)', () => {
    const { cipher } = setup();
    fc.assert(
      fc.property(fc.jsonValue(), fc.string({ minLength: 1 }), (value, rowId) => {
        const aad = { table: 'tasks', column: 'result', rowId };
        expect(cipher.decrypt(cipher.encrypt(value, aad), aad)).toStrictEqual(withoutNegativeZero(value));
      }),
      { numRuns: 300 },
    );
    expect(cipher.decrypt(cipher.encrypt(-0, AAD), AAD)).toBe(0);
  });
});

describe('sealForClassification / open', () => {
  it.each([
    ['phi', true],
    ['restricted', true],
    ['confidential', false],
    ['internal', false],
    ['public', false],
  ] as const)('%s → encrypted: %s', (classification, encrypted) => {
    const { cipher } = setup();
    const value = { text: 'hello', n: 3 };
    const stored = cipher.sealForClassification(value, classification, AAD);
    expect(isEncrypted(stored)).toBe(encrypted);
    if (!encrypted) expect(stored).toBe(JSON.stringify(value));
    expect(cipher.open(stored, AAD)).toEqual(value);
    expect(cipher.open(stored, AAD, classification)).toEqual(value);
  });

  it('a plain string value cannot be mistaken for a ciphertext', () => {
    const { cipher } = setup();
    const stored = cipher.sealForClassification('enc:v1:k1:AAAA', 'public', AAD);
    expect(isEncrypted(stored)).toBe(false);
    expect(cipher.open(stored, AAD)).toBe('enc:v1:k1:AAAA');
  });

  it('open refuses a phi/restricted value stored in the clear (downgrade) when told the classification', () => {
    const { cipher } = setup();
    const plain = JSON.stringify({ injected: true });
    expect(decryptFailure(() => cipher.open(plain, AAD, 'phi'))).toBe('malformed');
    expect(decryptFailure(() => cipher.open(plain, AAD, 'restricted'))).toBe('malformed');
    expect(cipher.open(plain, AAD, 'internal')).toEqual({ injected: true });
  });

  it('open fails closed on invalid JSON and on a moved ciphertext', () => {
    const { cipher } = setup();
    expect(decryptFailure(() => cipher.open('{not json', AAD))).toBe('invalid_payload');
    const stored = cipher.sealForClassification('x', 'phi', AAD);
    expect(decryptFailure(() => cipher.open(stored, { ...AAD, column: 'other' }))).toBe('authentication_failed');
  });
});

describe('FieldCodec port', () => {
  it('FieldCipher is a FieldCodec: seal encrypts phi/restricted and unknown classifications, open reverses it', () => {
    const codec: FieldCodec = setup().cipher;
    const aad = { table: 'pipelines', column: 'input', rowId: 'p1' };
    for (const c of ['phi', 'restricted', 'PHI', 'secret', '']) {
      const stored = codec.seal({ x: 1 }, c, aad);
      expect(isEncrypted(stored)).toBe(true);
      expect(codec.open(stored, aad)).toEqual({ x: 1 });
    }
    expect(codec.seal({ x: 1 }, 'internal', aad)).toBe('{"x":1}');
  });
});
