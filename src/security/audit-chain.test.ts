import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  AUDIT_BODY_KEYS,
  GENESIS_HASH,
  canonicalBody,
  canonicalJson,
  canonicalPlainBody,
  chainEntry,
  computeEntryHash,
  verifyChain,
  type AuditEntryBody,
  type ChainedAuditEntry,
} from './audit-chain.ts';
import { KeyRing } from './key-ring.ts';

function body(i: number): AuditEntryBody {
  return {
    audit_id: `audit-${i}`,
    timestamp: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
    actor: { type: 'user', id: `user-${i % 3}`, role: 'admin', ip: '10.0.0.1', user_agent: 'vitest' },
    action: i % 2 === 0 ? 'read' : 'update',
    resource_type: 'task',
    resource_id: `task-${i}`,
    fields: ['parameters', 'result'],
    data_classification: 'phi',
    outcome: 'success',
    request_id: `req-${i}`,
    risk_level: 'low',
  };
}

function buildChain(n: number, key?: KeyRing['auditChainKey']): ChainedAuditEntry[] {
  const out: ChainedAuditEntry[] = [];
  let prev = GENESIS_HASH;
  for (let i = 0; i < n; i++) {
    const entry = chainEntry(prev, body(i), key);
    out.push(entry);
    prev = entry.hash;
  }
  return out;
}

