-- Tenant isolation by PostgreSQL row-level security.
--
-- The application connects as modamoda_app, which owns nothing and cannot bypass RLS. Each transaction names its
-- tenant with set_config('app.tenant_id', <uuid>, true) (transaction-local, never a session SET); without it,
-- every tenant table looks empty. FORCE applies the policies to the tables' owner too.
-- A few cross-tenant lookups the system needs (which tenant owns this job / this Cognito user, which holds have
-- expired) are SECURITY DEFINER functions owned by modamoda_system, a NOLOGIN role that may only SELECT.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'modamoda_app') THEN
        CREATE ROLE modamoda_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'modamoda_system') THEN
        CREATE ROLE modamoda_system NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END
$$;

-- The migrator must be able to hand functions to modamoda_system (on RDS the master user is not a superuser).
DO $$
BEGIN
    EXECUTE format('GRANT modamoda_system TO %I', current_user);
EXCEPTION WHEN duplicate_object OR invalid_grant_operation THEN
    NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO modamoda_app, modamoda_system;
GRANT SELECT, INSERT, UPDATE ON tenants, users, jobs, holds TO modamoda_app;
GRANT SELECT, INSERT ON ledger TO modamoda_app;
GRANT USAGE ON SEQUENCE ledger_id_seq TO modamoda_app;
GRANT SELECT ON tenants, users, jobs, holds TO modamoda_system;

CREATE FUNCTION app_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants TO modamoda_app
    USING (id = app_tenant()) WITH CHECK (id = app_tenant());
CREATE POLICY system_read ON tenants FOR SELECT TO modamoda_system USING (true);

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users TO modamoda_app
    USING (tenant_id = app_tenant()) WITH CHECK (tenant_id = app_tenant());
CREATE POLICY system_read ON users FOR SELECT TO modamoda_system USING (true);

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs TO modamoda_app
    USING (tenant_id = app_tenant()) WITH CHECK (tenant_id = app_tenant());
CREATE POLICY system_read ON jobs FOR SELECT TO modamoda_system USING (true);

ALTER TABLE holds ENABLE ROW LEVEL SECURITY;
ALTER TABLE holds FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON holds TO modamoda_app
    USING (tenant_id = app_tenant()) WITH CHECK (tenant_id = app_tenant());
CREATE POLICY system_read ON holds FOR SELECT TO modamoda_system USING (true);

ALTER TABLE ledger ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ledger TO modamoda_app
    USING (tenant_id = app_tenant()) WITH CHECK (tenant_id = app_tenant());

-- Cross-tenant lookups for the system (each returns only what its caller needs to pick the tenant).
CREATE FUNCTION app_user_identity(p_sub text)
    RETURNS TABLE (tenant_id uuid, kind text, email text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT u.tenant_id, t.kind, u.email FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.sub = p_sub $$;

CREATE FUNCTION app_job_tenant(p_job_id uuid)
    RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT tenant_id FROM jobs WHERE id = p_job_id $$;

CREATE FUNCTION app_expired_holds(p_limit integer)
    RETURNS TABLE (job_id uuid, tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT job_id, tenant_id FROM holds WHERE status = 'held' AND expires_at < now()
          ORDER BY expires_at LIMIT p_limit $$;

ALTER FUNCTION app_user_identity(text) OWNER TO modamoda_system;
ALTER FUNCTION app_job_tenant(uuid) OWNER TO modamoda_system;
ALTER FUNCTION app_expired_holds(integer) OWNER TO modamoda_system;
REVOKE ALL ON FUNCTION app_user_identity(text), app_job_tenant(uuid), app_expired_holds(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_user_identity(text), app_job_tenant(uuid), app_expired_holds(integer) TO modamoda_app;
