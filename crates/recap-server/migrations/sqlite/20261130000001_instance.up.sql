-- The identity of this deployment's database: one row, created on first start.
CREATE TABLE recap_instance (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    instance_id TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
