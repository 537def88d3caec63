/**
 * Homomorphic aggregation (SPEC §9, FHE):
 *
 * - GET /fhe/params (`task:read`): the CKKS parameters (and SEAL's serialized EncryptionParameters)
 *   a client builds its context and keys from.
 * - POST /fhe/aggregate (`task:create`; the `task_create` rate class, one point per ciphertext):
 *   `{operation: sum | mean | weighted_sum, ciphertexts: [base64], weights?}` → one encrypted
 *   result only the client's secret key opens. The ciphertexts are PHI the server cannot read;
 *   each aggregation is audited (`execute` on `fhe_aggregate`). Its body may be larger than other
 *   routes' (a ciphertext is about 440 KB in base64).
 */
import Type from 'typebox';
import type { App } from '../app-types.ts';
import type { RouteKit } from '../http-deps.ts';
import { auditContextOf } from '../audit-context.ts';
import { perItemCost } from '../rate-limit.ts';
import { FHE_OPERATIONS, type AuditLog, type FheAggregator } from '../../security/index.ts';

/** A base64 SEAL ciphertext for the published parameters is about 440 KB; room for compression modes. */
const MAX_CIPHERTEXT_CHARS = 1_000_000;

export function fheRoutes(deps: { fhe: FheAggregator; audit: AuditLog; maxCiphertexts: number }) {
  const AggregateBody = Type.Object({
    operation: Type.Union(FHE_OPERATIONS.map((o) => Type.Literal(o))),
    ciphertexts: Type.Array(Type.String({ minLength: 1, maxLength: MAX_CIPHERTEXT_CHARS }), { minItems: 1, maxItems: deps.maxCiphertexts }),
    weights: Type.Optional(Type.Array(Type.Number(), { minItems: 1, maxItems: deps.maxCiphertexts })),
  }, { additionalProperties: false });

  return function fhePlugin(app: App, kit: RouteKit): void {
    app.get('/fhe/params', { schema: { tags: ['fhe'] }, ...kit.guard('task:read') }, async () => deps.fhe.params());

    app.post('/fhe/aggregate', {
      schema: { tags: ['fhe'], body: AggregateBody },
      bodyLimit: deps.maxCiphertexts * (MAX_CIPHERTEXT_CHARS + 16) + 64 * 1024,
      ...kit.guard('task:create', 'task_create', perItemCost('ciphertexts', deps.maxCiphertexts)),
    }, async (request) => {
      const { operation, ciphertexts, weights } = request.body;
      const out = await deps.fhe.aggregate(operation, ciphertexts, weights);
      await deps.audit.audit(kit.services.db, auditContextOf(request), {
        action: 'execute', resource_type: 'fhe_aggregate', resource_id: operation, fields: ['ciphertexts'], data_classification: 'phi', outcome: 'success',
      });
      return out;
    });
  };
}
