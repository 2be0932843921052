--
-- Packaging: the schema pinned by outbox.control, version 1.0 as shipped,
-- and the library refusing a schema of another version.
--

-- outbox.control names the schema: any other is refused.  (The suites
-- before this one leave published tables behind: their triggers go too.)
SET client_min_messages = warning;
DROP EXTENSION outbox CASCADE;
RESET client_min_messages;
CREATE SCHEMA elsewhere;
CREATE EXTENSION outbox SCHEMA elsewhere;
CREATE EXTENSION outbox SCHEMA public;
CREATE EXTENSION outbox SCHEMA outbox;
SELECT extversion, extnamespace::regnamespace AS schema
  FROM pg_extension WHERE extname = 'outbox';
SELECT count(*) AS objects FROM pg_class WHERE relnamespace = 'elsewhere'::regnamespace;
DROP SCHEMA elsewhere;

-- DROP EXTENSION removes every object; the schema, which CREATE EXTENSION
-- made for it and which holds the extension, stays, empty.
DROP EXTENSION outbox;
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'outbox'::regnamespace) AS relations,
	   (SELECT count(*) FROM pg_proc WHERE pronamespace = 'outbox'::regnamespace) AS functions,
	   (SELECT count(*) FROM pg_type WHERE typnamespace = 'outbox'::regnamespace) AS types,
	   (SELECT count(*) FROM pg_event_trigger) AS event_triggers;
CREATE EXTENSION outbox;

-- A schema outbox that exists already is used, but only if a superuser
-- owns it: its owner could change what the extension puts in it.
DROP EXTENSION outbox;
DROP SCHEMA outbox;
CREATE ROLE pkg_mallory;
CREATE SCHEMA outbox AUTHORIZATION pkg_mallory;
\set SHOW_CONTEXT never
CREATE EXTENSION outbox;
\set SHOW_CONTEXT errors
SELECT count(*) AS objects FROM pg_class WHERE relnamespace = 'outbox'::regnamespace;
ALTER SCHEMA outbox OWNER TO CURRENT_USER;
-- nor if a role that is not a superuser may create objects in it, however
-- it got the right (a grant, the default privileges of the schema's
-- creator): an overload of outbox.send_event(), say, that takes the
-- caller's untyped literals before the real one does, would run as
-- whoever calls it.
GRANT CREATE ON SCHEMA outbox TO pkg_mallory;
\set SHOW_CONTEXT never
CREATE EXTENSION outbox;
REVOKE CREATE ON SCHEMA outbox FROM pkg_mallory;
GRANT CREATE ON SCHEMA outbox TO PUBLIC;
CREATE EXTENSION outbox;
REVOKE CREATE ON SCHEMA outbox FROM PUBLIC;
DROP SCHEMA outbox;
ALTER DEFAULT PRIVILEGES GRANT CREATE ON SCHEMAS TO pkg_mallory;
CREATE EXTENSION outbox;
ALTER DEFAULT PRIVILEGES REVOKE CREATE ON SCHEMAS FROM pkg_mallory;
\set SHOW_CONTEXT errors
-- rolled back whole, the schema CREATE EXTENSION made with it
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'outbox';
-- the same holds when 1.0 is updated
CREATE EXTENSION outbox VERSION '1.0';
GRANT CREATE ON SCHEMA outbox TO pkg_mallory;
\set SHOW_CONTEXT never
ALTER EXTENSION outbox UPDATE;
\set SHOW_CONTEXT errors
SELECT extversion FROM pg_extension WHERE extname = 'outbox';
REVOKE CREATE ON SCHEMA outbox FROM pkg_mallory;
ALTER EXTENSION outbox UPDATE;
DROP EXTENSION outbox;
CREATE EXTENSION outbox;
DROP ROLE pkg_mallory;

