/**
 * Capacity grants between processes (capacity-grants.ts), on real Redis pub/sub. Two engines
 * on one store: process B serves an agent, process A creates tasks. Once B has granted A
 * capacity, A's insert leases the task to B's agent (one statement, on A) and B only hands it
 * to the agent — with the agent's max_concurrent_tasks held across both, the parameters sealed
 * on the wire, and the tokens returned when idle or dropped when the slot goes. Then the
 * ledger alone, with a hand-driven clock: a lost message, a dead granter, a dead grantee.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus } from '../core/index.ts';
import { createCoordination, type Coordination } from '../coordination/index.ts';
import { FieldCipher, KeyRing } from '../security/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { insertAgent } from '../../test/helpers/agents.ts';
import { AssignmentEngine, ENGINE_CHANNELS, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import { CapacityGrants, GRANT_CHANNEL, type GrantHost, type GrantSlot } from './capacity-grants.ts';
import type { Principal } from '../auth/index.ts';
import { until } from '../../test/helpers/until.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const redisUrl = process.env.MCP_TEST_REDIS_URL ?? '';
const admin: Principal = { type: 'user', id: 'grant-admin', role: 'admin', name: 'grants' };

interface Msg { kind: string; origin: string; to?: string; agent_id?: string; slots?: Array<{ agent_id: string; add: number }>; tasks?: Array<{ task_id: string; parameters: string }> }

describe.skipIf(!redisUrl).each(engines())('capacity grants across processes on $name', (engine) => {
  let tdb: TestDb;
  const coords: Coordination[] = [];
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => {
    for (const c of coords) await c.close();
    await tdb?.dispose();
  });

  async function twoProcesses(max: number) {
    const prefix = `grants-${randomUUID()}:`;
    const [coordA, coordB, probe] = await Promise.all([1, 2, 3].map(() => createCoordination({ redisUrl, keyPrefix: prefix })));
    coords.push(coordA!, coordB!, probe!);
    const seen: Msg[] = [];
    await probe!.subscribe(GRANT_CHANNEL, (m) => { seen.push(m as Msg); });
    const hellos: string[] = [];
    await probe!.subscribe(ENGINE_CHANNELS.wake, (m) => { hellos.push((m as { origin: string }).origin); });
    const repo = new TaskRepository(new FieldCipher(KeyRing.fromMasterKey(randomBytes(32))));
    const busA = new EventBus();
    const tasksA = new TaskService(tdb.db, repo, noOutcomes, busA, { retryBaseMs: 1000, retryCapMs: 60_000 });
    const engA = new AssignmentEngine(tdb.db, repo, busA, { defaultStrategy: 'capability_match' });
    tasksA.assigner = engA; // A has no agents: it leases at insert only with B's tokens
    const engB = new AssignmentEngine(tdb.db, repo, new EventBus(), { defaultStrategy: 'capability_match' });
    await engA.connect(coordA!, 0);
    await engB.connect(coordB!, 0);
    // A learns that B listens from B's hello (until then A sends no wake-ups): wait for it.
    expect(await until(() => hellos.includes(engB.instanceId))).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    const cap = `grant-${randomUUID().slice(0, 8)}`;
    const agent = `grant-agent-${randomUUID()}`;
    await insertAgent(tdb.db, agent, [cap], max);
    const delivered: DeliveredTask[] = [];
    await engB.addSlot({ agent_id: agent, capabilities: new Set([cap]), max, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
    await engB.settle();
    const create = (n: number, parameters: Record<string, unknown> = {}) =>
      tasksA.createMany(Array.from({ length: n }, () => ({ task_type: 'grant', required_capabilities: [cap], data_classification: 'phi' as const, parameters })), admin);
    const assignedTo = async () => (await tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE assigned_agent = $1 AND status = 'assigned'`, [agent])).rows[0]!.n;
    const grantsTo = (origin: string) => seen.filter((m) => m.kind === 'grant' && m.to === origin && (m.slots?.length ?? 0) > 0);
    return { engA, engB, agent, delivered, create, assignedTo, grantsTo, seen, stop: () => { engA.stop(); engB.stop(); } };
  }

  it('leases a task created on A to B\'s agent in A\'s insert once B granted capacity, sealed on the wire, within the agent\'s max', async () => {
    const p = await twoProcesses(8); // a quarter of 8: two tokens for A
    try {
      // No tokens yet: the first task waits for B, which leases it and grants A capacity.
      const [first] = await p.create(1);
      expect(first!.status).toBe('pending');
      expect(await until(() => p.delivered.length === 1 && p.grantsTo(p.engA.instanceId).length > 0)).toBe(true);
      await new Promise((r) => setTimeout(r, 100)); // A hears the grant as the probe did
      expect(p.grantsTo(p.engA.instanceId)[0]!.slots).toEqual([{ agent_id: p.agent, caps: expect.any(Array), add: 2 }]);

      // Now A leases at insert: the row comes back assigned to B's agent, and B hands it over.
      const [second] = await p.create(1, { note: 'phi-canary-7731' });
      expect(second).toMatchObject({ status: 'assigned', assigned_agent: p.agent, attempt: 1 });
      expect(await until(() => p.delivered.length === 2)).toBe(true);
      expect(p.delivered[1]).toMatchObject({ task_id: second!.task_id, attempt: 1, parameters: { note: 'phi-canary-7731' } });
      const deliver = p.seen.find((m) => m.kind === 'deliver');
      expect(deliver?.tasks?.map((t) => t.task_id)).toEqual([second!.task_id]);
      expect(deliver?.tasks?.[0]?.parameters.startsWith('enc:v1:')).toBe(true);
      expect(JSON.stringify(p.seen)).not.toContain('phi-canary-7731');

      // Ten more at once: A's tokens lease two at insert, B the rest as far as the agent has
      // room; unused tokens come back after 2 s idle, and B fills them. Never more than 8.
      const batch = await p.create(10);
      expect(batch.filter((t) => t.status === 'assigned').length).toBeGreaterThan(0);
      expect(await until(async () => (await p.assignedTo()) === 8)).toBe(true);
      await new Promise((r) => setTimeout(r, 1500)); // a beat more: nothing beyond the max
      expect(await p.assignedTo()).toBe(8);
      expect(new Set(p.delivered.map((d) => d.task_id)).size).toBe(8);
      expect(p.engB.loadOf(p.agent)).toBe(8);
    } finally {
      p.stop();
    }
  });

  it('drops the tokens when the serving process loses the agent: new tasks wait for it', async () => {
    const p = await twoProcesses(8);
    try {
      await p.create(1);
      expect(await until(() => p.delivered.length === 1 && p.grantsTo(p.engA.instanceId).length > 0)).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      p.engB.removeSlot(p.agent);
      // A drops them on the revoke and answers with what it still holds (nothing).
      expect(await until(() => p.seen.some((m) => m.kind === 'holdings' && m.origin === p.engA.instanceId && m.to === p.engB.instanceId))).toBe(true);
      expect(p.seen.some((m) => m.kind === 'revoke' && m.agent_id === p.agent)).toBe(true);
      const [later] = await p.create(1);
      expect(later!.status).toBe('pending');
      expect(p.delivered.map((d) => d.task_id)).not.toContain(later!.task_id);
    } finally {
      p.stop();
    }
  });
});

/** The ledger alone: two CapacityGrants on real Redis pub/sub with a clock the test moves. */
describe.skipIf(!redisUrl)('capacity grants ledger', () => {
  const coords: Coordination[] = [];
  afterAll(async () => { for (const c of coords) await c.close(); });

  async function pair() {
    const prefix = `ledger-${randomUUID()}:`;
    const [ca, cb] = await Promise.all([1, 2].map(() => createCoordination({ redisUrl, keyPrefix: prefix })));
    coords.push(ca!, cb!);
    let clock = 1_000_000;
    const slot: GrantSlot = { agent_id: 'agent-x', capabilities: new Set(['c']), max: 20, available: true, builtin: false, granted: 0 };
    let freed = 0;
    const delivered: string[] = [];
    const hostB: GrantHost = {
      slot: (id) => (id === slot.agent_id ? slot : undefined),
      slots: () => [slot],
      room: (s) => s.max - s.granted,
      deliverLeased: (rows) => { for (const r of rows) delivered.push(r.task_id); },
      roomFreed: () => { freed++; },
      onError: (err) => { throw err; },
    };
    const hostA: GrantHost = { ...hostB, slot: () => undefined, slots: () => [] };
    const b = new CapacityGrants(cb!, 'B', hostB, () => clock);
    const a = new CapacityGrants(ca!, 'A', hostA, () => clock);
    await cb!.subscribe(GRANT_CHANNEL, (m) => b.onMessage(m));
    await ca!.subscribe(GRANT_CHANNEL, (m) => a.onMessage(m));
    const settle = () => new Promise((r) => setTimeout(r, 100)); // pub/sub round trips
    return { a, b, slot, delivered, freed: () => freed, settle, tick: (ms: number) => { clock += ms; } };
  }

  const row = (agent: string) => ({
    task_id: randomUUID(), task_type: 't', parameters: '{}', priority: 0, deadline: null, pipeline_id: null, stage: null, attempt: 1,
    required_capabilities: ['c'], data_classification: 'internal', assigned_agent: agent,
    metadata: { assigned_at: new Date().toISOString(), timeout_seconds: 60, lease_expires_at: new Date().toISOString() },
  });

  it('recounts from holdings (a lost deliver costs a token for a beat), returns idle tokens, and forgets a silent peer', async () => {
    const p = await pair();
    p.b.demand('A', [{ caps: ['c'] }]);
    expect(p.slot.granted).toBe(5); // a quarter of 20
    await p.settle();
    const t1 = p.a.take(['c'], () => false)!;
    const t2 = p.a.take(['c'], () => false)!;
    expect(p.a.take(['nope'], () => false)).toBeNull();
    p.a.used([{ held: t1, row: row('agent-x') }]);
    await p.settle();
    expect(p.delivered).toHaveLength(1);
    expect(p.slot.granted).toBe(5); // one used, topped up again
    // t2's insert is still running; a deliver for it gets lost: holdings count it as held
    // until it is done, then no more, and the slot gets the room back.
    p.a.beat();
    await p.settle();
    expect(p.slot.granted).toBe(5); // A holds 4 and is using 1
    t2.inFlight--; // its deliver message was lost
    p.tick(500);
    p.a.beat();
    await p.settle();
    expect(p.slot.granted).toBe(4);
    expect(p.freed()).toBeGreaterThan(0);
    // Idle for more than 2 s: A gives the tokens back.
    p.tick(2500);
    p.a.beat();
    await p.settle();
    expect(p.slot.granted).toBe(0);
    expect(p.a.take(['c'], () => false)).toBeNull();
  });

  it('grants nothing on long-poll claim slots, built-in agents, unavailable ones or a max under 4', async () => {
    const c = await createCoordination({ redisUrl, keyPrefix: `ledger-${randomUUID()}:` });
    coords.push(c);
    const mk = (agent_id: string, over: Partial<GrantSlot>): GrantSlot => ({ agent_id, capabilities: new Set(['c']), max: 20, available: true, builtin: false, granted: 0, ...over });
    const slots = [mk('claim', { noGrants: true }), mk('builtin', { builtin: true }), mk('draining', { available: false }), mk('small', { max: 3 }), mk('other-cap', { capabilities: new Set(['d']) }), mk('big', { max: 100 })];
    const g = new CapacityGrants(c, 'B', {
      slot: (id) => slots.find((s) => s.agent_id === id), slots: () => slots, room: (s) => s.max - s.granted,
      deliverLeased: () => {}, roomFreed: () => {}, onError: (err) => { throw err; },
    });
    g.demand('A', [{ caps: ['c'] }]);
    expect(Object.fromEntries(slots.map((s) => [s.agent_id, s.granted]))).toEqual({ claim: 0, builtin: 0, draining: 0, small: 0, 'other-cap': 0, big: 8 });
  });

  it('grants at most 64 slots per announcement, skipping full ones', async () => {
    const c = await createCoordination({ redisUrl, keyPrefix: `ledger-${randomUUID()}:` });
    coords.push(c);
    const slots: GrantSlot[] = Array.from({ length: 101 }, (_, i) => ({ agent_id: `a${i}`, capabilities: new Set(['c']), max: 8, available: true, builtin: false, granted: i === 0 ? 8 : 0 }));
    const g = new CapacityGrants(c, 'B', {
      slot: (id) => slots.find((s) => s.agent_id === id), slots: () => slots, room: (s) => s.max - s.granted,
      deliverLeased: () => {}, roomFreed: () => {}, onError: (err) => { throw err; },
    });
    g.demand('A', [{ caps: ['c'] }, { caps: ['c'] }, { caps: [] }]);
    expect(slots.filter((s) => s.granted === 2).map((s) => s.agent_id)).toEqual(slots.slice(1, 65).map((s) => s.agent_id));
    expect(slots[0]!.granted).toBe(8); // full: untouched
    expect(slots.slice(65).every((s) => s.granted === 0)).toBe(true);
  });

  it('drops the tokens of a granter that went silent, and a granter frees what a silent grantee held', async () => {
    const p = await pair();
    p.b.demand('A', [{ caps: ['c'] }]);
    await p.settle();
    expect(p.a.take(['c'], () => false)).not.toBeNull();
    // B says nothing for 4 s (died): A stops using its tokens.
    p.tick(4000);
    p.a.beat();
    expect(p.a.take(['c'], () => false)).toBeNull();
    // A says nothing for 4 s either (died): B takes the room back.
    p.tick(4000);
    p.b.beat();
    expect(p.slot.granted).toBe(0);
  });
});
