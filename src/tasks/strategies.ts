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
  if (candidates.length === 0) return undefined;
  // Remote candidates first; built-ins only when there is no remote one. One pass, no copies.
  let best: Candidate | undefined;
  for (const c of candidates) {
    if (!best || (best.builtin && !c.builtin) || (best.builtin === c.builtin && better(c, best, strategy))) best = c;
  }
  return best;
}

/** Share of its capacity an agent uses (a plain function: it runs per candidate per task). */
function ratio(c: Candidate): number {
  return c.load / c.max;
}

function better(a: Candidate, b: Candidate, strategy: Strategy): boolean {
  switch (strategy) {
    case 'round_robin':
      return a.lastPicked < b.lastPicked || (a.lastPicked === b.lastPicked && a.agent_id < b.agent_id);
    case 'least_loaded':
      return ratio(a) < ratio(b) || (ratio(a) === ratio(b) && a.load < b.load) || (ratio(a) === ratio(b) && a.load === b.load && a.lastPicked < b.lastPicked);
    case 'best_performance':
      return a.score > b.score || (a.score === b.score && ratio(a) < ratio(b)) || (a.score === b.score && ratio(a) === ratio(b) && a.lastPicked < b.lastPicked);
    case 'capability_match':
    default:
      return a.load < b.load || (a.load === b.load && (a.score > b.score || (a.score === b.score && a.lastPicked < b.lastPicked)));
  }
}
