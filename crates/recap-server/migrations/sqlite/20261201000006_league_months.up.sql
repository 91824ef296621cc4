-- Monthly totals per author, kept with the daily rows: a long date range reads its whole months
-- here (one row per author and month) and only the days at its ends from the daily rows.
-- `month` is the first day of the month; `active_days` counts the author's daily rows in it.
CREATE TABLE author_monthly_stats (
    project_id   BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    month        TEXT NOT NULL,
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
    PRIMARY KEY (project_id, month, author_email)
) WITHOUT ROWID;

INSERT INTO author_monthly_stats
SELECT project_id, substr(day, 1, 8) || '01', author_email, MAX(author_name), SUM(commits), SUM(additions),
       SUM(deletions), SUM(pts), SUM(reb), SUM(ast), SUM(blk), SUM(tov), SUM(impact), COUNT(*)
FROM author_daily_stats
GROUP BY project_id, substr(day, 1, 8) || '01', author_email;
