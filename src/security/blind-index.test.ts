import { describe, expect, it } from 'vitest';
import { BLIND_INDEX_LENGTH, BlindIndex, normalizeForBlindIndex } from './blind-index.ts';
import { KeyRing } from './key-ring.ts';

const MASTER = Buffer.alloc(32, 3);

describe('BlindIndex', () => {
  it('is deterministic for the same key and 32 base64url characters long', () => {
    const a = new BlindIndex(KeyRing.fromMasterKey(MASTER));
    const b = new BlindIndex(KeyRing.fromMasterKey(MASTER));
    const idx = a.compute('patient_id', 'P-000123');
    expect(idx).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(idx).toHaveLength(BLIND_INDEX_LENGTH);
    expect(b.compute('patient_id', 'P-000123')).toBe(idx);
    expect(idx).not.toContain('000123');
  });

  it('normalises: surrounding whitespace and case do not matter, NFC and NFD forms match', () => {
    const bi = new BlindIndex(KeyRing.fromMasterKey(MASTER));
    const base = bi.compute('patient_id', 'p-000123');
    expect(bi.compute('patient_id', '  P-000123\t\n')).toBe(base);
    expect(bi.compute('session_id', 'Café')).toBe(bi.compute('session_id', 'cafe\u0301'));
    expect(normalizeForBlindIndex('  ÀB c ')).toBe('àb c');
  });

  it('different values, purposes and keys give different indexes', () => {
    const bi = new BlindIndex(KeyRing.fromMasterKey(MASTER));
    const other = new BlindIndex(KeyRing.fromMasterKey(Buffer.alloc(32, 4)));
    const values = new Set([
      bi.compute('patient_id', 'P-1'),
      bi.compute('patient_id', 'P-2'),
      bi.compute('patient_id', 'P 1'),
      bi.compute('session_id', 'P-1'),
      other.compute('patient_id', 'P-1'),
    ]);
    expect(values.size).toBe(5);
  });

  it('does not change when the data key rotates', () => {
    const ring = KeyRing.fromMasterKey(MASTER);
    const before = new BlindIndex(ring).compute('session_id', 'S-9');
    ring.rotate();
    expect(new BlindIndex(ring).compute('session_id', 'S-9')).toBe(before);
    expect(new BlindIndex(ring.blindIndexKey).compute('session_id', 'S-9')).toBe(before);
  });

  it('rejects an unknown purpose at run time', () => {
    const bi = new BlindIndex(KeyRing.fromMasterKey(MASTER));
    expect(() => bi.compute('email' as 'patient_id', 'x')).toThrow(/Unknown blind index purpose/);
  });
});
