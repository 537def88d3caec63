/**
 * Detail reads arriving together share one statement, and each caller still gets only its own
 * task (or its own "not found"), with the task's history in event order. With PHI auditing,
 * that statement also writes the reads' audit entries: one per read of a task its reader may
 * see, none for the others, and nothing is returned when the entries cannot be written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { EventBus, isAppError, jsonCodec } from '../core/index.ts';
import { AuditLog, KeyRing, PhiAccessLog, actorOf } from '../security/index.ts';
import { engines, observedDb, type TestDb } from '../../test/helpers/stores.ts';
import { TaskRepository, TaskService, noOutcomes } from './index.ts';
import type { Principal } from '../auth/index.ts';

const admin: Principal = { type: 'user', id: 'detail-admin', role: 'admin', name: 'detail' };
const worker: Principal = { type: 'agent', id: 'detail-worker', role: 'worker', name: 'detail-worker' };

describe.each(engines())('task detail reads on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  it('answers concurrent reads with one statement, each with its own task, history and errors', async () => {
    const statements: string[] = [];
    const tasks = new TaskService(observedDb(tdb.db, (sql) => statements.push(sql)), new TaskRepository(jsonCodec), noOutcomes, new EventBus(), { retryBaseMs: 1000, retryCapMs: 60_000 });
    const created = await tasks.createMany(Array.from({ length: 5 }, (_, i) => ({ task_type: 'detail', required_capabilities: ['detail'], parameters: { i } })), admin);
    await tasks.cancel(created[4]!.task_id, 'no longer needed', admin);
    const missing = '00000000-0000-4000-8000-000000000000';
    statements.length = 0;
    const outcomes = await Promise.all([
      ...created.map((t) => tasks.detail(t.task_id, admin)),
      tasks.detail(created[2]!.task_id.toUpperCase(), admin),
      tasks.detail(missing, admin).catch((e: unknown) => (isAppError(e) ? e.code : e)),
      tasks.detail(created[0]!.task_id, worker).catch((e: unknown) => (isAppError(e) ? e.code : e)), // neither created by nor assigned to it
    ]);
    expect(statements.filter((s) => s.includes('FROM task_events'))).toHaveLength(1);
    const views = outcomes.slice(0, 6) as Array<Awaited<ReturnType<typeof tasks.detail>>>;
    expect(views.map((v) => [v.task_id, (v.parameters as { i: number }).i])).toEqual([...created.map((t, i) => [t.task_id, i]), [created[2]!.task_id, 2]]);
    expect(views[0]!.history.map((h) => h.to_status)).toEqual(['pending']);
    expect(views[4]!.history.map((h) => [h.from_status, h.to_status])).toEqual([[null, 'pending'], ['pending', 'cancelled']]);
    expect(outcomes.slice(6)).toEqual(['TASK_NOT_FOUND', 'TASK_NOT_FOUND']);
  });

  it('writes the audit entries of the reads in the same statement: one per read its reader may see', async () => {
    const statements: string[] = [];
    const db = observedDb(tdb.db, (sql) => statements.push(sql));
    const audit = new AuditLog(tdb.db, { key: KeyRing.fromMasterKey(randomBytes(32)).auditChainKey });
    const tasks = new TaskService(db, new TaskRepository(jsonCodec), noOutcomes, new EventBus(), { retryBaseMs: 1000, retryCapMs: 60_000 });
    tasks.phiAudit = new PhiAccessLog(tdb.db, audit, null);
    const supervisor: Principal = { type: 'user', id: 'detail-sup', role: 'supervisor', name: 'sup' };
    const [own] = await tasks.createMany([{ task_type: 'detail', required_capabilities: ['detail'], parameters: { own: true } }], worker);
    const [other, pub] = await tasks.createMany([
      { task_type: 'detail', required_capabilities: ['detail'], parameters: { other: true } },
      { task_type: 'detail', required_capabilities: ['detail'], parameters: { pub: true }, data_classification: 'public' },
    ], admin);
    const missing = '00000000-0000-4000-8000-000000000001';
    const ctx = (p: Principal, rid: string) => ({ actor: actorOf(p, '10.0.0.7', 'vitest'), request_id: rid });
    statements.length = 0;
    const outcomes = await Promise.all([
      tasks.detail(other!.task_id, admin, ctx(admin, 'r-admin')),
      tasks.detail(other!.task_id.toUpperCase(), supervisor, ctx(supervisor, 'r-sup')),
      tasks.detail(pub!.task_id, supervisor, ctx(supervisor, 'r-pub')),
      tasks.detail(own!.task_id, worker, ctx(worker, 'r-own')), // created by the worker: visible
      tasks.detail(other!.task_id, worker, ctx(worker, 'r-hidden')).catch((e: unknown) => (isAppError(e) ? e.code : e)),
      tasks.detail(missing, admin, ctx(admin, 'r-missing')).catch((e: unknown) => (isAppError(e) ? e.code : e)),
    ]);
    expect(outcomes.slice(4)).toEqual(['TASK_NOT_FOUND', 'TASK_NOT_FOUND']);
    expect(statements).toHaveLength(1);
    expect(statements[0]).toContain('INSERT INTO audit_pending');
    await audit.flush();
    const { entries } = await audit.list({ action: 'read', resource_type: 'task' }, { limit: 100, offset: 0, order: 'asc' });
    const byRequest = Object.fromEntries(entries.map((e) => [e.request_id, e]));
    expect(Object.keys(byRequest).sort()).toEqual(['r-admin', 'r-own', 'r-pub', 'r-sup']);
    expect(byRequest['r-admin']).toMatchObject({ resource_id: other!.task_id, fields: ['parameters'], data_classification: 'phi', outcome: 'success', risk_level: 'low',
      actor: { type: 'user', id: 'detail-admin', role: 'admin', ip: '10.0.0.7', user_agent: 'vitest' } });
    expect(byRequest['r-sup']).toMatchObject({ resource_id: other!.task_id, actor: { id: 'detail-sup', role: 'supervisor' } });
    expect(byRequest['r-pub']).toMatchObject({ resource_id: pub!.task_id, data_classification: 'public' });
    expect(byRequest['r-own']).toMatchObject({ resource_id: own!.task_id, actor: { type: 'agent', id: 'detail-worker', role: 'worker' } });
    expect(await audit.verify()).toMatchObject({ ok: true });

    // A task with a result names both fields; a refused audit write fails the read.
    await tdb.db.query(`UPDATE tasks SET result = $2 WHERE task_id = $1`, [pub!.task_id, JSON.stringify({ done: true })]);
    await tasks.detail(pub!.task_id, admin, ctx(admin, 'r-result'));
    await audit.flush();
    const withResult = await audit.list({ action: 'read', resource_id: pub!.task_id }, { limit: 100, offset: 0, order: 'asc' });
    expect(withResult.entries.find((e) => e.request_id === 'r-result')?.fields).toEqual(['parameters', 'result']);
    await tdb.db.exec(`CREATE FUNCTION detail_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no audit'; END $$;
      CREATE TRIGGER detail_refuse_audit BEFORE INSERT ON audit_pending FOR EACH ROW EXECUTE FUNCTION detail_refuse_audit();`);
    try {
      await expect(tasks.detail(other!.task_id, admin, ctx(admin, 'r-refused'))).rejects.toThrow();
    } finally {
      await tdb.db.exec('DROP TRIGGER detail_refuse_audit ON audit_pending; DROP FUNCTION detail_refuse_audit();');
    }
  });
});
