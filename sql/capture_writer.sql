--
-- The capture trigger's writer of outbox.published while user code runs:
-- an outbox.generate_headers function may abort a subtransaction of its
-- own or write to a published table itself, in the middle of a captured
-- row, and every subtransaction that aborts in a capturing transaction
-- must not cost memory until the transaction ends.
--
SET TimeZone = 'UTC';
TRUNCATE outbox.published;
CREATE SCHEMA attack3;
CREATE TABLE attack3.t (id int PRIMARY KEY);
CREATE TABLE attack3.audit (id int PRIMARY KEY);
SELECT outbox.publish('attack3.t', '/topic/attack3');
SELECT outbox.publish('attack3.audit', '/topic/attack3-audit');

--
-- 1. A generate_headers function that catches an error of its own: the
-- subtransaction it aborts must not take the writer away from the row
-- being written (this crashed the server).
--
CREATE FUNCTION attack3.catching(p outbox.published) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        NULL;
    END;
    RETURN '{"x-caught": "yes"}';
END $$;
SET outbox.generate_headers = 'attack3.catching';
INSERT INTO attack3.t SELECT generate_series(1, 3);
RESET outbox.generate_headers;
SELECT body, headers->>'x-caught' AS caught,
       outbox.message_headers(p)->>'dop-msg-id' = id::text AS own_id
  FROM outbox.published p WHERE destination = '/topic/attack3' ORDER BY id;

--
-- 2. A generate_headers function that makes the writer stale (ANALYZE of
-- outbox.published sends a relcache invalidation) and then writes to a
-- published table: the nested capture reopens the writer, which must not
-- be the one the outer row goes on to use.
--
CREATE FUNCTION attack3.auditing(p outbox.published) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF p.destination = '/topic/attack3' THEN
        ANALYZE outbox.published;
        INSERT INTO attack3.audit VALUES ((p.body->>'id')::int);
    END IF;
    RETURN '{"x-audited": "yes"}';
END $$;
SET outbox.generate_headers = 'attack3.auditing';
INSERT INTO attack3.t SELECT generate_series(4, 6);
RESET outbox.generate_headers;
SELECT destination, body, headers->>'x-audited' AS audited,
       outbox.message_headers(p)->>'dop-msg-id' = id::text AS own_id
  FROM outbox.published p WHERE (body->>'id')::int > 3 ORDER BY destination, id;
-- every row went into the indexes too
SET enable_seqscan = off;
SELECT count(*) FROM outbox.published WHERE id > '00000000-0000-0000-0000-000000000000';
RESET enable_seqscan;

--
-- 3. A subtransaction that aborts closes the writer; reopening it at the
-- next row must not leave the old one's memory in the transaction: a
-- loop of 5000 captured rows, each followed by a caught error, stays far
-- below the 18 MB it took.
--
BEGIN;
DO $$
BEGIN
    FOR i IN 1001..6000 LOOP
        INSERT INTO attack3.t VALUES (i);
        BEGIN
            PERFORM 1 / 0;
        EXCEPTION WHEN division_by_zero THEN
            NULL;
        END;
    END LOOP;
END $$;
SELECT sum(total_bytes) < 1024 * 1024 AS bounded
  FROM pg_backend_memory_contexts
 WHERE name = 'TopTransactionContext' OR parent = 'TopTransactionContext';
COMMIT;
SELECT count(*) FROM outbox.published WHERE destination = '/topic/attack3';

--
-- 4. Every change of a function drops the configurations of every
-- published table, and the next row reloads them: the configurations
-- replaced, when no capture is using them, must not be kept until the
-- end of the transaction (2000 reloads kept 2 MB).
--
BEGIN;
DO $$
BEGIN
    FOR i IN 7001..9000 LOOP
        INSERT INTO attack3.t VALUES (i);
        EXECUTE format('CREATE OR REPLACE FUNCTION attack3.f() RETURNS int'
                       ' LANGUAGE sql AS %L', 'SELECT ' || i);
    END LOOP;
END $$;
SELECT count(*) < 10 AS bounded
  FROM pg_backend_memory_contexts
 WHERE name = 'outbox capture entry' AND parent = 'TopTransactionContext';
COMMIT;
SELECT count(*) FROM outbox.published WHERE destination = '/topic/attack3';

--
-- 5. ... but a capture running up the stack keeps its own: a serializer
-- that changes a function, reloading every entry, and writes the same
-- table again, two configurations each.
--
CREATE TABLE attack3.r (id int PRIMARY KEY);
CREATE FUNCTION attack3.nesting(rec attack3.r) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION attack3.f() RETURNS int'
                   ' LANGUAGE sql AS %L', 'SELECT ' || rec.id);
    IF rec.id < 3 AND NOT EXISTS (SELECT FROM attack3.r x WHERE x.id = rec.id + 1) THEN
        INSERT INTO attack3.r VALUES (rec.id + 1);
    END IF;
    RETURN jsonb_build_object('id', rec.id);
END $$;
SELECT outbox.publish('attack3.r', '/topic/attack3-r', 'v1',
                      serializer => 'attack3.nesting(attack3.r)');
SELECT outbox.publish('attack3.r', '/topic/attack3-r', 'v2',
                      serializer => 'attack3.nesting(attack3.r)');
INSERT INTO attack3.r VALUES (1);
SELECT destination, body FROM outbox.published
 WHERE destination LIKE '/topic/attack3-r%' ORDER BY body->>'id', destination;

DROP SCHEMA attack3 CASCADE;
TRUNCATE outbox.published;
