--
-- DROP TRIGGER of the capture trigger is unpublishing the table (as
-- pg_restore --clean does it, before dropping the serializer and the
-- table), for a role that may unpublish; the trigger lost any other way is
-- refused.
--
CREATE TABLE atk_t (id int PRIMARY KEY, a text);
CREATE FUNCTION atk_ser(r atk_t) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT jsonb_build_object('ser', r.id) $$;
SELECT outbox.publish('atk_t', '/topic/atk', fields => ARRAY['a']);
SELECT outbox.publish('atk_t', '/topic/atk.ser', serializer => 'atk_ser');
DROP TRIGGER outbox_capture ON atk_t;
SELECT count(*) FROM outbox.publish_config WHERE relid = 'atk_t'::regclass;
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'atk_t'::regclass;
-- nothing holds the serializer any more, and the table is not published
DROP FUNCTION atk_ser(atk_t);
INSERT INTO atk_t VALUES (1, 'one');
SELECT count(*) FROM outbox.published;
-- a user's own trigger of that name on a table that is not published
CREATE FUNCTION atk_noop() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER outbox_capture AFTER INSERT ON atk_t
	FOR EACH ROW EXECUTE FUNCTION atk_noop();
DROP TRIGGER outbox_capture ON atk_t;

-- a table owner who may not unpublish may not drop the trigger either
CREATE ROLE atk_owner;
GRANT CREATE ON SCHEMA public TO atk_owner;
GRANT EXECUTE ON FUNCTION outbox.publish(regclass, text, text, text[], text)
	TO atk_owner;
SET ROLE atk_owner;
CREATE TABLE atk_owned (id int PRIMARY KEY, a text);
SELECT outbox.publish('atk_owned', '/topic/owned');
DROP TRIGGER outbox_capture ON atk_owned;
RESET ROLE;
SELECT count(*) FROM outbox.publish_config WHERE relid = 'atk_owned'::regclass;

-- dropped through an extension it depends on: refused
SELECT outbox.publish('atk_t', '/topic/atk');
ALTER TRIGGER outbox_capture ON atk_t DEPENDS ON EXTENSION plpgsql;
BEGIN;
SET LOCAL client_min_messages = warning;
DROP EXTENSION plpgsql CASCADE;
ROLLBACK;
SELECT count(*) FROM outbox.publish_config WHERE relid = 'atk_t'::regclass;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'atk_t'::regclass;

--
-- A temporary function goes with its session and fires no event trigger:
-- it is never stored as a serializer or a callback, by any route.
--
CREATE FUNCTION atk_refused(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
	RETURN regexp_replace(SQLERRM, 'pg_temp_[0-9]+', 'pg_temp_N', 'g');
END $$;
CREATE TABLE atk_tmp (id int PRIMARY KEY);
CREATE FUNCTION pg_temp.atk_tmp_ser(r atk_tmp) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION pg_temp.atk_tmp_cb(p outbox.payload) RETURNS boolean
	LANGUAGE sql AS $$ SELECT true $$;
SELECT atk_refused($$SELECT outbox.publish('atk_tmp', '/topic/tmp',
	serializer => 'pg_temp.atk_tmp_ser')$$);
SELECT atk_refused(format('INSERT INTO outbox.publish_config (relid, destination, serializer) VALUES (%L, %L, %L)',
	'atk_tmp', '/topic/tmp2', quote_ident(nspname) || '.atk_tmp_ser'))
  FROM pg_namespace WHERE oid = pg_my_temp_schema();
SET client_min_messages = error;
SELECT atk_refused($$SELECT outbox.subscribe('pg_temp.atk_tmp_cb', '/queue/atk_tmp')$$);
RESET client_min_messages;
SELECT count(*) FROM outbox.publish_config WHERE relid = 'atk_tmp'::regclass;
SELECT count(*) FROM outbox.subscription WHERE queue_name = 'atk_tmp';
DROP FUNCTION pg_temp.atk_tmp_ser(atk_tmp), pg_temp.atk_tmp_cb(outbox.payload);
DROP TABLE atk_tmp;
DROP FUNCTION atk_refused(text);

--
-- outbox.capture() runs only as the trigger outbox_capture: another would
-- publish every row twice.
--
CREATE TABLE atk_dup (id int PRIMARY KEY, a text);
SELECT outbox.publish('atk_dup', '/topic/dup');
CREATE TRIGGER atk_again AFTER INSERT OR UPDATE ON atk_dup
	FOR EACH ROW EXECUTE FUNCTION outbox.capture();
INSERT INTO atk_dup VALUES (1, 'once');
SELECT destination, body FROM outbox.published WHERE destination = '/topic/dup';
-- on any table, and by CREATE OR REPLACE TRIGGER too
CREATE TRIGGER atk_again AFTER INSERT OR UPDATE ON atk_t
	FOR EACH ROW EXECUTE FUNCTION outbox.capture();
CREATE TRIGGER atk_other AFTER INSERT OR UPDATE ON atk_dup
	FOR EACH ROW EXECUTE FUNCTION atk_noop();
CREATE OR REPLACE TRIGGER atk_other AFTER INSERT OR UPDATE ON atk_dup
	FOR EACH ROW EXECUTE FUNCTION outbox.capture();
SELECT tgname, tgfoid::regproc FROM pg_trigger
 WHERE tgrelid IN ('atk_dup'::regclass, 'atk_t'::regclass) ORDER BY 1;
DROP TABLE atk_dup;

DROP TABLE atk_t, atk_owned;
DROP FUNCTION atk_noop();
REVOKE ALL ON FUNCTION outbox.publish(regclass, text, text, text[], text)
	FROM atk_owner;
REVOKE CREATE ON SCHEMA public FROM atk_owner;
DROP ROLE atk_owner;
