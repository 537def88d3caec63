/**
 * The coordination contract on a real Redis, plus what only Redis can do wrong: losing its data,
 * being unreachable, and coming back. Every test works under its own key prefix and deletes only
 * those keys. Skipped when Redis is unreachable, except under CI where the global setup fails.
 */
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { UnavailableError } from '../../core/index.ts';
import { defineCoordinationContract, waitFor } from '../coordination.contract.ts';
import type { Coordination } from '../coordination.ts';
import { createCoordination } from '../index.ts';
import { createRedisCoordination } from './redis-coordination.ts';
import type { RedisCoordination } from './redis-coordination.ts';

// The global setup decides once per run whether Redis is reachable and passes the answer here.
// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const url = process.env.MCP_TEST_REDIS_URL ?? '';

async function deletePrefix(admin: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) deleted += await admin.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

async function keysUnder(admin: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found.sort();
}

/** A TCP proxy in front of Redis that the test can cut and restore, to simulate an outage. */
class CuttableProxy {
  #server: net.Server | null = null;
  readonly #sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async listen(port = 0): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.#server = server;
    this.port = (server.address() as net.AddressInfo).port;
  }

  /** Keeps connections open but stops passing bytes: a hung server. */
  freeze(): void {
    for (const s of this.#sockets) s.pause();
  }

  thaw(): void {
    for (const s of this.#sockets) s.resume();
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe.skipIf(!url)('RedisCoordination', () => {
  let admin: Redis;

  beforeEach(() => {
    admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  });
  afterEach(async () => {
    await admin.quit().catch(() => admin.disconnect());
  });

  defineCoordinationContract('redis', async () => {
    const prefix = `mcp-test:${randomUUID()}:`;
    const opened: Coordination[] = [];
    return {
      open: async () => {
        const c = await createRedisCoordination({ url, keyPrefix: prefix });
        opened.push(c);
        return c;
      },
      dispose: async () => {
        await Promise.all(opened.map((c) => c.close()));
        const cleaner = new Redis(url, { maxRetriesPerRequest: 1 });
        try {
          await deletePrefix(cleaner, prefix);
        } finally {
          await cleaner.quit();
        }
      },
    };
  });

  describe('beyond the contract', () => {
    let prefix: string;
    const opened: Coordination[] = [];
    const open = async (over: Partial<{ url: string }> = {}): Promise<RedisCoordination> => {
      const c = await createRedisCoordination({ url: over.url ?? url, keyPrefix: prefix });
      opened.push(c);
      return c;
    };

    beforeEach(() => {
      prefix = `mcp-test:${randomUUID()}:`;
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((c) => c.close()));
      await deletePrefix(admin, prefix);
    });

    it('puts every key under the key prefix', async () => {
      const c = await open();
      await c.set('k', 1);
      await c.incr('n', 10_000);
      await c.hincr('h', 'f', 1);
      await c.setPresence('agent', 'a1', {}, 10_000);
      await c.tryAcquireLock('l', 'o', 10_000);
      await c.createRateLimiter({ keyPrefix: 'api', points: 5, durationSec: 60 }).consume('ip');
      expect(await keysUnder(admin, prefix)).toEqual(
        [
          `${prefix}ctr:n`,
          `${prefix}h:h`,
          `${prefix}kv:k`,
          `${prefix}lock:{l}`,
          `${prefix}lock:{l}:fence`,
          `${prefix}presence:{agent}:data`,
          `${prefix}presence:{agent}:idx`,
          `${prefix}rl:api:ip`,
        ].sort(),
      );
      // Values are JSON text; presence keys expire with their records.
      expect(await admin.get(`${prefix}kv:k`)).toBe('1');
      expect(await admin.pttl(`${prefix}presence:{agent}:idx`)).toBeGreaterThan(0);
    });

    it('behaves sanely after its keys are flushed: empty state, fresh counters, higher fencing tokens', async () => {
      const c = await open();
      const peer = await open();
      const inbox: unknown[] = [];
      await peer.subscribe('events', (m) => inbox.push(m));
      await c.setPresence('agent', 'a1', { s: 1 }, 10_000);
      await c.set('cache', { v: 1 });
      expect(await c.incr('ctr', 60_000, 7)).toBe(7);
      await c.hincr('load', 'a1', 2);
      const before = await c.tryAcquireLock('leader', 'old-owner', 60_000);
      const limiter = c.createRateLimiter({ keyPrefix: 'api', points: 2, durationSec: 60 });
      await limiter.consume('ip');
      await limiter.consume('ip');
      await expect(limiter.consume('ip')).rejects.toBeInstanceOf(RateLimiterRes);

      expect(await deletePrefix(admin, prefix)).toBeGreaterThanOrEqual(7);

      expect(await c.listPresence('agent')).toEqual([]);
      expect(await c.getPresence('agent', 'a1')).toBeNull();
      expect(await c.get('cache')).toBeNull();
      expect(await c.incr('ctr', 60_000)).toBe(1);
      expect(await c.hgetall('load')).toEqual({});
      expect(await c.hincr('load', 'a1', 1)).toBe(1);
      expect(await c.extendLock('leader', 'old-owner', 60_000)).toBe(false);
      const after = await peer.tryAcquireLock('leader', 'new-owner', 60_000);
      expect(after?.fencingToken).toBeGreaterThan(before?.fencingToken ?? Infinity);
      expect((await limiter.consume('ip')).remainingPoints).toBe(1);
      // Presence works again after the flush, and pub/sub never depended on keys.
      await c.setPresence('agent', 'a2', { s: 2 }, 10_000);
      expect(await peer.listPresence('agent')).toEqual([{ id: 'a2', data: { s: 2 } }]);
      await c.publish('events', 'still here');
      expect(await waitFor(() => inbox.length === 1)).toBe(true);
      expect(inbox).toEqual(['still here']);
    });

    it('fails fast while Redis is down, then recovers commands and subscriptions when it is back', async () => {
      const target = new URL(url);
      const proxy = new CuttableProxy({ host: target.hostname, port: Number(target.port || 6379) });
      await proxy.listen();
      try {
        const viaProxy = await open({ url: `redis://127.0.0.1:${proxy.port}${target.pathname}` });
        const direct = await open();
        const inbox: unknown[] = [];
        await viaProxy.subscribe('events', (m) => inbox.push(m));
        await viaProxy.set('k', 'v');
        expect(await direct.get('k')).toBe('v');

        await proxy.cut();
        const limiter = viaProxy.createRateLimiter({ keyPrefix: 'api', points: 5, durationSec: 60 });
        for (const call of [() => viaProxy.get('k'), () => viaProxy.ping(), () => viaProxy.incr('n', 1000)] as const) {
          const started = Date.now();
          const err: unknown = await call().catch((e: unknown) => e);
          expect(err).toBeInstanceOf(UnavailableError);
          expect(Date.now() - started).toBeLessThan(2500);
        }
        const limited: unknown = await limiter.consume('ip').catch((e: unknown) => e);
        expect(limited).toBeInstanceOf(Error);
        expect(limited).not.toBeInstanceOf(RateLimiterRes);

        await proxy.listen(proxy.port);
        expect(await waitFor(async () => (await viaProxy.get('k').catch(() => null)) === 'v', 8000, 100)).toBe(true);
        // The subscriber connection re-subscribed on its own.
        expect(
          await waitFor(
            async () => {
              await direct.publish('events', 'after outage');
              return inbox.length > 0;
            },
            8000,
            200,
          ),
        ).toBe(true);
        expect(inbox[0]).toBe('after outage');
      } finally {
        await proxy.cut();
      }
    });

    it('fails fast when Redis hangs (connection open, no replies), and carries on once it answers', async () => {
      const target = new URL(url);
      const proxy = new CuttableProxy({ host: target.hostname, port: Number(target.port || 6379) });
      await proxy.listen();
      try {
        const c = await open({ url: `redis://127.0.0.1:${proxy.port}${target.pathname}` });
        await c.set('k', 'v');
        proxy.freeze();
        const started = Date.now();
        const err: unknown = await c.get('k').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(UnavailableError);
        expect(Date.now() - started).toBeLessThan(2500);
        proxy.thaw();
        expect(await waitFor(async () => (await c.get('k').catch(() => null)) === 'v', 5000, 100)).toBe(true);
      } finally {
        await proxy.cut();
      }
    });

    it('createCoordination picks the adapter from redisUrl', async () => {
      const redis = await createCoordination({ redisUrl: url, keyPrefix: prefix });
      opened.push(redis);
      const memory = await createCoordination({});
      opened.push(memory);
      expect(redis.kind).toBe('redis');
      expect(memory.kind).toBe('memory');
    });
  });
});

describe('RedisCoordination without a reachable Redis', () => {
  it('rejects quickly with UnavailableError when nothing listens at the URL', async () => {
    const started = Date.now();
    const err: unknown = await createCoordination({ redisUrl: 'redis://127.0.0.1:6390' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as UnavailableError).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('rejects within the connect timeout when the peer accepts but never answers', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const started = Date.now();
      const err: unknown = await createRedisCoordination({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 1000 }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UnavailableError);
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      silent.close();
    }
  });
});
