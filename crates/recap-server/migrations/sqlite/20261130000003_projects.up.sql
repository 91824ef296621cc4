-- Projects, their members, repositories and ingested commits.

CREATE TABLE projects (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    description TEXT,
    created_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT
);

CREATE TABLE project_members (
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'maintainer', 'viewer')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id);

CREATE TABLE repositories (
    id                    BLOB PRIMARY KEY,
    project_id            BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    remote_url            TEXT,
    remote_type           TEXT CHECK (remote_type IN ('local', 'ssh', 'https')),
    branch                TEXT NOT NULL,
    sync_frequency        TEXT,
    sync_method           TEXT NOT NULL CHECK (sync_method IN ('push_client', 'pull')),
    status                TEXT NOT NULL CHECK (status IN ('pending', 'syncing', 'healthy', 'error')),
    last_sync_at          TEXT,
    last_ingested_sha     TEXT,
    error_message         TEXT,
    -- AES-256-GCM sealed JSON; never returned by the API.
    credentials_encrypted TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT,
    UNIQUE (project_id, name)
);

CREATE TABLE commits (
    repo_id         BLOB NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    sha             TEXT NOT NULL,
    author_name     TEXT NOT NULL,
    author_email    TEXT NOT NULL,
    committer_name  TEXT NOT NULL,
    committer_email TEXT NOT NULL,
    commit_date     TEXT NOT NULL,
    message_title   TEXT NOT NULL,
    message_body    TEXT,
    additions       INTEGER NOT NULL,
    deletions       INTEGER NOT NULL,
    files_changed   INTEGER NOT NULL,
    is_merge        BOOLEAN NOT NULL,
    parent_count    INTEGER NOT NULL,
    ingested_at     TEXT NOT NULL,
    UNIQUE (repo_id, sha)
);
CREATE INDEX commits_repo_date ON commits (repo_id, commit_date);
CREATE INDEX commits_repo_author ON commits (repo_id, author_email);
