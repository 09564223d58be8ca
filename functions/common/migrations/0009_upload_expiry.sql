-- Jobs that never get their upload: the sweeper ends them, the customer can ask for a fresh upload URL.
--
-- upload_requested_at is when the job's newest pre-signed POST was issued (at creation, then at each
-- POST /v1/jobs/{id}/upload); a job still awaiting_upload that long after it (UPLOAD_WAIT_SECONDS, default 24 h,
-- always well past the URL's own expiry) ends cancelled with error_code upload_expired. Rows from before this
-- migration have NULL and count from created_at. upload_content_type is the content type the pre-signed POST
-- requires, so a fresh URL has the same constraints (NULL for older jobs and batch files).

ALTER TABLE jobs
    ADD COLUMN upload_requested_at timestamptz,
    ADD COLUMN upload_content_type text CHECK (upload_content_type IS NULL OR length(upload_content_type) <= 100);
ALTER TABLE jobs ALTER COLUMN upload_requested_at SET DEFAULT now();

CREATE INDEX jobs_awaiting_upload_idx ON jobs ((coalesce(upload_requested_at, created_at)))
    WHERE status = 'awaiting_upload' AND deleted_at IS NULL;

-- Jobs still waiting for their upload p_seconds after their newest upload URL was issued, across tenants, for
-- the sweeper (which ends each one in its own tenant's transaction, checking the same condition under the row
-- lock). Deleted jobs are left alone: they are out of every list, and an upload for them is ignored already.
CREATE FUNCTION app_expired_uploads(p_seconds integer, p_limit integer)
    RETURNS TABLE (job_id uuid, tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT id, tenant_id FROM jobs
          WHERE status = 'awaiting_upload' AND deleted_at IS NULL
            AND coalesce(upload_requested_at, created_at) < now() - make_interval(secs => p_seconds)
          ORDER BY coalesce(upload_requested_at, created_at) LIMIT p_limit $$;
ALTER FUNCTION app_expired_uploads(integer, integer) OWNER TO modamoda_system;
REVOKE ALL ON FUNCTION app_expired_uploads(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_expired_uploads(integer, integer) TO modamoda_app;
