/**
 * Two readings of the host taken at the start of every run, so figures from different machines
 * can be told apart from changes in the code (the same build has measured 2× apart on two
 * 2-core hosts of this workplace):
 *
 * - `loopback_rtt_us`: one 100-byte message to another process over loopback TCP and back — the
 *   unit cost of every hop a task makes (HTTP, Socket.IO, PostgreSQL, Redis), wall µs per round
 *   trip and this side's CPU µs per round trip;
 * - `idle_penalty`: the same piece of work (32 MB of random reads, 20 AES-GCM seals) timed back to
 *   back and after 10 ms of idling, median after ÷ median before. On a host where an idle CPU
 *   loses its caches (virtual machines sharing cores), work that arrives after a pause — every
 *   request at a moderate rate — runs that much slower.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import net from 'node:net';
import { percentiles, round, sleep } from './stats.ts';

export interface Calibration {
  loopback_rtt_us: number;
  loopback_cpu_us_per_rtt: number;
  work_us_back_to_back: number;
  work_us_after_idle: number;
  idle_penalty: number;
}

const ECHO = `const s = require('node:net').connect(Number(process.argv[1]), '127.0.0.1'); s.setNoDelay(true); s.on('data', (d) => s.write(d)); s.on('close', () => process.exit(0));`;

async function loopback(trips: number): Promise<{ rtt: number; cpu: number }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const child = spawn(process.execPath, ['-e', ECHO, String(port)], { stdio: 'ignore' });
  try {
    const sock = await new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    sock.setNoDelay(true);
    const msg = Buffer.alloc(100, 120);
    return await new Promise((resolve) => {
      let n = 0;
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      sock.on('data', () => {
        if (++n < trips) { sock.write(msg); return; }
        const c = process.cpuUsage(c0);
        resolve({ rtt: ((performance.now() - t0) * 1000) / trips, cpu: (c.user + c.system) / trips });
        sock.destroy();
      });
      sock.write(msg);
    });
  } finally {
    child.kill();
    server.close();
  }
}

function workTimer(): () => number {
  const mem = new Float64Array(4 * 1024 * 1024);
  const key = randomBytes(32);
  let seed = 1;
  const work = () => {
    let s = 0;
    for (let i = 0; i < 20_000; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      s += mem[seed % mem.length]!;
    }
    for (let i = 0; i < 20; i++) {
      const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
      c.update(String(s + i));
      c.final();
    }
  };
  for (let i = 0; i < 300; i++) work();
  return () => {
    const t = performance.now();
    work();
    return (performance.now() - t) * 1000;
  };
}

export async function calibrate(): Promise<Calibration> {
  const lb = await loopback(5000);
  const time = workTimer();
  const hot = Array.from({ length: 100 }, time);
  const cold: number[] = [];
  for (let i = 0; i < 100; i++) {
    await sleep(10);
    cold.push(time());
  }
  const h = percentiles(hot).p50;
  const c = percentiles(cold).p50;
  return {
    loopback_rtt_us: round(lb.rtt, 1),
    loopback_cpu_us_per_rtt: round(lb.cpu, 1),
    work_us_back_to_back: round(h, 0),
    work_us_after_idle: round(c, 0),
    idle_penalty: round(c / h, 2),
  };
}
