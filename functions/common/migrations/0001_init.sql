-- Tenants, users, jobs, credit holds and the append-only credit ledger.
-- Money invariant: tenants.balance = SUM(ledger.amount) for the tenant, and balance >= 0.
-- Ledger amounts: grant +n, reserve -n (credits held for a job), release +n (hold returned),
-- capture 0 (the held credits are spent; the amount is recorded in holds.amount and ledger.meta).

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind        text NOT NULL DEFAULT 'individual' CHECK (kind IN ('individual', 'business', 'enterprise')),
    name        text NOT NULL,
    balance     bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    sub         text PRIMARY KEY,                       -- Cognito subject
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_tenant_idx ON users (tenant_id);

CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    mode            text NOT NULL CHECK (mode IN ('ghost', 'on-model')),
    options         jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL CHECK (status IN (
                        'awaiting_upload', 'queued', 'validated', 'processing',
                        'succeeded', 'failed', 'rejected')),
    filename        text NOT NULL,
    source_bucket   text NOT NULL,
    source_key      text NOT NULL UNIQUE,
    source_version  text,
    image           jsonb,
    cost            bigint CHECK (cost IS NULL OR cost > 0),
    execution_name  text,
    task_token      text,
    result_key      text,
    error_code      text,
    error_message   text,
    stages          jsonb NOT NULL DEFAULT '{}',        -- status -> first time it was reached
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_tenant_created_idx ON jobs (tenant_id, created_at DESC, id DESC);

CREATE TABLE holds (
    job_id      uuid PRIMARY KEY REFERENCES jobs (id),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    amount      bigint NOT NULL CHECK (amount > 0),
    status      text NOT NULL CHECK (status IN ('held', 'captured', 'released')),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    settled_at  timestamptz
);
CREATE INDEX holds_open_idx ON holds (expires_at) WHERE status = 'held';

CREATE TABLE ledger (
    id               bigserial PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    kind             text NOT NULL CHECK (kind IN (
                         'grant', 'reserve', 'capture', 'release', 'refund', 'dispute', 'expiry', 'adjustment')),
    amount           bigint NOT NULL,
    job_id           uuid REFERENCES jobs (id),
    idempotency_key  text NOT NULL UNIQUE,
    meta             jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_tenant_idx ON ledger (tenant_id, id DESC);

-- The ledger is append-only.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
