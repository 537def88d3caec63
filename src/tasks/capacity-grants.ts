/**
 * Capacity grants between processes: a process leases new tasks at insert to agents another
 * process serves, so a task created on process A reaches an agent connected to process B in
 * A's own insert statement — B writes nothing and only hands the task to its socket. Without a
 * grant, A's task waits for B to hear the wake-up and lease it in a statement of its own (one
 * more statement, commit and round trip per task).
 *
 * The protocol, on the coordination channel `engine:grant`:
 * - **grant** (B → A): tokens for some of B's agents, each one task A may lease to that agent.
 *   B sends them when A announces new tasks those agents could serve (demand), and tops them
 *   up as A uses them. B counts every token outstanding as load of the agent's slot, so the
 *   agent's `max_concurrent_tasks` holds across processes; a peer holds at most a quarter of an
 *   agent's maximum (at most 8), agents with a maximum under 4 get no grants.
 * - **deliver** (A → B): the rows A leased at insert with tokens (parameters sealed as stored,
 *   never in clear); B hands them to the agents, and the token becomes a lease of the slot.
 * - **holdings** (A → B, every second while A holds any of B's tokens): the tokens A still
 *   holds or is using, and the last grant it has seen. B recounts from it, so a lost message
 *   costs a token for a second, not for ever. A returns tokens unused for 2 s this way.
 * - **revoke** (B → all): an agent's slot went away or changed; its tokens are dropped.
 * - B sends an empty grant every second while it has tokens out (A's sign that B lives). Each
 *   side drops the other's tokens after 3.5 s of silence (a process died).
 *
 * Pub/sub is at-most-once: a lost deliver leaves a lease nobody handed out, which the serving
 * process re-sends on the agent's next heartbeat or reconnect (unacknowledged leases are re-sent
 * from PostgreSQL), like any lost delivery.
 */
import type { Coordination } from '../coordination/index.ts';
import { isUuid } from '../core/index.ts';
import type { DeliveredTask } from '../contracts/views.ts';
import { hasAll } from './strategies.ts';

export const GRANT_CHANNEL = 'engine:grant';

/** A peer holds at most this many tokens for one agent (and at most a quarter of its maximum). */
const MAX_TOKENS = 8;
/** Beats: holdings from grantees, empty grants from granters. */
const BEAT_MS = 1000;
/** Tokens a grantee has not used for this long go back at its next beat. */
const IDLE_RETURN_MS = 2000;
/** A peer silent this long is taken for dead: its tokens are dropped. */
const SILENT_MS = 3500;
/** The most slots one announcement of new tasks gets tokens for. */
const MAX_SLOTS_PER_DEMAND = 64;
/** An agent granted within this long may hold leases its process has not seen (a lost deliver). */
const RECENT_GRANT_MS = 60_000;

/** What the grants need of a slot served here. */
export interface GrantSlot {
  readonly agent_id: string;
  readonly capabilities: ReadonlySet<string>;
  readonly max: number;
  readonly available: boolean;
  readonly builtin: boolean;
  /** Never granted (a long-poll claim's slot, which lasts only as long as the claim). */
  readonly noGrants?: boolean;
  /** Tokens outstanding to peers: counted as load of the slot. Kept by this module. */
  granted: number;
}

/** A leased task as it travels between processes: its delivery, parameters sealed (as stored), and the agent it is leased to. */
export type LeasedWire = Omit<DeliveredTask, 'parameters'> & { parameters: string; assigned_agent: string };

export interface GrantHost {
  slot(agentId: string): GrantSlot | undefined;
  slots(): Iterable<GrantSlot>;
  /** Free room of a slot here (its max less everything counted against it). */
  room(slot: GrantSlot): number;
  /** Rows a peer leased at insert to agents served here: hand them out. */
  deliverLeased(rows: LeasedWire[]): void;
  /** Tokens came back: the slots have room again. */
  roomFreed(): void;
  onError(err: unknown): void;
}

/** A remote agent's tokens held here. */
export interface HeldTokens {
  readonly agent_id: string;
  origin: string;
  capabilities: ReadonlySet<string>;
  tokens: number;
  /** Tokens taken for inserts not yet settled. */
  inFlight: number;
  touchedAt: number;
}

interface Ledger {
  tokens: Map<string, number>;
  seq: number;
  /** Grants sent and not yet acknowledged by a holdings message (`seen`). */
  log: Array<{ seq: number; agent_id: string; add: number }>;
  heardAt: number;
}

