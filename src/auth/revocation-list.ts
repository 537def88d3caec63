/**
 * Revoked access-token ids (logout), checked on every authenticated request — so the check
 * reads memory, not the store. The store (`revoked_tokens`) stays the record; every process
 * keeps the unexpired ids in memory:
 *
 * - `revoke` writes the store, adds the id here (this process refuses the token at once) and
 *   publishes it on the coordination channel `auth:revoked`, so every other process adds it as
 *   soon as the message arrives (about a millisecond through Redis).
 * - Pub/sub may lose a message (a Redis outage): every `syncMs` each process also reads the
 *   store's unexpired ids, so a lost message delays a revocation on another process by at most
 *   that long. Expired ids are dropped (an expired token is refused anyway).
 */
import { isUuid } from '../core/index.ts';
import type { Coordination, Unsubscribe } from '../coordination/index.ts';
import type { Db } from '../store/index.ts';

/** Whether a token's jti was revoked (logout). */
export interface RevocationList {
  isRevoked(jti: string): boolean;
  revoke(jti: string, expiresAtSec: number): Promise<void>;
}

export const REVOCATION_CHANNEL = 'auth:revoked';

interface RevokedMessage { jti: string; exp: number }

export class SyncedRevocationList implements RevocationList {
  /** jti → expiry (ms since epoch). */
  readonly #revoked = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: Unsubscribe | undefined;

  constructor(
    private readonly db: Db,
    private readonly coord: Coordination | null,
    private readonly opts: { syncMs: number; onError?: (err: unknown) => void },
  ) {}

  /** Subscribes, then loads the store's unexpired ids (so nothing revoked in between is missed), then syncs periodically. */
  async start(): Promise<void> {
    if (this.coord) {
      this.#unsubscribe = await this.coord.subscribe(REVOCATION_CHANNEL, (m) => {
        const r = m as Partial<RevokedMessage> | null;
        if (r && typeof r.jti === 'string' && isUuid(r.jti) && typeof r.exp === 'number') this.#add(r.jti, r.exp);
      });
    }
    await this.sync();
    if (this.opts.syncMs > 0) {
      this.#timer = setInterval(() => void this.sync().catch((err: unknown) => this.opts.onError?.(err)), this.opts.syncMs);
      this.#timer.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#unsubscribe?.().catch(() => {});
    this.#unsubscribe = undefined;
  }

  /** Adds the store's unexpired revocations and forgets expired ones. */
  async sync(): Promise<void> {
    const { rows } = await this.db.query<{ jti: string; exp: number }>(
      'SELECT jti::text AS jti, extract(epoch FROM expires_at)::float8 AS exp FROM revoked_tokens WHERE expires_at > now()');
    for (const r of rows) this.#add(r.jti, Number(r.exp));
    const now = Date.now();
    for (const [jti, until] of this.#revoked) if (until <= now) this.#revoked.delete(jti);
  }

  isRevoked(jti: string): boolean {
    const until = this.#revoked.get(jti);
    return until !== undefined && until > Date.now();
  }

  async revoke(jti: string, expiresAtSec: number): Promise<void> {
    await this.db.query('INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, to_timestamp($2)) ON CONFLICT DO NOTHING', [jti, expiresAtSec]);
    this.#add(jti, expiresAtSec);
    await this.coord?.publish(REVOCATION_CHANNEL, { jti, exp: expiresAtSec } satisfies RevokedMessage, { echo: false })
      .catch((err: unknown) => this.opts.onError?.(err)); // the other processes' next sync catches up
  }

  #add(jti: string, expSec: number): void {
    this.#revoked.set(jti, expSec * 1000);
  }
}
