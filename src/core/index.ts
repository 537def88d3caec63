/** core: dependency-free building blocks (errors, ids, clock, typed events). Imports nothing internal. */
export * from './errors.ts';
export * from './error-codes.ts';
export * from './ids.ts';
export * from './clock.ts';
export * from './events.ts';
export * from './field-codec.ts';
export * from './micro-batcher.ts';
