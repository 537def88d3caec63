import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { engines } from '../../test/helpers/stores.ts';
import { listMigrations, migrate, pendingMigrations } from './index.ts';

describe.each(engines())('migrations on $name', (engine) => {
  it('applies every migration once and is a no-op the second time', async () => {
    const t = await engine.open();
    try {
      const again = await migrate(t.db);
      expect(again).toEqual([]);
      expect(await pendingMigrations(t.db)).toBe(0);
      const { rows } = await t.db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).toEqual(listMigrations().map((m) => m.version));
    } finally {
      await t.dispose();
    }
  });

  it('rolls back a failing transaction', async () => {
    const t = await engine.open();
    try {
      await expect(
        t.db.transaction(async (tx) => {
          await tx.query("INSERT INTO revoked_tokens (jti, expires_at) VALUES ('00000000-0000-7000-8000-000000000001', now())");
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      const { rows } = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM revoked_tokens');
      expect(rows[0]?.n).toBe(0);
    } finally {
      await t.dispose();
    }
  });

  it('upgrades a database holding a ready task that needs the most capabilities the API accepts (0011)', async () => {
    const t = await engine.open(10);
    try {
      // 50 random capabilities of 64 characters: more than a btree entry may hold, uncompressed.
      const caps = Array.from({ length: 50 }, () => `c${(randomUUID() + randomUUID()).replaceAll('-', '').slice(0, 63)}`);
      await t.db.query(
        `INSERT INTO tasks (task_id, task_type, status, priority, required_capabilities, parameters, data_classification, timeout_seconds, max_retries)
         VALUES ($1::uuid, 'wide', 'pending', 5, $2::text[], '{}', 'internal', 60, 0)`, [randomUUID(), caps]);
      expect((await migrate(t.db)).filter((v) => v >= 11)).toEqual(listMigrations().map((m) => m.version).filter((v) => v >= 11));
      const { rows } = await t.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM tasks WHERE status = 'pending' AND pending_deps = 0 AND hash_array_extended(required_capabilities, 0) = hash_array_extended($1::text[], 0)`, [caps]);
      expect(rows[0]!.n).toBe(1);
    } finally {
      await t.dispose();
    }
  });
});
