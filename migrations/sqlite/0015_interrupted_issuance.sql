-- Issue 19.1, nothing stuck after a node stops mid-issuance. An order
-- records when it began processing (the commit that reserved its
-- certificate's serial), so the settling job (`lifecycle::settle`) finds
-- orders and pending certificates left behind by a node that stopped
-- between reserving and recording. Orders already processing have no
-- start and are judged by their creation.
ALTER TABLE acme_orders ADD COLUMN processing_since BIGINT;
CREATE INDEX acme_orders_processing ON acme_orders (processing_since) WHERE status = 'processing';
CREATE INDEX certificates_pending ON certificates (created_at) WHERE status = 0;
