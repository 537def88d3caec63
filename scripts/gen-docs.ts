/**
 * Generates docs/config.md and docs/errors.md from the config schema and the error registry,
 * so the reference cannot drift from the code (a test checks they are up to date).
 * Run: npx tsx scripts/gen-docs.ts
 */
import { writeFileSync } from 'node:fs';
import { CONFIG_FIELDS } from '../src/config/index.ts';
import { ERROR_CODES } from '../src/core/index.ts';

export function configMarkdown(): string {
  const rows = CONFIG_FIELDS.map((f) => {
    const def = f.secret && f.default ? '(secret)' : JSON.stringify(f.default ?? '');
    return `| \`${f.env}\` | \`${f.path}\` | ${def === '""' ? '' : `\`${def}\``} | ${f.description.replace(/\|/g, '\\|')} |`;
  });
  return [
    '# Configuration reference',
    '',
    'Generated from `src/config/config-schema.ts` by `npx tsx scripts/gen-docs.ts`; do not edit by hand.',
    '',
    'Precedence: defaults < JSON file named by `MCP_CONFIG` (same nested keys as the path column) < environment.',
    'Every value is validated at start; an invalid one stops the process with exit code 2 and names the key.',
    '`NODE_ENV=production` refuses generated secrets (`MCP_MASTER_KEY`, `MCP_PASSWORD_PEPPER`, `MCP_SIGNING_KEY` must be set).',
    '',
    '| environment | path | default | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

export function errorsMarkdown(): string {
  const rows = Object.entries(ERROR_CODES).map(([code, e]) => `| \`${code}\` | ${e.status} | ${e.message} |`);
  return [
    '# Error codes',
    '',
    'Generated from `src/core/error-codes.ts` by `npx tsx scripts/gen-docs.ts`; do not edit by hand.',
    '',
    'Every error answers `{"error": {"code", "message", "details"?, "request_id"}}`; validation errors carry',
    '`details.field_errors: [{field, message}]`; 429 and 503 carry `Retry-After`. Socket.IO acks use',
    '`{ok: false, error: {code, message, details?}}` with the same codes. Internal errors never expose',
    'a stack, SQL or PHI; they are logged under the request id.',
    '',
    'Values no column can hold are client mistakes (400 `VALIDATION_ERROR`), refused before they reach',
    'the store where possible: a NUL character (`\\u0000` in a JSON body, `%00` in a query string),',
    'an offset or attempt beyond 2,147,483,647, a timestamp in year 0000, a URL with bad',
    'percent-encoding. A database data exception that still gets through answers the same 400.',
    '',
    '| code | HTTP | default message |',
    '|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync('docs/config.md', configMarkdown());
  writeFileSync('docs/errors.md', errorsMarkdown());
  console.log('wrote docs/config.md and docs/errors.md');
}
