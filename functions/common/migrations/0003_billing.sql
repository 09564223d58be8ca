-- Billing: credit packs (global), purchases and disputes (tenant rows), Stripe events (system table).
--
-- Money stays in the ledger: a purchase grants its pack's credits once (ledger key purchase:{checkout session}),
-- refunds and disputes debit through the same ledger (clamped at the balance, the shortfall recorded), so
-- tenants.balance = SUM(ledger.amount) still holds. Prices are integer minor currency units (cents).

CREATE TABLE credit_packs (
    id           text PRIMARY KEY CHECK (id ~ '^[a-z0-9_-]{1,32}$'),
    name         text NOT NULL,
    credits      integer NOT NULL CHECK (credits > 0),
    price_cents  integer NOT NULL CHECK (price_cents > 0),
    currency     text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
    active       boolean NOT NULL DEFAULT true,
    sort         integer NOT NULL DEFAULT 0
);

INSERT INTO credit_packs (id, name, credits, price_cents, currency, active, sort) VALUES
    ('starter', 'Starter', 10, 900, 'usd', true, 10),
    ('studio', 'Studio', 50, 3900, 'usd', true, 20),
    ('pro', 'Pro', 200, 12900, 'usd', true, 30),
    ('agency', 'Agency', 1000, 54900, 'usd', true, 40);

CREATE TABLE purchases (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    checkout_session   text NOT NULL UNIQUE,
    payment_intent     text UNIQUE,
    charge_id          text UNIQUE,
    pack_id            text NOT NULL REFERENCES credit_packs (id),
    credits            integer NOT NULL CHECK (credits > 0),
    amount_total       integer NOT NULL CHECK (amount_total > 0),
    currency           text NOT NULL,
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'failed')),
    credits_granted    integer NOT NULL DEFAULT 0 CHECK (credits_granted >= 0),
    amount_refunded    integer NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    credits_refunded   integer NOT NULL DEFAULT 0 CHECK (credits_refunded >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    paid_at            timestamptz
);
CREATE INDEX purchases_tenant_created_idx ON purchases (tenant_id, created_at DESC);

CREATE TABLE disputes (
    id                text PRIMARY KEY,                  -- dp_...
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    purchase_id       uuid NOT NULL REFERENCES purchases (id),
    charge_id         text,
    amount            integer NOT NULL CHECK (amount >= 0),
    status            text NOT NULL,
    credits_debited   integer NOT NULL DEFAULT 0 CHECK (credits_debited >= 0),
    credits_restored  integer NOT NULL DEFAULT 0 CHECK (credits_restored >= 0),
    debited_at        timestamptz,                       -- the disputed share was taken (credits_debited, clamped)
    restored_at       timestamptz,                       -- won: exactly credits_debited given back
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX disputes_purchase_idx ON disputes (purchase_id);

-- Stripe events seen by the webhook (not tenant rows). At-least-once delivery: an event whose row is processed
-- is a duplicate; a row without processed_at (an earlier attempt failed) is processed again. Rows are kept at
-- least 30 days (Stripe retries for up to 3 days); app_prune_stripe_events deletes only older processed rows.
CREATE TABLE stripe_events (
    id            text PRIMARY KEY,                      -- evt_...
    type          text NOT NULL,
    livemode      boolean NOT NULL DEFAULT false,
    created       timestamptz NOT NULL,                  -- the event's own creation time
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    outcome       text,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX stripe_events_processed_idx ON stripe_events (processed_at) WHERE processed_at IS NOT NULL;

GRANT SELECT ON credit_packs TO modamoda_app;
GRANT SELECT, INSERT, UPDATE ON purchases, disputes TO modamoda_app;
GRANT SELECT, INSERT, UPDATE ON stripe_events TO modamoda_app;
GRANT SELECT ON purchases TO modamoda_system;
GRANT SELECT, DELETE ON stripe_events TO modamoda_system;

ALTER TABLE purchases ENABLE ROW LEVEL SECURITY;
ALTER TABLE purchases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON purchases TO modamoda_app
    USING (tenant_id = app_tenant()) WITH CHECK (tenant_id = app_tenant());
CREATE POLICY system_read ON purchases FOR SELECT TO modamoda_system USING (true);

ALTER TABLE disputes ENABLE ROW LEVEL SECURITY;
ALTER TABLE disputes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON disputes TO modamoda_app
    USING (tenant_id = app_tenant()) WITH CHECK (tenant_id = app_tenant());

-- Which tenant (and purchase) a Stripe object belongs to.
CREATE FUNCTION app_purchase_by_session(p_session text)
    RETURNS TABLE (tenant_id uuid, purchase_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT tenant_id, id FROM purchases WHERE checkout_session = p_session $$;

CREATE FUNCTION app_purchase_by_payment(p_payment_intent text, p_charge text)
    RETURNS TABLE (tenant_id uuid, purchase_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT tenant_id, id FROM purchases
          WHERE (p_payment_intent IS NOT NULL AND payment_intent = p_payment_intent)
             OR (p_charge IS NOT NULL AND charge_id = p_charge)
          LIMIT 1 $$;

-- Deletes processed events received before p_before, never any younger than 30 days. Returns the count.
CREATE FUNCTION app_prune_stripe_events(p_before timestamptz)
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ WITH gone AS (
              DELETE FROM stripe_events
              WHERE processed_at IS NOT NULL
                AND received_at < least(p_before, now() - interval '30 days')
              RETURNING 1)
          SELECT count(*)::integer FROM gone $$;

ALTER FUNCTION app_purchase_by_session(text) OWNER TO modamoda_system;
ALTER FUNCTION app_purchase_by_payment(text, text) OWNER TO modamoda_system;
ALTER FUNCTION app_prune_stripe_events(timestamptz) OWNER TO modamoda_system;
REVOKE ALL ON FUNCTION app_purchase_by_session(text), app_purchase_by_payment(text, text),
    app_prune_stripe_events(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_purchase_by_session(text), app_purchase_by_payment(text, text),
    app_prune_stripe_events(timestamptz) TO modamoda_app;