-- Every later schema change ships its script.  A fresh install runs
-- outbox--1.0.sql and then the update scripts, as an installation of 1.0
-- does when it is updated, so the two cannot differ by what the scripts
-- do; what can drift is a released script edited in place, which changes
-- fresh installs and leaves updated ones behind.  So outbox--1.0.sql must
-- stay what 1.0 shipped (git show 3721d71:src/outbox--1.0.sql), but for
-- the one packaging change: its CREATE SCHEMA outbox became a comment, the
-- schema being created by CREATE EXTENSION since outbox.control names it.
-- Change the schema in a new section of the latest update script instead
-- (and, once a version is released, add its script's checksum here).
SELECT md5(pg_read_file((SELECT setting FROM pg_config WHERE name = 'SHAREDIR')
						|| '/extension/outbox--1.0.sql')) AS outbox_1_0_md5;

-- Between a package upgrade and ALTER EXTENSION outbox UPDATE the library
-- refuses the older schema, with the hint to update.
CREATE TEMP TABLE pkg_c_functions AS
SELECT p.proname, p.prosrc, p.pronargs,
	   pg_get_function_identity_arguments(p.oid) AS args,
	   pg_get_function_result(p.oid) AS result
  FROM pg_proc p
 WHERE p.pronamespace = 'outbox'::regnamespace
   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype);
DROP EXTENSION outbox;
CREATE EXTENSION outbox VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'outbox';
-- every C function of the library that SQL calls directly, 1.1's new ones
-- included (declared here as 1.1 declares them), refuses before it looks
-- at its arguments; but for the two that read no table
CREATE TEMP TABLE pkg_c_probe (proname name, outcome text);
DO $$
DECLARE
	f			record;
	outcome		text;
BEGIN
	FOR f IN SELECT * FROM pkg_c_functions LOOP
		EXECUTE format('CREATE FUNCTION pg_temp.%I(%s) RETURNS %s AS %L, %L LANGUAGE C',
					   f.proname, f.args, f.result, '$libdir/outbox', f.prosrc);
		BEGIN
			EXECUTE format('SELECT pg_temp.%I(%s)', f.proname,
						   (SELECT string_agg('NULL', ', ')
							  FROM generate_series(1, f.pronargs)));
			outcome := 'runs';
		EXCEPTION WHEN OTHERS THEN
			outcome := SQLERRM;
		END;
		INSERT INTO pkg_c_probe VALUES (f.proname, outcome);
	END LOOP;
END
$$;
SELECT proname, outcome FROM pkg_c_probe ORDER BY proname;
CREATE TABLE pkg_orders (id int PRIMARY KEY, total numeric);
SELECT outbox.publish('pkg_orders', '/topic/pkg');
-- a published table as 1.0's outbox.publish() left it: a write fails
-- whole, nothing is captured wrongly
INSERT INTO outbox.publish_config (relid, destination) VALUES ('pkg_orders', '/topic/pkg');
CREATE TRIGGER outbox_capture AFTER INSERT OR UPDATE ON pkg_orders
	FOR EACH ROW EXECUTE FUNCTION outbox.capture();
INSERT INTO pkg_orders VALUES (1, 9.99);
SELECT count(*) FROM pkg_orders;
INSERT INTO outbox.published (destination, body, expires_at)
	VALUES ('/topic/hand', '{}', now() + interval '1 day');
SELECT outbox.unpublish('pkg_orders');
SELECT outbox.redrive();
SELECT outbox.send_event('/topic/x', '{}');
SELECT outbox.subscribe('pg_catalog.now', '/topic/x');
SELECT outbox.unsubscribe('q');
-- what reads no table keeps working: the status is where the wait shows
SELECT count(*) >= 0 AS status_readable FROM outbox.status;
SELECT outbox.uuid_generate_v7() IS NOT NULL AS uuid;
-- the update, and everything works again
ALTER EXTENSION outbox UPDATE;
SELECT extversion, extnamespace::regnamespace AS schema
  FROM pg_extension WHERE extname = 'outbox';
INSERT INTO pkg_orders VALUES (2, 19.99);
SELECT destination, body FROM outbox.published WHERE destination = '/topic/pkg';
SELECT outbox.unpublish('pkg_orders');
DELETE FROM outbox.published;
DROP TABLE pkg_orders;

