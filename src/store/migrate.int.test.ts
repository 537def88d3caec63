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
});
