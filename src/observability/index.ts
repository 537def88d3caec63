/**
 * observability: structured logs (pino, with secret/PHI scrubbing), Prometheus metrics
 * (prom-client, one registry per server instance), event-loop lag. No business rules here and no
 * knowledge of the store beyond the SQL it reads at scrape time; transports wire these in
 * (http/routes/metrics-routes.ts, compose.ts).
 */
export { createLogger, scrub, scrubString, isSensitiveKey, REDACT_PATHS, REDACT_CENSOR, type Logger, type LoggerOptions } from './logger.ts';
export { Metrics, LabelGuard, type MetricsOptions, type MetricsSql, type BreakerState, type AiProviderEvent, type EventLoopLag } from './metrics.ts';
