/** Server-generated ids are UUID v7 (time ordered); caller-chosen ids match ID_PATTERN. */
import { uuidv7 } from 'uuidv7';

export const ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
const ID_RE = new RegExp(ID_PATTERN);

export function newId(): string {
  return uuidv7();
}

export function isValidId(id: string): boolean {
  return ID_RE.test(id);
}
