/**
 * Choosing an agent among capable candidates (SPEC §6). Remote agents always rank above
 * built-in ones (ARCHITECTURE §1.5): built-ins are only chosen when no remote candidate fits.
 */
import type { Strategy } from '../contracts/tasks.ts';

export interface Candidate {
  agent_id: string;
  load: number;
  max: number;
  score: number;
  builtin: boolean;
  /** Monotonic counter of the last time this agent was picked (round robin). */
  lastPicked: number;
}

export function pickAgent(candidates: Candidate[], strategy: Strategy): Candidate | undefined {
  let best: Candidate | undefined;
  for (const c of candidates) if (!best || ranksAbove(c, c.load, best, best.load, strategy)) best = c;
  return best;
}

/**
 * Whether `a` (carrying `aLoad` tasks) is chosen over `b` (carrying `bLoad`): remote agents
 * above built-ins, then by `strategy`. Loads are passed apart so that a caller ranking its own
 * records (the assignment engine, once per task and slot) builds no candidate objects.
 */
export function ranksAbove(a: Omit<Candidate, 'load'>, aLoad: number, b: Omit<Candidate, 'load'>, bLoad: number, strategy: Strategy): boolean {
  if (a.builtin !== b.builtin) return b.builtin;
  const ra = aLoad / a.max;
  const rb = bLoad / b.max;
  switch (strategy) {
    case 'round_robin':
      return a.lastPicked < b.lastPicked || (a.lastPicked === b.lastPicked && a.agent_id < b.agent_id);
    case 'least_loaded':
      return ra < rb || (ra === rb && aLoad < bLoad) || (ra === rb && aLoad === bLoad && a.lastPicked < b.lastPicked);
    case 'best_performance':
      return a.score > b.score || (a.score === b.score && ra < rb) || (a.score === b.score && ra === rb && a.lastPicked < b.lastPicked);
    case 'capability_match':
    default:
      return aLoad < bLoad || (aLoad === bLoad && (a.score > b.score || (a.score === b.score && a.lastPicked < b.lastPicked)));
  }
}

/** Whether `have` holds every capability of `caps`. */
export function hasAll(have: ReadonlySet<string>, caps: readonly string[]): boolean {
  for (const c of caps) if (!have.has(c)) return false;
  return true;
}
