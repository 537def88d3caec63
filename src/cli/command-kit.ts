/** Glue between commander and the commands: context per invocation, the exit code a command chose. */
import type { Command } from 'commander';
import { makeContext, type CliContext, type GlobalOptions } from './cli-context.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- commander hands options over untyped
export type Opts = Record<string, any>;
/** A command body: positional args, its options; may return an exit code (default 0). */
export type Action = (ctx: CliContext, args: string[], opts: Opts) => Promise<number | void>;

export interface Kit {
  action(fn: Action): (...a: unknown[]) => Promise<void>;
  /** The exit code the last command asked for. */
  readonly code: number;
}

export function makeKit(): Kit {
  let code = 0;
  return {
    get code() { return code; },
    action: (fn) => async (...a: unknown[]) => {
      const cmd = a[a.length - 1] as Command;
      const opts = (a[a.length - 2] ?? {}) as Opts;
      const args = a.slice(0, -2).flatMap((x) => (Array.isArray(x) ? (x as string[]) : typeof x === 'string' ? [x] : []));
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const r = await fn(ctx, args, opts);
      code = typeof r === 'number' ? r : 0;
    },
  };
}
