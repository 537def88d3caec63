import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TASK_STATUSES } from '../contracts/tasks.ts';
import { backoffMs, canTransition, FINAL_STATUSES } from './task-status.ts';

describe('task status machine', () => {
  it('allows the SPEC lifecycle', () => {
    const path = ['pending', 'assigned', 'running', 'completed'] as const;
    for (let i = 0; i < path.length - 1; i++) expect(canTransition(path[i]!, path[i + 1]!)).toBe(true);
    expect(canTransition('running', 'failed')).toBe(true);
    expect(canTransition('failed', 'retrying')).toBe(true);
    expect(canTransition('retrying', 'pending')).toBe(true);
    expect(canTransition('retrying', 'cancelled')).toBe(true);
  });
  it('refuses leaving a final status and skipping steps', () => {
    for (const f of FINAL_STATUSES) for (const to of TASK_STATUSES) expect(canTransition(f, to)).toBe(false);
    expect(canTransition('pending', 'completed')).toBe(false);
    expect(canTransition('pending', 'running')).toBe(false);
    expect(canTransition('failed', 'cancelled')).toBe(false);
  });
});

describe('backoff', () => {
  it('doubles from the base and stops at the cap', () => {
    const mid = () => 1; // upper bound of the jitter window
    expect(backoffMs(1, 1000, 60000, mid)).toBe(1000);
    expect(backoffMs(2, 1000, 60000, mid)).toBe(2000);
    expect(backoffMs(3, 1000, 60000, mid)).toBe(4000);
    expect(backoffMs(10, 1000, 60000, mid)).toBe(60000);
    expect(backoffMs(3, 1000, 60000, () => 0)).toBe(2000);
  });
  it('always lies within [d/2, d]', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 30 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
      const d = Math.min(1000 * 2 ** (attempt - 1), 60000);
      const v = backoffMs(attempt, 1000, 60000, () => r);
      return v >= Math.floor(d / 2) && v <= d;
    }));
  });
});
