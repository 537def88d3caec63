/**
 * Where agents of other processes have room, so that built-in agents yield to them across
 * processes (SPEC §7.4: built-ins rank below every other agent, "so a connected specialised
 * agent wins"). Within one process the ranking does that (strategies.ts); with several, a task
 * created on process A would otherwise go to A's built-in although an agent connected to
 * process B could take it now.
 *
 * On the coordination channel `engine:room` every process says which capability sets its
 * non-built-in agents that are available and under their maximum hold (a `room` message, a
 * handful of sets: agents with the same capabilities share one), and whether it runs built-ins.
 * It sends one every second, and — only while some other process runs built-ins, the only
 * readers (else the message carries no sets) — also when the sets change, at most every `CHANGE_MS`. A built-in slot leaves a task
 * alone while a set heard from another process covers it: that process leases it (from the
 * wake-up announcing it, or its own round). When the sets shrink (those agents are full, or
 * gone, or their process stopped — it says so — or fell silent for `SILENT_MS`) the built-ins
 * take what is left.
 *
 * Pub/sub is at-most-once and the sets are a little stale: the cost is latency, never a lost
 * task — a built-in that yielded re-checks shortly (`YIELD_RECHECK_MS`, assignment-engine.ts).
 */
import type { Coordination } from '../coordination/index.ts';
import { hasAll } from './strategies.ts';

export const ROOM_CHANNEL = 'engine:room';

/** How often every process sends its sets (a sign of life, and a catch-up for a lost message). */
const BEAT_MS = 1000;
/** The sets of a process silent this long are dropped (it died or lost Redis). */
const SILENT_MS = 3500;
/** The soonest a change of the sets is sent after the previous message. */
const CHANGE_MS = 25;
/** The most sets one message carries (more: the rest are not announced; built-ins may take their tasks). */
const MAX_SETS = 256;

/** What the room needs of a slot served here. */
export interface RoomSlot {
  readonly capabilities: ReadonlySet<string>;
  readonly builtin: boolean;
  readonly available: boolean;
  readonly max: number;
}

export interface RoomHost {
  slots(): Iterable<RoomSlot>;
  /** In-flight count of a slot (what counts against its max). */
  load(slot: RoomSlot): number;
  /** Whether a built-in agent runs here (asked at every message: answered without walking the slots). */
  runsBuiltins(): boolean;
  /** Another process's sets changed while built-ins run here: tasks they yielded may be theirs now. */
  changed(): void;
  onError(err: unknown): void;
}

interface RoomMessage { origin: string; builtins: boolean; sets: string[][] }

interface Peer { builtins: boolean; sets: Array<ReadonlySet<string>>; key: string; heardAt: number }

function wellFormed(m: unknown): RoomMessage | null {
  const r = m as Partial<RoomMessage> | null;
  return r && typeof r === 'object' && typeof r.origin === 'string' && typeof r.builtins === 'boolean' && Array.isArray(r.sets)
    && r.sets.length <= MAX_SETS && r.sets.every((s) => Array.isArray(s) && s.every((c) => typeof c === 'string'))
    ? r as RoomMessage : null;
}

export class RemoteRoom {
  private readonly peers = new Map<string, Peer>();
  /** The sets last sent, as a key (`null`: none sent yet). */
  private sentKey: string | null = null;
  private sentAt = 0;
  private pending: NodeJS.Timeout | undefined;
  private beatTimer: NodeJS.Timeout | undefined;

  constructor(private readonly coord: Coordination, private readonly self: string, private readonly host: RoomHost, private readonly now: () => number = Date.now) {}

  start(): void {
    this.send();
    this.beatTimer = setInterval(() => this.beat(), BEAT_MS);
    this.beatTimer.unref();
  }

  /** Stops, saying so: a process shutting down has no room (its peers' built-ins need not wait for its silence). */
  stop(): void {
    clearInterval(this.beatTimer);
    clearTimeout(this.pending);
    this.pending = undefined;
    const m: RoomMessage = { origin: this.self, builtins: false, sets: [] };
    this.coord.publish(ROOM_CHANNEL, m, { echo: false }).catch(() => {}); // the store may be closing: silence says the same, later
  }

  /** Whether an agent another process serves (not a built-in) had room for a task needing `caps`, as last heard. */
  covers(caps: readonly string[]): boolean {
    for (const p of this.peers.values()) for (const s of p.sets) if (hasAll(s, caps)) return true;
    return false;
  }

  /** Load or slots changed here: send the sets if they changed and another process runs built-ins (at most every `CHANGE_MS`). */
  touch(): void {
    if (this.pending || !this.someoneReads()) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      const sets = this.sets();
      if (setsKey(sets) !== this.sentKey) this.send(sets);
    }, Math.max(0, this.sentAt + CHANGE_MS - this.now()));
    this.pending.unref();
  }

  onMessage(raw: unknown): void {
    const m = wellFormed(raw);
    if (!m || m.origin === this.self) return;
    const key = setsKey(m.sets);
    const prev = this.peers.get(m.origin);
    this.peers.set(m.origin, { builtins: m.builtins, sets: m.sets.map((s) => new Set(s)), key, heardAt: this.now() });
    // A new process: tell it at once (it may run built-ins that should yield to agents here).
    if (!prev) this.send();
    if (prev?.key !== key && this.host.runsBuiltins()) this.host.changed();
  }

  /** Every second: drop silent processes, and send the sets. */
  beat(): void {
    const now = this.now();
    let dropped = false;
    for (const [origin, p] of this.peers) {
      if (now - p.heardAt <= SILENT_MS) continue;
      this.peers.delete(origin);
      if (p.sets.length) dropped = true;
    }
    if (dropped && this.host.runsBuiltins()) this.host.changed();
    this.send(this.someoneReads() ? this.sets() : []); // nobody to read them: a sign of life only (no walk over every slot)
  }

  private someoneReads(): boolean {
    for (const p of this.peers.values()) if (p.builtins) return true;
    return false;
  }

  /** The capability sets of the available non-built-in slots under their maximum, each once, sorted. */
  private sets(): string[][] {
    const byKey = new Map<string, string[]>();
    for (const s of this.host.slots()) {
      if (s.builtin || !s.available || this.host.load(s) >= s.max) continue;
      const caps = sortedCaps(s.capabilities);
      byKey.set(caps.join('\u0000'), caps);
      if (byKey.size >= MAX_SETS) break;
    }
    return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, caps]) => caps);
  }

  private send(sets = this.sets()): void {
    this.sentKey = setsKey(sets);
    this.sentAt = this.now();
    const m: RoomMessage = { origin: this.self, builtins: this.host.runsBuiltins(), sets };
    this.coord.publish(ROOM_CHANNEL, m, { echo: false }).catch((err: unknown) => this.host.onError(err));
  }
}

/** A slot's capabilities, sorted — once per capability set (a slot's set is replaced, never changed, when its capabilities change). */
const sorted = new WeakMap<ReadonlySet<string>, string[]>();
function sortedCaps(caps: ReadonlySet<string>): string[] {
  let s = sorted.get(caps);
  if (!s) sorted.set(caps, (s = [...caps].sort()));
  return s;
}

const setsKey = (sets: string[][]) => sets.map((s) => s.join('\u0000')).join('\u0001');
