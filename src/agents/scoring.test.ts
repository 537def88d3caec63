import { describe, expect, it } from 'vitest';
import { averageResponseSeconds, performanceScore, scoreOf, successRate } from './scoring.ts';

describe('agent scoring', () => {
  it('follows the SPEC formula', () => {
    expect(performanceScore(1, 0)).toBeCloseTo(1);
    expect(performanceScore(0.5, 5)).toBeCloseTo(0.35 + 0.15);
    expect(performanceScore(0.9, 20)).toBeCloseTo(0.63);
  });
  it('derives rates from counters', () => {
    const c = { tasks_completed: 3, tasks_failed: 1, total_response_ms: 6000 };
    expect(successRate(c)).toBe(0.75);
    expect(averageResponseSeconds(c)).toBe(2);
    expect(scoreOf(c)).toBeCloseTo(0.7 * 0.75 + 0.3 * 0.8);
    expect(successRate({ tasks_completed: 0, tasks_failed: 0, total_response_ms: 0 })).toBe(1);
  });
});
