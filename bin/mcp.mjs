#!/usr/bin/env node
// The `mcp` executable: registers tsx's ESM loader (the project runs TypeScript directly) and
// hands over to src/cli/main.ts. Exit codes are documented in `mcp --help`.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../src/cli/main.ts');
process.exitCode = await run(process.argv.slice(2));