describe('canonicalJson', () => {
  it('sorts keys at every depth and is independent of insertion order', () => {
    const a = { b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } };
    const b = { a: { c: 'x', d: [3, { y: 2, z: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe('{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson(b)).toBe(canonicalJson(a));
  });

  it('follows JSON.stringify for scalars, undefined, toJSON and non-finite numbers', () => {
    expect(canonicalJson('é"\n')).toBe(JSON.stringify('é"\n'));
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson({ u: undefined, f: () => 1, n: null })).toBe('{"n":null}');
    expect(canonicalJson([undefined, NaN, Infinity])).toBe('[null,null,null]');
    expect(canonicalJson({ t: new Date('2025-01-01T00:00:00.000Z') })).toBe('{"t":"2025-01-01T00:00:00.000Z"}');
    expect(canonicalJson({ '10': 1, '9': 2, b: 3, B: 4 })).toBe('{"10":1,"9":2,"B":4,"b":3}');
  });

  it('throws on bigint, cycles and a top-level undefined', () => {
    expect(() => canonicalJson({ n: 1n })).toThrow(TypeError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/cyclic/);
    expect(() => canonicalJson(undefined)).toThrow(TypeError);
    // A shared (non-cyclic) reference is fine.
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });
});

describe('computeEntryHash', () => {
  it('is SHA-256 hex over prevHash + canonical JSON of the body', () => {
    const entry = body(1);
    const expected = createHash('sha256').update(GENESIS_HASH + canonicalJson(entry)).digest('hex');
    expect(computeEntryHash(GENESIS_HASH, entry)).toBe(expected);
    expect(GENESIS_HASH).toBe('0'.repeat(64));
  });

  it('ignores row metadata outside the body and key order', () => {
    const entry = body(1);
    const reordered = Object.fromEntries(Object.entries(entry).reverse()) as unknown as AuditEntryBody;
    const withExtras = { ...entry, hash: 'x', prev_hash: 'y', seq: 99 } as AuditEntryBody;
    const h = computeEntryHash(GENESIS_HASH, entry);
    expect(computeEntryHash(GENESIS_HASH, reordered)).toBe(h);
    expect(computeEntryHash(GENESIS_HASH, withExtras)).toBe(h);
  });

  it('changes with the previous hash, with any field, and with the key', () => {
    const entry = body(1);
    const base = computeEntryHash(GENESIS_HASH, entry);
    const ring = KeyRing.fromMasterKey(Buffer.alloc(32, 9));
    const variants = [
      computeEntryHash('1'.repeat(64), entry),
      computeEntryHash(GENESIS_HASH, { ...entry, outcome: 'failure' }),
      computeEntryHash(GENESIS_HASH, { ...entry, actor: { ...entry.actor, ip: '10.0.0.2' } }),
      computeEntryHash(GENESIS_HASH, { ...entry, fields: ['result', 'parameters'] }),
      computeEntryHash(GENESIS_HASH, entry, ring.auditChainKey),
    ];
    expect(new Set([base, ...variants]).size).toBe(6);
  });

  it('covers resource_ids of grouped entries, and leaves single-resource entries hashed as before the field existed', () => {
    const single = body(1);
    const hashBefore = createHash('sha256').update(GENESIS_HASH + canonicalJson(single)).digest('hex');
    expect(computeEntryHash(GENESIS_HASH, { ...single, resource_ids: undefined })).toBe(hashBefore);
    const grouped: AuditEntryBody = { ...single, resource_id: null, resource_ids: ['t-1', 't-2', 't-3'] };
    const h = computeEntryHash(GENESIS_HASH, grouped);
    expect(computeEntryHash(GENESIS_HASH, { ...grouped, resource_ids: ['t-1', 't-2'] })).not.toBe(h);
    expect(computeEntryHash(GENESIS_HASH, { ...grouped, resource_ids: ['t-2', 't-1', 't-3'] })).not.toBe(h);
    const chain = [chainEntry(GENESIS_HASH, grouped)];
    expect(verifyChain(chain).ok).toBe(true);
    expect(verifyChain([{ ...chain[0]!, resource_ids: ['t-1', 't-2', 't-4'] }])).toMatchObject({ ok: false, first_broken: { reason: 'hash_mismatch' } });
  });
});

describe('verifyChain', () => {
  it('accepts an intact chain and reports how many entries it checked', () => {
    const chain = buildChain(10);
    expect(verifyChain(chain)).toEqual({ ok: true, checked: 10, last_hash: chain[9]?.hash });
    expect(verifyChain([])).toEqual({ ok: true, checked: 0, last_hash: GENESIS_HASH });
  });

  it('verifies page by page with anchorHash', () => {
    const chain = buildChain(10);
    const first = verifyChain(chain.slice(0, 4));
    expect(first.ok).toBe(true);
    if (!first.ok) return;
    expect(verifyChain(chain.slice(4), { anchorHash: first.last_hash })).toEqual({
      ok: true,
      checked: 6,
      last_hash: chain[9]?.hash,
    });
    expect(verifyChain(chain.slice(4))).toMatchObject({ ok: false, first_broken: { index: 0, reason: 'prev_hash_mismatch' } });
  });

  it('finds the first broken link after a field edit', () => {
    const chain = buildChain(10);
    chain[4] = { ...chain[4]!, outcome: 'failure' };
    expect(verifyChain(chain)).toEqual({
      ok: false,
      checked: 4,
      first_broken: { audit_id: 'audit-4', index: 4, reason: 'hash_mismatch' },
    });
  });

  it('finds an edit of a nested field and of the stored hash itself', () => {
    const nested = buildChain(5);
    nested[2] = { ...nested[2]!, actor: { ...nested[2]!.actor, role: 'worker' } };
    expect(verifyChain(nested)).toMatchObject({ ok: false, first_broken: { index: 2, reason: 'hash_mismatch' } });

    const rehashed = buildChain(5);
    rehashed[1] = { ...rehashed[1]!, hash: 'f'.repeat(64) };
    expect(verifyChain(rehashed)).toMatchObject({ ok: false, first_broken: { audit_id: 'audit-1', index: 1, reason: 'hash_mismatch' } });
  });

  it('finds the first broken link after a deletion', () => {
    const chain = buildChain(10);
    chain.splice(6, 1);
    expect(verifyChain(chain)).toEqual({
      ok: false,
      checked: 6,
      first_broken: { audit_id: 'audit-7', index: 6, reason: 'prev_hash_mismatch' },
    });
    // Deleting the very first entry is caught too.
    expect(verifyChain(buildChain(3).slice(1))).toMatchObject({ ok: false, first_broken: { audit_id: 'audit-1', index: 0 } });
  });

  it('finds the first broken link after a reorder', () => {
    const chain = buildChain(10);
    const [a, b] = [chain[3]!, chain[4]!];
    chain[3] = b;
    chain[4] = a;
    expect(verifyChain(chain)).toEqual({
      ok: false,
      checked: 3,
      first_broken: { audit_id: 'audit-4', index: 3, reason: 'prev_hash_mismatch' },
    });
  });

  it('a deletion cannot be hidden by re-chaining without the key when the chain is keyed', () => {
    const key = KeyRing.fromMasterKey(Buffer.alloc(32, 9)).auditChainKey;
    const chain = buildChain(5, key);
    expect(verifyChain(chain, { key }).ok).toBe(true);
    expect(verifyChain(chain).ok).toBe(false);
    // An attacker deletes entry 2 and recomputes the rest with plain SHA-256.
    const forged: ChainedAuditEntry[] = chain.slice(0, 2);
    let prev = forged[1]!.hash;
    for (const e of chain.slice(3)) {
      const re = chainEntry(prev, e);
      forged.push(re);
      prev = re.hash;
    }
    expect(verifyChain(forged, { key })).toMatchObject({ ok: false, first_broken: { audit_id: 'audit-3', index: 2, reason: 'hash_mismatch' } });
  });

  it('reports an unhashable entry as invalid_entry', () => {
    const chain = buildChain(3);
    chain[1] = { ...chain[1]!, fields: [1n as unknown as string] };
    expect(verifyChain(chain)).toMatchObject({ ok: false, checked: 1, first_broken: { index: 1, reason: 'invalid_entry' } });
  });
});

describe('canonicalBody', () => {
  const text = fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('', 'é"\\\n\u2028', '\ud800'));
  const maybe = fc.option(text, { nil: null });
  const plain: fc.Arbitrary<AuditEntryBody> = fc.record({
    audit_id: text,
    timestamp: text,
    actor: fc.record({ type: fc.constantFrom('user', 'agent', 'system', 'anonymous'), id: maybe, role: maybe, ip: maybe, user_agent: maybe }, { requiredKeys: [], noNullPrototype: true }) as fc.Arbitrary<AuditEntryBody['actor']>,
    action: text,
    resource_type: text,
    resource_id: maybe,
    resource_ids: fc.array(text, { maxLength: 4 }),
    fields: fc.array(text, { maxLength: 4 }),
    data_classification: fc.constantFrom(null, 'phi', 'pii', 'internal', 'public') as fc.Arbitrary<AuditEntryBody['data_classification']>,
    outcome: fc.constantFrom('success', 'failure', 'denied'),
    request_id: maybe,
    risk_level: fc.constantFrom('low', 'medium', 'high', 'critical'),
  }, { requiredKeys: ['audit_id', 'timestamp', 'actor', 'action', 'resource_type', 'resource_id', 'fields', 'data_classification', 'outcome', 'request_id', 'risk_level'], noNullPrototype: true });
  const generic = (e: AuditEntryBody) => canonicalJson(Object.fromEntries(AUDIT_BODY_KEYS.map((k) => [k, e[k]])));

  it('writes a plain body as canonicalJson does, without the generic walk', () => {
    fc.assert(fc.property(plain, (e) => {
      expect(canonicalPlainBody(e)).toBe(generic(e));
      expect(canonicalBody(e)).toBe(generic(e));
    }), { numRuns: 500 });
  });

  it('leaves any other shape to canonicalJson, with the same text', () => {
    const odd = plain.chain((e) => fc.constantFrom<AuditEntryBody>(
      { ...e, actor: { ...e.actor, extra: 'x' } as AuditEntryBody['actor'] },
      { ...e, fields: [...e.fields, 7 as unknown as string] },
      { ...e, resource_id: 12 as unknown as string },
      { ...e, timestamp: new Date(0) as unknown as string },
    ));
    fc.assert(fc.property(odd, (e) => {
      expect(canonicalPlainBody(e)).toBeNull();
      expect(canonicalBody(e)).toBe(generic(e));
    }), { numRuns: 200 });
  });
});
