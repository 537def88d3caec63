// Installs dependencies when they are missing or older than the lockfile, so that
// `npm start` and `npm test` work on a fresh clone with no other set-up step.
import { existsSync, statSync } from 'node:fs';
import { execSync } from 'node:child_process';

const marker = 'node_modules/.package-lock.json';
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync('package-lock.json').mtimeMs;
if (stale) {
  console.log('[mcp] installing dependencies…');
  // npm install honours the lock file and, unlike npm ci, keeps what is already installed.
  execSync('npm install --no-audit --no-fund', { stdio: 'inherit' });
}
