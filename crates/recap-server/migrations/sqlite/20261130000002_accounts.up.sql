-- Identity and access: users, sessions with rotating refresh tokens, API keys, magic links,
-- OAuth, the audit log, and items (the first owner-scoped resource).
-- Ids are UUIDs (16-byte blobs on SQLite); timestamps are UTC.

CREATE TABLE users (
    id                 BLOB PRIMARY KEY,
    email              TEXT UNIQUE,
    password_hash      TEXT,
    full_name          TEXT,
    role               TEXT NOT NULL CHECK (role IN ('admin', 'member', 'guest')),
    status             TEXT NOT NULL CHECK (status IN ('approved', 'pending', 'retired')),
    is_active          BOOLEAN NOT NULL DEFAULT TRUE,
    is_superuser       BOOLEAN NOT NULL DEFAULT FALSE,
    remaining_imports  INTEGER,
    remaining_messages INTEGER,
    created_at         TEXT NOT NULL,
    updated_at         TEXT
);

CREATE TABLE sessions (
    id           BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_name  TEXT NOT NULL,
    device_type  TEXT NOT NULL,
    ip_address   TEXT,
    user_agent   TEXT,
    is_active    BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);

-- Every refresh token ever issued for a session, by hash. A spent one presented again means the
-- token was stolen: the whole session is revoked.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    spent_at   TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    last_used_at TEXT,
    last_used_ip TEXT,
    usage_count  INTEGER NOT NULL DEFAULT 0,
    expires_at   TEXT,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE magic_links (
    token_hash TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX magic_links_expiry ON magic_links (expires_at);

CREATE TABLE oauth_states (
    state         TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);

CREATE TABLE oauth_accounts (
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (provider, subject)
);

CREATE TABLE audit_log (
    id            BLOB PRIMARY KEY,
    actor_id      BLOB REFERENCES users (id) ON DELETE SET NULL,
    action        TEXT NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    details       TEXT,
    ip_address    TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (created_at);
CREATE INDEX audit_log_actor ON audit_log (actor_id, created_at);
CREATE INDEX audit_log_action ON audit_log (action, created_at);

CREATE TABLE items (
    id          BLOB PRIMARY KEY,
    owner_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT,
    is_active   BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TEXT NOT NULL,
    updated_at  TEXT
);
CREATE INDEX items_owner ON items (owner_id, created_at);
