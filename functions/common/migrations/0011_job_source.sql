-- Re-render and retry (POST /v1/jobs/{id}/rerender, /retry): a new job made from the stored photo of an earlier
-- job of the same tenant, copied server-side to the new job's own upload key (no upload by the customer). The new
-- job records which job it came from; NULL for every other job.

ALTER TABLE jobs ADD COLUMN source_job_id uuid REFERENCES jobs (id) ON DELETE SET NULL;
CREATE INDEX jobs_source_job_idx ON jobs (source_job_id) WHERE source_job_id IS NOT NULL;
