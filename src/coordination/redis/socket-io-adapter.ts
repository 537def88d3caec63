/**
 * The Socket.IO Redis adapter over this adapter's Redis, so that an event emitted to a room on
 * one server process reaches the sockets in that room on every process (fan-out, agent
 * cancellations, revocation disconnects).
 *
 * The adapter publishes fire-and-forget and does not handle a rejected PUBLISH; with the
 * fail-fast client options a publish during an outage would become an unhandled rejection and
 * crash the process, so the publisher's `publish` swallows (and logs once per outage) errors:
 * local sockets still get the event, remote ones miss it — pub/sub is at-most-once anyway.
 * The subscriber's (p)subscribe calls, also not awaited by the adapter, are guarded the same way.
 */
import { createAdapter } from '@socket.io/redis-adapter';
import type { RedisCoordination } from './redis-coordination.ts';
import type { CoordinationLogger } from '../coordination.ts';

export type SocketIoAdapterFactory = ReturnType<typeof createAdapter>;

export async function createSocketIoAdapter(coord: RedisCoordination, logger: CoordinationLogger): Promise<SocketIoAdapterFactory> {
  const [pub, sub] = await coord.duplicateConnections(2, 'mcp-socket.io');
  const publisher = pub as unknown as { publish: (...args: unknown[]) => Promise<unknown> };
  const publish = publisher.publish.bind(publisher);
  let failing = false;
  publisher.publish = (...args: unknown[]) => publish(...args).then((n) => {
    failing = false;
    return n;
  }, (err: unknown) => {
    if (!failing) logger.warn({ err: { message: (err as Error).message } }, 'socket.io cross-process publish failed; remote sockets miss events until Redis is back');
    failing = true;
    return 0;
  });
  // Same for the subscriptions it sends without awaiting: a command timeout under a blocked
  // event loop must not crash the process (the command still reaches Redis; ioredis
  // re-subscribes on every reconnect).
  const subscriber = sub as unknown as Record<'psubscribe' | 'subscribe', (...args: unknown[]) => Promise<unknown>>;
  for (const method of ['psubscribe', 'subscribe'] as const) {
    const original = subscriber[method].bind(subscriber);
    subscriber[method] = (...args: unknown[]) => original(...args).catch((err: unknown) => {
      logger.warn({ err: { message: (err as Error).message }, method }, 'socket.io adapter subscription failed');
      return 0;
    });
  }
  return createAdapter(pub, sub, { key: `${coord.keyPrefix}socket.io`, requestsTimeout: 3000 });
}
