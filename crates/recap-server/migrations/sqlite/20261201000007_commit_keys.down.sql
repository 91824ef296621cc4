-- Back to commits found by (repo_id, sha).
CREATE TABLE commits_by_sha (
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
INSERT INTO commits_by_sha
SELECT repo_id, sha, author_name, author_email, committer_name, committer_email, commit_date, message_title,
       message_body, additions, deletions, files_changed, is_merge, parent_count, ingested_at
FROM commits ORDER BY rowid;
DROP TABLE commits;
ALTER TABLE commits_by_sha RENAME TO commits;
CREATE INDEX commits_repo_date ON commits (repo_id, commit_date);
CREATE INDEX commits_repo_author ON commits (repo_id, author_email);

DROP TRIGGER repositories_commit_key_salt;
ALTER TABLE repositories DROP COLUMN commit_key_salt;
