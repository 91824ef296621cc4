DROP TABLE author_monthly_stats;
