/**
 * Groups calls that arrive close together into one batch (one SQL statement, one commit),
 * so a burst of N task results costs a few round trips and fsyncs instead of N. A batch is
 * flushed on the next turn of the event loop or when it reaches `maxSize`; at most
 * `maxInFlight` batches run at once, so under load batches grow instead of queueing.
 * Each caller gets its own item's outcome.
 */
export interface MicroBatcherOptions {
  maxSize: number;
  maxInFlight: number;
  /**
   * For a `run` that is all or nothing (one statement, one transaction): when a batch of several
   * fails with an error this accepts, each item is run again alone, so one caller's bad value (an
   * out-of-range number, a NUL in text) fails that caller only, not everyone whose call happened
   * to share its batch. Other failures (the store down) reject the whole batch at once.
   */
  isolate?: (err: unknown) => boolean;
}

interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class MicroBatcher<I, O> {
  private queue: Array<Pending<I, O>> = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(private readonly run: (items: I[]) => Promise<O[]>, private readonly opts: MicroBatcherOptions) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.opts.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length) {
      const batch = this.queue.splice(0, this.opts.maxSize);
      this.inFlight++;
      this.run(batch.map((p) => p.item)).then(
        (out) => batch.forEach((p, i) => p.resolve(out[i]!)),
        async (err: unknown) => {
          if (!this.opts.isolate?.(err) || batch.length === 1) return batch.forEach((p) => p.reject(err));
          for (const p of batch) await this.run([p.item]).then((out) => p.resolve(out[0]!), p.reject);
        },
      ).finally(() => {
        this.inFlight--;
        this.schedule();
      });
    }
  }
}
