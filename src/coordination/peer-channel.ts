/**
 * Publishing on a channel that other processes may or may not listen to (event batches,
 * dispatch wake-ups). While the last publish reached no other process, messages are not sent —
 * they would only come back to this one — except one probe per `probeMs`; `heard()` (a message
 * from another process arrived on the channel) resumes at once. The first publish always goes
 * out, so a process that starts announces itself to those already running.
 *
 * With `catchUp`, a message skipped that way is not simply dropped: at the next probe time the
 * channel publishes `catchUp()` once (a plain dispatch wake-up, for instance), so that a process
 * that only believed itself alone — another one's hello raced its own — is not left waiting for
 * its safety net.
 */
import type { Coordination, PublishOptions } from './coordination.ts';

/** How often a process that believes itself alone publishes anyway, to find new listeners. */
const PEER_PROBE_MS = 1000;

export class PeerChannel {
  #othersListen = true;
  #lastAt = 0;
  /** Bumped by `heard()`: a publish's count of listeners is stale once another process was heard meanwhile. */
  #heardEpoch = 0;

  #catchUpTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly coord: Coordination,
    readonly channel: string,
    private readonly probeMs = PEER_PROBE_MS,
    private readonly catchUp?: { message: () => unknown; onError: (err: unknown) => void },
  ) {}

  /** Another process published on the channel: it listens too. */
  heard(): void {
    this.#othersListen = true;
    this.#heardEpoch++;
  }

  /** Publishes unless alone on the channel (then only as a probe); rejects as `publish` does. */
  async publish(message: unknown, options?: PublishOptions): Promise<void> {
    if (!this.#othersListen && Date.now() - this.#lastAt < this.probeMs) {
      this.#scheduleCatchUp();
      return;
    }
    this.#lastAt = Date.now();
    const epoch = this.#heardEpoch;
    const receivers = await this.coord.publish(this.channel, message, options);
    // Counted before another process was heard (two starting together): that one listens.
    this.#othersListen = receivers > 0 || this.#heardEpoch !== epoch;
  }

  /** Stops a pending catch-up publish (shutdown). */
  stop(): void {
    clearTimeout(this.#catchUpTimer);
    this.#catchUpTimer = undefined;
  }

  #scheduleCatchUp(): void {
    const c = this.catchUp;
    if (!c || this.#catchUpTimer) return;
    this.#catchUpTimer = setTimeout(() => {
      this.#catchUpTimer = undefined;
      this.publish(c.message()).catch(c.onError);
    }, Math.max(0, this.#lastAt + this.probeMs - Date.now()));
    this.#catchUpTimer.unref();
  }
}
