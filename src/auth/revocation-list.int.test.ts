/**
 * Revoked access tokens across processes: the revoking process refuses the token at once,
 * another one as soon as the `auth:revoked` message arrives (Redis) or, when the message is
 * lost, at its next sync from the store; expired revocations are forgotten.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../core/index.ts';
import { createCoordination, type Coordination } from '../coordination/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { SyncedRevocationList } from './revocation-list.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const redisUrl = process.env.MCP_TEST_REDIS_URL ?? '';
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

describe.each(engines())('revocation list on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  it('refuses at once where revoked, elsewhere after a sync from the store (a lost message), and forgets expired ids', async () => {
    const a = new SyncedRevocationList(tdb.db, null, { syncMs: 0 });
    const b = new SyncedRevocationList(tdb.db, null, { syncMs: 0 });
    await a.start();
    await b.start();
    const jti = newId();
    expect(a.isRevoked(jti)).toBe(false);
    await a.revoke(jti, inAnHour());
    expect(a.isRevoked(jti)).toBe(true);
    expect(b.isRevoked(jti)).toBe(false); // no message: b has not heard yet
    await b.sync();
    expect(b.isRevoked(jti)).toBe(true);
    // A fresh process loads what the store holds.
    const c = new SyncedRevocationList(tdb.db, null, { syncMs: 0 });
    await c.start();
    expect(c.isRevoked(jti)).toBe(true);
    // An expired revocation is not loaded (the token is refused as expired anyway).
    const old = newId();
    await tdb.db.query(`INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, now() - interval '1 minute')`, [old]);
    await c.sync();
    expect(c.isRevoked(old)).toBe(false);
    expect(c.isRevoked(newId())).toBe(false);
  });
});

describe.skipIf(!redisUrl)('revocation list across processes through Redis', () => {
  let tdb: TestDb;
  const coords: Coordination[] = [];
  beforeAll(async () => { tdb = await engines()[0]!.open(); });
  afterAll(async () => {
    for (const c of coords) await c.close();
    await tdb?.dispose();
  });

  it('reaches the other process by message, without waiting for a sync', async () => {
    const prefix = `rev-${randomUUID()}:`;
    const [coordA, coordB] = await Promise.all([createCoordination({ redisUrl, keyPrefix: prefix }), createCoordination({ redisUrl, keyPrefix: prefix })]);
    coords.push(coordA, coordB);
    const a = new SyncedRevocationList(tdb.db, coordA, { syncMs: 0 });
    const b = new SyncedRevocationList(tdb.db, coordB, { syncMs: 0 });
    await a.start();
    await b.start();
    const jti = newId();
    await a.revoke(jti, inAnHour());
    const deadline = Date.now() + 2000;
    while (!b.isRevoked(jti) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(b.isRevoked(jti)).toBe(true);
    await a.stop();
    await b.stop();
  });
});
