/**
 * Aggregation over homomorphically encrypted numbers (SPEC §9, FHE): CKKS on Microsoft SEAL
 * (node-seal). The server publishes the scheme's parameters; a client with its own keys encodes
 * a vector of numeric scores per ciphertext (one value per slot), encrypts it and sends the
 * ciphertexts; the server adds them slot by slot (`sum`), multiplies by plaintext constants
 * (`mean` = sum × 1/n, `weighted_sum` = Σ wᵢ·ctᵢ) and returns one ciphertext that only the key
 * holder can decrypt. The server holds no key at all: it needs none for these operations.
 *
 * Parameters: polynomial degree 8192, coefficient modulus 60-40-40-60 bits (one rescale after the
 * plaintext multiplication), scale 2^40, 128-bit security (SEAL's standard CKKS example). Each
 * ciphertext must load in that context (SEAL validates it), be fresh (at the first level, size
 * 2, scale 2^40); anything else is refused with the index of the offending ciphertext.
 *
 * The work is synchronous WebAssembly (about 6 ms per ciphertext here, 200 ms for 32): it runs in
 * a worker thread (FheAggregator → fhe-worker.ts → FheEngine), so the server's event loop only
 * copies the strings; `maxCiphertexts` bounds one request's work and body.
 */
import sealModule from 'node-seal';
import type { SEALLibrary } from 'node-seal/implementation/seal.js';
import type { CipherText } from 'node-seal/implementation/cipher-text.js';
import type { Context } from 'node-seal/implementation/context.js';
import type { EncryptionParameters } from 'node-seal/implementation/encryption-parameters.js';
import type { Evaluator } from 'node-seal/implementation/evaluator.js';
import type { CKKSEncoder } from 'node-seal/implementation/ckks-encoder.js';
import { Worker } from 'node:worker_threads';
import { AppError, type ErrorCode } from '../core/index.ts';

export const FHE_OPERATIONS = ['sum', 'mean', 'weighted_sum'] as const;
export type FheOperation = (typeof FHE_OPERATIONS)[number];

/** The package is CommonJS (UMD) typed as an ES default export: take the factory from either shape. */
const loadSeal = ((sealModule as unknown as { default?: () => Promise<SEALLibrary> }).default ?? sealModule) as unknown as () => Promise<SEALLibrary>;

const POLY_MODULUS_DEGREE = 8192;
const COEFF_MODULUS_BITS = [60, 40, 40, 60];
const SCALE_BITS = 40;
const SCALE = 2 ** SCALE_BITS;
/** A weight's magnitude is bounded so that Σ wᵢ·xᵢ stays far inside the precision a 40-bit scale leaves. */
const MAX_WEIGHT = 1e6;

export interface FheParams {
  scheme: 'ckks';
  library: 'Microsoft SEAL (node-seal 6)';
  poly_modulus_degree: number;
  coeff_modulus_bits: number[];
  scale: number;
  scale_bits: number;
  security_level: 'tc128';
  slot_count: number;
  /** SEAL's serialized EncryptionParameters (base64): load them to build the same context. */
  encryption_parameters: string;
  operations: readonly FheOperation[];
  max_ciphertexts: number;
}

export interface FheResult {
  operation: FheOperation;
  count: number;
  /** SEAL-serialized ciphertext (base64), at the scale and level `scale` / `level` name. */
  ciphertext: string;
  scale: number;
  /** Rescales applied (0 for `sum`, 1 for `mean` and `weighted_sum`). */
  rescaled: number;
}

interface Sealed {
  seal: SEALLibrary;
  parms: EncryptionParameters;
  context: Context;
  /** The first level's parms id, as a comparable string (a fresh ciphertext carries it). */
  firstParms: string;
  evaluator: Evaluator;
  encoder: CKKSEncoder;
}

function invalid(message: string, field: string): AppError {
  return new AppError('INVALID_PARAMETERS', message, { details: { field_errors: [{ field, message }] } });
}

/** A call to the FHE worker thread and its answer (an AppError's code and details survive the thread). */
export interface FheRequest { id: number; op: 'params' | 'aggregate'; args: [FheOperation, string[], number[] | undefined] | [] }
export type FheReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: { code: ErrorCode; message: string; details?: Record<string, unknown> } };

/** The SEAL work itself, in the thread that runs it (fhe-worker.ts); FheAggregator is its front. */
export class FheEngine {
  private ready: Promise<Sealed> | undefined;

  constructor(private readonly opts: { maxCiphertexts: number }) {}

  /** Loads SEAL's WebAssembly and builds the context once (about 50 ms); later calls reuse it. */
  private load(): Promise<Sealed> {
    this.ready ??= (async () => {
      const seal = await loadSeal();
      const parms = seal.EncryptionParameters(seal.SchemeType.ckks);
      parms.setPolyModulusDegree(POLY_MODULUS_DEGREE);
      parms.setCoeffModulus(seal.CoeffModulus.Create(POLY_MODULUS_DEGREE, Int32Array.from(COEFF_MODULUS_BITS)));
      const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
      if (!context.parametersSet()) throw new Error('SEAL refused the CKKS parameters.');
      return { seal, parms, context, firstParms: context.firstParmsId.values.join(','), evaluator: seal.Evaluator(context), encoder: seal.CKKSEncoder(context) };
    })();
    return this.ready;
  }

  async params(): Promise<FheParams> {
    const s = await this.load();
    return {
      scheme: 'ckks', library: 'Microsoft SEAL (node-seal 6)',
      poly_modulus_degree: POLY_MODULUS_DEGREE, coeff_modulus_bits: COEFF_MODULUS_BITS, scale: SCALE, scale_bits: SCALE_BITS,
      security_level: 'tc128', slot_count: s.encoder.slotCount, encryption_parameters: s.parms.save(),
      operations: FHE_OPERATIONS, max_ciphertexts: this.opts.maxCiphertexts,
    };
  }

