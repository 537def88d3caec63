/**
 * Data classification levels (SPEC §9), least to most sensitive. Task parameters and results,
 * pipeline inputs and outputs default to `phi`.
 */
export const DATA_CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted', 'phi'] as const;

export type DataClassification = (typeof DATA_CLASSIFICATIONS)[number];

/** The default for task parameters/results and pipeline inputs/outputs. */
export const DEFAULT_CLASSIFICATION: DataClassification = 'phi';

export function isDataClassification(value: unknown): value is DataClassification {
  return typeof value === 'string' && (DATA_CLASSIFICATIONS as readonly string[]).includes(value);
}

/** `phi` and `restricted` values are encrypted field by field at rest (SPEC §9). */
export function requiresEncryption(classification: DataClassification): boolean {
  return classification === 'phi' || classification === 'restricted';
}
