-- 004_auth.sql: what accounts, tokens and API keys need beyond the core
-- users table: refresh-token families, API keys, password-reset tokens, a
-- mail outbox, revoked access-token ids, and a per-user token version:
-- access tokens carry the version they were issued under, and raising it
-- (deactivation, role or password change) ends every older token at once.

ALTER TABLE users
    ADD COLUMN token_version integer NOT NULL DEFAULT 0 CHECK (token_version >= 0),
    -- When the version last moved: Redis is re-filled from the rows whose
    -- change is younger than an access token's lifetime.
    ADD COLUMN token_version_at timestamptz;
CREATE INDEX idx_users_token_version_at ON users (token_version_at)
    WHERE token_version_at IS NOT NULL;

-- Refresh tokens: only a SHA-256 of the 256-bit random value is stored. Each
-- use rotates the token inside its family; a rotated token presented again
-- means it was stolen, and the whole family is revoked.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz,
    user_agent  text CHECK (char_length(user_agent) <= 512)
);
CREATE INDEX idx_refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX idx_refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX idx_refresh_tokens_expires ON refresh_tokens (expires_at);

-- API keys for scripts and players: shown once, stored as SHA-256, scoped to
-- a subset of the owner's permissions.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    prefix       text NOT NULL CHECK (char_length(prefix) BETWEEN 4 AND 16),
    key_hash     bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    permissions  text[] NOT NULL CHECK (permissions <@ ARRAY[
                     'read:tracks', 'write:tracks', 'delete:tracks',
                     'read:playlists', 'write:playlists', 'delete:playlists',
                     'read:schedules', 'write:schedules', 'delete:schedules',
                     'read:system', 'write:system', 'admin:system']::text[]),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX idx_api_keys_user ON api_keys (user_id, created_at DESC);

-- Single-use password-reset tokens, valid for an hour, stored as SHA-256.
CREATE TABLE password_resets (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX idx_password_resets_user ON password_resets (user_id);

-- Mail waiting to be sent; the job runner delivers it by SMTP.
CREATE TABLE outbox (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind        text NOT NULL CHECK (kind IN ('password_reset', 'notice')),
    to_address  citext NOT NULL CHECK (char_length(to_address::text) <= 254),
    subject     text NOT NULL CHECK (char_length(subject) <= 200),
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    send_after  timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  text,
    sent_at     timestamptz
);
CREATE INDEX idx_outbox_pending ON outbox (send_after) WHERE sent_at IS NULL;

-- Access tokens ended by logout. Redis holds the deny-list the workers
-- read; this table is the durable copy, read when Redis is down and
-- copied back into Redis when it returns.
CREATE TABLE revoked_tokens (
    jti         text PRIMARY KEY CHECK (char_length(jti) BETWEEN 16 AND 64),
    user_id     uuid REFERENCES users(id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX idx_revoked_tokens_expires ON revoked_tokens (expires_at);
