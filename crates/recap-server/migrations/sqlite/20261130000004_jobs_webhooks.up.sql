-- Background jobs (the outbox), outgoing webhooks and their delivery log.
-- Timestamps of these tables are written in one fixed-width UTC form
-- (YYYY-MM-DDTHH:MM:SS.ffffffZ), so SQL may compare them as text (run_at <= now, leases).

CREATE TABLE jobs (
    id           BLOB PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       TEXT NOT NULL,
    locked_by    TEXT,
    locked_until TEXT,
    last_error   TEXT,
    -- Unique across the table (NULLs apart); see the jobs module on Forever / WhileUnfinished keys.
    unique_key   TEXT UNIQUE,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX jobs_due ON jobs (state, run_at);
CREATE INDEX jobs_lease ON jobs (state, locked_until);
CREATE INDEX jobs_kind ON jobs (kind, state);

CREATE TABLE webhooks (
    id              BLOB PRIMARY KEY,
    owner_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            TEXT,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    description     TEXT,
    -- AES-256-GCM sealed; never returned except to the owner.
    secret          TEXT NOT NULL,
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    failing_since   TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, is_active);

-- One row per delivery attempt; the attempts of one delivery share delivery_id (the webhook-id header).
CREATE TABLE webhook_deliveries (
    id            BLOB PRIMARY KEY,
    webhook_id    BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    delivery_id   BLOB NOT NULL,
    event         TEXT NOT NULL,
    payload       TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    status_code   INTEGER,
    success       BOOLEAN NOT NULL,
    duration_ms   INTEGER NOT NULL,
    response_body TEXT,
    error         TEXT,
    next_retry_at TEXT,
    delivered_at  TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_delivery ON webhook_deliveries (delivery_id, attempt);
CREATE INDEX webhook_deliveries_time ON webhook_deliveries (created_at);
