/**
 * FHE aggregation end to end (SPEC §9): a client builds its own CKKS context and keys from
 * GET /fhe/params with Microsoft SEAL (node-seal), encrypts score vectors, and the server returns
 * encrypted sum / mean / weighted_sum that only the client's secret key decrypts. Bad
 * ciphertexts, foreign parameters and bad weights are refused with a field; the route is
 * permissioned and audited.
 */
import sealModule from 'node-seal';
import type { SEALLibrary } from 'node-seal/implementation/seal.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, userToken, type TestServer } from '../helpers/server.ts';

const loadSeal = ((sealModule as unknown as { default?: () => Promise<SEALLibrary> }).default ?? sealModule) as unknown as () => Promise<SEALLibrary>;

interface Params { encryption_parameters: string; scale: number; slot_count: number; max_ciphertexts: number; operations: string[]; poly_modulus_degree: number }

describe('FHE aggregation over HTTP', () => {
  let t: TestServer;
  let seal: SEALLibrary;
  let params: Params;
  let client: {
    encrypt: (values: number[]) => string;
    decrypt: (ciphertext: string, n: number) => number[];
  };

  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'security.fhe_max_ciphertexts': 8 });
    seal = await loadSeal();
    const r = await t.api<Params>('GET', '/api/v1/fhe/params', { token: t.adminToken });
    expect(r.status).toBe(200);
    params = r.body;
    // The client: its own context from the published parameters, its own keys (the server never sees them).
    const parms = seal.EncryptionParameters(seal.SchemeType.ckks);
    parms.load(params.encryption_parameters);
    const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
    const keys = seal.KeyGenerator(context);
    const encryptor = seal.Encryptor(context, keys.createPublicKey());
    const decryptor = seal.Decryptor(context, keys.secretKey());
    const encoder = seal.CKKSEncoder(context);
    client = {
      encrypt: (values) => encryptor.encrypt(encoder.encode(Float64Array.from(values), params.scale)!)!.save(),
      decrypt: (ciphertext, n) => {
        const ct = seal.CipherText();
        ct.load(context, ciphertext);
        return Array.from(encoder.decode(decryptor.decrypt(ct)!)).slice(0, n);
      },
    };
  });
  afterAll(async () => {
    await t?.stop();
  });

  const aggregate = (body: unknown, token = t.adminToken) => t.api('POST', '/api/v1/fhe/aggregate', { token, body });

  it('publishes CKKS parameters a client can build its context from', () => {
    expect(params).toMatchObject({ scheme: 'ckks', poly_modulus_degree: 8192, coeff_modulus_bits: [60, 40, 40, 60], scale: 2 ** 40, slot_count: 4096, max_ciphertexts: 8, operations: ['sum', 'mean', 'weighted_sum'] });
  });

  it('sums, averages and weights encrypted score vectors; only the client decrypts the answer', async () => {
    const scores = [[0.5, 0.25, 0.9], [0.75, 1, 0.1], [0.1, 0.2, 0.3]];
    const ciphertexts = scores.map((v) => client.encrypt(v));
    const expectClose = (got: number[], want: number[]) => want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, 4));

    const sum = await aggregate({ operation: 'sum', ciphertexts });
    expect(sum.status).toBe(200);
    expect(sum.body).toMatchObject({ operation: 'sum', count: 3, rescaled: 0 });
    expectClose(client.decrypt(sum.body.ciphertext, 3), [1.35, 1.45, 1.3]);

    const mean = await aggregate({ operation: 'mean', ciphertexts });
    expect(mean.body).toMatchObject({ operation: 'mean', count: 3, rescaled: 1 });
    expectClose(client.decrypt(mean.body.ciphertext, 3), [0.45, 1.45 / 3, 1.3 / 3]);

    const weighted = await aggregate({ operation: 'weighted_sum', ciphertexts, weights: [2, 1, -0.5] });
    expectClose(client.decrypt(weighted.body.ciphertext, 3), [1.7, 1.4, 1.75]);

    // A single ciphertext is its own sum.
    expectClose(client.decrypt((await aggregate({ operation: 'sum', ciphertexts: [ciphertexts[0]] })).body.ciphertext, 3), scores[0]!);
    // The answer is a ciphertext: it does not contain the values in clear.
    expect(sum.body.ciphertext).not.toContain('1.35');
  });

  it('refuses what it cannot aggregate, naming the field', async () => {
    const good = client.encrypt([1, 2]);
    const garbage = await aggregate({ operation: 'sum', ciphertexts: [good, 'bm90IGEgY2lwaGVydGV4dA=='] });
    expect(garbage.status).toBe(400);
    expect(garbage.body.error).toMatchObject({ code: 'INVALID_PARAMETERS', details: { field_errors: [{ field: 'ciphertexts[1]' }] } });

    // A ciphertext made under other parameters does not load in the server's context.
    const otherParms = seal.EncryptionParameters(seal.SchemeType.ckks);
    otherParms.setPolyModulusDegree(4096);
    otherParms.setCoeffModulus(seal.CoeffModulus.Create(4096, Int32Array.from([40, 20, 40])));
    const other = seal.Context(otherParms, true, seal.SecurityLevel.tc128);
    const otherCt = seal.Encryptor(other, seal.KeyGenerator(other).createPublicKey()).encrypt(seal.CKKSEncoder(other).encode(Float64Array.from([1]), 2 ** 20)!)!.save();
    const foreign = await aggregate({ operation: 'sum', ciphertexts: [otherCt] });
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.details.field_errors[0].field).toBe('ciphertexts[0]');

    const noWeights = await aggregate({ operation: 'weighted_sum', ciphertexts: [good, good] });
    expect(noWeights.body.error.details.field_errors[0].field).toBe('weights');
    expect((await aggregate({ operation: 'weighted_sum', ciphertexts: [good], weights: [1e9] })).body.error.details.field_errors[0].field).toBe('weights[0]');
    expect((await aggregate({ operation: 'sum', ciphertexts: [good], weights: [1] })).status).toBe(400);
    expect((await aggregate({ operation: 'median', ciphertexts: [good] })).body.error.code).toBe('VALIDATION_ERROR');
    expect((await aggregate({ operation: 'sum', ciphertexts: Array.from({ length: 9 }, () => 'eA==') })).status).toBe(400);
  });

  it('needs task:create to aggregate and audits each aggregation', async () => {
    const worker = await userToken(t, 'worker');
    expect((await t.api('GET', '/api/v1/fhe/params', { token: worker })).status).toBe(200);
    expect((await aggregate({ operation: 'sum', ciphertexts: [client.encrypt([1])] }, worker)).status).toBe(403);
    const audit = await t.api('GET', '/api/v1/audit?action=execute&resource_type=fhe_aggregate&limit=100', { token: t.adminToken });
    const entries = audit.body.entries as Array<{ resource_id: string; data_classification: string; fields: string[] }>;
    expect(entries.map((e) => e.resource_id).sort()).toEqual(['mean', 'sum', 'sum', 'weighted_sum']);
    expect(entries.every((e) => e.data_classification === 'phi' && e.fields[0] === 'ciphertexts')).toBe(true);
  });
});
