-- The ARI certificate identifier a newOrder named in `replaces`, as the
-- client sent it: RFC 9773 §5 has the order object echo it back.
ALTER TABLE acme_orders ADD COLUMN replaces TEXT;
