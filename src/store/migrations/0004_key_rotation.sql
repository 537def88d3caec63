-- Field-key rotation (SPEC §9). The key ring is derived from the master key and the number of
-- versions (src/security/key-ring.ts), so rotation persists only a counter — one row per
-- version, never key material — plus the progress of the background re-encryption that moves
-- every sealed column to the newest key (src/security/key-rotation.ts).
CREATE TABLE key_versions (
  version integer PRIMARY KEY CHECK (version >= 1),
  created_at timestamptz NOT NULL DEFAULT now(),
  -- who rotated (principal key or 'system'); never a secret
  created_by text,
  reencrypt_started_at timestamptz,
  reencrypt_completed_at timestamptz,
  reencrypted_rows bigint NOT NULL DEFAULT 0,
  -- rows that could not be decrypted (tampered or moved): left as they are, they fail closed
  reencrypt_failed_rows bigint NOT NULL DEFAULT 0
);

-- Everything written before this migration is under k1.
INSERT INTO key_versions (version, created_by, reencrypt_completed_at) VALUES (1, 'system', now());
