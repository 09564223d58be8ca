-- Notifications outbox: customer webhooks (signed, retried with backoff, dead-lettered) and e-mails (SES).
--
-- A row is written in the same transaction that makes a job or a batch final, so an event is recorded exactly
-- once; its id is derived from (tenant, channel, subject), and (tenant_id, id) is the key, so a replayed
-- transition records nothing twice. The row id is the event id customers see (Modamoda-Event-Id). After commit a
-- dispatcher sends due rows to the webhooks queue (enqueued_at); the consumer claims a row with a short lease
-- (locked_until), so a duplicate queue message sends nothing, and records the outcome: delivered, a retry later
-- (next_attempt_at, attempts) or dead after the last attempt. The sweeper re-sends rows whose message was lost.

CREATE TABLE notifications (
    id                uuid NOT NULL,
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    channel           text NOT NULL CHECK (channel IN ('webhook', 'email')),
    type              text NOT NULL CHECK (length(type) BETWEEN 1 AND 100),
    subject           text NOT NULL,                       -- job:<id> | batch:<id>
    payload           jsonb NOT NULL,                      -- webhook: {id, type, created_at, data}; email: message
    recipient         text,                                -- e-mail address (channel email)
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    enqueued_at       timestamptz,                         -- last hand-over to the queue (NULL: not yet)
    locked_until      timestamptz,                         -- an attempt is under way until then
    last_attempt_at   timestamptz,
    last_status_code  integer,
    last_error        text,
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT notifications_email_recipient CHECK (channel <> 'email' OR recipient IS NOT NULL)
);
-- The tenant's delivery log, newest first (keyset pages), optionally by status.
CREATE INDEX notifications_tenant_created_idx ON notifications (tenant_id, channel, created_at DESC, id DESC);
CREATE INDEX notifications_tenant_status_idx ON notifications (tenant_id, channel, status, created_at DESC, id DESC);
-- Rows the dispatcher and the sweeper look for.
CREATE INDEX notifications_pending_idx ON notifications (next_attempt_at) WHERE status = 'pending';

GRANT SELECT, INSERT, UPDATE ON notifications TO modamoda_app;
GRANT SELECT ON notifications TO modamoda_system;

ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notifications TO modamoda_app
    USING (tenant_id = app_tenant()) WITH CHECK (tenant_id = app_tenant());
CREATE POLICY system_read ON notifications FOR SELECT TO modamoda_system USING (true);

-- Pending rows whose queue message is missing or lost (never enqueued, or due for longer than the grace period
-- without an attempt), across tenants, for the sweeper.
CREATE FUNCTION app_undispatched_notifications(p_grace_seconds integer, p_limit integer)
    RETURNS TABLE (id uuid, tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT n.id, n.tenant_id FROM notifications n
          WHERE n.status = 'pending'
            AND (n.locked_until IS NULL OR n.locked_until < now())
            AND (n.enqueued_at IS NULL
                 OR (n.next_attempt_at < now() - make_interval(secs => p_grace_seconds)
                     AND n.enqueued_at < now() - make_interval(secs => p_grace_seconds)))
          ORDER BY n.next_attempt_at LIMIT p_limit $$;
ALTER FUNCTION app_undispatched_notifications(integer, integer) OWNER TO modamoda_system;
REVOKE ALL ON FUNCTION app_undispatched_notifications(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_undispatched_notifications(integer, integer) TO modamoda_app;
