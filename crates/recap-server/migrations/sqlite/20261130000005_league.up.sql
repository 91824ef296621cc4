-- Leaderboards: scoring coefficients per project, identities that merge a person's e-mails,
-- and per-author daily totals maintained at ingestion (so boards never scan the commits).

CREATE TABLE scoring_configs (
    project_id   BLOB PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    coefficients TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT
);

CREATE TABLE identities (
    id           BLOB PRIMARY KEY,
    project_id   BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX identities_project ON identities (project_id);

CREATE TABLE identity_emails (
    project_id  BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    identity_id BLOB NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, email)
);
CREATE INDEX identity_emails_identity ON identity_emails (identity_id);

CREATE TABLE author_daily_stats (
    project_id   BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    author_email TEXT NOT NULL,
    day          TEXT NOT NULL,
    author_name  TEXT NOT NULL,
    commits      INTEGER NOT NULL,
    additions    INTEGER NOT NULL,
    deletions    INTEGER NOT NULL,
    pts          INTEGER NOT NULL,
    reb          INTEGER NOT NULL,
    ast          INTEGER NOT NULL,
    blk          INTEGER NOT NULL,
    tov          INTEGER NOT NULL,
    impact       REAL NOT NULL,
    PRIMARY KEY (project_id, day, author_email)
) WITHOUT ROWID;
CREATE INDEX author_daily_stats_author ON author_daily_stats (project_id, author_email, day);

-- All-time totals per author, kept with the daily rows: all-time boards read one row per author.
CREATE TABLE author_totals (
    project_id   BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    author_email TEXT NOT NULL,
    author_name  TEXT NOT NULL,
    commits      INTEGER NOT NULL,
    additions    INTEGER NOT NULL,
    deletions    INTEGER NOT NULL,
    pts          INTEGER NOT NULL,
    reb          INTEGER NOT NULL,
    ast          INTEGER NOT NULL,
    blk          INTEGER NOT NULL,
    tov          INTEGER NOT NULL,
    impact       REAL NOT NULL,
    active_days  INTEGER NOT NULL,
    PRIMARY KEY (project_id, author_email)
) WITHOUT ROWID;
