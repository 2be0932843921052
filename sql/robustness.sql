--
-- What outbox does with what it did not expect: its trigger functions on
-- the wrong table or event, rows of outbox.published edited by hand, odd
-- ids, messages too large to send, long transactions, and serializers or
-- outbox.generate_headers functions that change settings.
--
SET TimeZone = 'UTC';
TRUNCATE outbox.published;

--
-- 1. The trigger functions check what they are fired on.  A role with no
-- rights but its own schema may create triggers on its tables with any of
-- them: each must refuse, never crash the server.
--
CREATE ROLE outbox_plain;
CREATE SCHEMA plain AUTHORIZATION outbox_plain;
CREATE TABLE plain.g (LIKE outbox.published INCLUDING DEFAULTS);
ALTER TABLE plain.g OWNER TO outbox_plain;
SET ROLE outbox_plain;
SET search_path = plain;
-- the columns of outbox.published, with other types: the crash of the report
CREATE TABLE f (id int, destination int, body int, version int, headers int,
                added int, expires_at int);
CREATE TRIGGER x BEFORE INSERT ON f FOR EACH ROW
    EXECUTE FUNCTION outbox.published_before_insert();
INSERT INTO f VALUES (1, 1, 1, NULL, NULL, NULL, NULL);
DROP TRIGGER x ON f;
-- ... and with the very types: still not outbox.published
CREATE TRIGGER x BEFORE INSERT ON g FOR EACH ROW
    EXECUTE FUNCTION outbox.published_before_insert();
INSERT INTO g (destination, body, expires_at) VALUES ('/topic/forged', '{}', now());
DROP TRIGGER x ON g;
CREATE TRIGGER x BEFORE UPDATE ON g FOR EACH ROW
    EXECUTE FUNCTION outbox.published_before_update();
INSERT INTO g (destination, body, expires_at) VALUES ('/topic/forged', '{}', now());
UPDATE g SET body = '1';
DROP TRIGGER x ON g;
-- the capture trigger on a table that is not published
CREATE TABLE h (id int PRIMARY KEY, v text);
CREATE TRIGGER outbox_capture AFTER INSERT ON h FOR EACH ROW
    EXECUTE FUNCTION outbox.capture();
