import { describe, expect, it } from 'vitest';
import { pickAgent, type Candidate } from './strategies.ts';

const c = (agent_id: string, load: number, max: number, score: number, lastPicked = 0, builtin = false): Candidate => ({ agent_id, load, max, score, lastPicked, builtin });

describe('pickAgent', () => {
  it('capability_match: least loaded, then best score', () => {
    expect(pickAgent([c('a', 2, 5, 0.9), c('b', 1, 5, 0.5)], 'capability_match')?.agent_id).toBe('b');
    expect(pickAgent([c('a', 1, 5, 0.9), c('b', 1, 5, 0.5)], 'capability_match')?.agent_id).toBe('a');
  });
  it('least_loaded uses load relative to capacity', () => {
    expect(pickAgent([c('a', 2, 10, 0.1), c('b', 1, 2, 0.9)], 'least_loaded')?.agent_id).toBe('a');
  });
  it('best_performance takes the top score', () => {
    expect(pickAgent([c('a', 0, 5, 0.6), c('b', 4, 5, 0.95)], 'best_performance')?.agent_id).toBe('b');
  });
  it('round_robin takes the agent picked longest ago', () => {
    expect(pickAgent([c('a', 0, 5, 1, 7), c('b', 3, 5, 0.1, 2), c('c', 0, 5, 1, 5)], 'round_robin')?.agent_id).toBe('b');
  });
  it('built-in agents rank below any remote candidate', () => {
    expect(pickAgent([c('builtin', 0, 50, 1, 0, true), c('remote', 4, 5, 0.2)], 'capability_match')?.agent_id).toBe('remote');
    expect(pickAgent([c('builtin', 0, 50, 1, 0, true)], 'capability_match')?.agent_id).toBe('builtin');
    expect(pickAgent([], 'capability_match')).toBeUndefined();
  });
});
