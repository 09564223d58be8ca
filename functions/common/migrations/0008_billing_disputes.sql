-- Billing: disputes that reopen, one cap on everything a purchase can lose, and a tenant check for ownership.
--
-- A dispute can take credits back more than once (closed won, then reopened by the network: needs_response again),
-- so each take-back is a round: rounds counts the take-backs, restores the give-backs, and the dispute holds
-- credits while rounds > restores. credits_held is what the current take-back really took (a win gives back
-- exactly that); credits_claimed is what it counts against the purchase (held + what the balance could not give,
-- recorded as unrecovered). Refunds (purchases.credits_refunded) plus the claims of held disputes never exceed
-- the purchase's credits. The newest Stripe snapshot of a dispute wins: balance_transactions (the dispute's
-- withdrawals and reinstatements, which only grow) and then the event's creation time order them.

ALTER TABLE disputes
    ADD COLUMN rounds                integer NOT NULL DEFAULT 0 CHECK (rounds >= 0),
    ADD COLUMN restores              integer NOT NULL DEFAULT 0 CHECK (restores >= 0),
    ADD COLUMN credits_held          integer NOT NULL DEFAULT 0 CHECK (credits_held >= 0),
    ADD COLUMN credits_claimed       integer NOT NULL DEFAULT 0,
    ADD COLUMN balance_transactions  integer NOT NULL DEFAULT 0 CHECK (balance_transactions >= 0),
    ADD COLUMN event_created         timestamptz,
    ADD CONSTRAINT disputes_restores_le_rounds CHECK (restores <= rounds),
    ADD CONSTRAINT disputes_claimed_ge_held CHECK (credits_claimed >= credits_held);

-- Rows written before: one round at most. The owner is not a superuser on RDS and both tables FORCE row-level
-- security, so it is lifted for this transaction only.
ALTER TABLE disputes NO FORCE ROW LEVEL SECURITY;
ALTER TABLE ledger NO FORCE ROW LEVEL SECURITY;
UPDATE disputes d SET
    rounds = (d.debited_at IS NOT NULL)::integer,
    restores = (d.debited_at IS NOT NULL AND d.restored_at IS NOT NULL)::integer,
    credits_held = CASE WHEN d.debited_at IS NOT NULL AND d.restored_at IS NULL THEN d.credits_debited ELSE 0 END,
    credits_claimed = CASE WHEN d.debited_at IS NOT NULL AND d.restored_at IS NULL THEN greatest(
        d.credits_debited,
        coalesce((SELECT -(l.meta ->> 'requested')::integer FROM ledger l
                  WHERE l.idempotency_key = 'dispute:' || d.id AND l.meta ? 'requested'), 0)) ELSE 0 END,
    event_created = d.updated_at;
ALTER TABLE disputes FORCE ROW LEVEL SECURITY;
ALTER TABLE ledger FORCE ROW LEVEL SECURITY;

-- Whether a tenant is this deployment's (a Stripe object from before objects named their deployment is ours
-- only if its tenant is).
CREATE FUNCTION app_tenant_exists(p_tenant uuid)
    RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT EXISTS (SELECT 1 FROM tenants WHERE id = p_tenant) $$;

ALTER FUNCTION app_tenant_exists(uuid) OWNER TO modamoda_system;
REVOKE ALL ON FUNCTION app_tenant_exists(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_tenant_exists(uuid) TO modamoda_app;