INSERT INTO h VALUES (1, 'a');
DROP TRIGGER outbox_capture ON h;
INSERT INTO h VALUES (1, 'a');
-- ... fired BEFORE, for DELETE, per statement, by TRUNCATE: the event
-- trigger refuses such triggers when they are created (sql/capture_trigger.sql);
-- with it disabled by a superuser, capture() still refuses to run
RESET ROLE;
ALTER EVENT TRIGGER outbox_ddl_command_end DISABLE;
SET ROLE outbox_plain;
CREATE TRIGGER x BEFORE INSERT ON h FOR EACH ROW EXECUTE FUNCTION outbox.capture();
INSERT INTO h VALUES (2, 'b');
DROP TRIGGER x ON h;
CREATE TRIGGER x AFTER DELETE ON h FOR EACH ROW EXECUTE FUNCTION outbox.capture();
DELETE FROM h;
DROP TRIGGER x ON h;
CREATE TRIGGER x AFTER INSERT ON h FOR EACH STATEMENT EXECUTE FUNCTION outbox.capture();
INSERT INTO h VALUES (3, 'c');
DROP TRIGGER x ON h;
CREATE TRIGGER x AFTER TRUNCATE ON h EXECUTE FUNCTION outbox.capture();
TRUNCATE h;
DROP TRIGGER x ON h;
RESET ROLE;
ALTER EVENT TRIGGER outbox_ddl_command_end ENABLE ALWAYS;
SET ROLE outbox_plain;
-- the configuration trigger: per row, or per statement (which would
-- invalidate every backend's caches at each statement)
CREATE TABLE c (relid oid, destination text);
CREATE TRIGGER x AFTER INSERT ON c FOR EACH ROW
    EXECUTE FUNCTION outbox.publish_config_changed();
INSERT INTO c VALUES ('pg_class'::regclass, '/t');
DROP TRIGGER x ON c;
CREATE TRIGGER x AFTER INSERT ON c FOR EACH STATEMENT
    EXECUTE FUNCTION outbox.publish_config_changed();
INSERT INTO c VALUES ('pg_class'::regclass, '/t');
DROP TRIGGER x ON c;
CREATE TRIGGER x AFTER TRUNCATE ON c
    EXECUTE FUNCTION outbox.publish_config_changed();
TRUNCATE c;
DROP TRIGGER x ON c;
CREATE TABLE d (x int);
CREATE TRIGGER x AFTER INSERT ON d FOR EACH ROW
    EXECUTE FUNCTION outbox.publish_config_changed();
INSERT INTO d VALUES (1);
DROP TRIGGER x ON d;
-- called directly
SELECT outbox.capture();
RESET search_path;
RESET ROLE;
-- nothing of it reached the outbox
SELECT count(*) FROM outbox.published;

-- A published table: a second trigger running outbox.capture() would send
-- each row twice, and a deferred one would send after unpublish().  As
-- above, the event trigger refuses to create them; capture() refuses to
-- run them all the same.
CREATE TABLE pub (id int PRIMARY KEY, v text);
SELECT outbox.publish('pub', '/topic/pub');
ALTER EVENT TRIGGER outbox_ddl_command_end DISABLE;
CREATE TRIGGER again AFTER INSERT ON pub FOR EACH ROW EXECUTE FUNCTION outbox.capture();
INSERT INTO pub VALUES (1, 'a');
DROP TRIGGER again ON pub;
CREATE CONSTRAINT TRIGGER outbox_capture_later AFTER INSERT ON pub
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION outbox.capture();
INSERT INTO pub VALUES (2, 'b');
DROP TRIGGER outbox_capture_later ON pub;
ALTER EVENT TRIGGER outbox_ddl_command_end ENABLE ALWAYS;
INSERT INTO pub VALUES (3, 'c');
SELECT destination, body FROM outbox.published;
TRUNCATE outbox.published;
-- a configuration forged past its guard (a superuser disabling it) is
-- checked as publish() checks it: a serializer of other types would be
-- called with the wrong arguments
ALTER TABLE outbox.publish_config DISABLE TRIGGER publish_config_guard;
CREATE FUNCTION wrong_result(r pub) RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION wrong_argument(r int) RETURNS jsonb LANGUAGE sql AS 'SELECT $1::text::jsonb';
UPDATE outbox.publish_config SET serializer = 'public.wrong_result' WHERE relid = 'pub'::regclass;
INSERT INTO pub VALUES (4, 'd');
UPDATE outbox.publish_config SET serializer = 'public.wrong_argument' WHERE relid = 'pub'::regclass;
INSERT INTO pub VALUES (4, 'd');
UPDATE outbox.publish_config SET serializer = NULL WHERE relid = 'pub'::regclass;
-- and so is its destination, with the version suffix: every row fails, and
-- a second configuration that could be sent writes nothing either
SELECT outbox.publish('pub', '/topic/pub', 'v2');
UPDATE outbox.publish_config SET destination = E'/topic/line\nbreak'
 WHERE relid = 'pub'::regclass AND version IS NULL;
INSERT INTO pub VALUES (4, 'd');
INSERT INTO pub VALUES (4, 'd'), (5, 'e');
UPDATE outbox.publish_config SET destination = '/topic/pub'
 WHERE relid = 'pub'::regclass AND version IS NULL;
UPDATE outbox.publish_config SET destination = repeat('d', 253)
 WHERE relid = 'pub'::regclass AND version = 'v2';
INSERT INTO pub VALUES (4, 'd');
UPDATE outbox.publish_config SET destination = '/topic/pub', version = ''
 WHERE relid = 'pub'::regclass AND version = 'v2';
INSERT INTO pub VALUES (4, 'd');
SELECT count(*) FROM outbox.published;
DELETE FROM outbox.publish_config WHERE relid = 'pub'::regclass AND version = '';
ALTER TABLE outbox.publish_config ENABLE ALWAYS TRIGGER publish_config_guard;
DROP FUNCTION wrong_result(pub), wrong_argument(int);
INSERT INTO pub VALUES (4, 'd');
SELECT destination, body FROM outbox.published;
TRUNCATE outbox.published;

--
-- 2. What cannot be sent is refused on UPDATE as on INSERT.
--
INSERT INTO outbox.published (destination, body, headers)
VALUES ('/topic/u', '{"n": 1}', '{"x-tenant": "acme"}');
UPDATE outbox.published SET headers = '[]';
UPDATE outbox.published SET headers = '[{"x": "y"}]';
UPDATE outbox.published SET headers = '"h"';
UPDATE outbox.published SET headers = headers || '{"k": null}';
UPDATE outbox.published SET headers = headers || '{"k": {"n": 1}}';
UPDATE outbox.published SET headers = headers || '{"k": [1]}';
UPDATE outbox.published SET headers = headers || '{"destination": "/elsewhere"}';
UPDATE outbox.published SET headers = headers || '{"": "v"}';
UPDATE outbox.published SET destination = '';
UPDATE outbox.published SET destination = E'/topic/a\nb';
UPDATE outbox.published SET destination = repeat('d', 256);
UPDATE outbox.published SET version = E'v\n1';
\set VERBOSITY terse
UPDATE outbox.published SET body = NULL;
UPDATE outbox.published SET headers = NULL;
\set VERBOSITY default
-- what can be sent is taken; the generated headers follow the row and win
UPDATE outbox.published
   SET destination = '/topic/u2',
       headers = headers || '{"x-tenant": "globex", "dop-msg-id": "forged", "dop-msg-destination": "/x"}';
SELECT destination, headers->>'x-tenant' AS tenant,
       outbox.message_headers(p)->>'dop-msg-id' = id::text AS msg_id_is_id,
       outbox.message_headers(p)->>'dop-msg-destination' AS msg_destination,
       outbox.message_headers(p) ? 'dop-msg-type'
           AND outbox.message_headers(p) ? 'dop-correlation-id' AS has_builtin,
       headers ?| ARRAY['dop-msg-id', 'dop-msg-destination'] AS forged_stored
  FROM outbox.published p;
-- the publisher's own updates touch no message column and are not checked
UPDATE outbox.published SET status = 'failed', last_error = 'gave up', retry = 3;
SELECT status, retry, last_error FROM outbox.published;
TRUNCATE outbox.published;
-- session_replication_role = replica skips the triggers, as it does for
-- every trigger of PostgreSQL: such a row is failed alone by the publisher,
-- and its bookkeeping can still be updated
SET session_replication_role = replica;
INSERT INTO outbox.published (destination, body, headers, expires_at)
VALUES ('/topic/r', '{}', '[1]', now() + interval '1 day');
RESET session_replication_role;
UPDATE outbox.published SET status = 'failed', last_error = 'headers are not an object';
SELECT outbox.redrive();
SELECT destination, headers, status FROM outbox.published;
TRUNCATE outbox.published;

--
-- 3. Ids: only version 7 UUIDs, which the publisher's scans and retention
-- reach in order.
--
INSERT INTO outbox.published (id, destination, body)
VALUES ('00000000-0000-0000-0000-000000000000', '/topic/i', '{}');
INSERT INTO outbox.published (id, destination, body)
VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '/topic/i', '{}');
INSERT INTO outbox.published (id, destination, body)
VALUES ('ffffffff-ffff-7fff-bfff-ffffffffffff', '/topic/i', '{}');
INSERT INTO outbox.published (id, destination, body)
VALUES ('018f0000-0000-7000-0000-000000000000', '/topic/i', '{}');
INSERT INTO outbox.published (id, destination, body)
VALUES (outbox.uuid_generate_v7(), '/topic/i', '{}');
INSERT INTO outbox.published (id, destination, body)
VALUES ('018f0000-0000-7000-8000-000000000000', '/topic/i', '{}');
UPDATE outbox.published SET id = '00000000-0000-0000-0000-000000000000';
UPDATE outbox.published SET id = '018f0000-0000-4000-8000-000000000000';
SELECT count(*) FROM outbox.published;
TRUNCATE outbox.published;

