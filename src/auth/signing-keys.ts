/**
 * JWT signing keys (Ed25519, EdDSA). The current key signs; retired keys keep verifying until
 * they expire (the longest token lifetime after retirement), so rotation breaks no live token.
 * Keys live in the database (private key sealed by the injected `seal`/`open`) unless
 * MCP_SIGNING_KEY supplies one.
 */
import { calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, importPKCS8, importJWK, type CryptoKey, type JWK } from 'jose';
import type { KeyObject } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import type { Db } from '../store/index.ts';

export const JWT_ALG = 'EdDSA';

interface KeyRow {
  kid: string;
  private_key: string;
  public_jwk: JWK;
  retired_at: Date | null;
  expires_at: Date | null;
}

export interface LoadedKey {
  kid: string;
  publicKey: CryptoKey | KeyObject | Uint8Array;
  publicJwk: JWK;
  privateKey?: CryptoKey | KeyObject;
  retired: boolean;
  expiresAt: number | null;
}

export interface SecretSealer {
  seal(value: string, rowId: string): string;
  open(stored: string, rowId: string): string;
}

export const plainSealer: SecretSealer = { seal: (v) => v, open: (v) => v };

export class SigningKeys {
  private keys = new Map<string, LoadedKey>();
  private currentKid = '';

  constructor(private readonly db: Db, private readonly sealer: SecretSealer = plainSealer, private readonly configuredPem = '') {}

  get current(): LoadedKey {
    const k = this.keys.get(this.currentKid);
    if (!k?.privateKey) throw new Error('no signing key loaded');
    return k;
  }

  get(kid: string): LoadedKey | undefined {
    const k = this.keys.get(kid);
    if (!k) return undefined;
    if (k.expiresAt !== null && k.expiresAt < Date.now()) return undefined;
    return k;
  }

  /** Public keys still valid for verification (JWKS). */
  jwks(): { keys: JWK[] } {
    return { keys: [...this.keys.values()].filter((k) => k.expiresAt === null || k.expiresAt > Date.now()).map((k) => ({ ...k.publicJwk, kid: k.kid, alg: JWT_ALG, use: 'sig' })) };
  }

  /** Loads keys from the database, creating the first one when there is none. */
  async load(): Promise<void> {
    if (this.configuredPem) {
      const privateKey = await importPKCS8(this.configuredPem, JWT_ALG, { extractable: true });
      const publicJwk = await exportJWK(createPublicKey(this.configuredPem));
      const kid = await calculateJwkThumbprint(publicJwk);
      this.keys.set(kid, { kid, privateKey, publicKey: await importJWK(publicJwk, JWT_ALG), publicJwk, retired: false, expiresAt: null });
      this.currentKid = kid;
    }
    await this.reload();
    if (!this.currentKid) await this.rotate(0);
  }

  async reload(): Promise<void> {
    const { rows } = await this.db.query<KeyRow>('SELECT kid, private_key, public_jwk, retired_at, expires_at FROM signing_keys ORDER BY created_at');
    for (const r of rows) {
      const pem = this.sealer.open(r.private_key, r.kid);
      this.keys.set(r.kid, {
        kid: r.kid,
        privateKey: await importPKCS8(pem, JWT_ALG),
        publicKey: await importJWK(r.public_jwk, JWT_ALG),
        publicJwk: r.public_jwk,
        retired: r.retired_at !== null,
        expiresAt: r.expires_at ? r.expires_at.getTime() : null,
      });
      if (!this.configuredPem && r.retired_at === null) this.currentKid = r.kid;
    }
  }

  /**
   * Makes a new current key; the previous ones retire and stay valid for `overlapSeconds`
   * (set it to the longest token lifetime).
   */
  async rotate(overlapSeconds: number): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair(JWT_ALG, { crv: 'Ed25519', extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = `${await calculateJwkThumbprint(publicJwk)}`.slice(0, 16) + Date.now().toString(36);
    const pem = await exportPKCS8(privateKey);
    await this.db.transaction(async (tx) => {
      await tx.query(`UPDATE signing_keys SET retired_at = now(), expires_at = now() + make_interval(secs => $1) WHERE retired_at IS NULL`, [overlapSeconds]);
      await tx.query('INSERT INTO signing_keys (kid, alg, private_key, public_jwk) VALUES ($1, $2, $3, $4)', [kid, JWT_ALG, this.sealer.seal(pem, kid), JSON.stringify(publicJwk)]);
    });
    for (const k of this.keys.values()) {
      if (!k.retired && k.kid !== kid && !this.configuredPem) {
        k.retired = true;
        k.expiresAt = Date.now() + overlapSeconds * 1000;
      }
    }
    this.keys.set(kid, { kid, privateKey, publicKey, publicJwk, retired: false, expiresAt: null });
    if (!this.configuredPem) this.currentKid = kid;
    return kid;
  }
}
