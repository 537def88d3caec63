/**
 * The per-request logger makes its pino child only on its first enabled call, and that child
 * carries the request's bindings and writes through the app logger's redaction.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../observability/index.ts';
import { lazyRequestLogger } from './request-logger.ts';

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
  const parent = createLogger({ level, destination });
  let children = 0;
  const child = parent.child.bind(parent);
  parent.child = ((...args: Parameters<typeof child>) => { children++; return child(...args); }) as typeof parent.child;
  return { parent, lines, made: () => children };
}

describe('lazyRequestLogger', () => {
  it('makes no child for calls below the level, one child for every later enabled call', async () => {
    const { parent, lines, made } = capture('warn');
    const log = lazyRequestLogger(parent, { reqId: 'req-1' }, {});
    log.info({ a: 1 }, 'not written');
    log.debug('not written either');
    expect(made()).toBe(0);
    expect(log.level).toBe('warn');
    log.error({ code: 'X', authorization: 'Bearer abc.def.ghi' }, 'request failed');
    log.warn('second');
    await new Promise((r) => setImmediate(r));
    expect(made()).toBe(1);
    expect(lines.map((l) => [l.level, l.message, l.reqId])).toEqual([['error', 'request failed', 'req-1'], ['warn', 'second', 'req-1']]);
    expect(lines[0]!.authorization).toBe('[REDACTED]');
  });
});