type GrantMessage =
  | { kind: 'grant'; origin: string; to: string; seq: number; slots: Array<{ agent_id: string; caps: string[]; add: number }> }
  | { kind: 'deliver'; origin: string; to: string; tasks: LeasedWire[] }
  | { kind: 'holdings'; origin: string; to: string; seen: number; held: Record<string, number> }
  | { kind: 'revoke'; origin: string; agent_id: string };

const isStr = (v: unknown): v is string => typeof v === 'string';
const isNat = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;

function wellFormed(m: unknown): GrantMessage | null {
  const g = m as Partial<Record<string, unknown>> | null;
  if (!g || typeof g !== 'object' || !isStr(g.origin)) return null;
  switch (g.kind) {
    case 'grant':
      return isStr(g.to) && isNat(g.seq) && Array.isArray(g.slots)
        && (g.slots as Array<Record<string, unknown> | null>).every((s) => s && isStr(s.agent_id) && isNat(s.add) && Array.isArray(s.caps) && s.caps.every(isStr))
        ? g as GrantMessage : null;
    case 'deliver':
      return isStr(g.to) && Array.isArray(g.tasks)
        && (g.tasks as Array<Record<string, unknown> | null>).every((t) => t && isStr(t.task_id) && isUuid(t.task_id) && isStr(t.assigned_agent) && isStr(t.parameters) && isNat(t.attempt))
        ? g as GrantMessage : null;
    case 'holdings':
      return isStr(g.to) && isNat(g.seen) && !!g.held && typeof g.held === 'object' && Object.values(g.held).every(isNat) ? g as GrantMessage : null;
    case 'revoke':
      return isStr(g.agent_id) ? g as GrantMessage : null;
    default:
      return null;
  }
}

/** The tokens one peer may hold for a slot. */
const tokenTarget = (s: GrantSlot) => (s.builtin || s.noGrants || !s.available ? 0 : Math.min(MAX_TOKENS, Math.floor(s.max / 4)));

