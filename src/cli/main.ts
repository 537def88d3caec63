/**
 * The `mcp` command line (SPEC §12): server commands (start, migrate, config print, keys rotate,
 * bench), REST commands through the SDK client (login, agents, tasks, pipelines, users, audit),
 * and `agent run` (a worker process on the SDK). Tables by default, `--json` for scripts, exit
 * codes listed in `mcp --help` (see output.ts).
 */
import { Command, CommanderError } from 'commander';
import { makeKit } from './command-kit.ts';
import { EXIT, EXIT_CODES_HELP, makeOut, reportError } from './output.ts';
import { registerResourceCommands } from './commands/resource-commands.ts';
import { registerPipelineCommands } from './commands/pipeline-commands.ts';
import { registerServerCommands } from './commands/server-commands.ts';
import { registerAgentRunCommand } from './commands/agent-run.ts';

export const CLI_VERSION = '0.1.0';

export function buildProgram(): { program: Command; kit: ReturnType<typeof makeKit> } {
  const kit = makeKit();
  const program = new Command()
    .name('mcp')
    .description('MCP server command line: run the server, manage agents, tasks, pipelines, users and keys')
    .version(CLI_VERSION, '-V, --version')
    .option('--url <url>', 'server URL (else MCP_URL, else the last login, else http://127.0.0.1:8080)')
    .option('--token <token>', 'access token (else MCP_TOKEN, else the stored login)')
    .option('--json', 'machine-readable JSON output (errors as JSON on stderr)')
    .showHelpAfterError('(run with --help for usage)')
    .showSuggestionAfterError(true)
    .exitOverride()
    .addHelpText('after', EXIT_CODES_HELP);
  registerServerCommands(program, kit);
  registerResourceCommands(program, kit);
  registerPipelineCommands(program, kit);
  registerAgentRunCommand(program, kit);
  return { program, kit };
}

/** Runs the CLI with `argv` (without node and script); resolves with the exit code. */
export async function run(argv: string[]): Promise<number> {
  const { program, kit } = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return kit.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; everything else commander rejects is a usage error
      return err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? EXIT.ok : EXIT.usage;
    }
    const json = process.argv.includes('--json') || argv.includes('--json');
    return reportError(makeOut(json), err);
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) {
  run(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
    process.stderr.write(`mcp: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = EXIT.failure;
  });
}
