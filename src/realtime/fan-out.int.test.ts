/**
 * Cross-process event batches on Redis: a process alone on the channel keeps its batches local
 * (one probe a second), finds a new listener by that probe, and hears at once of a process that
 * announces itself when it starts; a task's `task:created` is seq 1 even when another process
 * numbered an event of the task first. Real Redis, real Socket.IO namespaces (no sockets needed).
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Server } from 'socket.io';
import { EventBus } from '../core/index.ts';
import { createCoordination, type Coordination } from '../coordination/index.ts';
import { EVENTS_CHANNEL, FanOut } from './fan-out.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const redisUrl = process.env.MCP_TEST_REDIS_URL ?? '';
const tick = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe.skipIf(!redisUrl)('event fan-out across processes', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
  });

  /** A "process": its coordination handle (publishes counted), bus and fan-out. */
  async function proc(prefix: string) {
    const coord = await createCoordination({ redisUrl, keyPrefix: prefix });
    const published: unknown[] = [];
    const publish = coord.publish.bind(coord);
    coord.publish = (channel, message, options) => {
      if (channel === EVENTS_CHANNEL) published.push(message);
      return publish(channel, message, options);
    };
    const io = new Server();
    const bus = new EventBus();
    const fan = new FanOut(io.of('/'), bus, coord);
    cleanup.push(() => coord.close(), () => fan.stop(), () => io.close());
    const warn = (n: number) => bus.emit('system:warning', { message: `w${n}`, component: 'test' });
    return { coord, bus, fan, published, warn };
  }

  async function listener(prefix: string): Promise<{ coord: Coordination; got: string[] }> {
    const coord = await createCoordination({ redisUrl, keyPrefix: prefix });
    cleanup.push(() => coord.close());
    const got: string[] = [];
    await coord.subscribe(EVENTS_CHANNEL, (m) => {
      for (const e of (m as { events: Array<{ payload: { message: string } }> }).events) got.push(e.payload.message);
    });
    return { coord, got };
  }

  it('publishes nothing but its announcement and a probe a second while alone, and finds a new listener by the probe', async () => {
    const prefix = `t-fan-${randomUUID().slice(0, 8)}:`;
    const a = await proc(prefix);
    await a.fan.start();
    expect(a.published).toEqual([{ events: [] }]); // the announcement: nobody answered
    for (let i = 0; i < 5; i++) {
      a.warn(i);
      await tick();
      await tick();
    }
    await sleep(50);
    expect(a.published).toHaveLength(1); // alone, less than a second after the announcement
    const b = await listener(prefix);
    // Within a probe period the listener is found; every batch after that reaches it.
    const deadline = Date.now() + 3000;
    let n = 5;
    while (!b.got.length && Date.now() < deadline) {
      a.warn(n++);
      await sleep(50);
    }
    expect(b.got.length).toBeGreaterThan(0);
    a.warn(1000);
    await sleep(100);
    expect(b.got.at(-1)).toBe('w1000');
  });

  it('hears at once of a process that starts and announces itself', async () => {
    const prefix = `t-fan-${randomUUID().slice(0, 8)}:`;
    const a = await proc(prefix);
    await a.fan.start();
    a.warn(1);
    await sleep(20);
    const sent = a.published.length; // the announcement (and maybe one probe)
    const b = await proc(prefix);
    await b.fan.start(); // announces itself: a hears it
    await sleep(50);
    a.warn(2);
    await sleep(50);
    // Published at once, not at the next probe up to a second later.
    expect(a.published.length).toBe(sent + 1);
    expect(a.published.at(-1)).toMatchObject({ events: [{ name: 'system:warning', payload: { message: 'w2' } }] });
  });

  it('numbers a task\'s creation 1 and its later events after it, even when another process numbered one of them first', async () => {
    const prefix = `t-fan-${randomUUID().slice(0, 8)}:`;
    const creator = await proc(prefix);
    const leaser = await proc(prefix);
    await creator.fan.start();
    await leaser.fan.start(); // announces itself: both publish their batches from now on
    await sleep(50);
    const seqs = new Map<string, number>();
    const seen = (p: typeof creator) => {
      for (const m of p.published) for (const e of (m as { events: Array<{ name: string; seq: number }> }).events) seqs.set(e.name, e.seq);
    };
    const task_id = randomUUID();
    // The race: the leaser took the task the moment its insert committed and numbered
    // task:assigned before the creator's batch with task:created was numbered.
    leaser.bus.emit('task:assigned', { task_id, agent_id: 'agent-b', attempt: 1, pipeline_id: null });
    await waitForPublished(leaser, 1);
    creator.bus.emit('task:created', { task_id, task_type: 't', priority: 5, pipeline_id: null, stage: null });
    await waitForPublished(creator, 1);
    leaser.bus.emit('task:completed', { task_id, agent_id: 'agent-b', attempt: 1, task_type: 't', pipeline_id: null, stage: null, duration_ms: 1 });
    await waitForPublished(leaser, 2);
    seen(creator);
    seen(leaser);
    expect(Object.fromEntries(seqs)).toEqual({ 'task:created': 1, 'task:assigned': 2, 'task:completed': 3 });
  });

  /** Waits until the process published `n` event batches after its announcement. */
  async function waitForPublished(p: { published: unknown[] }, n: number): Promise<void> {
    const deadline = Date.now() + 3000;
    const batches = () => p.published.filter((m) => (m as { events: unknown[] }).events.length > 0).length;
    while (batches() < n && Date.now() < deadline) await sleep(5);
    expect(batches()).toBe(n);
  }

  it('sends other processes the codes of failures, never their free text (error messages, progress messages, cancel reasons)', async () => {
    const prefix = `t-fan-${randomUUID().slice(0, 8)}:`;
    const a = await proc(prefix);
    await a.fan.start();
    const payloads: Array<{ name: string; payload: Record<string, unknown> }> = [];
    const b = await createCoordination({ redisUrl, keyPrefix: prefix });
    cleanup.push(() => b.close());
    await b.subscribe(EVENTS_CHANNEL, (m) => { payloads.push(...(m as { events: typeof payloads }).events); });
    const other = await proc(prefix);
    await other.fan.start(); // announces itself: a publishes to the channel from now on
    await sleep(50);
    const canary = `canary-${randomUUID()}`;
    const pipeline_id = randomUUID();
    const task_id = randomUUID();
    a.bus.emit('task:progress_updated', { task_id, attempt: 1, progress: 0.5, message: `${canary} progress`, pipeline_id: null, agent_id: 'x' });
    a.bus.emit('task:failed', { task_id, agent_id: 'x', attempt: 1, task_type: 't', pipeline_id, stage: 's1', error: { code: 'AGENT_ERROR', message: `${canary} error`, retryable: false }, dead_letter: true, will_retry: false });
    a.bus.emit('pipeline:failed', { pipeline_id, status: 'failed', error: { code: 'AGENT_ERROR', message: `Stage 's1' failed: ${canary}`, stage: 's1' } });
    a.bus.emit('pipeline:failed', { pipeline_id, status: 'cancelled', error: { code: 'PIPELINE_CANCELLED', message: `${canary} reason` } });
    const deadline = Date.now() + 3000;
    while (payloads.filter((e) => e.name === 'pipeline:failed').length < 2 && Date.now() < deadline) await sleep(20);
    expect(JSON.stringify(payloads)).not.toContain(canary);
    expect(payloads.find((e) => e.name === 'task:progress_updated')?.payload).toMatchObject({ task_id, progress: 0.5 });
    expect(payloads.find((e) => e.name === 'task:failed')?.payload.error).toEqual({ code: 'AGENT_ERROR', retryable: false });
    expect(payloads.filter((e) => e.name === 'pipeline:failed').map((e) => e.payload.error)).toEqual([{ code: 'AGENT_ERROR', stage: 's1' }, { code: 'PIPELINE_CANCELLED' }]);
  });
});
