// The FHE worker thread's entry: registers tsx's loader in this thread (the project runs
// TypeScript directly, and a worker does not inherit the parent's loader hooks in every host:
// vitest, the CLI), then loads the worker itself.
import { register } from 'tsx/esm/api';

register();
await import('./fhe-worker.ts');
