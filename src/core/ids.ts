/** Server-generated ids are UUID v7 (time ordered); caller-chosen ids match ID_PATTERN. */
import { uuidv7 } from 'uuidv7';

export const ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
const ID_RE = new RegExp(ID_PATTERN);

export function newId(): string {
  return uuidv7();
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Server-generated ids are UUIDs; a path id that is not one cannot name a row (and must not reach a ::uuid cast). */
export function isUuid(id: string): boolean {
  return UUID_RE.test(id);
}

export function isValidId(id: string): boolean {
  return ID_RE.test(id);
}
