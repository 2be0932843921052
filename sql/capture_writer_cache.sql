--
-- What the capture trigger's writer keeps across transactions (the row
-- format of outbox.published, the compiled predicates of its partial
-- indexes) must never put a row into an index it does not belong to, nor
-- leave it out of one, whatever users and DBAs do to outbox.published and
-- its indexes between and within transactions; and it must not grow.
--
-- wcache.check() lists every index of outbox.published with the entries
-- it holds (pgstattuple, run after VACUUM so that no dead entry counts)
-- and the rows it should hold (its predicate, by a sequential scan), after
-- bt_index_check(heapallindexed) has verified that none is missing.
--
SET TimeZone = 'UTC';
CREATE EXTENSION IF NOT EXISTS amcheck;
CREATE EXTENSION IF NOT EXISTS pgstattuple;
TRUNCATE outbox.published;
CREATE SCHEMA wcache;
CREATE TABLE wcache.a (n int PRIMARY KEY);
CREATE TABLE wcache.b (n int PRIMARY KEY);
SELECT outbox.publish('wcache.a', '/topic/wc.a');
SELECT outbox.publish('wcache.b', '/topic/wc.b');

CREATE FUNCTION wcache.check()
RETURNS TABLE (index_name name, entries bigint, expected bigint)
LANGUAGE plpgsql
SET enable_indexscan = off SET enable_bitmapscan = off
SET enable_indexonlyscan = off
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.relname, i.indexrelid::regclass AS idx,
                    pg_get_expr(i.indpred, i.indrelid) AS pred
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              WHERE i.indrelid = 'outbox.published'::regclass
              ORDER BY c.relname
    LOOP
        PERFORM bt_index_check(r.idx, true);
        index_name := r.relname;
        entries := (pgstattuple(r.idx)).tuple_count;
        EXECUTE 'SELECT count(*) FROM outbox.published'
                || coalesce(' WHERE ' || r.pred, '') INTO expected;
        RETURN NEXT;
    END LOOP;
END $$;

-- 1. The extension's own indexes, the cache warm from the first row on.
INSERT INTO wcache.a VALUES (1);
INSERT INTO wcache.b VALUES (2);
INSERT INTO wcache.a VALUES (3);
VACUUM outbox.published;
SELECT * FROM wcache.check();

-- 2. A partial index added between transactions.
CREATE INDEX wc_a ON outbox.published (id) WITH (deduplicate_items = off)
    WHERE destination = '/topic/wc.a';
INSERT INTO wcache.a VALUES (4);
INSERT INTO wcache.b VALUES (5);
INSERT INTO wcache.a VALUES (6);
VACUUM outbox.published;
SELECT * FROM wcache.check();

-- 3. Dropped and recreated under its name with another predicate.
DROP INDEX outbox.wc_a;
CREATE INDEX wc_a ON outbox.published (id) WITH (deduplicate_items = off)
    WHERE destination = '/topic/wc.b';
INSERT INTO wcache.a VALUES (7);
INSERT INTO wcache.b VALUES (8);
REINDEX INDEX outbox.wc_a;
INSERT INTO wcache.b VALUES (9);
VACUUM outbox.published;
SELECT * FROM wcache.check();

-- 4. Within a transaction: an index added before the first captured row,
-- another dropped and a partial index on an expression added once a
-- subtransaction's abort has closed the writer (while it is open, it holds
-- outbox.published, and DDL on it is refused as in use), rows between
-- each.
BEGIN;
CREATE INDEX wc_even ON outbox.published (id)
    WITH (deduplicate_items = off) WHERE (body->>'n')::int % 2 = 0;
INSERT INTO wcache.a VALUES (10);
INSERT INTO wcache.a VALUES (11), (12);
SAVEPOINT s;
INSERT INTO wcache.b VALUES (100);
ROLLBACK TO s;
DROP INDEX outbox.wc_a;
INSERT INTO wcache.b VALUES (13), (14);
SAVEPOINT s;
INSERT INTO wcache.b VALUES (101);
ROLLBACK TO s;
CREATE INDEX wc_expr ON outbox.published ((body->>'n'))
    WITH (deduplicate_items = off) WHERE destination = '/topic/wc.b';
INSERT INTO wcache.b VALUES (15), (16);
INSERT INTO wcache.a VALUES (17);
COMMIT;
VACUUM outbox.published;
SELECT * FROM wcache.check();

-- 5. A predicate calling a function that is replaced, between
-- transactions and within one: the new definition holds from then on
-- (both agree on every row written before, so the index stays right).
CREATE FUNCTION wcache.wanted(n int) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN n < 100; END $$;
CREATE INDEX wc_func ON outbox.published (id)
    WITH (deduplicate_items = off) WHERE wcache.wanted((body->>'n')::int);
INSERT INTO wcache.a VALUES (18);
INSERT INTO wcache.a VALUES (150);
CREATE OR REPLACE FUNCTION wcache.wanted(n int) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN n < 100 OR n BETWEEN 200 AND 299; END $$;
INSERT INTO wcache.a VALUES (201);
BEGIN;
INSERT INTO wcache.a VALUES (202);
CREATE OR REPLACE FUNCTION wcache.wanted(n int) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN n < 100 OR n BETWEEN 200 AND 399; END $$;
INSERT INTO wcache.a VALUES (301);
COMMIT;
VACUUM outbox.published;
SELECT * FROM wcache.check();

-- 6. An index made and undone in a subtransaction that wrote rows, and
-- in a transaction that rolls back.
BEGIN;
SAVEPOINT s;
CREATE INDEX wc_sub ON outbox.published (id)
    WITH (deduplicate_items = off) WHERE destination = '/topic/wc.a';
