/**
 * The FHE worker thread: runs FheEngine (SEAL's synchronous WebAssembly) off the server's event
 * loop. Messages `{id, op: 'params' | 'aggregate', args}` are answered `{id, ok: true, result}` or
 * `{id, ok: false, error: {code, message, details}}` — an AppError keeps its code and details;
 * anything else becomes INTERNAL_ERROR without its message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AppError } from '../core/index.ts';
import { FheEngine, type FheOperation, type FheReply, type FheRequest } from './fhe-aggregator.ts';

const engine = new FheEngine(workerData as { maxCiphertexts: number });
const port = parentPort!;

port.on('message', (m: FheRequest) => {
  const work = m.op === 'params' ? engine.params() : engine.aggregate(...(m.args as [FheOperation, string[], number[] | undefined]));
  work.then(
    (result) => port.postMessage({ id: m.id, ok: true, result } satisfies FheReply),
    (err: unknown) => port.postMessage({
      id: m.id, ok: false,
      error: err instanceof AppError ? { code: err.code, message: err.message, details: err.details } : { code: 'INTERNAL_ERROR', message: 'The FHE worker failed.' },
    } satisfies FheReply),
  );
});
