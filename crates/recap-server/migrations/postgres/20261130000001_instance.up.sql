-- The identity of this deployment's database: one row, created on first start.
CREATE TABLE recap_instance (
    id          SMALLINT PRIMARY KEY CHECK (id = 1),
    instance_id UUID NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
