/**
 * An open-loop HTTP load generator: requests are sent on a fixed schedule (`rate` per second,
 * evenly spaced) whatever the responses do, over a keep-alive pool of `connections` sockets.
 * Latency is measured from each request's scheduled time, so a server (or sender) that falls
 * behind shows up in the figures instead of silently lowering the rate (no coordinated
 * omission). autocannon's `overallRate` sends each second's quota in a burst at the start of
 * the second, which measures a burst, not a rate — hence this.
 */
import http from 'node:http';
import { percentiles, round, sleep } from './stats.ts';

export interface OpenLoopOptions {
  url: string;
  method: string;
  headers: Record<string, string>;
  /** The request body, or a function giving the body of the i-th request (called just before it is sent). */
  body?: string | ((i: number) => string);
  rate: number;
  seconds: number;
  connections: number;
}

export async function openLoop(o: OpenLoopOptions) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.connections });
  const url = new URL(o.url);
  const times: number[] = [];
  const codes: Record<string, number> = {};
  let errors = 0;
  const total = Math.round(o.rate * o.seconds);
  const inflight = new Set<Promise<void>>();
  const send = (scheduled: number, body: string | undefined) => new Promise<void>((resolve) => {
    const req = http.request({ agent, host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method: o.method, headers: o.headers }, (res) => {
      res.resume();
      res.on('end', () => {
        times.push(performance.now() - scheduled);
        codes[res.statusCode ?? 0] = (codes[res.statusCode ?? 0] ?? 0) + 1;
        resolve();
      });
    });
    req.on('error', () => { errors++; resolve(); });
    req.end(body);
  });
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * o.rate) / 1000) + 1);
    for (; sent < due; sent++) {
      const p = send(start + (sent * 1000) / o.rate, typeof o.body === 'function' ? o.body(sent) : o.body);
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    await sleep(1);
  }
  const seconds = (performance.now() - start) / 1000;
  await Promise.all(inflight);
  agent.destroy();
  const non2xx = Object.entries(codes).filter(([c]) => !c.startsWith('2')).reduce((a, [, n]) => a + n, 0);
  return { sent, send_seconds: seconds, requests: times.length, rps: round(times.length / seconds, 1), errors, timeouts: 0, non_2xx: non2xx, status_codes: codes, latency_ms: percentiles(times) };
}
