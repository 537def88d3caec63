import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KeyRing, KeyRingError, keyVersion, parseMasterKey } from './key-ring.ts';

const MASTER = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');

function bytes(ring: KeyRing, kid: string): string {
  return ring.get(kid).export().toString('hex');
}

describe('parseMasterKey', () => {
  it('accepts 32 bytes as Buffer, hex, base64 and base64url, all equal', () => {
    const hex = MASTER.toString('hex');
    expect(parseMasterKey(MASTER).equals(MASTER)).toBe(true);
    expect(parseMasterKey(hex).equals(MASTER)).toBe(true);
    expect(parseMasterKey(hex.toUpperCase()).equals(MASTER)).toBe(true);
    expect(parseMasterKey(MASTER.toString('base64')).equals(MASTER)).toBe(true);
    expect(parseMasterKey(` ${MASTER.toString('base64url')}\n`).equals(MASTER)).toBe(true);
  });

  it.each([
    ['16 bytes', Buffer.alloc(16)],
    ['33 bytes', Buffer.alloc(33)],
    ['short hex', 'abcd'],
    ['base64 of 31 bytes', Buffer.alloc(31, 1).toString('base64')],
    ['not an encoding', 'this is not a key!'],
    ['empty', ''],
  ])('rejects %s', (_label, input) => {
    expect(() => parseMasterKey(input)).toThrow(KeyRingError);
  });
});

describe('KeyRing', () => {
  it('starts at k1, derives keys reproducibly from the master key alone', () => {
    const a = KeyRing.fromMasterKey(MASTER);
    const b = KeyRing.fromMasterKey(MASTER.toString('hex'));
    expect(a.current).toBe('k1');
    expect(a.versions).toBe(1);
    expect(a.kids).toEqual(['k1']);
    expect(bytes(a, 'k1')).toBe(bytes(b, 'k1'));
    expect(a.get('k1').symmetricKeySize).toBe(32);
    // The master key is never used directly.
    expect(bytes(a, 'k1')).not.toBe(MASTER.toString('hex'));
  });

  it('rotate adds the next version and makes it current; the same ring is rebuilt with extraVersions', () => {
    const ring = KeyRing.fromMasterKey(MASTER);
    expect(ring.rotate()).toBe('k2');
    expect(ring.rotate()).toBe('k3');
    expect(ring.current).toBe('k3');
    expect(ring.kids).toEqual(['k1', 'k2', 'k3']);
    const rebuilt = KeyRing.fromMasterKey(MASTER, 2);
    expect(rebuilt.current).toBe('k3');
    for (const kid of ['k1', 'k2', 'k3']) expect(bytes(rebuilt, kid)).toBe(bytes(ring, kid));
    expect(new Set(ring.kids.map((k) => bytes(ring, k))).size).toBe(3);
  });

  it('different master keys give different keys', () => {
    const a = KeyRing.fromMasterKey(MASTER);
    const b = KeyRing.fromMasterKey(randomBytes(32));
    expect(bytes(a, 'k1')).not.toBe(bytes(b, 'k1'));
    expect(a.blindIndexKey.export().equals(b.blindIndexKey.export())).toBe(false);
  });

  it('blind-index and audit keys are distinct from data keys and do not change on rotation', () => {
    const ring = KeyRing.fromMasterKey(MASTER);
    const blind = ring.blindIndexKey.export().toString('hex');
    const audit = ring.auditChainKey.export().toString('hex');
    ring.rotate();
    expect(ring.blindIndexKey.export().toString('hex')).toBe(blind);
    expect(ring.auditChainKey.export().toString('hex')).toBe(audit);
    expect(new Set([blind, audit, bytes(ring, 'k1'), bytes(ring, 'k2')]).size).toBe(4);
  });

  it('get throws for an unknown kid, find returns undefined, has answers', () => {
    const ring = KeyRing.fromMasterKey(MASTER);
    expect(() => ring.get('k2')).toThrow(KeyRingError);
    expect(ring.find('k2')).toBeUndefined();
    expect(ring.has('k1')).toBe(true);
    expect(ring.has('k2')).toBe(false);
  });

  it('rejects a negative or fractional extraVersions', () => {
    expect(() => KeyRing.fromMasterKey(MASTER, -1)).toThrow(KeyRingError);
    expect(() => KeyRing.fromMasterKey(MASTER, 1.5)).toThrow(KeyRingError);
  });

  it('does not keep a reference to the caller’s buffer', () => {
    const master = Buffer.from(MASTER);
    const ring = KeyRing.fromMasterKey(master);
    master.fill(7);
    expect(bytes(ring, 'k1')).toBe(bytes(KeyRing.fromMasterKey(MASTER), 'k1'));
    expect(ring.rotate()).toBe('k2');
    expect(bytes(ring, 'k2')).toBe(bytes(KeyRing.fromMasterKey(MASTER, 1), 'k2'));
  });
});

describe('KeyRing lookahead and syncTo', () => {
  const exported = (k: import('node:crypto').KeyObject | undefined) => k?.export().toString('hex');

  it('derives up to `lookahead` newer versions on demand for decryption, never beyond, and keeps writing with the current key', () => {
    const ring = KeyRing.fromMasterKey(MASTER, 0, { lookahead: 2 });
    const ahead = KeyRing.fromMasterKey(MASTER, 2);
    expect(ring.current).toBe('k1');
    expect(exported(ring.find('k2'))).toBe(bytes(ahead, 'k2'));
    expect(exported(ring.find('k3'))).toBe(bytes(ahead, 'k3'));
    expect(ring.find('k4')).toBeUndefined();
    expect(ring.find('k0')).toBeUndefined();
    expect(() => ring.get('k2')).toThrow(KeyRingError);
    expect(ring.kids).toEqual(['k1']);
    expect(ring.current).toBe('k1');
  });

  it('syncTo rotates forward to a persisted count, never back; the window moves with it', () => {
    const ring = KeyRing.fromMasterKey(MASTER, 0, { lookahead: 1 });
    expect(ring.syncTo(3)).toEqual(['k2', 'k3']);
    expect(ring.syncTo(2)).toEqual([]);
    expect(ring.current).toBe('k3');
    expect(bytes(ring, 'k3')).toBe(bytes(KeyRing.fromMasterKey(MASTER, 2), 'k3'));
    expect(ring.find('k4')).toBeDefined();
    expect(ring.find('k5')).toBeUndefined();
  });

  it('refuses a lookahead outside 0..64', () => {
    expect(() => KeyRing.fromMasterKey(MASTER, 0, { lookahead: -1 })).toThrow(KeyRingError);
    expect(() => KeyRing.fromMasterKey(MASTER, 0, { lookahead: 65 })).toThrow(KeyRingError);
  });
});

describe('keyVersion', () => {
  it.each([
    ['k1', 1],
    ['k42', 42],
    ['k0', null],
    ['k01', null],
    ['K1', null],
    ['k', null],
    ['k1x', null],
    ['', null],
  ])('%s → %s', (kid, expected) => {
    expect(keyVersion(kid)).toBe(expected);
  });
});
