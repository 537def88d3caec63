/**
 * How repositories turn classified values into stored text and back (ARCHITECTURE §1.6).
 * The security layer implements it with AES-256-GCM for `phi`/`restricted`; `jsonCodec` is the
 * clear-text codec for unclassified data and tests of code that does not care.
 */
export interface FieldAad {
  table: string;
  column: string;
  rowId: string;
}

export interface FieldCodec {
  seal(value: unknown, classification: string, aad: FieldAad): string;
  open<T = unknown>(stored: string, aad: FieldAad): T;
}

export const jsonCodec: FieldCodec = {
  seal: (value) => JSON.stringify(value ?? null),
  open: <T>(stored: string) => JSON.parse(stored) as T,
};
