/**
 * Idempotency-Key for POSTs that create something (SPEC §2): same key + same body replays the
 * original response; a different body → 422; while the first is in flight → 409. Keys live 24 h
 * per principal. Stored responses may hold secrets (an agent's API key) so they are sealed as
 * `restricted`. An in-flight claim older than a minute is treated as abandoned (crashed process).
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type FieldCodec } from '../core/index.ts';
import type { Db } from '../store/index.ts';
import { principalKey } from '../auth/index.ts';

const TTL_HOURS = 24;
const ABANDONED_MS = 60_000;
const KEY_RE = /^[\x21-\x7e]{1,255}$/;

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v ?? null);
}

export class Idempotency {
  constructor(private readonly db: Db, private readonly codec: FieldCodec) {}

  private aad(principal: string, key: string) {
    return { table: 'idempotency_keys', column: 'response_body', rowId: `${principal}|${key}` };
  }

  /** preHandler: claims the key or replays/refuses. Returns true when the reply was sent. */
  async begin(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const raw = request.headers['idempotency-key'];
    if (raw === undefined || !request.principal) return false;
    const key = Array.isArray(raw) ? raw[0]! : raw;
    if (!KEY_RE.test(key)) throw new AppError('VALIDATION_ERROR', 'Invalid Idempotency-Key header.', { details: { field_errors: [{ field: 'Idempotency-Key', message: 'must be 1–255 printable ASCII characters' }] } });
    const principal = principalKey(request.principal);
    const path = request.routeOptions.url ?? request.url;
    const hash = createHash('sha256').update(`${request.method} ${request.url}\n${canonical(request.body)}`).digest('hex');
    for (let i = 0; i < 2; i++) {
      const ins = await this.db.query(
        `INSERT INTO idempotency_keys (principal, key, method, path, request_hash, state, expires_at)
         VALUES ($1, $2, $3, $4, $5, 'in_progress', now() + interval '${TTL_HOURS} hours') ON CONFLICT DO NOTHING RETURNING key`,
        [principal, key, request.method, path, hash]);
      if (ins.rowCount > 0) {
        request.idempotency = { principal, key };
        return false;
      }
      const { rows } = await this.db.query<{ request_hash: string; state: string; response_status: number | null; response_body: string | null; created_at: Date; expired: boolean }>(
        `SELECT request_hash, state, response_status, response_body, created_at, expires_at < now() AS expired FROM idempotency_keys WHERE principal = $1 AND key = $2`,
        [principal, key]);
      const row = rows[0];
      if (!row) continue;
      const abandoned = row.state === 'in_progress' && Date.now() - row.created_at.getTime() > ABANDONED_MS;
      if (row.expired || abandoned) {
        await this.db.query('DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2', [principal, key]);
        continue;
      }
      if (row.request_hash !== hash) throw new AppError('IDEMPOTENCY_KEY_REUSED');
      if (row.state === 'in_progress') throw new AppError('IDEMPOTENCY_IN_PROGRESS', undefined, { retryAfter: 1 });
      const body = row.response_body === null ? null : this.codec.open(row.response_body, this.aad(principal, key));
      void reply.header('Idempotency-Replayed', 'true');
      await reply.status(row.response_status ?? 200).send(body);
      return true;
    }
    throw new AppError('IDEMPOTENCY_IN_PROGRESS', undefined, { retryAfter: 1 });
  }

  /** onSend: records the response (kept for 2xx/4xx except 409/429; released otherwise). */
  async finish(request: FastifyRequest, status: number, payload: unknown): Promise<void> {
    const claim = request.idempotency;
    if (!claim) return;
    request.idempotency = null;
    const keep = status < 500 && status !== 409 && status !== 429;
    if (!keep) {
      await this.db.query('DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2', [claim.principal, claim.key]);
      return;
    }
    let body: unknown = null;
    if (typeof payload === 'string' && payload.length) {
      try { body = JSON.parse(payload); } catch { body = payload; }
    }
    await this.db.query(
      `UPDATE idempotency_keys SET state = 'done', response_status = $3, response_body = $4 WHERE principal = $1 AND key = $2`,
      [claim.principal, claim.key, status, this.codec.seal(body, 'restricted', this.aad(claim.principal, claim.key))]);
  }
}
