--
-- Attacks on what the capture trigger's writer keeps across transactions
-- (writer_cache.c) and on the writer itself (outbox_writer.c): every index
-- of outbox.published gets exactly its entries, nothing the executor would
-- check per query is skipped, and no writer is lost.
--
SET TimeZone = 'UTC';
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS amcheck;
RESET client_min_messages;
TRUNCATE outbox.published;
CREATE SCHEMA wattack;
CREATE TABLE wattack.a (n int PRIMARY KEY, pad text);
CREATE TABLE wattack.b (n int PRIMARY KEY);
SELECT outbox.publish('wattack.a', '/topic/wa.a');
SELECT outbox.publish('wattack.b', '/topic/wa.b');

-- 1. Building the writer runs user code: an immutable function the
-- relcache folds into an index's predicate when it loads it, here one
-- that writes a captured row, so building another writer meanwhile.  That
-- one must not be lost (nothing left open at commit), and both rows must
-- be written.
CREATE FUNCTION wattack.capture() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('wattack.hook', 'off', false);
    INSERT INTO wattack.b VALUES (1000);
END $$;
CREATE FUNCTION wattack.hook(t text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF current_setting('wattack.hook', true) = 'on' THEN
        PERFORM wattack.capture();
    END IF;
    RETURN t;
END $$;
CREATE INDEX wa_hook ON outbox.published (id)
    WITH (deduplicate_items = off) WHERE destination <> wattack.hook('/never');
-- a new session, whose relcache has not loaded the index yet
\c
SET TimeZone = 'UTC';
SET wattack.hook = on;
INSERT INTO wattack.a VALUES (1);
INSERT INTO wattack.a VALUES (2);
SELECT destination, body FROM outbox.published ORDER BY body->>'n';
SELECT bt_index_check('outbox.wa_hook', true);
DROP INDEX outbox.wa_hook;
TRUNCATE outbox.published;

-- 2. Compiling a predicate checks the current user's right to call its
-- functions, for every query; a predicate compiled for one role must not
-- let another role that may not call the function write rows.
CREATE ROLE wattack_alice;
CREATE ROLE wattack_bob;
GRANT USAGE ON SCHEMA wattack TO wattack_alice, wattack_bob;
GRANT INSERT ON wattack.a TO wattack_alice, wattack_bob;
CREATE FUNCTION wattack.even(n text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN n::int % 2 = 0; END $$;
REVOKE EXECUTE ON FUNCTION wattack.even(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION wattack.even(text) TO wattack_alice;
CREATE INDEX wa_acl ON outbox.published (id)
    WITH (deduplicate_items = off) WHERE wattack.even(body->>'n');
SET ROLE wattack_bob;
INSERT INTO wattack.a VALUES (11);
RESET ROLE;
SET ROLE wattack_alice;
INSERT INTO wattack.a VALUES (12);
RESET ROLE;
SET ROLE wattack_bob;
INSERT INTO wattack.a VALUES (13);
RESET ROLE;
SET ROLE wattack_alice;
INSERT INTO wattack.a VALUES (14);
RESET ROLE;
SELECT body->>'n' AS n FROM outbox.published ORDER BY 1;
SELECT bt_index_check('outbox.wa_acl', true);
DROP INDEX outbox.wa_acl;
TRUNCATE outbox.published;

-- 3. A predicate over the whole row: its compiled form copies the row type
-- into the memory of the query that first evaluates it (the writer of that
-- transaction), and must not use that copy in a later transaction.
CREATE FUNCTION wattack.wanted(p outbox.published) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (p.body->>'n')::int % 2 = 0;
END $$;
CREATE INDEX wa_whole ON outbox.published (id)
    WITH (deduplicate_items = off) WHERE wattack.wanted(published);
INSERT INTO wattack.a VALUES (20);
INSERT INTO wattack.a VALUES (22, repeat('x', 100));
INSERT INTO wattack.a VALUES (24);
INSERT INTO wattack.a SELECT g, repeat('y', g) FROM generate_series(25, 50) g;
INSERT INTO wattack.a VALUES (52);
SELECT bt_index_check('outbox.wa_whole', true);
SET enable_seqscan = off;
SELECT count(*) AS indexed FROM outbox.published WHERE wattack.wanted(published);
RESET enable_seqscan;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
SELECT count(*) AS expected FROM outbox.published WHERE wattack.wanted(published);
RESET enable_indexscan;
RESET enable_bitmapscan;
DROP INDEX outbox.wa_whole;

-- 4. An index's function writes a captured row while the writer is in the
-- middle of a row, without closing it (no subtransaction aborts): the
-- nested row must not be written with the busy writer, whose slot and
-- per-tuple memory still hold the outer row for the indexes after.
CREATE FUNCTION wattack.log(n int) RETURNS void
LANGUAGE sql AS $$ INSERT INTO wattack.b VALUES (n) $$;
CREATE FUNCTION wattack.val(destination text, n text) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF destination = '/topic/wa.a' AND current_setting('wattack.log', true) = 'on' THEN
        PERFORM wattack.log(n::int + 1000);
    END IF;
    RETURN n::int;
END $$;
-- by OID, the first index is written first, the nested row then
CREATE INDEX wa_first ON outbox.published (wattack.val(destination, body->>'n'))
    WITH (deduplicate_items = off);
CREATE INDEX wa_second ON outbox.published ((body->>'n'))
    WITH (deduplicate_items = off);
CREATE INDEX wa_third ON outbox.published (destination)
    WITH (deduplicate_items = off) WHERE destination LIKE '/topic/wa.%';
TRUNCATE outbox.published;
SET wattack.log = on;
INSERT INTO wattack.a VALUES (61);
INSERT INTO wattack.a VALUES (62), (63);
RESET wattack.log;
SELECT bt_index_check('outbox.wa_first', true),
       bt_index_check('outbox.wa_second', true),
       bt_index_check('outbox.wa_third', true);
SET enable_seqscan = off;
SELECT body->>'n' AS n, destination FROM outbox.published
 WHERE body->>'n' > '' ORDER BY 1;
SELECT body->>'n' AS n, destination FROM outbox.published
 WHERE destination LIKE '/topic/wa.%' ORDER BY 1;
SELECT wattack.val(destination, body->>'n') AS n, destination
  FROM outbox.published
 WHERE wattack.val(destination, body->>'n') > 0 ORDER BY 1;
RESET enable_seqscan;
DROP INDEX outbox.wa_first, outbox.wa_second, outbox.wa_third;

-- 5. An error while the writer is being built (here from an immutable
-- function the relcache folds into a predicate), caught by a savepoint:
-- what the build had opened must go with the error, not stay open in the
-- transaction until its commit.
CREATE FUNCTION wattack.boom(t text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF current_setting('wattack.boom', true) = 'on' THEN
        RAISE EXCEPTION 'wattack.boom is on';
    END IF;
    RETURN t;
END $$;
CREATE INDEX wa_boom ON outbox.published (id)
    WITH (deduplicate_items = off) WHERE destination <> wattack.boom('/never');
TRUNCATE outbox.published;
-- a new session, whose relcache has not loaded the index yet
\c
SET TimeZone = 'UTC';
BEGIN;
SET LOCAL wattack.boom = on;
SAVEPOINT s;
INSERT INTO wattack.a VALUES (71);
ROLLBACK TO s;
SET LOCAL wattack.boom = off;
INSERT INTO wattack.a VALUES (72);
COMMIT;
INSERT INTO wattack.a VALUES (73);
SELECT bt_index_check('outbox.wa_boom', true);
SET enable_seqscan = off;
SELECT body->>'n' AS n FROM outbox.published
 WHERE destination <> wattack.boom('/never') ORDER BY 1;
RESET enable_seqscan;
DROP INDEX outbox.wa_boom;

DROP SCHEMA wattack CASCADE;
DROP ROLE wattack_alice;
DROP ROLE wattack_bob;
TRUNCATE outbox.published;
