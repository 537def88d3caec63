/**
 * Agent API keys: 256 random bits shown once; stored only as HMAC-SHA256(pepper, key).
 * A high-entropy key needs no slow hash, and the keyed hash is useless without the pepper.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export class ApiKeys {
  constructor(private readonly pepper: string) {}

  generate(): string {
    return `mcp_ak_${randomBytes(32).toString('base64url')}`;
  }

  hash(key: string): string {
    return createHmac('sha256', this.pepper).update(key).digest('base64url');
  }

  matches(key: string, storedHash: string): boolean {
    const a = Buffer.from(this.hash(key));
    const b = Buffer.from(storedHash);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}
