-- Stripe's hosted receipt of a purchase (its charge's receipt_url), shown beside the purchase in the credits
-- history. Stored once the payment is fulfilled, when Stripe has one; NULL until then (never needed to grant).

ALTER TABLE purchases
    ADD COLUMN receipt_url text CHECK (receipt_url IS NULL OR (length(receipt_url) <= 2000 AND receipt_url ~ '^https?://'));
