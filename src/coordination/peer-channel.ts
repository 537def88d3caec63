/**
 * Publishing on a channel that other processes may or may not listen to (event batches,
 * dispatch wake-ups). While the last publish reached no other process, messages are not sent —
 * they would only come back to this one — except one probe per `probeMs`; `heard()` (a message
 * from another process arrived on the channel) resumes at once. The first publish always goes
 * out, so a process that starts announces itself to those already running.
 */
import type { Coordination, PublishOptions } from './coordination.ts';

/** How often a process that believes itself alone publishes anyway, to find new listeners. */
const PEER_PROBE_MS = 1000;

export class PeerChannel {
  #othersListen = true;
  #lastAt = 0;
  /** Bumped by `heard()`: a publish's count of listeners is stale once another process was heard meanwhile. */
  #heardEpoch = 0;

  constructor(private readonly coord: Coordination, readonly channel: string, private readonly probeMs = PEER_PROBE_MS) {}

  /** Another process published on the channel: it listens too. */
  heard(): void {
    this.#othersListen = true;
    this.#heardEpoch++;
  }

  /** Publishes unless alone on the channel (then only as a probe); rejects as `publish` does. */
  async publish(message: unknown, options?: PublishOptions): Promise<void> {
    if (!this.#othersListen && Date.now() - this.#lastAt < this.probeMs) return;
    this.#lastAt = Date.now();
    const epoch = this.#heardEpoch;
    const receivers = await this.coord.publish(this.channel, message, options);
    // Counted before another process was heard (two starting together): that one listens.
    this.#othersListen = receivers > 0 || this.#heardEpoch !== epoch;
  }
}
