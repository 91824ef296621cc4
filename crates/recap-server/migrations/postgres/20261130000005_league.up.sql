-- Leaderboards: scoring coefficients per project, identities that merge a person's e-mails,
-- and per-author daily totals maintained at ingestion (so boards never scan the commits).

CREATE TABLE scoring_configs (
    project_id   UUID PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    coefficients JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ
);

CREATE TABLE identities (
    id           UUID PRIMARY KEY,
    project_id   UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX identities_project ON identities (project_id);

CREATE TABLE identity_emails (
    project_id  UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    identity_id UUID NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, email)
);
CREATE INDEX identity_emails_identity ON identity_emails (identity_id);

CREATE TABLE author_daily_stats (
    project_id   UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    author_email TEXT NOT NULL,
    day          DATE NOT NULL,
    author_name  TEXT NOT NULL,
    commits      BIGINT NOT NULL,
    additions    BIGINT NOT NULL,
    deletions    BIGINT NOT NULL,
    pts          BIGINT NOT NULL,
    reb          BIGINT NOT NULL,
    ast          BIGINT NOT NULL,
    blk          BIGINT NOT NULL,
    tov          BIGINT NOT NULL,
    impact       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (project_id, day, author_email)
);
CREATE INDEX author_daily_stats_author ON author_daily_stats (project_id, author_email, day);

-- All-time totals per author, kept with the daily rows: all-time boards read one row per author.
CREATE TABLE author_totals (
    project_id   UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    author_email TEXT NOT NULL,
    author_name  TEXT NOT NULL,
    commits      BIGINT NOT NULL,
    additions    BIGINT NOT NULL,
    deletions    BIGINT NOT NULL,
    pts          BIGINT NOT NULL,
    reb          BIGINT NOT NULL,
    ast          BIGINT NOT NULL,
    blk          BIGINT NOT NULL,
    tov          BIGINT NOT NULL,
    impact       DOUBLE PRECISION NOT NULL,
    active_days  BIGINT NOT NULL,
    PRIMARY KEY (project_id, author_email)
);
