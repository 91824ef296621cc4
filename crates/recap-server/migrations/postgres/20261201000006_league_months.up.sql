-- Monthly totals per author, kept with the daily rows: a long date range reads its whole months
-- here (one row per author and month) and only the days at its ends from the daily rows.
-- `month` is the first day of the month; `active_days` counts the author's daily rows in it.
CREATE TABLE author_monthly_stats (
    project_id   UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    month        DATE NOT NULL,
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
    PRIMARY KEY (project_id, month, author_email)
);

INSERT INTO author_monthly_stats
SELECT project_id, date_trunc('month', day)::date, author_email, MAX(author_name), SUM(commits), SUM(additions),
       SUM(deletions), SUM(pts), SUM(reb), SUM(ast), SUM(blk), SUM(tov), SUM(impact), COUNT(*)
FROM author_daily_stats
GROUP BY project_id, date_trunc('month', day)::date, author_email;
