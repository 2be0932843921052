--
-- DDL and direct writes cannot leave a publication that silently stops
-- capturing, and the checks look only at what a command touched.
--
CREATE VIEW ddl_messages AS
SELECT destination, body FROM outbox.published ORDER BY destination, id;
CREATE TABLE ddl_t (id int PRIMARY KEY, a text, b text);
CREATE FUNCTION ddl_ser(r ddl_t) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT jsonb_build_object('ser', r.id) $$;

-- The stored function names survive pg_dump and pg_upgrade: no reg* type
-- other than regclass and regrole in the extension's tables.
SELECT c.relname, a.attname, a.atttypid::regtype
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind = 'r'
   AND a.attnum > 0 AND NOT a.attisdropped
   AND a.atttypid IN ('regproc'::regtype, 'regprocedure'::regtype,
					  'regoper'::regtype, 'regoperator'::regtype,
					  'regconfig'::regtype, 'regdictionary'::regtype,
					  'regnamespace'::regtype, 'regcollation'::regtype)
 ORDER BY 1, 2;
-- pg_dump dumps the rows of every table and sequence of the extension
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind IN ('r', 'S')
   AND c.oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'outbox')::oid[]);
SELECT outbox.publish('ddl_t', '/topic/ser', serializer => 'ddl_ser');
SELECT destination, serializer, pg_typeof(serializer) FROM outbox.publish_config
 WHERE relid = 'ddl_t'::regclass;
SELECT outbox.unpublish('ddl_t');

--
-- The capture trigger cannot be switched off, replaced or hijacked.
--
SELECT outbox.publish('ddl_t', '/topic/t', fields => ARRAY['a']);
ALTER TABLE ddl_t DISABLE TRIGGER outbox_capture;
ALTER TABLE ddl_t DISABLE TRIGGER ALL;
ALTER TABLE ddl_t DISABLE TRIGGER USER;
ALTER TABLE ddl_t ENABLE REPLICA TRIGGER outbox_capture;
-- firing always (in replica sessions too) loses nothing
ALTER TABLE ddl_t ENABLE ALWAYS TRIGGER outbox_capture;
ALTER TABLE ddl_t ENABLE TRIGGER outbox_capture;
CREATE FUNCTION ddl_noop() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN RETURN NULL; END $$;
CREATE OR REPLACE TRIGGER outbox_capture AFTER INSERT OR UPDATE ON ddl_t
	FOR EACH ROW EXECUTE FUNCTION ddl_noop();
CREATE OR REPLACE TRIGGER outbox_capture AFTER INSERT ON ddl_t
	FOR EACH ROW EXECUTE FUNCTION outbox.capture();
CREATE OR REPLACE TRIGGER outbox_capture AFTER INSERT OR UPDATE ON ddl_t
	FOR EACH ROW WHEN (false) EXECUTE FUNCTION outbox.capture();
CREATE OR REPLACE TRIGGER outbox_capture AFTER INSERT OR UPDATE OF b ON ddl_t
	FOR EACH ROW EXECUTE FUNCTION outbox.capture();
ALTER TRIGGER outbox_capture ON ddl_t RENAME TO ddl_other;
-- (DROP TRIGGER itself unpublishes the table: sql/capture_trigger.sql)
-- an unlogged table would lose rows whose messages stay
ALTER TABLE ddl_t SET UNLOGGED;
SELECT relpersistence FROM pg_class WHERE oid = 'ddl_t'::regclass;
SELECT tgenabled, tgfoid::regproc FROM pg_trigger WHERE tgrelid = 'ddl_t'::regclass;
INSERT INTO ddl_t VALUES (1, 'one', 'x');
SELECT * FROM ddl_messages;
TRUNCATE outbox.published;
SELECT outbox.unpublish('ddl_t');

-- a user's own trigger named outbox_capture: publish() refuses the table,
-- unpublish() leaves the trigger alone
CREATE TRIGGER outbox_capture AFTER INSERT ON ddl_t
	FOR EACH ROW EXECUTE FUNCTION ddl_noop();