--
-- 4. A message larger than outbox.max_message_size is refused where it is
-- written, with the limit named.
--
SHOW outbox.max_message_size;
SET outbox.max_message_size = 0;
SET outbox.max_message_size = '1GB';
SET outbox.max_message_size = '2kB';
CREATE TABLE sized (id int PRIMARY KEY, payload text);
SELECT outbox.publish('sized', '/topic/sized');
CREATE FUNCTION try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'accepted';
EXCEPTION WHEN program_limit_exceeded THEN
    RETURN 'refused: ' || SQLERRM;
END $$;
-- a captured row, a hand insert, an update
SELECT try($$INSERT INTO sized VALUES (1, repeat('x', 1000))$$);
SELECT try($$INSERT INTO sized VALUES (2, repeat('x', 2100))$$);
SELECT try($$INSERT INTO outbox.published (destination, body) VALUES ('/queue/t', to_jsonb(repeat('x', 1000)))$$);
SELECT try($$INSERT INTO outbox.published (destination, body) VALUES ('/queue/t', to_jsonb(repeat('x', 2100)))$$);
SELECT try($$UPDATE outbox.published SET body = to_jsonb(repeat('y', 2100))$$);
-- the headers count, as they go on the wire
SELECT try($$INSERT INTO outbox.published (destination, body, headers)
             VALUES ('/queue/t', '{}', jsonb_build_object('x-big', repeat('h', 2100)))$$);
SELECT try($$UPDATE outbox.published SET headers = headers || jsonb_build_object('x-big', repeat('h', 2100))$$);
-- the size is the JSON text's, not the stored jsonb's: a small numeric
-- that prints as thousands of digits
SELECT try($$INSERT INTO outbox.published (destination, body) VALUES ('/queue/t', '[1e3000]')$$);
SELECT count(*) FROM outbox.published;
SELECT count(*) FROM sized;
-- the error in full; the frame's size varies by a byte or two with the
-- generated headers (the sent time drops trailing zeros)
DO $$
BEGIN
    INSERT INTO sized VALUES (3, repeat('z', 3000));
