-- HTTP API v1: job priority and soft deletion, history filters, the tenant's webhook, API keys.
--
-- API keys are Cognito users of the tenant (username apikey-<id>@api-keys.modamoda.invalid) with a random
-- password; api_keys records them and users maps their Cognito subject to the tenant like any person's.
-- A revoked key is rejected at identity time (app_user_identity returns revoked), even while one of its access
-- tokens is unexpired. The ledger is untouched (still append-only).

ALTER TABLE jobs
    ADD COLUMN priority   text NOT NULL DEFAULT 'normal' CHECK (priority IN ('normal', 'low')),
    ADD COLUMN deleted_at timestamptz;

-- History: newest first within the tenant, deleted jobs never listed; status/mode filters keep the keyset order.
CREATE INDEX jobs_tenant_live_created_idx ON jobs (tenant_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX jobs_tenant_status_created_idx ON jobs (tenant_id, status, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX jobs_tenant_mode_created_idx ON jobs (tenant_id, mode, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

ALTER TABLE tenants
    ADD COLUMN webhook_url        text CHECK (webhook_url IS NULL OR length(webhook_url) <= 2000),
    ADD COLUMN webhook_secret     text,
    ADD COLUMN webhook_updated_at timestamptz,
    ADD CONSTRAINT tenants_webhook_complete CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL));

CREATE TABLE api_keys (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix            text NOT NULL,
    cognito_username  text NOT NULL UNIQUE,
    sub               text NOT NULL UNIQUE REFERENCES users (sub),
    created_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz
);
CREATE INDEX api_keys_tenant_created_idx ON api_keys (tenant_id, created_at DESC, id DESC);

GRANT SELECT, INSERT, UPDATE ON api_keys TO modamoda_app;
GRANT SELECT ON api_keys TO modamoda_system;

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys TO modamoda_app
    USING (tenant_id = app_tenant()) WITH CHECK (tenant_id = app_tenant());
CREATE POLICY system_read ON api_keys FOR SELECT TO modamoda_system USING (true);

-- The caller's tenant, and whether the caller is an API key (and a revoked one).
DROP FUNCTION app_user_identity(text);
CREATE FUNCTION app_user_identity(p_sub text)
    RETURNS TABLE (tenant_id uuid, kind text, email text, api_key_id uuid, revoked boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT u.tenant_id, t.kind, u.email, k.id, k.revoked_at IS NOT NULL
          FROM users u
          JOIN tenants t ON t.id = u.tenant_id
          LEFT JOIN api_keys k ON k.sub = u.sub
          WHERE u.sub = p_sub $$;
ALTER FUNCTION app_user_identity(text) OWNER TO modamoda_system;
REVOKE ALL ON FUNCTION app_user_identity(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_user_identity(text) TO modamoda_app;
