/**
 * Passwords: argon2id with a server-side pepper passed as argon2's secret (never stored in the
 * database). Unknown users are verified against a dummy hash so timing does not reveal them.
 */
import { hash, verify } from '@node-rs/argon2';
import { ValidationError } from '../core/index.ts';

const ARGON2ID = 2; // Algorithm.Argon2id (a const enum, not importable under isolatedModules)
export const MIN_PASSWORD_LENGTH = 12;

export class PasswordHasher {
  private readonly secret: Uint8Array;
  private dummy: Promise<string> | undefined;

  constructor(pepper: string) {
    this.secret = Buffer.from(pepper, 'utf8');
  }

  async hash(password: string): Promise<string> {
    return hash(password, { algorithm: ARGON2ID, secret: this.secret, memoryCost: 19456, timeCost: 2, parallelism: 1 });
  }

  async verify(passwordHash: string | null, password: string): Promise<boolean> {
    if (!passwordHash) {
      this.dummy ??= this.hash('dummy-password-for-timing');
      await verify(await this.dummy, password, { secret: this.secret }).catch(() => false);
      return false;
    }
    try {
      return await verify(passwordHash, password, { secret: this.secret });
    } catch {
      return false;
    }
  }
}

export function assertPasswordPolicy(password: string, field = 'password'): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new ValidationError('The password is too short.', [{ field, message: `must be at least ${MIN_PASSWORD_LENGTH} characters` }]);
  }
}
