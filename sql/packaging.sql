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
		-- one that takes a type of the extension would keep it from dropping
		EXECUTE format('DROP FUNCTION pg_temp.%I(%s)', f.proname, f.args);
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
-- updated to the catalog of a fresh one: its objects, columns, defaults,
-- constraints, indexes, triggers, policies, event triggers, functions,
-- comments, privileges and configuration dumps, and the schema's initial
-- privileges (pg_dump writes the schema's grants and revokes against
-- them: without them a REVOKE USAGE ON SCHEMA outbox FROM PUBLIC is lost
-- by a dump and restore, CREATE EXTENSION granting it again).
CREATE FUNCTION pg_temp.pkg_catalog() RETURNS SETOF text LANGUAGE sql AS $$
WITH ext AS (SELECT * FROM pg_extension WHERE extname = 'outbox'),
	 nsp AS (SELECT * FROM pg_namespace WHERE nspname = 'outbox'),
	 rel AS (SELECT c.* FROM pg_class c, nsp WHERE c.relnamespace = nsp.oid),
	 fn AS (SELECT p.* FROM pg_proc p, nsp WHERE p.pronamespace = nsp.oid)
SELECT ROW('ext', e.extname, e.extversion, e.extnamespace::regnamespace,
		   e.extrelocatable, e.extcondition,
		   ARRAY(SELECT c::regclass::text FROM unnest(e.extconfig) c ORDER BY 1))::text
  FROM ext e
UNION ALL
SELECT ROW('member', pg_describe_object(d.classid, d.objid, d.objsubid))::text
  FROM pg_depend d, ext
 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid
   AND d.deptype = 'e'
UNION ALL
SELECT ROW('depends', pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid),
		   d.deptype)::text
  FROM pg_depend d, ext
 WHERE d.classid = 'pg_extension'::regclass AND d.objid = ext.oid
UNION ALL
SELECT ROW('schema', n.nspname, n.nspowner::regrole, n.nspacl)::text FROM nsp n
UNION ALL
SELECT ROW('initprivs', pg_describe_object(i.classoid, i.objoid, i.objsubid),
		   i.privtype, i.initprivs)::text
  FROM pg_init_privs i
 WHERE (i.classoid = 'pg_namespace'::regclass AND i.objoid IN (SELECT oid FROM nsp))
	OR (i.classoid = 'pg_class'::regclass AND i.objoid IN (SELECT oid FROM rel))
	OR (i.classoid = 'pg_proc'::regclass AND i.objoid IN (SELECT oid FROM fn))
UNION ALL
SELECT ROW('relation', r.relname, r.relkind, r.relacl, r.relrowsecurity,
		   r.reloptions, r.relpersistence)::text
  FROM rel r
UNION ALL
SELECT ROW('column', a.attrelid::regclass, a.attnum, a.attname,
		   format_type(a.atttypid, a.atttypmod), a.attnotnull,
		   pg_get_expr(d.adbin, d.adrelid), a.attacl)::text
  FROM pg_attribute a
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid IN (SELECT oid FROM rel) AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT ROW('constraint', c.conrelid::regclass, c.contypid::regtype, c.conname,
		   pg_get_constraintdef(c.oid))::text
  FROM pg_constraint c, nsp WHERE c.connamespace = nsp.oid
UNION ALL
SELECT ROW('index', pg_get_indexdef(i.indexrelid))::text
  FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT ROW('trigger', t.tgenabled, pg_get_triggerdef(t.oid))::text
  FROM pg_trigger t WHERE t.tgrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT ROW('policy', pl.polrelid::regclass, pl.polname, pl.polcmd,
		   pl.polroles::regrole[], pg_get_expr(pl.polqual, pl.polrelid))::text
  FROM pg_policy pl WHERE pl.polrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT ROW('view', v.oid::regclass, pg_get_viewdef(v.oid))::text
  FROM rel v WHERE v.relkind = 'v'
UNION ALL
SELECT ROW('sequence', s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart,
		   s.seqincrement, s.seqcycle)::text
  FROM pg_sequence s WHERE s.seqrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT ROW('function', f.oid::regprocedure, pg_get_function_arguments(f.oid),
		   pg_get_function_result(f.oid), f.prokind, f.prosecdef, f.proconfig,
		   f.provolatile, f.proisstrict, f.proparallel, f.prosrc, f.probin,
		   f.proacl)::text
  FROM fn f
UNION ALL
SELECT ROW('type', t.oid::regtype, t.typtype, t.typacl,
		   ARRAY(SELECT e.enumlabel::text FROM pg_enum e
				  WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder))::text
  FROM pg_type t, nsp WHERE t.typnamespace = nsp.oid
UNION ALL
SELECT ROW('event trigger', e.evtname, e.evtevent, e.evtenabled,
		   e.evtfoid::regprocedure, e.evttags)::text
  FROM pg_event_trigger e
UNION ALL
SELECT ROW('comment', pg_describe_object(d.classoid, d.objoid, d.objsubid),
		   d.description)::text
  FROM pg_description d
 WHERE (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT oid FROM rel))
	OR (d.classoid = 'pg_proc'::regclass AND d.objoid IN (SELECT oid FROM fn))
$$;
DROP EXTENSION outbox;
CREATE EXTENSION outbox;
CREATE TEMP TABLE pkg_fresh_catalog AS SELECT * FROM pg_temp.pkg_catalog() c;
DROP EXTENSION outbox;
CREATE EXTENSION outbox VERSION '1.0';
UPDATE pg_depend SET refobjid = 'public'::regnamespace
 WHERE classid = 'pg_extension'::regclass
   AND objid = (SELECT oid FROM pg_extension WHERE extname = 'outbox')
   AND refclassid = 'pg_namespace'::regclass AND deptype = 'n';
UPDATE pg_extension SET extnamespace = 'public'::regnamespace WHERE extname = 'outbox';
ALTER EXTENSION outbox ADD SCHEMA outbox;
ALTER EXTENSION outbox UPDATE;
SELECT count(*) > 200 AS described FROM pkg_fresh_catalog;
-- what only the fresh one has, and what only the updated one has
TABLE pkg_fresh_catalog EXCEPT ALL SELECT * FROM pg_temp.pkg_catalog();
SELECT * FROM pg_temp.pkg_catalog() EXCEPT ALL TABLE pkg_fresh_catalog;

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
