--
-- Columns a DBA adds to outbox.published (a tenant, a trace id) and the
-- constraints put on it hold for captured rows as for rows inserted by
-- hand: the capture trigger writes its rows without SQL, but gives such a
-- column its default, computes a stored generated one, and checks NOT NULL
-- and CHECK constraints.  Before, every capture failed with an internal
-- error once a column was added.
--
TRUNCATE outbox.published;
CREATE TABLE pc_orders (id int PRIMARY KEY, item text);
SELECT outbox.publish('pc_orders', '/queue/pc');
CREATE SEQUENCE pc_trace;
ALTER TABLE outbox.published
	ADD COLUMN tenant text NOT NULL DEFAULT 'acme',
	ADD COLUMN trace bigint DEFAULT nextval('pc_trace'),
	ADD COLUMN note text,
	ADD COLUMN dest_len int GENERATED ALWAYS AS (length(destination)) STORED;
INSERT INTO pc_orders VALUES (1, 'a'), (2, 'b');
INSERT INTO outbox.published (destination, body) VALUES ('/queue/pc', '{"id": 3}');
SELECT body, tenant, trace, note, dest_len FROM outbox.published ORDER BY body->>'id';

-- a CHECK constraint refuses a captured row as it does a hand-inserted one
\set VERBOSITY terse
ALTER TABLE outbox.published
	ADD CONSTRAINT pc_no_secret CHECK (body->>'item' IS DISTINCT FROM 'secret');
INSERT INTO pc_orders VALUES (4, 'secret');
INSERT INTO outbox.published (destination, body) VALUES ('/queue/pc', '{"item": "secret"}');
-- and NOT NULL without a default
ALTER TABLE outbox.published DROP CONSTRAINT pc_no_secret;
TRUNCATE outbox.published;
ALTER TABLE outbox.published ADD COLUMN required text NOT NULL;
INSERT INTO pc_orders VALUES (5, 'e');
ALTER TABLE outbox.published DROP COLUMN required;
\set VERBOSITY default
INSERT INTO pc_orders VALUES (6, 'f');
SELECT body, tenant FROM outbox.published;

-- dropped again, capture is as before
ALTER TABLE outbox.published DROP COLUMN tenant, DROP COLUMN trace,
	DROP COLUMN note, DROP COLUMN dest_len;
INSERT INTO pc_orders VALUES (7, 'g');
SELECT count(*) FROM outbox.published;
TRUNCATE outbox.published;
SELECT outbox.unpublish('pc_orders');
DROP TABLE pc_orders;
DROP SEQUENCE pc_trace;
