// File-system test of the embedded key file (temporary directory, removed afterwards).
import { mkdtempSync, readFileSync, rmSync, statSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeyRing, KeyRingError, loadOrCreateMasterKeyFile } from './key-ring.ts';

const posix = process.platform !== 'win32';

describe('master key file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-keyring-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a random 32-byte key with mode 0600, then reuses it', () => {
    const path = join(dir, 'nested', 'master.key');
    const first = loadOrCreateMasterKeyFile(path);
    expect(first.created).toBe(true);
    expect(first.masterKey.length).toBe(32);
    if (posix) {
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'nested')).mode & 0o077).toBe(0);
    }
    expect(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64').equals(first.masterKey)).toBe(true);

    const second = loadOrCreateMasterKeyFile(path);
    expect(second.created).toBe(false);
    expect(second.masterKey.equals(first.masterKey)).toBe(true);
  });

  it('KeyRing.loadOrCreateKeyFile gives the same keys across loads', () => {
    const path = join(dir, 'master.key');
    const a = KeyRing.loadOrCreateKeyFile(path);
    const b = KeyRing.loadOrCreateKeyFile(path, { extraVersions: 1 });
    expect(b.current).toBe('k2');
    expect(b.get('k1').export().equals(a.get('k1').export())).toBe(true);
  });

  it('two fresh directories get different keys', () => {
    const a = loadOrCreateMasterKeyFile(join(dir, 'a.key'));
    const b = loadOrCreateMasterKeyFile(join(dir, 'b.key'));
    expect(a.masterKey.equals(b.masterKey)).toBe(false);
  });

  it('is refused in production, without creating the file', () => {
    const path = join(dir, 'master.key');
    expect(() => KeyRing.loadOrCreateKeyFile(path, { production: true })).toThrow(KeyRingError);
    expect(() => statSync(path)).toThrow(/ENOENT/);
  });

  it.runIf(posix)('refuses an existing key file readable by others', () => {
    const path = join(dir, 'master.key');
    writeFileSync(path, `${Buffer.alloc(32, 1).toString('base64')}\n`, { mode: 0o600 });
    chmodSync(path, 0o644);
    expect(() => loadOrCreateMasterKeyFile(path)).toThrow(/chmod 600/);
  });

  it('refuses a corrupt key file', () => {
    const path = join(dir, 'master.key');
    writeFileSync(path, 'not a key\n', { mode: 0o600 });
    expect(() => loadOrCreateMasterKeyFile(path)).toThrow(KeyRingError);
  });
});
