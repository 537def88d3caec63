/**
 * Fastify's per-request logger, made on its first enabled call (`childLoggerFactory`).
 *
 * pino's `child` serialises its bindings when it is made, through the redaction and scrub of
 * every log line: Fastify made one for every request although most requests log nothing of
 * their own (the one-line request log goes through the app's logger with its `request_id`).
 * The first call at an enabled level makes the real child (bindings `reqId` and the options
 * given), which every later call uses.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino';

const LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export function lazyRequestLogger(parent: Logger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  let child: Logger | undefined;
  const real = (): Logger => (child ??= parent.child(bindings, opts));
  const logger = {
    get level() { return child?.level ?? parent.level; },
    set level(l: string) { real().level = l; },
    child: (b: Bindings, o?: ChildLoggerOptions) => real().child(b, o),
    silent: () => undefined,
  } as unknown as Record<string, unknown>;
  for (const level of LEVELS) {
    logger[level] = (...args: unknown[]) => {
      if (!(child ?? parent).isLevelEnabled(level)) return;
      real()[level](...(args as [unknown]));
    };
  }
  return logger as unknown as FastifyBaseLogger;
}
