/**
 * PeerChannel: a process that believes itself alone on a channel stops publishing (one probe
 * a second), and hearing another process resumes at once — also when the other process is
 * heard while a publish that still counted nobody was on its way (two processes starting
 * together), which must not leave the channel believing itself alone; and with a catch-up
 * message, what it skipped while alone is made up for once, at the next probe time.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryCoordination } from './memory/memory-coordination.ts';
import { PeerChannel } from './peer-channel.ts';

describe('PeerChannel', () => {
  let coord: MemoryCoordination;
  beforeEach(() => { coord = new MemoryCoordination(); });
  afterEach(async () => { await coord.close().catch(() => {}); });

  it('skips publishing while alone, resumes when another process is heard — even mid-publish', async () => {
    const got: unknown[] = [];
    await coord.subscribe('peer-test', (m) => { got.push(m); });
    const ch = new PeerChannel(coord, 'peer-test', 60_000);
    const flush = () => new Promise((r) => setImmediate(r));

    await ch.publish(1); // the first always goes out; it counts no other process
    await ch.publish(2); // alone: skipped
    await flush();
    expect(got).toEqual([1]);

    ch.heard();
    await ch.publish(3);
    await flush();
    expect(got).toEqual([1, 3]);

    // Alone again (3 counted nobody). Another process is heard, and heard again while the
    // publish that follows is on its way: that publish's late "nobody listens" must not undo it.
    ch.heard();
    const racing = ch.publish(4);
    ch.heard();
    await racing;
    await ch.publish(5);
    await flush();
    expect(got).toEqual([1, 3, 4, 5]);
  });

  it('with a catch-up message, makes up for what it skipped at the next probe time, once', async () => {
    const got: unknown[] = [];
    await coord.subscribe('peer-catch-up', (m) => { got.push(m); });
    const ch = new PeerChannel(coord, 'peer-catch-up', 100, { message: () => 'catch-up', onError: (err) => { throw err; } });
    await ch.publish('hello'); // nobody else: alone from now on
    await ch.publish('a');
    await ch.publish('b'); // both skipped: one catch-up for them
    await new Promise((r) => setTimeout(r, 30));
    expect(got).toEqual(['hello']);
    await new Promise((r) => setTimeout(r, 150));
    expect(got).toEqual(['hello', 'catch-up']);
    ch.stop();
  });
});
