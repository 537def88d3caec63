import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../core/index.ts';
import { defineCoordinationContract } from '../coordination.contract.ts';
import { MemoryCoordination } from './memory-coordination.ts';

defineCoordinationContract('memory', async () => {
  const coord = new MemoryCoordination();
  return {
    // One process: every handle is the same instance.
    open: async () => coord,
    dispose: () => coord.close(),
  };
});

describe('MemoryCoordination specifics', () => {
  it('follows the injected clock for every expiry', async () => {
    const clock = new ManualClock(1_000_000);
    const coord = new MemoryCoordination({ clock });
    try {
      await coord.setPresence('agent', 'a1', { s: 1 }, 1000);
      await coord.set('k', 'v', 1000);
      expect(await coord.incr('c', 1000)).toBe(1);
      const lock = await coord.tryAcquireLock('l', 'o1', 1000);
      clock.advance(999);
      expect(await coord.getPresence('agent', 'a1')).toEqual({ s: 1 });
      expect(await coord.get('k')).toBe('v');
      expect(await coord.incr('c', 1000)).toBe(2);
      expect(await coord.tryAcquireLock('l', 'o2', 1000)).toBeNull();
      clock.advance(1);
      expect(await coord.getPresence('agent', 'a1')).toBeNull();
      expect(await coord.listPresence('agent')).toEqual([]);
      expect(await coord.get('k')).toBeNull();
      expect(await coord.incr('c', 1000)).toBe(1);
      const next = await coord.tryAcquireLock('l', 'o2', 1000);
      expect(next?.fencingToken).toBeGreaterThan(lock?.fencingToken ?? Infinity);
    } finally {
      await coord.close();
    }
  });

  it('issues fencing tokens no lower than the clock, so a restarted process never reissues one', async () => {
    const clock = new ManualClock(5_000_000);
    const before = new MemoryCoordination({ clock });
    const t1 = (await before.tryAcquireLock('l', 'o', 1000))?.fencingToken ?? -1;
    await before.close();
    clock.advance(1);
    const after = new MemoryCoordination({ clock });
    const t2 = (await after.tryAcquireLock('l', 'o', 1000))?.fencingToken ?? -1;
    await after.close();
    expect(t1).toBe(5_000_000);
    expect(t2).toBeGreaterThan(t1);
  });

  it('rejects invalid TTLs and non-integer steps as programming errors', async () => {
    const coord = new MemoryCoordination();
    try {
      await expect(coord.set('k', 1, 0)).rejects.toThrow(RangeError);
      await expect(coord.setPresence('a', 'b', {}, Number.NaN)).rejects.toThrow(RangeError);
      await expect(coord.incr('c', 1000, 1.5)).rejects.toThrow(RangeError);
    } finally {
      await coord.close();
    }
  });
});
