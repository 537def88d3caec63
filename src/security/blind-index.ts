/**
 * BlindIndex: keyed, deterministic hashes that let `patient_id` / `session_id` be searched for
 * with equality without storing them in the clear (SPEC §9).
 *
 * index = base64url(HMAC-SHA256(purposeKey, normalise(value))) truncated to 32 characters
 * (192 bits). Each purpose has its own key (HKDF from the ring's blind-index key), so equal
 * values under different purposes do not produce equal indexes. Normalisation is Unicode NFC,
 * trim, lowercase: changing it would orphan every stored index, so it is fixed here.
 */
import { createHmac, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import type { KeyRing } from './key-ring.ts';

export const BLIND_INDEX_PURPOSES = ['patient_id', 'session_id', 'analysis_cache'] as const;
export type BlindIndexPurpose = (typeof BLIND_INDEX_PURPOSES)[number];

/** Length in characters of an index value. */
export const BLIND_INDEX_LENGTH = 32;

export function normalizeForBlindIndex(value: string): string {
  return value.normalize('NFC').trim().toLowerCase();
}

export class BlindIndex {
  readonly #keys = new Map<BlindIndexPurpose, KeyObject>();

  /** Takes the ring (uses its `blindIndexKey`) or the blind-index key itself. */
  constructor(source: KeyRing | KeyObject) {
    const root = 'blindIndexKey' in source ? source.blindIndexKey : source;
    for (const purpose of BLIND_INDEX_PURPOSES) {
      const key = hkdfSync('sha256', root, Buffer.alloc(0), `mcp-blind-index:${purpose}`, 32);
      this.#keys.set(purpose, createSecretKey(Buffer.from(key)));
    }
  }

  /** The index of `value` for `purpose`; equal after normalisation ⇔ equal index. */
  compute(purpose: BlindIndexPurpose, value: string): string {
    return this.exact(purpose, normalizeForBlindIndex(value));
  }

  /** The keyed hash of `value` as given (no normalisation): a cache key for PHI text (`analysis_cache`). */
  exact(purpose: BlindIndexPurpose, value: string): string {
    const key = this.#keys.get(purpose);
    if (!key) throw new TypeError(`Unknown blind index purpose ${JSON.stringify(purpose)}.`);
    return createHmac('sha256', key)
      .update(value, 'utf8')
      .digest('base64url')
      .slice(0, BLIND_INDEX_LENGTH);
  }
}
