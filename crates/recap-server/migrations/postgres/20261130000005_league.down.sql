DROP TABLE author_totals;
DROP TABLE author_daily_stats;
DROP TABLE identity_emails;
DROP TABLE identities;
DROP TABLE scoring_configs;