  /** Runs `operation` over the client's ciphertexts; 400 INVALID_PARAMETERS names what is wrong. */
  async aggregate(operation: FheOperation, ciphertexts: readonly string[], weights?: readonly number[]): Promise<FheResult> {
    if (ciphertexts.length === 0 || ciphertexts.length > this.opts.maxCiphertexts) throw invalid(`Between 1 and ${this.opts.maxCiphertexts} ciphertexts.`, 'ciphertexts');
    if (operation === 'weighted_sum') {
      if (!weights || weights.length !== ciphertexts.length) throw invalid('weighted_sum needs one weight per ciphertext.', 'weights');
      const bad = weights.findIndex((w) => !Number.isFinite(w) || Math.abs(w) > MAX_WEIGHT);
      if (bad >= 0) throw invalid(`Weights are finite numbers within ±${MAX_WEIGHT}.`, `weights[${bad}]`);
    } else if (weights !== undefined) {
      throw invalid(`weights apply to weighted_sum only.`, 'weights');
    }
    const s = await this.load();
    const loaded: CipherText[] = [];
    try {
      for (const [i, text] of ciphertexts.entries()) loaded.push(this.fresh(s, text, i));
      let out: CipherText;
      let rescaled = 0;
      if (operation === 'sum') {
        out = this.sum(s, loaded);
      } else {
        const factors = operation === 'mean' ? loaded.map(() => 1 / loaded.length) : weights!;
        const scaled = loaded.map((ct, i) => this.timesConstant(s, ct, factors[i]!));
        out = this.sum(s, scaled);
        for (const c of scaled) if (c !== out) c.delete();
        s.evaluator.rescaleToNext(out, out);
        rescaled = 1;
      }
      const result = { operation, count: loaded.length, ciphertext: out.save(), scale: out.scale, rescaled };
      if (!loaded.includes(out)) out.delete();
      return result;
    } finally {
      for (const c of loaded) c.delete();
    }
  }

  /** A client ciphertext, refused unless it is valid in this context and fresh (first level, size 2, scale 2^40). */
  private fresh(s: Sealed, text: string, i: number): CipherText {
    const ct = s.seal.CipherText();
    try {
      ct.load(s.context, text);
    } catch {
      ct.delete();
      throw invalid('Not a SEAL ciphertext for these parameters (GET /api/v1/fhe/params).', `ciphertexts[${i}]`);
    }
    if (ct.parmsId.values.join(',') !== s.firstParms || ct.size !== 2 || Math.abs(Math.log2(ct.scale) - SCALE_BITS) > 1e-6) {
      ct.delete();
      throw invalid(`Ciphertexts must be freshly encrypted at scale 2^${SCALE_BITS} (first level, size 2).`, `ciphertexts[${i}]`);
    }
    return ct;
  }

  private sum(s: Sealed, cts: CipherText[]): CipherText {
    if (cts.length === 1) return cts[0]!;
    const acc = s.seal.CipherText();
    s.evaluator.add(cts[0]!, cts[1]!, acc);
    for (const c of cts.slice(2)) s.evaluator.add(acc, c, acc);
    return acc;
  }

  private timesConstant(s: Sealed, ct: CipherText, factor: number): CipherText {
    const plain = s.encoder.encode(Float64Array.from({ length: s.encoder.slotCount }, () => factor), SCALE)!;
    try {
      s.evaluator.plainModSwitchTo(plain, ct.parmsId, plain);
      const out = s.seal.CipherText();
      s.evaluator.multiplyPlain(ct, plain, out);
      return out;
    } finally {
      plain.delete();
    }
  }
}

/**
 * The server's handle on FHE: the same operations as FheEngine, run in a worker thread started on
 * first use (fhe-worker-entry.mjs registers tsx there, then loads fhe-worker.ts). A worker that dies
 * fails its pending calls with INTERNAL_ERROR and is replaced on the next call.
 */
export class FheAggregator {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { worker: Worker; resolve: (v: unknown) => void; reject: (e: unknown) => void }>();

  constructor(private readonly opts: { maxCiphertexts: number }) {}

  private async call<T>(op: FheRequest['op'], args: FheRequest['args']): Promise<T> {
    const w = await this.start();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { worker: w, resolve: resolve as (v: unknown) => void, reject });
      w.postMessage({ id, op, args } satisfies FheRequest);
    });
  }

  /** The worker, started on first use (async: a call posts after the caller's turn, as `close` may run in it). */
  private async start(): Promise<Worker> {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./fhe-worker-entry.mjs', import.meta.url), { workerData: this.opts });
    w.unref();
    w.on('message', (m: FheReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new AppError(m.error.code, m.error.message, m.error.details === undefined ? {} : { details: m.error.details }));
    });
    const fail = () => {
      if (this.worker === w) this.worker = undefined;
      for (const [id, p] of this.pending) {
        if (p.worker !== w) continue; // a newer worker's calls
        this.pending.delete(id);
        p.reject(new AppError('INTERNAL_ERROR', 'The FHE worker stopped.'));
      }
    };
    w.on('error', fail);
    w.on('exit', fail);
    this.worker = w;
    return w;
  }

  params(): Promise<FheParams> {
    return this.call<FheParams>('params', []);
  }

  /** Runs `operation` over the client's ciphertexts in the worker; 400 INVALID_PARAMETERS names what is wrong. */
  aggregate(operation: FheOperation, ciphertexts: readonly string[], weights?: readonly number[]): Promise<FheResult> {
    return this.call<FheResult>('aggregate', [operation, [...ciphertexts], weights ? [...weights] : undefined]);
  }

  /** Stops the worker (server shutdown). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}
