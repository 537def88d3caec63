/**
 * The coordination contract: one suite every adapter must pass. Adapter test files call
 * `defineCoordinationContract` with a factory of isolated spaces (the in-process adapter: a new
 * instance; Redis: a new key prefix).
 *
 * A space can be opened several times: for Redis each `open()` is a separate set of
 * connections — another "process" sharing the same keys; in-process, every `open()` returns
 * the same instance, since one process is all it serves.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { UnavailableError, sleep } from '../core/index.ts';
import type { Coordination } from './coordination.ts';
import { LeaderElector } from './leader-elector.ts';

export interface CoordinationSpace {
  /** A handle on this space; see the file comment. */
  open(): Promise<Coordination>;
  /** Closes every handle it opened and removes whatever the space stored. */
  dispose(): Promise<void>;
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 3000, stepMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
}

interface Inbox {
  messages: unknown[];
  stop: () => Promise<void>;
}

async function listen(coord: Coordination, channel: string): Promise<Inbox> {
  const messages: unknown[] = [];
  const stop = await coord.subscribe(channel, (m) => messages.push(m));
  return { messages, stop };
}

function isStrictlyIncreasing(xs: number[]): boolean {
  return xs.every((x, i) => i === 0 || x > (xs[i - 1] as number));
}

export function defineCoordinationContract(label: string, newSpace: () => Promise<CoordinationSpace>): void {
  describe(`Coordination contract: ${label}`, () => {
    let space: CoordinationSpace;
    let a: Coordination;
    let b: Coordination;

    beforeEach(async () => {
      space = await newSpace();
      a = await space.open();
      b = await space.open();
    });

    afterEach(async () => {
      await space.dispose();
    });

    describe('pub/sub', () => {
      it('with echo: false, skips the publishing handle\'s own subscribers and still reaches other handles', async () => {
        const own = await listen(a, 'quiet');
        const other = await listen(b, 'quiet');
        await a.publish('quiet', { n: 1 }, { echo: false });
        await a.publish('quiet', { n: 2 });
        expect(await waitFor(() => own.messages.length >= 1 && other.messages.length >= (a === b ? 1 : 2))).toBe(true);
        await sleep(50);
        expect(own.messages).toEqual([{ n: 2 }]);
        // In-process every open() is the same handle, so its subscribers are the publisher's own.
        expect(other.messages).toEqual(a === b ? [{ n: 2 }] : [{ n: 1 }, { n: 2 }]);
      });

      it('tells the publisher how many other handles subscribe to the channel', async () => {
        expect(await a.publish('census', 0)).toBe(0); // nobody
        const own = await listen(a, 'census');
        expect(await a.publish('census', 1)).toBe(0); // only this handle
        const other = await listen(b, 'census');
        // In-process every open() is the same handle: still nobody else.
        expect(await a.publish('census', 2)).toBe(a === b ? 0 : 1);
        expect(await waitFor(() => own.messages.length === 2 && other.messages.length === 1)).toBe(true);
      });

      it('delivers JSON messages, in order, as fresh copies, to every subscriber of the channel', async () => {
        const one = await listen(a, 'events');
        const two = await listen(a, 'events');
        const sent = { type: 'task:created', task: { id: 't1', tags: ['x', 'y'] }, n: 1.5 };
        await a.publish('events', sent);
        await a.publish('events', 'second');
        await a.publish('events', 3);
        expect(await waitFor(() => one.messages.length === 3 && two.messages.length === 3)).toBe(true);
        expect(one.messages).toEqual([sent, 'second', 3]);
        expect(two.messages).toEqual([sent, 'second', 3]);
        expect(one.messages[0]).not.toBe(sent);
        expect(one.messages[0]).not.toBe(two.messages[0]);
      });

      it('delivers across handles (another process) and keeps channels apart', async () => {
        const onB = await listen(b, 'agents');
        const other = await listen(b, 'tasks');
        await a.publish('agents', { agent_id: 'a1', status: 'active' });
        expect(await waitFor(() => onB.messages.length === 1)).toBe(true);
        expect(onB.messages).toEqual([{ agent_id: 'a1', status: 'active' }]);
        // A later message on another channel arriving proves the first was not also sent there.
        await a.publish('tasks', 'marker');
        expect(await waitFor(() => other.messages.length === 1)).toBe(true);
        expect(other.messages).toEqual(['marker']);
        expect(onB.messages).toHaveLength(1);
      });

      it('stops delivering after unsubscribe, leaving other subscribers of the channel alone', async () => {
        const gone = await listen(b, 'c');
        const stays = await listen(b, 'c');
        await a.publish('c', 1);
        expect(await waitFor(() => gone.messages.length === 1 && stays.messages.length === 1)).toBe(true);
        await gone.stop();
        await gone.stop(); // idempotent
        await a.publish('c', 2);
        expect(await waitFor(() => stays.messages.length === 2)).toBe(true);
        expect(stays.messages).toEqual([1, 2]);
        expect(gone.messages).toEqual([1]);
      });

      it('accepts concurrent first subscriptions on a fresh handle', async () => {
        const fresh = await space.open();
        const inboxes = await Promise.all(['c1', 'c2', 'c3', 'c1'].map((ch) => listen(fresh, ch)));
        await Promise.all(['c1', 'c2', 'c3'].map((ch) => a.publish(ch, ch)));
        expect(await waitFor(() => inboxes.every((i) => i.messages.length === 1))).toBe(true);
        expect(inboxes.map((i) => i.messages[0])).toEqual(['c1', 'c2', 'c3', 'c1']);
      });

      it('isolates a throwing handler from the others', async () => {
        await b.subscribe('boom', () => {
          throw new Error('handler bug');
        });
        const ok = await listen(b, 'boom');
        await a.publish('boom', { fine: true });
        expect(await waitFor(() => ok.messages.length === 1)).toBe(true);
        expect(ok.messages).toEqual([{ fine: true }]);
      });

      it('sends undefined as null and rejects values JSON cannot carry', async () => {
        const inbox = await listen(b, 'odd');
        await a.publish('odd', undefined);
        expect(await waitFor(() => inbox.messages.length === 1)).toBe(true);
        expect(inbox.messages).toEqual([null]);
        await expect(a.publish('odd', { n: 1n })).rejects.toThrow(TypeError);
      });
    });

    describe('presence', () => {
      it('stores, reads, lists, overwrites and removes records per kind', async () => {
        await a.setPresence('agent', 'a1', { status: 'active', load: 1 }, 5000);
        await a.setPresence('agent', 'a2', { status: 'busy', load: 3 }, 5000);
        await a.setPresence('socket', 's1', { user: 'u1' }, 5000);
        expect(await b.getPresence('agent', 'a1')).toEqual({ status: 'active', load: 1 });
        expect(await b.getPresence('agent', 'nope')).toBeNull();
        expect(await b.getPresence('socket', 'a1')).toBeNull();
        const listed = await b.listPresence('agent');
        expect(listed.sort((x, y) => x.id.localeCompare(y.id))).toEqual([
          { id: 'a1', data: { status: 'active', load: 1 } },
          { id: 'a2', data: { status: 'busy', load: 3 } },
        ]);
        expect(await b.listPresence('socket')).toEqual([{ id: 's1', data: { user: 'u1' } }]);
        expect(await b.listPresence('empty-kind')).toEqual([]);

        await b.setPresence('agent', 'a1', { status: 'draining', load: 0 }, 5000);
        expect(await a.getPresence('agent', 'a1')).toEqual({ status: 'draining', load: 0 });

        await a.removePresence('agent', 'a1');
        await a.removePresence('agent', 'never-there');
        expect(await b.getPresence('agent', 'a1')).toBeNull();
        expect((await b.listPresence('agent')).map((e) => e.id)).toEqual(['a2']);
      });

      it('expires records after their TTL; list only shows live ones', async () => {
        await a.setPresence('agent', 'short', { v: 1 }, 150);
        await a.setPresence('agent', 'long', { v: 2 }, 10_000);
        expect((await b.listPresence('agent')).map((e) => e.id).sort()).toEqual(['long', 'short']);
        await sleep(300);
        expect(await b.getPresence('agent', 'short')).toBeNull();
        expect(await b.listPresence('agent')).toEqual([{ id: 'long', data: { v: 2 } }]);
        expect(await b.getPresence('agent', 'long')).toEqual({ v: 2 });
      });

      it('reads many records in one call, in order, null for missing and expired ones', async () => {
        await a.setPresence('agent', 'm1', { v: 1 }, 10_000);
        await a.setPresence('agent', 'm2', { v: 2 }, 150);
        await a.setPresence('worker', 'm3', { v: 3 }, 10_000);
        expect(await b.getPresenceMany('agent', ['m2', 'none', 'm1', 'm3'])).toEqual([{ v: 2 }, null, { v: 1 }, null]);
        await sleep(300);
        expect(await b.getPresenceMany('agent', ['m1', 'm2'])).toEqual([{ v: 1 }, null]);
        expect(await b.getPresenceMany('agent', [])).toEqual([]);
      });

      it('writes many records of several kinds in one call, each live for the TTL given', async () => {
        // More than one pipeline's worth, over three kinds, one of them overwriting a live record.
        await a.setPresence('sock', 'w0', { v: 'old' }, 10_000);
        const many = Array.from({ length: 4500 }, (_, i) => ({ kind: ['sock', 'agent-sock', 'third'][i % 3]!, id: `w${i}`, data: { v: i } }));
        await a.setPresenceMany(many, 1000);
        expect(await b.getPresence('sock', 'w0')).toEqual({ v: 0 });
        expect(await b.getPresenceMany('agent-sock', ['w1', 'w4', 'w4498', 'w0'])).toEqual([{ v: 1 }, { v: 4 }, { v: 4498 }, null]);
        expect((await b.listPresence('third')).length).toBe(1500);
        await a.setPresenceMany([], 1000);
        await a.setPresenceMany([{ kind: 'sock', id: 'w3', data: { v: 'kept' } }], 10_000);
        await sleep(1200);
        expect(await b.listPresence('sock')).toEqual([{ id: 'w3', data: { v: 'kept' } }]);
        expect(await b.listPresence('agent-sock')).toEqual([]);
      });

      it('a heartbeat (set again) keeps a record alive past its first TTL', async () => {
        await a.setPresence('agent', 'hb', { beat: 1 }, 400);
        await sleep(250);
        await a.setPresence('agent', 'hb', { beat: 2 }, 400);
        await sleep(250); // 500 ms after the first beat, 250 ms after the second
        expect(await b.getPresence('agent', 'hb')).toEqual({ beat: 2 });
        expect(await b.listPresence('agent')).toEqual([{ id: 'hb', data: { beat: 2 } }]);
      });

      it('a short TTL written after a long one wins (the record expires on the newest TTL)', async () => {
        await a.setPresence('agent', 'x', { v: 1 }, 10_000);
        await a.setPresence('agent', 'x', { v: 2 }, 100);
        await sleep(250);
        expect(await b.getPresence('agent', 'x')).toBeNull();
        expect(await b.listPresence('agent')).toEqual([]);
      });
    });

    describe('cache / kv', () => {
      it('round-trips JSON values and deletes them', async () => {
        expect(await a.get('missing')).toBeNull();
        await a.set('obj', { a: [1, 2, { b: 'c' }], n: null });
        await a.set('num', 42);
        await a.set('str', 'hello');
        expect(await b.get('obj')).toEqual({ a: [1, 2, { b: 'c' }], n: null });
        expect(await b.get<number>('num')).toBe(42);
        expect(await b.get<string>('str')).toBe('hello');
        await b.del('num');
        await b.del('never-there');
        expect(await a.get('num')).toBeNull();
      });

      it('expires values with a TTL and keeps those without', async () => {
        await a.set('ttl', 'soon gone', 150);
        await a.set('forever', 'stays');
        expect(await b.get('ttl')).toBe('soon gone');
        await sleep(300);
        expect(await b.get('ttl')).toBeNull();
        expect(await b.get('forever')).toBe('stays');
      });

      it('setIfAbsent: exactly one of many concurrent callers wins, and its value is stored', async () => {
        const attempts = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).setIfAbsent('claim', { by: i }, 5000));
        const results = await Promise.all(attempts);
        const winners = results.flatMap((won, i) => (won ? [i] : []));
        expect(winners).toHaveLength(1);
        expect(await a.get('claim')).toEqual({ by: winners[0] });
        expect(await b.setIfAbsent('claim', 'late', 5000)).toBe(false);
      });

      it('setIfAbsent succeeds again once the previous value expired or was deleted', async () => {
        expect(await a.setIfAbsent('k', 1, 150)).toBe(true);
        expect(await b.setIfAbsent('k', 2, 150)).toBe(false);
        await sleep(300);
        expect(await b.setIfAbsent('k', 3, 5000)).toBe(true);
        expect(await a.get('k')).toBe(3);
        await a.del('k');
        expect(await a.setIfAbsent('k', 4, 5000)).toBe(true);
        expect(await b.get('k')).toBe(4);
      });
    });

    describe('windowed counters', () => {
      it('counts within a window, by any step, atomically across handles', async () => {
        expect(await a.incr('logins:u1', 10_000)).toBe(1);
        expect(await b.incr('logins:u1', 10_000)).toBe(2);
        expect(await a.incr('logins:u1', 10_000, 5)).toBe(7);
        expect(await a.incr('logins:u2', 10_000)).toBe(1);
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).incr('burst', 10_000)));
        expect([...results].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      });

      it('is a fixed window: it starts at the first increment, later increments do not extend it', async () => {
        expect(await a.incr('w', 400)).toBe(1);
        await sleep(250);
        expect(await b.incr('w', 400)).toBe(2);
        // ~500 ms after the window opened: past a fixed window, inside one a sliding window would
        // have extended to ~650 ms.
        await sleep(250);
        expect(await a.incr('w', 400)).toBe(1);
      });

      it('increments many counters in one call, in order, sharing counts with incr', async () => {
        expect(await a.incr('seq:x', 10_000)).toBe(1);
        expect(await b.incrMany(['seq:x', 'seq:y', 'seq:x', 'seq:z'], 10_000)).toEqual([2, 1, 3, 1]);
        expect(await a.incrMany([], 10_000)).toEqual([]);
        expect(await a.incr('seq:y', 10_000)).toBe(2);
        expect(await a.incrMany(['fresh'], 300)).toEqual([1]);
        await sleep(450);
        expect(await b.incrMany(['fresh', 'seq:x'], 300)).toEqual([1, 4]);
      });
    });

    describe('load hashes', () => {
      it('increments, decrements, lists and deletes fields', async () => {
        expect(await a.hgetall('load')).toEqual({});
        expect(await a.hincr('load', 'agent-1', 1)).toBe(1);
        expect(await b.hincr('load', 'agent-1', 1)).toBe(2);
        expect(await a.hincr('load', 'agent-2', 3)).toBe(3);
        expect(await b.hincr('load', 'agent-1', -1)).toBe(1);
        expect(await a.hincr('load', 'agent-3', -2)).toBe(-2);
        expect(await b.hgetall('load')).toEqual({ 'agent-1': 1, 'agent-2': 3, 'agent-3': -2 });
        await a.hdel('load', 'agent-3');
        await a.hdel('load', 'never-there');
        expect(await b.hgetall('load')).toEqual({ 'agent-1': 1, 'agent-2': 3 });
        expect(await b.hgetall('other')).toEqual({});
      });

      it('is atomic under concurrent increments from several handles', async () => {
        await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).hincr('inflight', 'x', i % 3 === 0 ? -1 : 1)));
        // 20 of the 60 are -1, 40 are +1.
        expect(await a.hgetall('inflight')).toEqual({ x: 20 });
      });
    });

    describe('locks with fencing tokens', () => {
      it('is exclusive between owners; only the owner extends or releases', async () => {
        const first = await a.tryAcquireLock('leader', 'owner-a', 5000);
        expect(first).not.toBeNull();
        expect(Number.isSafeInteger(first?.fencingToken)).toBe(true);
        expect(await b.tryAcquireLock('leader', 'owner-b', 5000)).toBeNull();
        expect(await b.extendLock('leader', 'owner-b', 5000)).toBe(false);
        expect(await a.extendLock('leader', 'owner-a', 5000)).toBe(true);
        // Re-acquiring as the holder refreshes and keeps the token.
        expect(await a.tryAcquireLock('leader', 'owner-a', 5000)).toEqual(first);
        await b.releaseLock('leader', 'owner-b'); // not the owner: no effect
        expect(await b.tryAcquireLock('leader', 'owner-b', 5000)).toBeNull();
        await a.releaseLock('leader', 'owner-a');
        const second = await b.tryAcquireLock('leader', 'owner-b', 5000);
        expect(second?.fencingToken).toBeGreaterThan(first?.fencingToken ?? Infinity);
        // Locks of other names are independent.
        expect(await a.tryAcquireLock('other', 'owner-a', 5000)).not.toBeNull();
      });

      it('issues a strictly increasing token on every new acquisition', async () => {
        const tokens: number[] = [];
        for (let i = 0; i < 6; i++) {
          const owner = `owner-${i % 2}`;
          const got = await (i % 2 ? b : a).tryAcquireLock('seq', owner, 5000);
          expect(got).not.toBeNull();
          tokens.push(got?.fencingToken ?? -1);
          await (i % 2 ? b : a).releaseLock('seq', owner);
        }
        expect(isStrictlyIncreasing(tokens)).toBe(true);
      });

      it('lets another owner in after expiry; the old owner can then neither extend nor release', async () => {
        const old = await a.tryAcquireLock('exp', 'owner-a', 150);
        expect(old).not.toBeNull();
        await sleep(300);
        const next = await b.tryAcquireLock('exp', 'owner-b', 5000);
        expect(next?.fencingToken).toBeGreaterThan(old?.fencingToken ?? Infinity);
        expect(await a.extendLock('exp', 'owner-a', 5000)).toBe(false);
        await a.releaseLock('exp', 'owner-a');
        expect(await a.tryAcquireLock('exp', 'owner-a', 5000)).toBeNull();
        expect(await b.extendLock('exp', 'owner-b', 5000)).toBe(true);
      });

      it('grants exactly one of many concurrent acquisitions', async () => {
        const results = await Promise.all(
          Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).tryAcquireLock('race', `owner-${i}`, 5000)),
        );
        expect(results.filter((r) => r !== null)).toHaveLength(1);
      });
    });

    describe('LeaderElector', () => {
      it('elects one leader and fails over to the other with a higher token when the leader stops', async () => {
        const log: string[] = [];
        const mk = (coord: Coordination, id: string): LeaderElector =>
          new LeaderElector(coord, {
            name: 'jobs',
            ownerId: id,
            ttlMs: 600,
            onElected: (token) => void log.push(`${id}:elected:${token}`),
            onDemoted: () => void log.push(`${id}:demoted`),
          });
        const one = mk(a, 'p1');
        const two = mk(b, 'p2');
        try {
          await one.start();
          await two.start();
          expect(one.isLeader).toBe(true);
          expect(two.isLeader).toBe(false);
          expect(two.fencingToken).toBeNull();
          const firstToken = one.fencingToken;
          expect(firstToken).not.toBeNull();
          expect(log).toEqual([`p1:elected:${firstToken}`]);

          await sleep(700); // longer than the TTL: renewals must have kept p1 in charge
          expect(one.isLeader).toBe(true);
          expect(two.isLeader).toBe(false);
          expect(one.fencingToken).toBe(firstToken);

          await one.stop();
          expect(one.isLeader).toBe(false);
          expect(await waitFor(() => two.isLeader, 2000)).toBe(true);
          expect(two.fencingToken).toBeGreaterThan(firstToken ?? Infinity);
          expect(log).toEqual([`p1:elected:${firstToken}`, 'p1:demoted', `p2:elected:${two.fencingToken}`]);
        } finally {
          await one.stop();
          await two.stop();
        }
        // Stopping the leader released the lock.
        expect(await a.tryAcquireLock('jobs', 'someone-else', 1000)).not.toBeNull();
      });

      it('demotes itself when a renewal fails because the lock was lost', async () => {
        let demoted = 0;
        const one = new LeaderElector(a, { name: 'lost', ownerId: 'p1', ttlMs: 300, onDemoted: () => void demoted++ });
        try {
          await one.start();
          expect(one.isLeader).toBe(true);
          const token = one.fencingToken ?? Infinity;
          // Someone else takes the lock behind its back (as after an expiry or a store flush).
          await b.releaseLock('lost', 'p1');
          const thief = await b.tryAcquireLock('lost', 'thief', 5000);
          expect(thief?.fencingToken).toBeGreaterThan(token);
          expect(await waitFor(() => !one.isLeader, 2000)).toBe(true);
          expect(demoted).toBe(1);
          expect(one.fencingToken).toBeNull();
          await sleep(250); // keeps campaigning, but the thief holds the lock
          expect(one.isLeader).toBe(false);
        } finally {
          await one.stop();
        }
        expect(demoted).toBe(1);
      });
    });

    describe('rate limiter', () => {
      it('consumes points and rejects with a RateLimiterRes once they are spent', async () => {
        const limiter = a.createRateLimiter({ keyPrefix: 'api', points: 3, durationSec: 60 });
        const remaining: number[] = [];
        for (let i = 0; i < 3; i++) remaining.push((await limiter.consume('user-1')).remainingPoints);
        expect(remaining).toEqual([2, 1, 0]);
        const rejection: unknown = await limiter.consume('user-1').then(
          () => 'accepted',
          (e: unknown) => e,
        );
        expect(rejection).toBeInstanceOf(RateLimiterRes);
        expect((rejection as RateLimiterRes).remainingPoints).toBe(0);
        expect((rejection as RateLimiterRes).msBeforeNext).toBeGreaterThan(0);
        expect((rejection as RateLimiterRes).msBeforeNext).toBeLessThanOrEqual(60_000);
        expect((await limiter.consume('user-2')).remainingPoints).toBe(2);
      });

      it('shares counters between limiters with the same options (and across processes)', async () => {
        const opts = { keyPrefix: 'shared', points: 2, durationSec: 60 };
        const one = a.createRateLimiter(opts);
        const two = b.createRateLimiter(opts);
        expect((await one.consume('ip-1')).remainingPoints).toBe(1);
        expect((await two.consume('ip-1')).remainingPoints).toBe(0);
        await expect(one.consume('ip-1')).rejects.toBeInstanceOf(RateLimiterRes);
        // A different prefix is a different limiter.
        const other = a.createRateLimiter({ ...opts, keyPrefix: 'other' });
        expect((await other.consume('ip-1')).remainingPoints).toBe(1);
      });

      it('blocks a key for blockDurationSec once it exceeds its points', async () => {
        const limiter = a.createRateLimiter({ keyPrefix: 'login', points: 1, durationSec: 1, blockDurationSec: 120 });
        await limiter.consume('u');
        const blocked: unknown = await limiter.consume('u').catch((e: unknown) => e);
        expect(blocked).toBeInstanceOf(RateLimiterRes);
        expect((blocked as RateLimiterRes).msBeforeNext).toBeGreaterThan(60_000);
      });
    });

    describe('lifecycle', () => {
      it('ping answers a round-trip time', async () => {
        const ms = await a.ping();
        expect(Number.isFinite(ms)).toBe(true);
        expect(ms).toBeGreaterThanOrEqual(0);
        expect(ms).toBeLessThan(1000);
      });

      it('rejects calls with UnavailableError after close; close is idempotent', async () => {
        const c = await space.open();
        await c.set('k', 1);
        await c.close();
        await c.close();
        const err: unknown = await c.get('k').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(UnavailableError);
        expect((err as UnavailableError).code).toBe('SERVICE_UNAVAILABLE');
        await expect(c.publish('x', 1)).rejects.toBeInstanceOf(UnavailableError);
        await expect(c.subscribe('x', () => undefined)).rejects.toBeInstanceOf(UnavailableError);
        await expect(c.ping()).rejects.toBeInstanceOf(UnavailableError);
      });
    });
  });
}
