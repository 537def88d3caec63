import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configMarkdown, errorsMarkdown } from '../scripts/gen-docs.ts';

describe('generated reference docs', () => {
  it('docs/config.md matches the config schema (run npx tsx scripts/gen-docs.ts)', () => {
    expect(readFileSync('docs/config.md', 'utf8')).toBe(configMarkdown());
  });
  it('docs/errors.md matches the error registry (run npx tsx scripts/gen-docs.ts)', () => {
    expect(readFileSync('docs/errors.md', 'utf8')).toBe(errorsMarkdown());
  });
});
