/**
 * Fastify's per-request logger, made on its first enabled call (`childLoggerFactory`).
 *
 * pino's `child` serialises its bindings when it is made, through the redaction and scrub of
 * every log line: Fastify made one for every request although most requests log nothing of
 * their own (the one-line request log goes through the app's logger with its `request_id`).
 * The first call at an enabled level makes the real child (bindings `reqId` and the options
 * given), which every later call uses. One small object per request: the level methods live on
 * the prototype.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino';

class LazyRequestLogger {
  #child: Logger | undefined;

  constructor(private readonly parent: Logger, private readonly bindings: Bindings, private readonly opts: ChildLoggerOptions) {}

  #real(): Logger {
    return (this.#child ??= this.parent.child(this.bindings, this.opts));
  }

  #log(level: Level, args: unknown[]): void {
    if (!(this.#child ?? this.parent).isLevelEnabled(level)) return;
    this.#real()[level](...(args as [unknown]));
  }

  get level(): string { return this.#child?.level ?? this.parent.level; }
  set level(l: string) { this.#real().level = l; }
  child(b: Bindings, o?: ChildLoggerOptions): Logger { return this.#real().child(b, o); }
  silent(): void {}
  fatal(...args: unknown[]): void { this.#log('fatal', args); }
  error(...args: unknown[]): void { this.#log('error', args); }
  warn(...args: unknown[]): void { this.#log('warn', args); }
  info(...args: unknown[]): void { this.#log('info', args); }
  debug(...args: unknown[]): void { this.#log('debug', args); }
  trace(...args: unknown[]): void { this.#log('trace', args); }
}

export function lazyRequestLogger(parent: Logger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyRequestLogger(parent, bindings, opts);
}
