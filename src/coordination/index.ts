/**
 * coordination: the hot path shared by server processes — pub/sub, presence, caches, windowed
 * counters, load gauges, leader locks and rate limits — behind one port with an in-process
 * adapter (REDIS_URL unset) and a Redis adapter (REDIS_URL set).
 *
 * Belongs here: state that is rebuildable from PostgreSQL and may be lost on a flush or restart.
 * Does not belong here: anything that must survive (that is the store's job), domain logic, and
 * PHI in clear — keys and values here are readable by anyone with access to Redis.
 */
import type { Coordination, CoordinationLogger } from './coordination.ts';
import { silentLogger } from './coordination.ts';
import type { SocketIoAdapterFactory } from './redis/socket-io-adapter.ts';
import { MemoryCoordination } from './memory/memory-coordination.ts';

export type {
  Coordination,
  CoordinationKind,
  CoordinationLogger,
  PresenceEntry,
  PresenceWrite,
  PublishOptions,
  RateLimiterOptions,
  Unsubscribe,
} from './coordination.ts';
export { MemoryCoordination } from './memory/memory-coordination.ts';
export type { MemoryCoordinationOptions } from './memory/memory-coordination.ts';
export type { RedisCoordination, RedisCoordinationOptions } from './redis/redis-coordination.ts';
export { LeaderElector } from './leader-elector.ts';
export { PeerChannel } from './peer-channel.ts';
export type { LeaderElectorOptions } from './leader-elector.ts';
export { StoreWatch } from './store-watch.ts';
export type { StoreWatchOptions } from './store-watch.ts';
export type { SocketIoAdapterFactory } from './redis/socket-io-adapter.ts';

export interface CreateCoordinationOptions {
  /** Set → Redis adapter (any number of processes); unset or empty → in-process adapter. */
  redisUrl?: string;
  /** Prefix of every Redis key and channel. Default `mcp:`. Ignored in-process. */
  keyPrefix?: string;
  logger?: CoordinationLogger;
}

/**
 * Opens the coordination adapter chosen by `redisUrl`. With Redis it resolves once connected and
 * rejects with `UnavailableError` (SERVICE_UNAVAILABLE) within about two seconds when Redis is
 * unreachable. ioredis is only loaded when Redis is used.
 */
export async function createCoordination(opts: CreateCoordinationOptions = {}): Promise<Coordination> {
  if (!opts.redisUrl) return new MemoryCoordination(opts.logger ? { logger: opts.logger } : {});
  const { createRedisCoordination } = await import('./redis/redis-coordination.ts');
  return createRedisCoordination({
    url: opts.redisUrl,
    ...(opts.keyPrefix === undefined ? {} : { keyPrefix: opts.keyPrefix }),
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
}

/**
 * The Socket.IO adapter that makes room emits reach every process sharing this coordination:
 * the Redis adapter for Redis, null in-process (Socket.IO's default in-memory adapter is right
 * for one process). socket.io's Redis adapter is only loaded when Redis is used.
 */
export async function socketIoAdapterFor(coord: Coordination, logger?: CoordinationLogger): Promise<SocketIoAdapterFactory | null> {
  if (coord.kind !== 'redis') return null;
  const [{ RedisCoordination }, { createSocketIoAdapter }] = await Promise.all([import('./redis/redis-coordination.ts'), import('./redis/socket-io-adapter.ts')]);
  if (!(coord instanceof RedisCoordination)) return null;
  return createSocketIoAdapter(coord, logger ?? silentLogger);
}