INSERT INTO wcache.a VALUES (20);
INSERT INTO wcache.a VALUES (21);
ROLLBACK TO s;
INSERT INTO wcache.a VALUES (19);
COMMIT;
BEGIN;
CREATE INDEX wc_gone ON outbox.published (id)
    WITH (deduplicate_items = off) WHERE destination = '/topic/wc.b';
INSERT INTO wcache.b VALUES (102);
ROLLBACK;
INSERT INTO wcache.b VALUES (22);
VACUUM outbox.published;
SELECT * FROM wcache.check();

-- 7. outbox.published altered: a column added and dropped (the row format
-- gets a dropped column), storage parameters set, between transactions
-- and within one.
ALTER TABLE outbox.published ADD COLUMN scratch int;
ALTER TABLE outbox.published DROP COLUMN scratch;
INSERT INTO wcache.a VALUES (23);
BEGIN;
ALTER TABLE outbox.published SET (fillfactor = 90);
INSERT INTO wcache.b VALUES (24);
SAVEPOINT s;
INSERT INTO wcache.b VALUES (103);
ROLLBACK TO s;
ALTER TABLE outbox.published ADD COLUMN scratch2 int;
ALTER TABLE outbox.published DROP COLUMN scratch2;
INSERT INTO wcache.b VALUES (25);
INSERT INTO wcache.a VALUES (26);
COMMIT;
ALTER TABLE outbox.published RESET (fillfactor);
INSERT INTO wcache.a VALUES (27);
VACUUM outbox.published;
SELECT * FROM wcache.check();
SELECT body->>'n' AS n, destination, status, retry, last_error IS NULL AS no_error
  FROM outbox.published WHERE (body->>'n')::int >= 23 ORDER BY (body->>'n')::int;

-- 7b. A column dropped and added again under its name moves to the end
-- of the row (undone by the rollback, so that outbox.published stays as
-- the extension made it): a row format kept from before would put the
-- version where the column was.
CREATE TABLE wcache.v (n int PRIMARY KEY);
SELECT outbox.publish('wcache.v', '/topic/wc.v', 'v1');
INSERT INTO wcache.v VALUES (1);
BEGIN;
ALTER TABLE outbox.published DROP COLUMN version CASCADE;
ALTER TABLE outbox.published ADD COLUMN version text;
INSERT INTO wcache.v VALUES (2);
SELECT body->>'n' AS n, destination, version, status, retry
  FROM outbox.published WHERE destination = '/topic/wc.v.v1'
 ORDER BY (body->>'n')::int;
ROLLBACK;
INSERT INTO wcache.v VALUES (3);
SELECT body->>'n' AS n, destination, version, status, retry
  FROM outbox.published WHERE destination = '/topic/wc.v.v1'
 ORDER BY (body->>'n')::int;

-- 8. Nothing grows: neither across transactions (what is kept is replaced,
-- not added to) nor within one that invalidates it at every row.
CREATE PROCEDURE wcache.many(first int, last int)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN first..last LOOP
        INSERT INTO wcache.a VALUES (i);
        IF i % 2 = 0 THEN
            ANALYZE outbox.published;
        END IF;
        COMMIT;
    END LOOP;
END $$;
-- one predicate kept for each of the five partial indexes, no more
CALL wcache.many(1001, 1201);
SELECT count(*) BETWEEN 1 AND 5 AS bounded
  FROM pg_backend_memory_contexts WHERE name = 'outbox index predicate';
BEGIN;
DO $$
BEGIN
    FOR i IN 2001..2300 LOOP
        INSERT INTO wcache.b VALUES (i);
        ANALYZE outbox.published;
    END LOOP;
END $$;
-- those kept, and at most those replaced by the last row's writer
SELECT count(*) <= 10 AS bounded
  FROM pg_backend_memory_contexts WHERE name = 'outbox index predicate';
COMMIT;
VACUUM outbox.published;
SELECT * FROM wcache.check();

-- 9. An index whose function runs user code while the writer is in the
-- middle of a row: a caught error aborts a subtransaction (which closes
-- the writer), and a write to a published table opens another; the row
-- under way must still get all its index entries, in the right indexes.
CREATE FUNCTION wcache.log(n int) RETURNS void
LANGUAGE sql AS $$ INSERT INTO wcache.b VALUES (n) $$;
CREATE FUNCTION wcache.odd(destination text, n text) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    BEGIN
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        NULL;
    END;
    IF destination = '/topic/wc.a' AND n::int BETWEEN 3001 AND 3100
       AND current_setting('wcache.log', true) = 'on' THEN
        PERFORM wcache.log(n::int + 1000);
    END IF;
    RETURN n::int;
END $$;
CREATE INDEX wc_odd ON outbox.published (wcache.odd(destination, body->>'n'))
    WITH (deduplicate_items = off) WHERE destination LIKE '/topic/wc.%';
SET wcache.log = on;
INSERT INTO wcache.a SELECT generate_series(3001, 3010);
INSERT INTO wcache.b VALUES (3011);
INSERT INTO wcache.a VALUES (3012);
RESET wcache.log;
VACUUM outbox.published;
SELECT * FROM wcache.check();
SET enable_seqscan = off;
SELECT wcache.odd(destination, body->>'n') AS n, destination
  FROM outbox.published
 WHERE destination LIKE '/topic/wc.%'
   AND wcache.odd(destination, body->>'n') BETWEEN 3001 AND 5000
 ORDER BY 1;
RESET enable_seqscan;
DROP INDEX outbox.wc_odd;

DROP INDEX outbox.wc_even, outbox.wc_expr, outbox.wc_func;
DROP SCHEMA wcache CASCADE;
TRUNCATE outbox.published;