export class CapacityGrants {
  /** Granter side: tokens out, per peer. */
  private readonly ledgers = new Map<string, Ledger>();
  /** When each agent served here was last granted. */
  private readonly grantedAt = new Map<string, number>();
  /** Grantee side: tokens held, per remote agent. */
  private readonly held = new Map<string, HeldTokens>();
  /** Grantee side: per granting process, the last grant seen and when it was last heard. */
  private readonly origins = new Map<string, { seen: number; heardAt: number }>();
  /** Grants to send at the end of the turn, per peer. */
  private outgoing = new Map<string, Array<{ agent_id: string; caps: string[]; add: number }>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly coord: Coordination, private readonly self: string, private readonly host: GrantHost, private readonly now: () => number = Date.now) {}

  start(): void {
    this.timer = setInterval(() => this.beat(), BEAT_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  onMessage(raw: unknown): void {
    const m = wellFormed(raw);
    if (!m || m.origin === this.self) return;
    if (m.kind === 'revoke') {
      this.revoked(m.origin, m.agent_id);
      return;
    }
    if (m.to !== this.self) return;
    if (m.kind === 'grant') this.received(m.origin, m.seq, m.slots);
    else if (m.kind === 'deliver') this.delivered(m.origin, m.tasks);
    else this.holdings(m.origin, m.seen, m.held);
  }

  // ---- granter side (this process serves the agents) ---------------------------------------

  /** Tokens outstanding for an agent served here (counted as its load). */
  outstanding(agentId: string): number {
    let n = 0;
    for (const l of this.ledgers.values()) n += l.tokens.get(agentId) ?? 0;
    return n;
  }

  /** Whether a peer may hold a lease of this agent that this process has not seen yet. */
  grantedRecently(agentId: string): boolean {
    return this.now() - (this.grantedAt.get(agentId) ?? -Infinity) < RECENT_GRANT_MS;
  }

  /**
   * A peer announced new tasks: grant it tokens for the agents here that could serve them — at
   * most `MAX_SLOTS_PER_DEMAND` of them per announcement (a fleet of thousands is not walked for
   * every wake-up; full slots are skipped, so later announcements reach others).
   */
  demand(peer: string, tasks: ReadonlyArray<{ caps: string[] }>): void {
    const capSets = [...new Map(tasks.map((t) => [t.caps.join('\u0000'), t.caps])).values()];
    let granted = 0;
    for (const s of this.host.slots()) {
      if (tokenTarget(s) === 0 || this.host.room(s) <= 0 || !capSets.some((caps) => hasAll(s.capabilities, caps))) continue;
      if (this.topUp(peer, s) && ++granted >= MAX_SLOTS_PER_DEMAND) return;
    }
  }

  /** Grants `peer` tokens for `slot` up to its target, as far as the slot has room. Whether it granted any. */
  private topUp(peer: string, slot: GrantSlot): boolean {
    let ledger = this.ledgers.get(peer);
    const have = ledger?.tokens.get(slot.agent_id) ?? 0;
    const add = Math.min(tokenTarget(slot) - have, this.host.room(slot));
    if (add <= 0) return false;
    if (!ledger) this.ledgers.set(peer, (ledger = { tokens: new Map(), seq: 0, log: [], heardAt: this.now() }));
    ledger.tokens.set(slot.agent_id, have + add);
    slot.granted += add;
    this.grantedAt.set(slot.agent_id, this.now());
    const list = this.outgoing.get(peer);
    const entry = { agent_id: slot.agent_id, caps: [...slot.capabilities], add };
    if (list) list.push(entry);
    else {
      this.outgoing.set(peer, [entry]);
      if (this.outgoing.size === 1) queueMicrotask(() => this.flushGrants());
    }
    return true;
  }

  private flushGrants(): void {
    const outgoing = this.outgoing;
    this.outgoing = new Map();
    for (const [peer, slots] of outgoing) {
      const ledger = this.ledgers.get(peer);
      if (!ledger) continue;
      const seq = ++ledger.seq;
      for (const s of slots) ledger.log.push({ seq, agent_id: s.agent_id, add: s.add });
      this.send({ kind: 'grant', origin: this.self, to: peer, seq, slots });
    }
  }

  /** A peer leased tasks to agents here with its tokens: they become leases, handed out now. */
  private delivered(peer: string, tasks: LeasedWire[]): void {
    const ledger = this.ledgers.get(peer);
    const agents = new Set<string>();
    for (const t of tasks) {
      agents.add(t.assigned_agent);
      const have = ledger?.tokens.get(t.assigned_agent) ?? 0;
      if (ledger && have > 0) {
        ledger.tokens.set(t.assigned_agent, have - 1);
        const slot = this.host.slot(t.assigned_agent);
        if (slot) slot.granted = Math.max(0, slot.granted - 1);
      }
    }
    this.host.deliverLeased(tasks);
    for (const a of agents) {
      const slot = this.host.slot(a);
      if (slot) this.topUp(peer, slot); // the peer goes on creating: keep it supplied
    }
  }

  /** A peer's account of the tokens it holds: recount what it has, plus grants it has not seen yet. */
  private holdings(peer: string, seen: number, held: Record<string, number>): void {
    const ledger = this.ledgers.get(peer);
    if (!ledger) return;
    ledger.heardAt = this.now();
    ledger.log = ledger.log.filter((g) => g.seq > seen);
    const next = new Map<string, number>();
    for (const [agent, n] of Object.entries(held)) next.set(agent, n);
    for (const g of ledger.log) next.set(g.agent_id, (next.get(g.agent_id) ?? 0) + g.add);
    let freed = false;
    for (const agent of new Set([...ledger.tokens.keys(), ...next.keys()])) {
      const slot = this.host.slot(agent);
      const n = slot ? next.get(agent) ?? 0 : 0; // no slot here any more: nothing to count against
      const delta = n - (ledger.tokens.get(agent) ?? 0);
      if (slot) slot.granted = Math.max(0, slot.granted + delta);
      if (delta < 0) freed = true;
      if (n > 0) ledger.tokens.set(agent, n);
      else ledger.tokens.delete(agent);
    }
    if (freed) this.host.roomFreed();
  }

  /** An agent's slot here went away or changed: peers drop its tokens (their holdings then recount it). */
  revoke(agentId: string): void {
    let any = false;
    for (const l of this.ledgers.values()) if (l.tokens.has(agentId)) any = true;
    if (any) this.send({ kind: 'revoke', origin: this.self, agent_id: agentId });
  }

  /** A slot removed here: its tokens count against nothing; peers drop them. */
  slotRemoved(agentId: string): void {
    this.revoke(agentId);
    for (const l of this.ledgers.values()) l.tokens.delete(agentId);
  }

  // ---- grantee side (another process serves the agents) ------------------------------------

  /** Takes a token of a remote agent with every capability in `caps` (the one with most left), or null. */
  take(caps: readonly string[], hasLocal: (agentId: string) => boolean): HeldTokens | null {
    let best: HeldTokens | null = null;
    for (const h of this.held.values()) {
      if (h.tokens > 0 && (!best || h.tokens > best.tokens) && this.origins.has(h.origin) && hasAll(h.capabilities, caps) && !hasLocal(h.agent_id)) best = h;
    }
    if (!best) return null;
    best.tokens--;
    best.inFlight++;
    best.touchedAt = this.now();
    return best;
  }

  /** A taken token was not used (the insert failed, or queued the task behind older ones). */
  giveBack(h: HeldTokens): void {
    h.inFlight--;
    if (this.held.get(h.agent_id) === h) h.tokens++;
  }

  /** Tokens used: their tasks were leased at insert. Sends each serving process its rows. */
  used(picks: ReadonlyArray<{ held: HeldTokens; row: LeasedWire }>): void {
    const byOrigin = new Map<string, LeasedWire[]>();
    for (const { held, row } of picks) {
      held.inFlight--;
      const list = byOrigin.get(held.origin);
      if (list) list.push(row);
      else byOrigin.set(held.origin, [row]);
    }
    // After the turn: the fan-out's batch of it (`task:created`, `task:assigned`, queued first)
    // takes its `seq`s before the serving process can hand the task out and number `task:completed`.
    setImmediate(() => {
      for (const [origin, tasks] of byOrigin) this.send({ kind: 'deliver', origin: this.self, to: origin, tasks });
    });
  }

  /** The agent connected here: its own slot serves it from now on. */
  dropHeld(agentId: string): void {
    const h = this.held.get(agentId);
    if (h) h.tokens = 0;
  }

  private received(origin: string, seq: number, slots: Array<{ agent_id: string; caps: string[]; add: number }>): void {
    const o = this.origins.get(origin);
    if (o) {
      o.seen = Math.max(o.seen, seq);
      o.heardAt = this.now();
    } else this.origins.set(origin, { seen: seq, heardAt: this.now() });
    for (const s of slots) {
      let h = this.held.get(s.agent_id);
      if (!h || h.origin !== origin) {
        // The agent moved to another process: tokens of the old one are void (it recounts them from our holdings).
        h = { agent_id: s.agent_id, origin, capabilities: new Set(s.caps), tokens: 0, inFlight: 0, touchedAt: this.now() };
        this.held.set(s.agent_id, h);
      }
      h.capabilities = new Set(s.caps);
      h.tokens += s.add;
      h.touchedAt = this.now();
    }
  }

  private revoked(origin: string, agentId: string): void {
    const h = this.held.get(agentId);
    if (!h || h.origin !== origin) return;
    h.tokens = 0;
    this.sendHoldings(origin);
  }

  private sendHoldings(origin: string): void {
    const o = this.origins.get(origin);
    if (!o) return;
    const held: Record<string, number> = {};
    for (const h of this.held.values()) if (h.origin === origin && h.tokens + h.inFlight > 0) held[h.agent_id] = h.tokens + h.inFlight;
    this.send({ kind: 'holdings', origin: this.self, to: origin, seen: o.seen, held });
  }

  // ---- both ------------------------------------------------------------------------------

  /** Every second: drop a silent peer's tokens, return idle ones, report holdings, and beat. */
  beat(): void {
    const now = this.now();
    for (const [origin, o] of this.origins) {
      const silent = now - o.heardAt > SILENT_MS;
      let holding = false;
      for (const [agent, h] of this.held) {
        if (h.origin !== origin) continue;
        if (silent || now - h.touchedAt > IDLE_RETURN_MS) h.tokens = 0;
        if (h.tokens + h.inFlight === 0) this.held.delete(agent);
        else holding = true;
      }
      if (silent) this.origins.delete(origin);
      else {
        this.sendHoldings(origin); // also says "none left" once, which returns them
        if (!holding) this.origins.delete(origin);
      }
    }
    // Tokens of a process forgotten above that were in use then: nothing more to report once settled.
    for (const [agent, h] of this.held) if (!this.origins.has(h.origin) && h.inFlight === 0) this.held.delete(agent);
    let freed = false;
    for (const [peer, l] of this.ledgers) {
      if (now - l.heardAt > SILENT_MS && (l.tokens.size > 0 || l.log.length > 0)) {
        for (const [agent, n] of l.tokens) {
          const slot = this.host.slot(agent);
          if (slot) slot.granted = Math.max(0, slot.granted - n);
        }
        this.ledgers.delete(peer);
        freed = true;
      } else if (l.tokens.size > 0) this.send({ kind: 'grant', origin: this.self, to: peer, seq: l.seq, slots: [] });
      else if (!l.log.length) this.ledgers.delete(peer);
    }
    for (const [agent, at] of this.grantedAt) if (now - at >= RECENT_GRANT_MS) this.grantedAt.delete(agent);
    if (freed) this.host.roomFreed();
  }

  private send(m: GrantMessage): void {
    this.coord.publish(GRANT_CHANNEL, m, { echo: false }).catch((err: unknown) => this.host.onError(err));
  }
}
