/**
 * The live state of a principal, re-read on every request so that disabling a user, lowering
 * its role or deleting an agent takes effect on its next request (SPEC §4.1). A tiny per-process
 * cache is invalidated through the event bus (principal:revoked).
 */
import { isUuid, type EventBus } from '../core/index.ts';
import type { Db } from '../store/index.ts';
import type { Principal, Role } from './rbac.ts';

export class PrincipalState {
  private readonly cache = new Map<string, { role: Role; name: string; at: number } | null>();

  constructor(private readonly db: Db, bus: EventBus, private readonly ttlMs = 2000) {
    bus.on('principal:revoked', (e) => this.cache.delete(`${e.subject_type}:${e.subject_id}`));
  }

  invalidate(type: 'user' | 'agent', id: string): void {
    this.cache.delete(`${type}:${id}`);
  }

  /** The principal with its current role, or null when disabled/deleted. */
  async current(p: Principal): Promise<Principal | null> {
    const key = `${p.type}:${p.id}`;
    const hit = this.cache.get(key);
    if (hit !== undefined && (hit === null || Date.now() - hit.at < this.ttlMs)) {
      return hit ? { ...p, role: hit.role, name: hit.name } : null;
    }
    if (p.type === 'user' && !isUuid(p.id)) return null;
    const { rows } = p.type === 'user'
      ? await this.db.query<{ role: Role; name: string }>('SELECT role, username AS name FROM users WHERE user_id = $1::uuid AND deleted_at IS NULL AND NOT disabled', [p.id])
      : await this.db.query<{ role: Role; name: string }>('SELECT role, agent_id AS name FROM agents WHERE agent_id = $1 AND deleted_at IS NULL', [p.id]);
    const row = rows[0];
    this.cache.set(key, row ? { role: row.role, name: row.name, at: Date.now() } : null);
    if (!row) setTimeout(() => this.cache.delete(key), this.ttlMs).unref();
    return row ? { ...p, role: row.role, name: row.name } : null;
  }
}
