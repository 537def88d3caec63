-- Expired refresh tokens and revocations are purged by the retention job (a day after they
-- expire; src/security/retention-job.ts); these let its batched deletes find them without
-- reading either table in full. Until now nothing removed them, and both tables grew with
-- every login and every refresh.
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);
