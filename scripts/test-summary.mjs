// Prints the plain closing line "N passed, N failed" from vitest's JSON report.
import { readFileSync } from 'node:fs';
const r = JSON.parse(readFileSync('test-results.json', 'utf8'));
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed${r.numPendingTests ? `, ${r.numPendingTests} skipped` : ''}`);
process.exit(r.numFailedTests > 0 ? 1 : 0);
