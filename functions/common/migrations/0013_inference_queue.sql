-- The GPU queue (functions/common/scheduler.py): diffusion jobs wait here, on their own job rows, until a
-- dispatcher hands them to the SageMaker asynchronous endpoint, keeping the endpoint's own backlog short.
--
-- lane: which queue a job waits in, fixed when the job is created: 'interactive' (a single job: POST /v1/jobs,
-- re-render, retry), 'normal' (a file of a batch made with POST /v1/batches), 'bulk' (a file written straight into
-- a drop folder, and any job with priority 'low'). NULL for jobs created before this migration (the scheduler
-- derives it from their priority and batch).
-- queue_state: NULL (never queued: the CPU path, or older jobs) → 'queued' (waiting; status 'validated') →
-- 'dispatching' (claimed by a dispatcher, status 'processing'; the InvokeEndpointAsync call is being made) →
-- 'dispatched' (at the endpoint) → 'done' (the execution was resumed, or the job ended otherwise and its execution
-- was told). A failed InvokeEndpointAsync puts a job back to 'queued' (dispatch_after: its backoff).
-- Deadlines: queue_deadline (the queue-wait bound: a job still queued then fails queue_timeout) and
-- inference_deadline (dispatched_at + inference_wait_seconds: a job without a result then fails
-- inference_timeout). The task token stays in jobs.task_token, as before.
--
-- The dispatcher works across tenants through the SECURITY DEFINER lookups below (read-only, owned by
-- modamoda_system, like the other cross-tenant lookups); every write is made in the job's own tenant's
-- transaction context (row-level security applies), under one advisory lock that serialises the dispatchers.

ALTER TABLE jobs
    ADD COLUMN lane                   text CHECK (lane IS NULL OR lane IN ('interactive', 'normal', 'bulk')),
    ADD COLUMN queue_state            text
        CHECK (queue_state IS NULL OR queue_state IN ('queued', 'dispatching', 'dispatched', 'done')),
    ADD COLUMN enqueued_at            timestamptz,
    ADD COLUMN queue_deadline         timestamptz,
    ADD COLUMN dispatch_after         timestamptz,
    ADD COLUMN dispatch_attempts      integer NOT NULL DEFAULT 0 CHECK (dispatch_attempts >= 0),
    ADD COLUMN dispatched_at          timestamptz,
    ADD COLUMN inference_wait_seconds integer CHECK (inference_wait_seconds IS NULL OR inference_wait_seconds > 0),
    ADD COLUMN inference_deadline     timestamptz,
    ADD COLUMN dispatch_error         text CHECK (dispatch_error IS NULL OR length(dispatch_error) <= 1000),
    ADD CONSTRAINT jobs_queue_complete CHECK (
        queue_state IS NULL
        OR (lane IS NOT NULL AND enqueued_at IS NOT NULL AND queue_deadline IS NOT NULL
            AND dispatch_after IS NOT NULL AND inference_wait_seconds IS NOT NULL)),
    ADD CONSTRAINT jobs_dispatch_complete CHECK (
        queue_state NOT IN ('dispatching', 'dispatched')
        OR (dispatched_at IS NOT NULL AND inference_deadline IS NOT NULL));

-- The heads of each (lane, tenant) queue, in arrival order.
CREATE INDEX jobs_inference_queue_idx ON jobs (lane, tenant_id, enqueued_at, id) WHERE queue_state = 'queued';
CREATE INDEX jobs_inference_queue_deadline_idx ON jobs (queue_deadline) WHERE queue_state = 'queued';
-- What is at the endpoint, and when each must have answered.
CREATE INDEX jobs_inference_in_flight_idx ON jobs (inference_deadline)
    WHERE queue_state IN ('dispatching', 'dispatched');
-- Round-robin: each tenant's last dispatch in a lane.
CREATE INDEX jobs_lane_dispatched_idx ON jobs (tenant_id, lane, dispatched_at DESC) WHERE dispatched_at IS NOT NULL;

-- Jobs at the endpoint now (claimed or dispatched, no result yet), across tenants.
CREATE FUNCTION app_inference_in_flight()
    RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT count(*)::integer FROM jobs
          WHERE queue_state IN ('dispatching', 'dispatched') AND status = 'processing' $$;