SELECT outbox.publish('ddl_t', '/topic/t');
SELECT count(*) FROM outbox.publish_config WHERE relid = 'ddl_t'::regclass;
SELECT outbox.unpublish('ddl_t');
SELECT tgname, tgfoid::regproc FROM pg_trigger WHERE tgrelid = 'ddl_t'::regclass;
DROP TRIGGER outbox_capture ON ddl_t;

--
-- Every command that drops or renames a published column is refused.
--
-- typed tables, through their type
CREATE TYPE ddl_ty AS (id int, a text, b text);
CREATE TABLE ddl_typed OF ddl_ty (PRIMARY KEY (id));
SELECT outbox.publish('ddl_typed', '/topic/typed', fields => ARRAY['b']);
ALTER TYPE ddl_ty DROP ATTRIBUTE b CASCADE;
ALTER TYPE ddl_ty RENAME ATTRIBUTE b TO c CASCADE;
ALTER TYPE ddl_ty DROP ATTRIBUTE a CASCADE;
SELECT attname FROM pg_attribute WHERE attrelid = 'ddl_typed'::regclass
   AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
-- inheritance: through the parent
CREATE TABLE ddl_parent (id int, a text, b text);
CREATE TABLE ddl_child (PRIMARY KEY (id)) INHERITS (ddl_parent);
SELECT outbox.publish('ddl_child', '/topic/child', fields => ARRAY['b']);
ALTER TABLE ddl_parent DROP COLUMN b;
ALTER TABLE ddl_parent RENAME COLUMN b TO c;
ALTER TABLE ddl_parent RENAME COLUMN a TO c;
-- a type, domain or collation dropped with CASCADE takes its columns
CREATE TYPE ddl_enum AS ENUM ('x');
CREATE DOMAIN ddl_dom AS text;
CREATE COLLATION ddl_coll (locale = 'C');
CREATE TABLE ddl_cols (id int PRIMARY KEY, e ddl_enum, d ddl_dom,
					   c text COLLATE ddl_coll);
SELECT outbox.publish('ddl_cols', '/topic/cols', fields => ARRAY['e', 'd', 'c']);
DROP TYPE ddl_enum CASCADE;
DROP DOMAIN ddl_dom CASCADE;
DROP COLLATION ddl_coll CASCADE;
SELECT outbox.unpublish('ddl_cols');
DROP TABLE ddl_cols;
DROP TYPE ddl_enum;
DROP DOMAIN ddl_dom;
DROP COLLATION ddl_coll;

--
-- The serializer can be neither dropped nor renamed nor moved; its table can.
--
CREATE SCHEMA ddl_fn;
CREATE FUNCTION ddl_fn.ser(r ddl_t) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT jsonb_build_object('moved', r.id) $$;
SELECT outbox.publish('ddl_t', '/topic/ser', serializer => 'ddl_fn.ser');
ALTER FUNCTION ddl_fn.ser(ddl_t) RENAME TO ser2;
CREATE SCHEMA ddl_fn2;
ALTER FUNCTION ddl_fn.ser(ddl_t) SET SCHEMA ddl_fn2;
ALTER SCHEMA ddl_fn RENAME TO ddl_fn3;
DROP FUNCTION ddl_fn.ser(ddl_t);
DROP SCHEMA ddl_fn CASCADE;
-- other functions of the same name or the same schema may change
CREATE FUNCTION ddl_fn.ser(r ddl_typed) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT '{}'::jsonb $$;
ALTER FUNCTION ddl_fn.ser(ddl_typed) RENAME TO ser_typed;
DROP FUNCTION ddl_fn.ser_typed(ddl_typed);
-- the table may be renamed and moved: the serializer is found by its name
-- and the table's row type
CREATE SCHEMA ddl_moved;
ALTER TABLE ddl_t RENAME TO ddl_t2;
ALTER TABLE ddl_t2 SET SCHEMA ddl_moved;
INSERT INTO ddl_moved.ddl_t2 VALUES (2, 'two', 'y');
SELECT * FROM ddl_messages;
TRUNCATE outbox.published;
ALTER TABLE ddl_moved.ddl_t2 SET SCHEMA public;
ALTER TABLE ddl_t2 RENAME TO ddl_t;
DROP SCHEMA ddl_moved;
-- DROP OWNED of the serializer's owner
CREATE ROLE ddl_owner;
ALTER FUNCTION ddl_fn.ser(ddl_t) OWNER TO ddl_owner;
DROP OWNED BY ddl_owner;
ALTER FUNCTION ddl_fn.ser(ddl_t) OWNER TO CURRENT_USER;
DROP ROLE ddl_owner;
SELECT outbox.unpublish('ddl_t');
ALTER FUNCTION ddl_fn.ser(ddl_t) RENAME TO ser2;
DROP SCHEMA ddl_fn CASCADE;
DROP SCHEMA ddl_fn2;

