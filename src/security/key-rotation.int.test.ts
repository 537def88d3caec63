// KeyRotation against the real store on every reachable engine: the version counter, batched
// keyset re-encryption of single- and composite-key columns, resuming after a partial run,
// undecryptable values left in place and counted, status per key id.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { FieldCipher, keyIdOf } from './field-cipher.ts';
import { KeyRing } from './key-ring.ts';
import { KeyRotation, rotateKeys, type SealedColumn } from './key-rotation.ts';

const MASTER = randomBytes(32);
const COLUMNS: SealedColumn[] = [
  { table: 'kr_items', column: 'secret', key: [{ name: 'id', type: 'uuid' }], rowId: (k) => k[0]! },
  { table: 'kr_pairs', column: 'body', key: [{ name: 'owner', type: 'text' }, { name: 'name', type: 'text' }], rowId: (k) => `${k[0]}|${k[1]}` },
];

for (const engine of engines()) {
  describe(`KeyRotation on ${engine.name}`, () => {
    let store: TestDb;
    let passed = true;
    beforeAll(async () => {
      store = await engine.open();
      await store.db.exec('CREATE TABLE kr_items (id uuid PRIMARY KEY, secret text); CREATE TABLE kr_pairs (owner text, name text, body text, PRIMARY KEY (owner, name));');
    });
    afterAll(async () => store?.dispose(!passed));

    it('persists versions, re-encrypts in batches, resumes, and leaves undecryptable values failing closed', async () => {
      try {
        const db = store.db;
        expect(await KeyRotation.loadVersionCount(db)).toBe(1);
        const ring = KeyRing.fromMasterKey(MASTER, 0, { lookahead: 4 });
        const cipher = new FieldCipher(ring);
        const rotation = new KeyRotation(db, ring, cipher, { batchSize: 4, columns: COLUMNS });
        const items = new Map<string, unknown>();
        for (let i = 0; i < 23; i++) {
          const id = randomUUID();
          items.set(id, { n: i, text: `secret ${i}` });
          await db.query('INSERT INTO kr_items (id, secret) VALUES ($1, $2)', [id, cipher.encrypt({ n: i, text: `secret ${i}` }, { table: 'kr_items', column: 'secret', rowId: id })]);
        }
        await db.query('INSERT INTO kr_items (id, secret) VALUES ($1, NULL), ($2, $3)', [randomUUID(), randomUUID(), JSON.stringify({ plain: true })]);
        // a value moved from another row: it can never decrypt here
        const moved = randomUUID();
        await db.query('INSERT INTO kr_items (id, secret) VALUES ($1, $2)', [moved, cipher.encrypt('x', { table: 'kr_items', column: 'secret', rowId: randomUUID() })]);
        for (let i = 0; i < 6; i++) {
          const owner = `user:${i % 2}`;
          const name = `key-${i}`;
          await db.query('INSERT INTO kr_pairs (owner, name, body) VALUES ($1, $2, $3)', [owner, name, cipher.encrypt({ i }, { table: 'kr_pairs', column: 'body', rowId: `${owner}|${name}` })]);
        }

        const { field } = await rotateKeys(rotation, {});
        expect(field).toEqual({ kid: 'k2', version: 2 });
        expect(await KeyRotation.loadVersionCount(db)).toBe(2);
        expect(ring.current).toBe('k2');

        // a partial earlier run (say the leader died): 5 rows already moved
        const { rows: some } = await db.query<{ id: string; secret: string }>(`SELECT id::text AS id, secret FROM kr_items WHERE id <> $1 AND secret LIKE 'enc:%' ORDER BY id LIMIT 5`, [moved]);
        for (const r of some) await db.query('UPDATE kr_items SET secret = $2 WHERE id = $1', [r.id, cipher.reencrypt(r.secret, { table: 'kr_items', column: 'secret', rowId: r.id })]);

        const result = await rotation.reencryptAll();
        expect(result.complete).toBe(true);
        expect(result.kid).toBe('k2');
        expect(result.columns.find((c) => c.table === 'kr_items')).toMatchObject({ reencrypted: 18, failed: 1 });
        expect(result.columns.find((c) => c.table === 'kr_pairs')).toMatchObject({ reencrypted: 6, failed: 0 });
        expect(result.passes).toBe(2); // the second pass is the verification
        const status = await rotation.status();
        expect(status.by_column).toEqual([
          { table: 'kr_items', column: 'secret', kids: { k1: 1, k2: 23 } },
          { table: 'kr_pairs', column: 'body', kids: { k2: 6 } },
        ]);
        expect(status.latest).toMatchObject({ version: 2, reencrypted_rows: 24, reencrypt_failed_rows: 1 });
        expect(status.latest!.reencrypt_completed_at).not.toBeNull();
        const { rows } = await db.query<{ id: string; secret: string }>(`SELECT id::text AS id, secret FROM kr_items WHERE secret LIKE 'enc:%' AND id <> $1`, [moved]);
        for (const r of rows) expect(cipher.decrypt(r.secret, { table: 'kr_items', column: 'secret', rowId: r.id })).toEqual(items.get(r.id));
        expect((await db.query<{ secret: string }>('SELECT secret FROM kr_items WHERE id = $1', [moved])).rows[0]!.secret).toMatch(/^enc:v1:k1:/);

        // nothing pending: the job has no work; a process built from the persisted count agrees
        expect(await rotation.runJob()).toBeNull();
        const other = KeyRing.fromMasterKey(MASTER, (await KeyRotation.loadVersionCount(db)) - 1);
        expect(other.current).toBe('k2');
        const oneId = rows[0]!.id;
        expect(new FieldCipher(other).decrypt(rows[0]!.secret, { table: 'kr_items', column: 'secret', rowId: oneId })).toEqual(items.get(oneId));

        // a third rotation picked up by the job (leader) on its own
        const stale = new KeyRotation(db, KeyRing.fromMasterKey(MASTER, 1, { lookahead: 4 }), new FieldCipher(KeyRing.fromMasterKey(MASTER, 1)), { columns: COLUMNS });
        await rotation.rotateFieldKey();
        expect(stale.ring.current).toBe('k2');
        await stale.sync();
        expect(stale.ring.current).toBe('k3');
        rotation.startJob();
        await new Promise((r) => setTimeout(r, 50));
        await rotation.settle();
        await rotation.stop();
        const after = await rotation.status();
        expect(after.by_column[1]!.kids).toEqual({ k3: 6 });
        expect(keyIdOf((await db.query<{ secret: string }>('SELECT secret FROM kr_items WHERE id = $1', [oneId])).rows[0]!.secret)).toBe('k3');
      } catch (e) {
        passed = false;
        throw e;
      }
    }, 60_000);
  });
}
