/**
 * Summarises V8 CPU profiles written by `npm run bench -- --profile` (server children run with
 * --cpu-prof): self time by function and by module/package, and inclusive time of the
 * project's own functions, so "where the time goes" can be read without DevTools.
 *
 *   npx tsx bench/profile-summary.ts bench/results/profiles/server-throughput-postgres-*.cpuprofile [--top 25] [--after S] [--until S]
 *
 * `--after S` ignores the first S seconds of each profile (start-up: module loading, migrations);
 * `--until S` ignores what follows second S (to read one phase of a scenario).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from './lib/server-process.ts';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }
interface Profile { nodes: Node[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

function moduleOf(url: string): string {
  if (!url) return '(native/VM)';
  const p = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = p.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = p.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (p.startsWith('node:')) return p;
  return path.relative(REPO_ROOT, p);
}

export function summarise(file: string, top = 25, afterS = 0, untilS = Infinity): string {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  let elapsed = 0;
  prof.samples.forEach((id, i) => {
    elapsed += prof.timeDeltas[i] ?? 0;
    if (elapsed >= afterS * 1e6 && elapsed < untilS * 1e6) selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  });
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs.entries()].filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)').reduce((a, [, v]) => a + v, 0);
  const busy = total - idle;

  const fnSelf = new Map<string, number>();
  const modSelf = new Map<string, number>();
  const ownIncl = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(idle)') continue;
    const key = `${n.callFrame.functionName || '(anonymous)'}  ${moduleOf(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    fnSelf.set(key, (fnSelf.get(key) ?? 0) + us);
    const m = moduleOf(n.callFrame.url);
    modSelf.set(m, (modSelf.get(m) ?? 0) + us);
    // inclusive time of src/ functions on the stack (each counted once per sample)
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      const mod = moduleOf(f.url);
      if (!mod.startsWith('src/')) continue;
      const k = `${f.functionName || '(anonymous)'}  ${mod}:${f.lineNumber + 1}`;
      if (seen.has(k)) continue;
      seen.add(k);
      ownIncl.set(k, (ownIncl.get(k) ?? 0) + us);
    }
  }
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  const list = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `  ${ms(v)} ${pct(v)}  ${k}`);
  return [
    `# ${path.basename(file)}`,
    `wall ${((prof.endTime - prof.startTime) / 1e6).toFixed(1)} s, busy (non-idle) ${(busy / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s`,
    '', '## self time by module', ...list(modSelf),
    '', '## self time by function', ...list(fnSelf),
    '', '## inclusive time of src/ functions', ...list(ownIncl),
  ].join('\n');
}

const invoked = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invoked) {
  const args = process.argv.slice(2);
  const t = args.indexOf('--top');
  const top = t >= 0 ? Number(args.splice(t, 2)[1]) : 25;
  const a = args.indexOf('--after');
  const after = a >= 0 ? Number(args.splice(a, 2)[1]) : 0;
  const u = args.indexOf('--until');
  const until = u >= 0 ? Number(args.splice(u, 2)[1]) : Infinity;
  for (const f of args) process.stdout.write(`${summarise(f, top, after, until)}\n\n`);
}
