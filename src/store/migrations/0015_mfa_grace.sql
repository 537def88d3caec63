-- When a user of a role that must enrol MFA (MCP_MFA_REQUIRED_ROLES) first signed in without it:
-- the start of their grace period (MCP_MFA_GRACE_PERIOD; auth/mfa-policy.ts). Reset on a role change.
ALTER TABLE users ADD COLUMN mfa_grace_started_at timestamptz;
