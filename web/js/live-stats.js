/**
 * Rolling throughput and latency from `task:completed` events (the dashboard's charts): completions
 * per bucket and the p50 / p95 of their `duration_ms`, over the last `buckets` buckets. Pure: the
 * caller passes the clock.
 */
export class LiveStats {
  /** @param {number} bucketMs @param {number} buckets */
  constructor(bucketMs = 10_000, buckets = 30) {
    this.bucketMs = bucketMs;
    this.buckets = buckets;
    /** @type {Map<number, number[]>} bucket start → durations (ms; NaN when unknown) */
    this.data = new Map();
  }

  /** A task completed at `atMs` after `durationMs` (null when the event had none). */
  record(atMs, durationMs) {
    const start = Math.floor(atMs / this.bucketMs) * this.bucketMs;
    let list = this.data.get(start);
    if (!list) this.data.set(start, (list = []));
    list.push(typeof durationMs === 'number' && Number.isFinite(durationMs) ? durationMs : Number.NaN);
    const oldest = start - this.bucketMs * this.buckets;
    for (const k of this.data.keys()) if (k <= oldest) this.data.delete(k);
  }

  /** One point per bucket, oldest first, ending with the bucket holding `nowMs`: `{t, count, perMin, p50, p95}`. */
  series(nowMs) {
    const last = Math.floor(nowMs / this.bucketMs) * this.bucketMs;
    const out = [];
    for (let i = this.buckets - 1; i >= 0; i--) {
      const t = last - i * this.bucketMs;
      const all = this.data.get(t) ?? [];
      const known = all.filter((d) => !Number.isNaN(d)).sort((a, b) => a - b);
      out.push({ t, count: all.length, perMin: (all.length * 60_000) / this.bucketMs, p50: quantile(known, 0.5), p95: quantile(known, 0.95) });
    }
    return out;
  }
}

/** The q-quantile of sorted values (nearest rank), or null when there are none. */
export function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
