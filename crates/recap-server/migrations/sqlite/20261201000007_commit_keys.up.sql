-- Commits are found by a 64-bit key instead of the (repo_id, sha) text pair (SQLite only).
--
-- Why: SHAs are random, so every new commit lands on a random page of the index that finds it.
-- With (16-byte repo_id, 40-character sha) entries that index was four times the size of one of
-- integers: a batch of new commits dirtied, and its commit wrote to the WAL, several times as many
-- pages, and comparing keys cost more. It was the largest part of an ingest's time under SQLite's
-- single write lock (bench/ingest.sh).
--
-- `sha_key` is the SHA folded to 64 bits XOR the repository's secret random salt. The index on it
-- is not unique: a key only narrows the search, every lookup also compares the repository and the
-- full SHA, and the ingest writer looks a batch's keys up under the write lock before it inserts
-- (SQLite has one writer at a time), so two SHAs sharing a key are both stored. The salt keeps a
-- fork's commits (same SHAs, another repository) on other keys and makes keys unpredictable, so
-- nobody can pile up commits on the keys of another repository's commits to slow it down.

ALTER TABLE repositories ADD COLUMN commit_key_salt INTEGER NOT NULL DEFAULT 0;
UPDATE repositories SET commit_key_salt = random();
-- SQLite cannot add a column with a random default; new repositories get their salt here.
CREATE TRIGGER repositories_commit_key_salt AFTER INSERT ON repositories
BEGIN
    UPDATE repositories SET commit_key_salt = random() WHERE id = NEW.id;
END;

CREATE TABLE commits_keyed (
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
    sha_key         INTEGER NOT NULL
);

-- The key (see `sync::store::KeySalt`): the SHA folded to 64 bits, i.e. hex digits 1-16 XOR
-- 17-32 XOR 33-40 read as big-endian integers (the first two as signed 64-bit integers, built
-- without overflow), XOR the repository's salt. SQLite has no XOR operator: a ^ b = (a | b) - (a & b).
INSERT INTO commits_keyed
SELECT repo_id, sha, author_name, author_email, committer_name, committer_email, commit_date, message_title,
       message_body, additions, deletions, files_changed, is_merge, parent_count, ingested_at,
       (h | salt) - (h & salt)
FROM (
    SELECT *, (h12 | h3) - (h12 & h3) AS h
    FROM (
        SELECT *, (h1 | h2) - (h1 & h2) AS h12
        FROM (
            SELECT c.*, c.rowid AS commit_rowid, r.commit_key_salt AS salt,
               ((instr('0123456789abcdef', substr(sha, 1, 1)) - 1) - 16 * ((instr('0123456789abcdef', substr(sha, 1, 1)) - 1) >= 8)) * 1152921504606846976
               + (instr('0123456789abcdef', substr(sha, 2, 1)) - 1) * 72057594037927936
               + (instr('0123456789abcdef', substr(sha, 3, 1)) - 1) * 4503599627370496
               + (instr('0123456789abcdef', substr(sha, 4, 1)) - 1) * 281474976710656
               + (instr('0123456789abcdef', substr(sha, 5, 1)) - 1) * 17592186044416
               + (instr('0123456789abcdef', substr(sha, 6, 1)) - 1) * 1099511627776
               + (instr('0123456789abcdef', substr(sha, 7, 1)) - 1) * 68719476736
               + (instr('0123456789abcdef', substr(sha, 8, 1)) - 1) * 4294967296
               + (instr('0123456789abcdef', substr(sha, 9, 1)) - 1) * 268435456
               + (instr('0123456789abcdef', substr(sha, 10, 1)) - 1) * 16777216
               + (instr('0123456789abcdef', substr(sha, 11, 1)) - 1) * 1048576
               + (instr('0123456789abcdef', substr(sha, 12, 1)) - 1) * 65536
               + (instr('0123456789abcdef', substr(sha, 13, 1)) - 1) * 4096
               + (instr('0123456789abcdef', substr(sha, 14, 1)) - 1) * 256
               + (instr('0123456789abcdef', substr(sha, 15, 1)) - 1) * 16
               + (instr('0123456789abcdef', substr(sha, 16, 1)) - 1) AS h1,
               ((instr('0123456789abcdef', substr(sha, 17, 1)) - 1) - 16 * ((instr('0123456789abcdef', substr(sha, 17, 1)) - 1) >= 8)) * 1152921504606846976
               + (instr('0123456789abcdef', substr(sha, 18, 1)) - 1) * 72057594037927936
               + (instr('0123456789abcdef', substr(sha, 19, 1)) - 1) * 4503599627370496
               + (instr('0123456789abcdef', substr(sha, 20, 1)) - 1) * 281474976710656
               + (instr('0123456789abcdef', substr(sha, 21, 1)) - 1) * 17592186044416
               + (instr('0123456789abcdef', substr(sha, 22, 1)) - 1) * 1099511627776
               + (instr('0123456789abcdef', substr(sha, 23, 1)) - 1) * 68719476736
               + (instr('0123456789abcdef', substr(sha, 24, 1)) - 1) * 4294967296
               + (instr('0123456789abcdef', substr(sha, 25, 1)) - 1) * 268435456
               + (instr('0123456789abcdef', substr(sha, 26, 1)) - 1) * 16777216
               + (instr('0123456789abcdef', substr(sha, 27, 1)) - 1) * 1048576
               + (instr('0123456789abcdef', substr(sha, 28, 1)) - 1) * 65536
               + (instr('0123456789abcdef', substr(sha, 29, 1)) - 1) * 4096
               + (instr('0123456789abcdef', substr(sha, 30, 1)) - 1) * 256
               + (instr('0123456789abcdef', substr(sha, 31, 1)) - 1) * 16
               + (instr('0123456789abcdef', substr(sha, 32, 1)) - 1) AS h2,
               (instr('0123456789abcdef', substr(sha, 33, 1)) - 1) * 268435456
               + (instr('0123456789abcdef', substr(sha, 34, 1)) - 1) * 16777216
               + (instr('0123456789abcdef', substr(sha, 35, 1)) - 1) * 1048576
               + (instr('0123456789abcdef', substr(sha, 36, 1)) - 1) * 65536
               + (instr('0123456789abcdef', substr(sha, 37, 1)) - 1) * 4096
               + (instr('0123456789abcdef', substr(sha, 38, 1)) - 1) * 256
               + (instr('0123456789abcdef', substr(sha, 39, 1)) - 1) * 16
               + (instr('0123456789abcdef', substr(sha, 40, 1)) - 1) AS h3
            FROM commits c JOIN repositories r ON r.id = c.repo_id
        )
    )
)
ORDER BY commit_rowid;

DROP TABLE commits;
ALTER TABLE commits_keyed RENAME TO commits;
CREATE INDEX commits_key ON commits (sha_key);
CREATE INDEX commits_repo_date ON commits (repo_id, commit_date);
CREATE INDEX commits_repo_author ON commits (repo_id, author_email);