--
-- A subscription's callback can be neither dropped nor renamed nor moved.
--
CREATE SCHEMA ddl_cb;
CREATE FUNCTION ddl_cb.cb(p outbox.payload) RETURNS boolean LANGUAGE sql
	AS $$ SELECT true $$;
SET client_min_messages = error;
SELECT outbox.subscribe('ddl_cb.cb', '/queue/ddl_q');
RESET client_min_messages;
SELECT queue_name, callback, pg_typeof(callback) FROM outbox.subscription
 WHERE queue_name = 'ddl_q';
ALTER FUNCTION ddl_cb.cb(outbox.payload) RENAME TO cb2;
ALTER SCHEMA ddl_cb RENAME TO ddl_cb2;
DROP FUNCTION ddl_cb.cb(outbox.payload);
SELECT outbox.unsubscribe('ddl_q');
DROP SCHEMA ddl_cb CASCADE;

--
-- Checks look only at what the command touched: a broken publication of
-- one table (here made with the event triggers off) blocks no one else.
--
CREATE TABLE ddl_broken (id int PRIMARY KEY, a text);
SELECT outbox.publish('ddl_broken', '/topic/broken', fields => ARRAY['a']);
SET client_min_messages = warning;
DO $$
DECLARE
	e name;
BEGIN
	FOR e IN SELECT evtname FROM pg_event_trigger LOOP
		EXECUTE format('ALTER EVENT TRIGGER %I DISABLE', e);
	END LOOP;
END $$;
ALTER TABLE ddl_broken DROP COLUMN a;
DO $$
DECLARE
	e name;
BEGIN
	FOR e IN SELECT evtname FROM pg_event_trigger LOOP
		EXECUTE format('ALTER EVENT TRIGGER %I ENABLE ALWAYS', e);
	END LOOP;
END $$;
RESET client_min_messages;
CREATE ROLE ddl_bob;
GRANT CREATE ON SCHEMA public TO ddl_bob;
SET ROLE ddl_bob;
CREATE TABLE bob_t (id int);
ALTER TABLE bob_t ADD COLUMN x int;
ALTER TABLE bob_t DROP COLUMN x;
ALTER TABLE bob_t RENAME TO bob_t2;
DROP TABLE bob_t2;
RESET ROLE;
-- the broken table's own DDL is refused until it is unpublished
ALTER TABLE ddl_broken ADD COLUMN b text;
SELECT outbox.unpublish('ddl_broken');
ALTER TABLE ddl_broken ADD COLUMN b text;
DROP TABLE ddl_broken;
REVOKE CREATE ON SCHEMA public FROM ddl_bob;
DROP ROLE ddl_bob;

--
-- outbox.publish_config is written by outbox.publish() and unpublish() only;
-- a hand-written row is let in when it is consistent, as pg_restore writes
-- it (before it creates the capture triggers).
--
SELECT outbox.publish('ddl_t', '/topic/guard', fields => ARRAY['a']);
UPDATE outbox.publish_config SET fields = ARRAY['b'] WHERE relid = 'ddl_t'::regclass;
DELETE FROM outbox.publish_config WHERE relid = 'ddl_t'::regclass;
TRUNCATE outbox.publish_config;
SELECT destination, fields FROM outbox.publish_config WHERE relid = 'ddl_t'::regclass;
-- consistent rows: published with the trigger, or waiting for it
INSERT INTO outbox.publish_config (relid, destination, version)
	VALUES ('ddl_t', '/topic/hand', 'v1');
CREATE TABLE ddl_restored (id int PRIMARY KEY, a text);
CREATE FUNCTION ddl_restored_ser(r ddl_restored) RETURNS json LANGUAGE sql
	AS $$ SELECT json_build_object('restored', r.id) $$;
