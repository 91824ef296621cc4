-- Background jobs (the outbox), outgoing webhooks and their delivery log.

CREATE TABLE jobs (
    id           UUID PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      JSONB NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       TIMESTAMPTZ NOT NULL,
    locked_by    TEXT,
    locked_until TIMESTAMPTZ,
    last_error   TEXT,
    -- Unique across the table (NULLs apart); see the jobs module on Forever / WhileUnfinished keys.
    unique_key   TEXT UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ
);
-- Claims look at due pending jobs; the reaper at running ones with a lapsed lease.
CREATE INDEX jobs_due ON jobs (run_at, id) WHERE state = 'pending';
CREATE INDEX jobs_lease ON jobs (locked_until) WHERE state = 'running';
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_kind ON jobs (kind, state);

CREATE TABLE webhooks (
    id              UUID PRIMARY KEY,
    owner_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            TEXT,
    url             TEXT NOT NULL,
    events          JSONB NOT NULL,
    description     TEXT,
    -- AES-256-GCM sealed; never returned except to the owner.
    secret          TEXT NOT NULL,
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    failing_since   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, is_active);

-- One row per delivery attempt; the attempts of one delivery share delivery_id (the webhook-id header).
CREATE TABLE webhook_deliveries (
    id            UUID PRIMARY KEY,
    webhook_id    UUID NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    delivery_id   UUID NOT NULL,
    event         TEXT NOT NULL,
    payload       TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    status_code   INTEGER,
    success       BOOLEAN NOT NULL,
    duration_ms   BIGINT NOT NULL,
    response_body TEXT,
    error         TEXT,
    next_retry_at TIMESTAMPTZ,
    delivered_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_delivery ON webhook_deliveries (delivery_id, attempt);
CREATE INDEX webhook_deliveries_time ON webhook_deliveries (created_at);