-- An installation of 1.0's own layout (recorded in public, the schema
-- outbox a member, as 1.0's control file and CREATE SCHEMA left it) is
-- updated to the catalog of a fresh one, the schema's initial privileges
-- included: pg_dump writes the schema's grants and revokes against them,
-- and without them a REVOKE USAGE ON SCHEMA outbox FROM PUBLIC is lost by
-- a dump and restore (CREATE EXTENSION grants it again).
DROP EXTENSION outbox;
CREATE EXTENSION outbox;
CREATE TEMP TABLE pkg_fresh_initprivs AS
SELECT privtype, initprivs::text
  FROM pg_init_privs
 WHERE classoid = 'pg_namespace'::regclass AND objoid = 'outbox'::regnamespace;
DROP EXTENSION outbox;
CREATE EXTENSION outbox VERSION '1.0';
UPDATE pg_depend SET refobjid = 'public'::regnamespace
 WHERE classid = 'pg_extension'::regclass
   AND objid = (SELECT oid FROM pg_extension WHERE extname = 'outbox')
   AND refclassid = 'pg_namespace'::regclass AND deptype = 'n';
UPDATE pg_extension SET extnamespace = 'public'::regnamespace WHERE extname = 'outbox';
ALTER EXTENSION outbox ADD SCHEMA outbox;
ALTER EXTENSION outbox UPDATE;
SELECT extversion, extnamespace::regnamespace AS schema
  FROM pg_extension WHERE extname = 'outbox';
SELECT count(*) AS schema_members
  FROM pg_depend
 WHERE classid = 'pg_namespace'::regclass AND objid = 'outbox'::regnamespace
   AND refclassid = 'pg_extension'::regclass;
CREATE TEMP VIEW pkg_initprivs AS
SELECT privtype, initprivs::text
  FROM pg_init_privs
 WHERE classoid = 'pg_namespace'::regclass AND objoid = 'outbox'::regnamespace;
SELECT (SELECT count(*) FROM pkg_fresh_initprivs) AS fresh,
	   (SELECT count(*) FROM (TABLE pkg_fresh_initprivs
							  EXCEPT ALL TABLE pkg_initprivs) d) AS missing,
	   (SELECT count(*) FROM (TABLE pkg_initprivs
							  EXCEPT ALL TABLE pkg_fresh_initprivs) d) AS extra;

-- A serializer or callback of 1.0 in a temporary schema goes with its
-- session.  Stored by name, it would find whatever a later session given
-- the same temporary schema creates under that name, and capture would run
-- it for every writer of the table: it is kept as its number, as one
-- already dropped is.
DROP EXTENSION outbox;
CREATE EXTENSION outbox VERSION '1.0';
CREATE TABLE pkg_temp_ser (id int);
CREATE FUNCTION pg_temp.pkg_ser(pkg_temp_ser) RETURNS jsonb
	LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION pg_temp.pkg_cb(outbox.payload) RETURNS boolean
	LANGUAGE sql AS $$ SELECT true $$;
INSERT INTO outbox.publish_config (relid, destination, serializer)
	VALUES ('pkg_temp_ser', '/topic/pkg_temp', 'pg_temp.pkg_ser(pkg_temp_ser)');
INSERT INTO outbox.subscription (queue_name, callback, destination, run_as)
	VALUES ('pkg_temp_q', 'pg_temp.pkg_cb(outbox.payload)', '/topic/pkg_temp',
			current_user::regrole);
ALTER EXTENSION outbox UPDATE;
SELECT serializer ~ '^[0-9]+$' AS serializer_a_number FROM outbox.publish_config;
SELECT callback ~ '^[0-9]+$' AS callback_a_number FROM outbox.subscription;
DELETE FROM outbox.subscription;
SET client_min_messages = warning;
DROP TABLE pkg_temp_ser CASCADE;
RESET client_min_messages;
DROP FUNCTION pg_temp.pkg_cb(outbox.payload);
