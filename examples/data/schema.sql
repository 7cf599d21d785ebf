-- The analytics tables the example outcome (outcome.example.yaml) reads, as a
-- team's flag system and checkout would log them. `pnpm example:data setup`
-- creates them; docs/connectors.md describes them.

-- One row per unit exposed to an arm, logged by the flag system. The unit here
-- is a checkout session.
CREATE TABLE IF NOT EXISTS exposures (
  unit_id        text        NOT NULL,
  experiment_key text        NOT NULL,
  arm            text        NOT NULL,
  exposed_at     timestamptz NOT NULL,
  PRIMARY KEY (experiment_key, unit_id)
);
CREATE INDEX IF NOT EXISTS exposures_experiment_time ON exposures (experiment_key, exposed_at);

-- One row per checkout session: paid or abandoned.
CREATE TABLE IF NOT EXISTS checkout_sessions (
  session_id text        PRIMARY KEY,
  created_at timestamptz NOT NULL,
  paid       boolean     NOT NULL,
  amount     numeric     NOT NULL  -- 0 when nothing was paid
);
CREATE INDEX IF NOT EXISTS checkout_sessions_created ON checkout_sessions (created_at);

-- One row per payment attempt of a session that reached the payment step.
CREATE TABLE IF NOT EXISTS payment_attempts (
  attempt_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  session_id text        NOT NULL REFERENCES checkout_sessions (session_id),
  status     text        NOT NULL CHECK (status IN ('ok', 'error', 'declined')),
  created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS payment_attempts_session ON payment_attempts (session_id);
