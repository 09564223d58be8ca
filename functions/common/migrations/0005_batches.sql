-- Batches (bulk): a tenant's drop folder drop/{tenant}/{folder}/ with defaults, an optional manifest, progress
-- and a report. One job per (batch, file name), whatever the number of S3 events or object versions.
--
-- A batch created by the API has folder = its id; a file written straight into drop/{tenant}/{name}/ for an
-- unknown folder creates the batch implicitly (folder = name = that folder name). Status:
--   open → sealed (a manifest names the files, or POST .../seal lists the folder) → completed;
--   stopped (a reservation failed for lack of credits) and cancelled (POST .../cancel) end the same way;
-- finished_at is set once, in the transaction that finds every expected file with a final job; that transaction
-- fixes the report (report jsonb), and the report objects are written from it (report_written_at).
-- Jobs gain 'cancelled' (a cancelled batch's jobs that had not started processing; nothing is charged).

CREATE TABLE batches (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    folder             text NOT NULL CHECK (length(folder) BETWEEN 1 AND 200 AND position('/' IN folder) = 0),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status             text NOT NULL DEFAULT 'open'
                           CHECK (status IN ('open', 'sealed', 'completed', 'stopped', 'cancelled')),
    defaults           jsonb NOT NULL DEFAULT '{}',       -- {mode, options, priority}
    created_by         text,                              -- Cognito subject of the creator (NULL: implicit)
    sealed_at          timestamptz,
    expected_files     text[],                            -- the complete set of files, once sealed
    manifest           jsonb,                             -- {key, version, defaults, files: {name: spec|error}}
    manifest_error     text,                              -- the manifest as a whole is invalid
    stop_reason        text,
    report             jsonb,                             -- fixed when the batch finishes
    report_written_at  timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    UNIQUE (tenant_id, folder),
    CONSTRAINT batches_finished_has_report CHECK (finished_at IS NULL OR report IS NOT NULL)
);
CREATE INDEX batches_tenant_created_idx ON batches (tenant_id, created_at DESC, id DESC);
CREATE INDEX batches_unwritten_report_idx ON batches (finished_at)
    WHERE finished_at IS NOT NULL AND report_written_at IS NULL;

ALTER TABLE jobs
    ADD COLUMN batch_id     uuid REFERENCES batches (id),
    ADD COLUMN sku          text CHECK (sku IS NULL OR length(sku) <= 100),
    ADD COLUMN result_name  text,                          -- unique name stem of the result within the batch
    ADD COLUMN metrics      jsonb,                         -- per-result numbers for the consistency check
    ADD CONSTRAINT jobs_batch_file_unique UNIQUE (batch_id, filename),
    ADD CONSTRAINT jobs_batch_result_name_unique UNIQUE (batch_id, result_name);
CREATE INDEX jobs_batch_status_idx ON jobs (batch_id, status) WHERE batch_id IS NOT NULL;
CREATE INDEX jobs_batch_created_idx ON jobs (batch_id, created_at DESC, id DESC)
    WHERE batch_id IS NOT NULL AND deleted_at IS NULL;

ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN (
    'awaiting_upload', 'queued', 'validated', 'processing', 'succeeded', 'failed', 'rejected', 'cancelled'));

GRANT SELECT, INSERT, UPDATE ON batches TO modamoda_app;
GRANT SELECT ON batches TO modamoda_system;

ALTER TABLE batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE batches FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON batches TO modamoda_app
    USING (tenant_id = app_tenant()) WITH CHECK (tenant_id = app_tenant());
CREATE POLICY system_read ON batches FOR SELECT TO modamoda_system USING (true);

-- Finished batches whose report objects are not written yet (a writer crashed after the commit), across
-- tenants, for the sweeper.
CREATE FUNCTION app_unwritten_batch_reports(p_limit integer)
    RETURNS TABLE (batch_id uuid, tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT id, tenant_id FROM batches WHERE finished_at IS NOT NULL AND report_written_at IS NULL
          ORDER BY finished_at LIMIT p_limit $$;
ALTER FUNCTION app_unwritten_batch_reports(integer) OWNER TO modamoda_system;
REVOKE ALL ON FUNCTION app_unwritten_batch_reports(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_unwritten_batch_reports(integer) TO modamoda_app;
