/** Agent quality score (SPEC §6): 0.7 × success_rate + 0.3 × max(0, 1 − avg_response_s / 10). */
export function performanceScore(successRate: number, avgResponseSeconds: number): number {
  return 0.7 * successRate + 0.3 * Math.max(0, 1 - avgResponseSeconds / 10);
}

export interface PerformanceCounters {
  tasks_completed: number;
  tasks_failed: number;
  total_response_ms: number;
}

/** An agent with no history counts as fully successful so it is not starved of its first task. */
export function successRate(c: PerformanceCounters): number {
  const n = c.tasks_completed + c.tasks_failed;
  return n === 0 ? 1 : c.tasks_completed / n;
}

export function averageResponseSeconds(c: PerformanceCounters): number {
  return c.tasks_completed === 0 ? 0 : c.total_response_ms / c.tasks_completed / 1000;
}

export function scoreOf(c: PerformanceCounters): number {
  return performanceScore(successRate(c), averageResponseSeconds(c));
}