-- The next job to hand to the endpoint (none: nothing is due), skipping p_skip (jobs a dispatcher could not
-- lock). Fair: the lane first (interactive, normal, bulk), then the tenant whose last dispatch in that lane is
-- oldest (a tenant never served in it first), then arrival; each tenant's own jobs in arrival order (only the head
-- of each (lane, tenant) queue is a candidate). Not fair (fifo): the oldest queued job.
CREATE FUNCTION app_inference_next(p_fair boolean, p_skip uuid[])
    RETURNS TABLE (job_id uuid, tenant_id uuid, lane text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT h.id, h.tenant_id, h.lane
          FROM (SELECT DISTINCT ON (j.lane, j.tenant_id) j.id, j.tenant_id, j.lane, j.enqueued_at
                FROM jobs j
                WHERE j.queue_state = 'queued' AND j.status = 'validated' AND j.deleted_at IS NULL
                  AND j.dispatch_after <= now() AND j.id <> ALL (p_skip)
                ORDER BY j.lane, j.tenant_id, j.enqueued_at, j.id) h
          ORDER BY
              CASE WHEN p_fair THEN array_position(ARRAY['interactive', 'normal', 'bulk'], h.lane) ELSE 0 END,
              CASE WHEN p_fair THEN (SELECT max(d.dispatched_at) FROM jobs d
                                     WHERE d.tenant_id = h.tenant_id AND d.lane = h.lane
                                       AND d.dispatched_at IS NOT NULL) END ASC NULLS FIRST,
              h.enqueued_at, h.id
          LIMIT 1 $$;

-- Queue entries the dispatcher (and the sweeper) must end: still queued past their queue-wait bound
-- ('queue_timeout'), at the endpoint past their inference deadline ('inference_timeout'), or queued while their
-- job ended otherwise, e.g. cancelled with its batch ('ended': the waiting execution is told).
CREATE FUNCTION app_inference_overdue(p_limit integer)
    RETURNS TABLE (job_id uuid, tenant_id uuid, reason text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ (SELECT id, tenant_id, 'queue_timeout' FROM jobs
           WHERE queue_state = 'queued' AND status = 'validated' AND queue_deadline < now()
           ORDER BY queue_deadline LIMIT p_limit)
          UNION ALL
          (SELECT id, tenant_id, 'inference_timeout' FROM jobs
           WHERE queue_state IN ('dispatching', 'dispatched') AND inference_deadline < now()
           ORDER BY inference_deadline LIMIT p_limit)
          UNION ALL
          (SELECT id, tenant_id, 'ended' FROM jobs
           WHERE queue_state = 'queued' AND status IN ('succeeded', 'failed', 'rejected', 'cancelled')
           LIMIT p_limit) $$;

-- The queue's depth per lane (queued, at the endpoint, the oldest wait in seconds), for metrics and autoscaling.
CREATE FUNCTION app_inference_queue_stats()
    RETURNS TABLE (lane text, queued integer, in_flight integer, oldest_wait_seconds double precision)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT lane,
                 (count(*) FILTER (WHERE queue_state = 'queued' AND status = 'validated'))::integer,
                 (count(*) FILTER (WHERE queue_state IN ('dispatching', 'dispatched') AND status = 'processing'))::integer,
                 coalesce(extract(epoch FROM now() - min(enqueued_at)
                                  FILTER (WHERE queue_state = 'queued' AND status = 'validated')), 0)::double precision
          FROM jobs WHERE queue_state IN ('queued', 'dispatching', 'dispatched')
          GROUP BY lane $$;

ALTER FUNCTION app_inference_in_flight() OWNER TO modamoda_system;
ALTER FUNCTION app_inference_next(boolean, uuid[]) OWNER TO modamoda_system;
ALTER FUNCTION app_inference_overdue(integer) OWNER TO modamoda_system;
ALTER FUNCTION app_inference_queue_stats() OWNER TO modamoda_system;
REVOKE ALL ON FUNCTION app_inference_in_flight(), app_inference_next(boolean, uuid[]),
    app_inference_overdue(integer), app_inference_queue_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_inference_in_flight(), app_inference_next(boolean, uuid[]),
    app_inference_overdue(integer), app_inference_queue_stats() TO modamoda_app;
