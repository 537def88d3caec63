/**
 * Built-in agents yield to agents of other processes (remote-room.ts, SPEC §7.4), on real Redis
 * pub/sub with two engines on one store: process A runs a built-in agent and creates tasks,
 * process B serves a specialised agent. While B's agent has room it gets A's tasks (before, A's
 * built-in took them at insert); once it is full A's built-in takes the rest, never leaving one
 * waiting; when B falls silent A's built-in takes what B's agent would have. Then the sets alone.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus } from '../core/index.ts';
import { createCoordination, type Coordination } from '../coordination/index.ts';
import { FieldCipher, KeyRing } from '../security/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { insertAgent } from '../../test/helpers/agents.ts';
import { AssignmentEngine, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import { ROOM_CHANNEL, RemoteRoom, type RoomHost, type RoomSlot } from './remote-room.ts';
import type { Principal } from '../auth/index.ts';
import { until } from '../../test/helpers/until.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const redisUrl = process.env.MCP_TEST_REDIS_URL ?? '';
const admin: Principal = { type: 'user', id: 'room-admin', role: 'admin', name: 'room' };

interface RoomMsg { origin: string; builtins: boolean; sets: string[][] }

describe.skipIf(!redisUrl).each(engines())('built-in agents yield to other processes\' agents on $name', (engine) => {
  let tdb: TestDb;
  const coords: Coordination[] = [];
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => {
    for (const c of coords) await c.close();
    await tdb?.dispose();
  });

  it('gives A\'s tasks to B\'s agent while it has room, the rest to A\'s built-in, and all to the built-in once B is silent', async () => {
    const prefix = `room-${randomUUID()}:`;
    const [coordA, coordB, probe] = await Promise.all([1, 2, 3].map(() => createCoordination({ redisUrl, keyPrefix: prefix })));
    coords.push(coordA!, coordB!, probe!);
    const heard: RoomMsg[] = [];
    await probe!.subscribe(ROOM_CHANNEL, (m) => { heard.push(m as RoomMsg); });
    const repo = new TaskRepository(new FieldCipher(KeyRing.fromMasterKey(randomBytes(32))));
    const busA = new EventBus();
    const tasksA = new TaskService(tdb.db, repo, noOutcomes, busA, { retryBaseMs: 1000, retryCapMs: 60_000 });
    const engA = new AssignmentEngine(tdb.db, repo, busA, { defaultStrategy: 'capability_match' });
    tasksA.assigner = engA;
    const engB = new AssignmentEngine(tdb.db, repo, new EventBus(), { defaultStrategy: 'capability_match' });
    const cap = `room-${randomUUID().slice(0, 8)}`;
    const cap2 = `room2-${randomUUID().slice(0, 8)}`;
    const builtin = `builtin-${randomUUID()}`;
    const agent = `special-${randomUUID()}`;
    const small = `small-${randomUUID()}`; // a maximum under 4: B grants A no capacity on it
    await insertAgent(tdb.db, builtin, [cap, cap2], 20);
    await insertAgent(tdb.db, agent, [cap], 4);
    await insertAgent(tdb.db, small, [cap2], 2);
    const toBuiltin: DeliveredTask[] = [];
    const toAgent: DeliveredTask[] = [];
    try {
      await engA.connect(coordA!, 0);
      await engB.connect(coordB!, 0);
      await engA.addSlot({ agent_id: builtin, capabilities: new Set([cap, cap2]), max: 20, score: 0, builtin: true, available: true, deliver: (t) => toBuiltin.push(t) });
      await engB.addSlot({ agent_id: agent, capabilities: new Set([cap]), max: 4, score: 0, builtin: false, available: true, deliver: (t) => toAgent.push(t) });
      // B has said its agent has room (A runs built-ins: B tells it on change, not only every second).
      expect(await until(() => heard.some((m) => m.origin === engB.instanceId && m.sets.some((s) => s.includes(cap))))).toBe(true);
      expect(heard.some((m) => m.origin === engA.instanceId && m.builtins)).toBe(true);
      await new Promise((r) => setTimeout(r, 50)); // A hears it as the probe did

      const create = (n: number, caps = [cap]) => tasksA.createMany(Array.from({ length: n }, () => ({ task_type: 'room', required_capabilities: caps, data_classification: 'internal' as const, parameters: {} })), admin);
      const [first] = await create(1);
      expect(first!.status).toBe('pending'); // not leased to the built-in at insert
      expect(await until(() => toAgent.length === 1)).toBe(true);
      expect(toAgent[0]!.task_id).toBe(first!.task_id);
      expect(toBuiltin).toHaveLength(0);

      // Ten more: B's agent takes what it has room for (4 at most), A's built-in the others — none left waiting.
      const more = await create(10);
      const ids = [first!.task_id, ...more.map((t) => t.task_id)];
      expect(await until(() => toAgent.length + toBuiltin.length === 11)).toBe(true);
      const { rows } = await tdb.db.query<{ assigned_agent: string; n: number }>(
        `SELECT assigned_agent, count(*)::int AS n FROM tasks WHERE task_id = ANY($1::uuid[]) AND status = 'assigned' GROUP BY assigned_agent`, [ids]);
      const byAgent = Object.fromEntries(rows.map((r) => [r.assigned_agent, r.n]));
      expect(byAgent[agent]).toBe(toAgent.length);
      expect(byAgent[builtin]).toBe(toBuiltin.length);
      expect(toAgent.length).toBeGreaterThanOrEqual(2);
      expect(toAgent.length).toBeLessThanOrEqual(4);
      expect(new Set([...toAgent, ...toBuiltin].map((t) => t.task_id))).toEqual(new Set(ids));

      // B's other agent has room; then B's process dies (its store connection gone, no word of
      // it): A's built-in leaves the next task to that agent until B has been silent for a while,
      // then takes it.
      heard.length = 0;
      await engB.addSlot({ agent_id: small, capabilities: new Set([cap2]), max: 2, score: 0, builtin: false, available: true, deliver: (t) => toAgent.push(t) });
      expect(await until(() => heard.some((m) => m.origin === engB.instanceId && m.sets.some((s) => s.includes(cap2))))).toBe(true);
      await new Promise((r) => setTimeout(r, 50));
      await coordB!.close();
      engB.stop();
      const before = toBuiltin.length;
      const [late] = await create(1, [cap2]);
      await new Promise((r) => setTimeout(r, 1000));
      expect(toBuiltin).toHaveLength(before);
      expect(await until(() => toBuiltin.length === before + 1, 8000)).toBe(true);
      expect(toBuiltin.at(-1)!.task_id).toBe(late!.task_id);
      expect(toAgent.map((t) => t.task_id)).not.toContain(late!.task_id);
    } finally {
      engA.stop();
      engB.stop();
    }
  });
});

/** The sets alone, on real Redis pub/sub with a clock the test moves. */
describe.skipIf(!redisUrl)('remote room sets', () => {
  const coords: Coordination[] = [];
  afterAll(async () => { for (const c of coords) await c.close(); });

  type TestSlot = RoomSlot & { load: number };
  const mk = (caps: string[], over: Partial<TestSlot> = {}): TestSlot => ({ capabilities: new Set(caps), builtin: false, available: true, max: 2, load: 0, ...over });
  const host = (slots: TestSlot[], changed: () => void = () => {}): RoomHost => ({
    slots: () => slots, load: (s) => (s as TestSlot).load, runsBuiltins: () => slots.some((s) => s.builtin), changed, onError: (err) => { throw err; },
  });
  /** Rooms A and B on their own connections, and every message on the channel as a third process hears it. */
  async function rooms(hostA: RoomHost, hostB: RoomHost, now?: () => number) {
    const keyPrefix = `room-sets-${randomUUID()}:`; // one channel for the three
    const [ca, cb, probe] = await Promise.all([1, 2, 3].map(() => createCoordination({ redisUrl, keyPrefix })));
    coords.push(ca!, cb!, probe!);
    const heard: RoomMsg[] = [];
    await probe!.subscribe(ROOM_CHANNEL, (m) => { heard.push(m as RoomMsg); });
    const a = new RemoteRoom(ca!, 'A', hostA, now);
    const b = new RemoteRoom(cb!, 'B', hostB, now);
    await ca!.subscribe(ROOM_CHANNEL, (m) => a.onMessage(m));
    await cb!.subscribe(ROOM_CHANNEL, (m) => b.onMessage(m));
    return { a, b, lastFrom: (origin: string) => heard.filter((m) => m.origin === origin).at(-1), sentBy: (origin: string) => heard.filter((m) => m.origin === origin).length };
  }
  const settle = () => new Promise((r) => setTimeout(r, 100));

  it('announces the capability sets of available non-built-in slots with room, covers by subset, and forgets a silent process', async () => {
    let clock = 1_000_000;
    const slotsB = [mk(['b', 'a']), mk(['a', 'b']), mk(['c'], { load: 2 }), mk(['d'], { available: false }), mk(['e'], { builtin: true })];
    let changedA = 0;
    const { a, b, lastFrom } = await rooms(host([mk(['a', 'b', 'c', 'd', 'e'], { builtin: true })], () => { changedA++; }), host(slotsB), () => clock);
    try {
      a.start();
      b.start();
      await settle();
      // Only [a, b] has room: [c] is full, [d] unavailable, [e] a built-in. Said once for both slots, sorted.
      expect(lastFrom('B')).toEqual({ origin: 'B', builtins: true, sets: [['a', 'b']] });
      expect(lastFrom('A')).toEqual({ origin: 'A', builtins: true, sets: [] });
      expect(a.covers(['a'])).toBe(true);
      expect(a.covers(['b', 'a'])).toBe(true);
      expect(a.covers(['a', 'c'])).toBe(false);
      expect(a.covers(['c'])).toBe(false);
      expect(b.covers(['a'])).toBe(false); // A has only a built-in

      // Both [a, b] slots fill up: B says so (A runs built-ins), and A runs a round.
      const changedBefore = changedA;
      slotsB[0]!.load = 2;
      slotsB[1]!.load = 2;
      b.touch();
      await settle();
      expect(lastFrom('B')!.sets).toEqual([]);
      expect(a.covers(['a'])).toBe(false);
      expect(changedA).toBeGreaterThan(changedBefore);

      // Room again, then B falls silent for 4 s: A forgets its sets (and runs a round).
      slotsB[0]!.load = 0;
      b.touch();
      await settle();
      expect(a.covers(['a'])).toBe(true);
      const beforeSilence = changedA;
      clock += 4000;
      a.beat();
      expect(a.covers(['a'])).toBe(false);
      expect(changedA).toBe(beforeSilence + 1);

      // B comes back with room, then stops (a shutdown): it says so, A need not wait for its silence.
      b.touch();
      b.beat();
      await settle();
      expect(a.covers(['a'])).toBe(true);
      const beforeStop = changedA;
      b.stop();
      await settle();
      expect(lastFrom('B')).toEqual({ origin: 'B', builtins: false, sets: [] });
      expect(a.covers(['a'])).toBe(false);
      expect(changedA).toBe(beforeStop + 1);
    } finally {
      a.stop();
      b.stop();
    }
  });

  it('sends changes only while another process runs built-ins', async () => {
    const slot = mk(['a'], { max: 1 });
    const { a, b, lastFrom, sentBy } = await rooms(host([slot]), host([]));
    try {
      a.start();
      b.start();
      await settle();
      const sent = sentBy('A');
      slot.load = 1;
      a.touch();
      await settle();
      expect(sentBy('A')).toBe(sent); // nobody reads changes: the beat says it
      // Nor does the beat carry sets while nobody reads them (a sign of life only).
      slot.load = 0;
      a.beat();
      await settle();
      expect(lastFrom('A')).toEqual({ origin: 'A', builtins: false, sets: [] });
    } finally {
      a.stop();
      b.stop();
    }
  });
});