EXCEPTION WHEN program_limit_exceeded THEN
    DECLARE
        detail text;
        hint text;
    BEGIN
        GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
        RAISE NOTICE 'ERROR: %', SQLERRM;
        RAISE NOTICE 'DETAIL: %', regexp_replace(detail, 'would be 3[89][0-9]{2} bytes', 'would be about 3900 bytes');
        RAISE NOTICE 'HINT: %', hint;
    END;
END $$;
RESET outbox.max_message_size;
INSERT INTO sized VALUES (3, repeat('z', 3000));
SELECT length(body->>'payload') AS length FROM outbox.published WHERE body->>'id' = '3';
SELECT outbox.unpublish('sized');
TRUNCATE outbox.published;

--
-- 5. A message expires a day after it was written, not a day after its
-- transaction started; added is when it was written.
--
BEGIN;
SELECT pg_sleep(0.2);
INSERT INTO pub VALUES (10, 'late');
INSERT INTO outbox.published (destination, body) VALUES ('/topic/late', '{}');
SELECT destination, added > now() AS added_when_written,
       expires_at >= now() + interval '1 day 0.2 seconds' AS expires_from_write,
       expires_at - added BETWEEN interval '1 day' AND interval '1 day 1 second' AS keeps_a_day
  FROM outbox.published ORDER BY id;
COMMIT;
TRUNCATE outbox.published;

--
-- 6. Serializers and outbox.generate_headers run as the writer, and what
-- they change in the session does not outlive them: outbox's own lookups
-- cannot be redirected to another schema's objects.
--
CREATE SCHEMA evil;
CREATE FUNCTION evil.oideq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'evil operator ran as %', current_user;
    RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.oideq);
CREATE FUNCTION evil.headers(m outbox.published) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'evil headers ran as %', current_user;
    RETURN '{"x-evil": "yes"}';
END $$;
CREATE FUNCTION public.headers(m outbox.published) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('search_path', 'evil, pg_catalog', false);
    PERFORM set_config('outbox.correlation_id', 'from-headers', false);
    RETURN jsonb_build_object('x-by', current_user::text);
END $$;
CREATE TABLE sp (id int PRIMARY KEY);
GRANT INSERT ON sp TO outbox_plain;
CREATE FUNCTION sp_body(r sp) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('search_path', 'evil, pg_catalog', false);
    RETURN jsonb_build_object('id', r.id, 'by', current_user::text);
END $$;
SELECT outbox.publish('sp', '/topic/sp', serializer => 'sp_body');
-- an unqualified name would be looked up in the writer's search_path
SET outbox.generate_headers = 'headers';
INSERT INTO sp VALUES (1);
SET outbox.generate_headers = 'public.headers';
INSERT INTO sp VALUES (2);
SHOW search_path;
SHOW outbox.correlation_id;
SET search_path = public;
RESET outbox.correlation_id;
-- the writer's own search_path does not redirect outbox's lookups, even
-- when the capture cache is reloaded
SET search_path = evil, pg_catalog;
ALTER TABLE public.sp ADD COLUMN extra int;
INSERT INTO public.sp VALUES (3);
RESET search_path;
SET ROLE outbox_plain;
INSERT INTO sp VALUES (4);
RESET ROLE;
SELECT body->>'id' AS id, body->>'by' AS serializer_ran_as, headers->>'x-by' AS headers_ran_as,
       headers ? 'x-evil' AS evil
  FROM outbox.published ORDER BY id;
RESET outbox.generate_headers;
SELECT outbox.unpublish('sp');
TRUNCATE outbox.published;

-- Work a serializer queues for the commit runs as the writer too.
CREATE TABLE who (ran_as name);
GRANT INSERT ON who TO outbox_plain;
CREATE TABLE later (id int);
GRANT INSERT ON later TO outbox_plain;
CREATE FUNCTION record_who() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.who VALUES (current_user);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER record_who AFTER INSERT ON later
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION record_who();
CREATE FUNCTION sp_later(r sp) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.later VALUES (r.id);
    RETURN jsonb_build_object('id', r.id);
END $$;
SELECT outbox.publish('sp', '/topic/sp', serializer => 'sp_later');
SET ROLE outbox_plain;
INSERT INTO sp VALUES (5);
RESET ROLE;
SELECT ran_as FROM who;
SELECT outbox.unpublish('sp');
SELECT outbox.unpublish('pub');
TRUNCATE outbox.published;

DROP SCHEMA evil CASCADE;
DROP SCHEMA plain CASCADE;
DROP TABLE sp, who, later, pub, sized CASCADE;
DROP FUNCTION try(text), record_who(), public.headers(outbox.published);
DROP ROLE outbox_plain;