INSERT INTO outbox.publish_config (relid, destination, serializer)
	VALUES ('ddl_restored', '/topic/restored', 'public.ddl_restored_ser');
-- until the trigger comes (pg_restore's post-data section), the table may
-- be altered
ALTER TABLE ddl_restored ADD CONSTRAINT ddl_restored_a_key UNIQUE (a);
CREATE TRIGGER outbox_capture AFTER INSERT OR UPDATE ON ddl_restored
	FOR EACH ROW EXECUTE FUNCTION outbox.capture();
INSERT INTO ddl_t VALUES (3, 'three', 'z');
INSERT INTO ddl_restored VALUES (1, 'r');
SELECT * FROM ddl_messages;
TRUNCATE outbox.published;
-- inconsistent rows are refused
INSERT INTO outbox.publish_config (relid, destination, fields)
	VALUES ('ddl_t', '/topic/bad', ARRAY['nope']);
INSERT INTO outbox.publish_config (relid, destination, serializer)
	VALUES ('ddl_t', '/topic/bad', 'public.no_such_function');
INSERT INTO outbox.publish_config (relid, destination, serializer)
	VALUES ('ddl_t', '/topic/bad', 'ddl_restored_ser');
INSERT INTO outbox.publish_config (relid, destination, serializer)
	VALUES ('ddl_t', '/topic/bad', 'ddl_ser');
INSERT INTO outbox.publish_config (relid, destination)
	VALUES ('ddl_t', E'/topic/\n');
INSERT INTO outbox.publish_config (relid, destination)
	VALUES ('ddl_view', '/topic/bad');
CREATE VIEW ddl_view AS SELECT * FROM ddl_t;
INSERT INTO outbox.publish_config (relid, destination)
	VALUES ('ddl_view', '/topic/bad');
CREATE UNLOGGED TABLE ddl_unlogged (id int);
INSERT INTO outbox.publish_config (relid, destination)
	VALUES ('ddl_unlogged', '/topic/bad');
CREATE TEMP TABLE ddl_temp (id int);
INSERT INTO outbox.publish_config (relid, destination)
	VALUES ('ddl_temp', '/topic/bad');
CREATE TABLE ddl_foreign_trigger (id int);
CREATE TRIGGER outbox_capture AFTER INSERT ON ddl_foreign_trigger
	FOR EACH ROW EXECUTE FUNCTION ddl_noop();
INSERT INTO outbox.publish_config (relid, destination)
	VALUES ('ddl_foreign_trigger', '/topic/bad');
SELECT relid, destination, version, fields, serializer FROM outbox.publish_config
 WHERE relid IN ('ddl_t'::regclass, 'ddl_restored'::regclass) ORDER BY 1, 2;
-- A replica session writes rows without messages, as PostgreSQL skips
-- ordinary triggers there; it is still refused what would break a
-- publication.
SET session_replication_role = replica;
INSERT INTO ddl_t VALUES (4, 'bulk', 'load');
SELECT count(*) FROM outbox.published;
DELETE FROM outbox.publish_config WHERE relid = 'ddl_t'::regclass;
ALTER TABLE ddl_t DISABLE TRIGGER outbox_capture;
ALTER TABLE ddl_t DROP COLUMN a CASCADE;
RESET session_replication_role;
SELECT outbox.unpublish('ddl_t');
SELECT outbox.unpublish('ddl_restored');

DROP VIEW ddl_view;
DROP VIEW ddl_messages;
DROP TABLE ddl_restored, ddl_typed, ddl_child, ddl_parent, ddl_unlogged,
	ddl_temp, ddl_foreign_trigger CASCADE;
DROP TYPE ddl_ty;
DROP FUNCTION ddl_noop();

-- DROP EXTENSION is not in the way of itself, with a table still published
SELECT outbox.publish('ddl_t', '/topic/t', fields => ARRAY['a']);
SET client_min_messages = warning;
DROP EXTENSION outbox CASCADE;
RESET client_min_messages;
CREATE EXTENSION outbox;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'ddl_t'::regclass;
DROP TABLE ddl_t CASCADE;
