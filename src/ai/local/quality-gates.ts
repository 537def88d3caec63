/**
 * Quality gates for the `quality_assessment` stage. Each gate compares one metric with a
 * configurable threshold; the run passes only if every gate passes.
 *
 *   bias_score      ≤ bias_score_max      (default 0.6)  — bias-detection score, 0–1
 *   completeness    ≥ completeness_min    (default 0.6)  — share of structural checks passed
 *   pii_remaining   ≤ pii_remaining_max   (default 0)    — identifiers left after redaction
 *   confidence      ≥ confidence_min      (default 0.3)  — analysis confidence, 0–1
 */
import { round } from './conversation-types.ts';

export interface QualityThresholds {
  bias_score_max: number;
  completeness_min: number;
  pii_remaining_max: number;
  confidence_min: number;
}

export const DEFAULT_QUALITY_THRESHOLDS: Readonly<QualityThresholds> = Object.freeze({
  bias_score_max: 0.6,
  completeness_min: 0.6,
  pii_remaining_max: 0,
  confidence_min: 0.3,
});

export interface QualityMetrics {
  bias_score: number;
  completeness: number;
  pii_remaining: number;
  confidence: number;
}

export interface QualityGate {
  name: keyof QualityMetrics;
  value: number;
  threshold: number;
  comparison: 'max' | 'min';
  passed: boolean;
}

export interface QualityGateResult {
  passed: boolean;
  gates: QualityGate[];
  reasons: string[];
  thresholds: QualityThresholds;
}

/** Read thresholds from a loose config object; unknown keys ignored, bad values → the default. */
export function resolveThresholds(config: Record<string, unknown> | undefined): QualityThresholds {
  const src = config ?? {};
  const nested = typeof src.quality_thresholds === 'object' && src.quality_thresholds !== null ? (src.quality_thresholds as Record<string, unknown>) : {};
  const pick = (k: keyof QualityThresholds): number => {
    const v = nested[k] ?? src[k];
    return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : DEFAULT_QUALITY_THRESHOLDS[k];
  };
  return { bias_score_max: pick('bias_score_max'), completeness_min: pick('completeness_min'), pii_remaining_max: pick('pii_remaining_max'), confidence_min: pick('confidence_min') };
}

export function evaluateQualityGates(metrics: QualityMetrics, thresholds: Partial<QualityThresholds> = {}): QualityGateResult {
  const t: QualityThresholds = { ...DEFAULT_QUALITY_THRESHOLDS, ...thresholds };
  const gates: QualityGate[] = [
    { name: 'bias_score', value: round(metrics.bias_score), threshold: t.bias_score_max, comparison: 'max', passed: metrics.bias_score <= t.bias_score_max },
    { name: 'completeness', value: round(metrics.completeness), threshold: t.completeness_min, comparison: 'min', passed: metrics.completeness >= t.completeness_min },
    { name: 'pii_remaining', value: metrics.pii_remaining, threshold: t.pii_remaining_max, comparison: 'max', passed: metrics.pii_remaining <= t.pii_remaining_max },
    { name: 'confidence', value: round(metrics.confidence), threshold: t.confidence_min, comparison: 'min', passed: metrics.confidence >= t.confidence_min },
  ];
  const reasons = gates
    .filter((g) => !g.passed)
    .map((g) => `${g.name} ${g.value} ${g.comparison === 'max' ? 'exceeds the maximum' : 'is below the minimum'} ${g.threshold}`);
  return { passed: reasons.length === 0, gates, reasons, thresholds: t };
}
