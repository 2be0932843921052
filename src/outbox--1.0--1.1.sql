/* src/outbox--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION outbox UPDATE TO '1.1'" to load this file. \quit

/*
 * From 1.0 as shipped to the schema of 1.1: security and data-safety work
 * (functions stored by name, one inbox per subscribing role, destination
 * patterns, rights granted instead of PUBLIC, event triggers in C, the
 * tables dumped by pg_dump), and the schema pinned by outbox.control.
 * Existing rows are converted, never dropped.
 */

-- The schema.  1.0 was recorded in the first schema of the search_path (or
-- in the one CREATE EXTENSION ... SCHEMA named, where nothing of it went)
-- and created the schema outbox as one of its members; outbox.control now
-- names outbox as the extension's schema, and CREATE EXTENSION creates it.
-- An installation of the old kind is recorded as a new one would be: else
-- \dx names the wrong schema, and its dumps name one that CREATE EXTENSION
-- refuses from now on.  PostgreSQL offers no command for this (SET SCHEMA
-- moves relocatable extensions only), so the catalog rows are changed as
-- AlterExtensionNamespace() changes them.  The schema stops being a member
-- by its membership row alone: ALTER EXTENSION ... DROP SCHEMA would also
-- forget its initial privileges (those 1.0's GRANT gave it), which a fresh
-- installation has and pg_dump writes the schema's grants and revokes
-- against (a REVOKE USAGE from PUBLIC would not survive a restore).
--
-- Since CREATE EXTENSION uses a schema outbox that exists already, where
-- 1.0's CREATE SCHEMA failed, the schema must be a superuser's: its owner
-- could drop, rename or replace what the extension creates in it.  Nor
-- may a role that is not a superuser create objects in it, by a grant or
-- by the default privileges of the schema's creator: an overload of one of
-- the extension's functions that matches a caller's untyped literals
-- better (outbox.send_event(text, text), say) would run as whoever calls
-- it, superusers and the workers included.
DO $$
DECLARE
	ext			pg_catalog.oid;
	nsp			pg_catalog.oid;
	owner		pg_catalog.name;
	creator		pg_catalog.text;
BEGIN
	SELECT r.rolname INTO owner
	  FROM pg_catalog.pg_namespace n
	  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
	 WHERE n.nspname OPERATOR(pg_catalog.=) 'outbox' AND NOT r.rolsuper;
	IF FOUND THEN
		RAISE EXCEPTION 'schema "outbox" must be owned by a superuser, not by role "%"', owner
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'The owner of the schema could drop, rename or replace the objects of extension "outbox".',
				  HINT = 'Drop the schema, or ALTER SCHEMA outbox OWNER TO a superuser, and run the command again.';
	END IF;

	SELECT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
				ELSE pg_catalog.quote_ident(r.rolname) END INTO creator
	  FROM pg_catalog.pg_namespace n
	 CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a
	  LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
	 WHERE n.nspname OPERATOR(pg_catalog.=) 'outbox'
	   AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
	   AND r.rolsuper IS NOT TRUE
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'schema "outbox" must not let % create objects in it', creator
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'Only superusers may create objects in the schema of extension "outbox": another role could put functions there that its callers run instead of the extension''s.',
				  HINT = pg_catalog.format('REVOKE CREATE ON SCHEMA outbox FROM %s, and run the command again.', creator);
	END IF;

	SELECT e.oid, e.extnamespace INTO ext, nsp
	  FROM pg_catalog.pg_extension e
	 WHERE e.extname OPERATOR(pg_catalog.=) 'outbox';
	IF nsp OPERATOR(pg_catalog.<>) 'outbox'::pg_catalog.regnamespace THEN
		DELETE FROM pg_catalog.pg_depend
		 WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
		   AND objid OPERATOR(pg_catalog.=) 'outbox'::pg_catalog.regnamespace
		   AND refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
		   AND refobjid OPERATOR(pg_catalog.=) ext
		   AND deptype OPERATOR(pg_catalog.=) 'e';
		UPDATE pg_catalog.pg_depend
		   SET refobjid = 'outbox'::pg_catalog.regnamespace
		 WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
		   AND objid OPERATOR(pg_catalog.=) ext
		   AND refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
		   AND refobjid OPERATOR(pg_catalog.=) nsp
		   AND deptype OPERATOR(pg_catalog.=) 'n';
		UPDATE pg_catalog.pg_extension
		   SET extnamespace = 'outbox'::pg_catalog.regnamespace
		 WHERE oid OPERATOR(pg_catalog.=) ext;
	END IF;
END
$$;

-- 1.0's DDL check, in PL/pgSQL, compares serializers as OIDs: it goes
-- first, before it fires for the ALTER TABLEs below.  The event triggers
-- in C at the end of this section take its place.
DROP EVENT TRIGGER outbox_check_publish_config;
DROP FUNCTION outbox.check_publish_config();

-- Serializers and callbacks: stored by schema-qualified name instead of
-- regprocedure, which pg_upgrade refuses and pg_dump writes as a name
-- resolved by the restoring session's search_path.  The name is the one
-- outbox_stored_function_name() writes (stored_function.c).  An OID that
-- names no function any more (1.0's DDL check did not fire in replica
-- sessions) is kept as its number, which names nothing either: capture and
-- the consumer then say so, as they did in 1.0.  So is a function in a
-- temporary schema (1.1 refuses those): it goes with its session, and its
-- name would find what a later session given that schema creates.
CREATE FUNCTION outbox.stored_function_name_1_0(function pg_catalog.regprocedure)
RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce((SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname)
				   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
				  WHERE p.oid = function
					AND n.oid <> pg_my_temp_schema()
					AND NOT pg_is_other_temp_schema(n.oid)),
				function::oid::text)
$$;
ALTER TABLE outbox.publish_config
	ALTER COLUMN serializer TYPE text
	USING outbox.stored_function_name_1_0(serializer);
ALTER TABLE outbox.subscription
	ALTER COLUMN callback TYPE text
	USING outbox.stored_function_name_1_0(callback);
DROP FUNCTION outbox.stored_function_name_1_0(pg_catalog.regprocedure);

-- The inbox: one per subscribing role instead of one for all.  A row of
-- 1.0 belongs to the role of the subscription that consumed it (its
-- "subscription" header, outbox-<queue>, names the queue).  A row that
-- names no current subscription (its queue unsubscribed, or inserted by
-- hand to have a message skipped) made every consumer skip its message in
-- 1.0, and still does: it is kept for each role that subscribes now, or
-- with no role (as inserted by hand) if none does.
ALTER TABLE outbox.received DROP CONSTRAINT received_msg_id_key;
ALTER TABLE outbox.received ADD COLUMN run_as regrole;
UPDATE outbox.received r
   SET run_as = s.run_as
  FROM outbox.subscription s
 WHERE r.headers OPERATOR(pg_catalog.->>) 'subscription'
	   OPERATOR(pg_catalog.=) ('outbox-' OPERATOR(pg_catalog.||) s.queue_name);
INSERT INTO outbox.received
	   (run_as, msg_id, headers, body, added, expires_at, retry, status)
SELECT s.run_as, r.msg_id, r.headers, r.body, r.added, r.expires_at,
	   r.retry, r.status
  FROM outbox.received r,
	   (SELECT DISTINCT run_as FROM outbox.subscription) s
 WHERE r.run_as IS NULL;
DELETE FROM outbox.received
 WHERE run_as IS NULL AND EXISTS (SELECT FROM outbox.subscription);
ALTER TABLE outbox.received
	ADD CONSTRAINT received_msg_id_key UNIQUE NULLS NOT DISTINCT (run_as, msg_id);
COMMENT ON TABLE outbox.received IS
'messages consumed by subscriptions, one row per subscribing role and message id';

-- outbox.published: added is when the row was written, not when its
-- transaction began; a changed message is checked as an inserted one.
ALTER TABLE outbox.published ALTER COLUMN added SET DEFAULT clock_timestamp();

CREATE FUNCTION outbox.published_before_update()
RETURNS trigger
AS 'MODULE_PATHNAME', 'outbox_published_before_update'
LANGUAGE C;
-- the publisher's updates set none of these columns
CREATE TRIGGER published_before_update
	BEFORE UPDATE OF id, destination, version, body, headers, added, expires_at
	ON outbox.published
	FOR EACH ROW EXECUTE FUNCTION outbox.published_before_update();

-- Only outbox.publish() and outbox.unpublish() change configurations; a row
-- written by hand (as pg_restore does) must be consistent.  The guard fires
-- in replica sessions too, and so does the invalidation.
CREATE FUNCTION outbox.publish_config_guard()
RETURNS trigger
AS 'MODULE_PATHNAME', 'outbox_publish_config_guard'
LANGUAGE C;
CREATE TRIGGER publish_config_guard
	BEFORE INSERT OR UPDATE OR DELETE ON outbox.publish_config
	FOR EACH ROW EXECUTE FUNCTION outbox.publish_config_guard();
CREATE TRIGGER publish_config_truncate_guard
	BEFORE TRUNCATE ON outbox.publish_config
	FOR EACH STATEMENT EXECUTE FUNCTION outbox.publish_config_guard();
ALTER TABLE outbox.publish_config
	ENABLE ALWAYS TRIGGER publish_config_guard,
	ENABLE ALWAYS TRIGGER publish_config_truncate_guard,
	ENABLE ALWAYS TRIGGER publish_config_changed,
	ENABLE ALWAYS TRIGGER publish_config_truncated;

-- a role sees its own subscriptions, pg_monitor all (as in outbox.status);
-- the extension's owner and the workers own or bypass the policy
ALTER TABLE outbox.subscription ENABLE ROW LEVEL SECURITY;
CREATE POLICY subscription_own ON outbox.subscription FOR SELECT TO PUBLIC
	USING (pg_catalog.pg_has_role(run_as::pg_catalog.oid, 'USAGE')
		   OR pg_catalog.pg_has_role('pg_monitor'::pg_catalog.name, 'USAGE'));

-- Destination patterns: once a role has one for a privilege, it may use
-- only the destinations (and, to subscribe, queue names) that match one.
CREATE TABLE outbox.destination_grant (
	role		regrole NOT NULL,
	privilege	text NOT NULL,
	pattern		text NOT NULL,
	CONSTRAINT destination_grant_pkey PRIMARY KEY (role, privilege, pattern),
	CONSTRAINT destination_grant_privilege
		CHECK (privilege IN ('publish', 'subscribe'))
);
COMMENT ON TABLE outbox.destination_grant IS
'destination patterns ("*" matches any run of characters) that limit what a role may publish to or subscribe to';
SELECT pg_catalog.pg_extension_config_dump('outbox.destination_grant', '');

CREATE FUNCTION outbox.allow_destination(
	role regrole,
	privilege text,
	pattern text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'outbox_allow_destination'
LANGUAGE C;
COMMENT ON FUNCTION outbox.allow_destination(regrole, text, text) IS
'limit a role''s publish or subscribe privilege to destinations matching its patterns, adding this one; superusers and the extension owner only';
REVOKE ALL ON FUNCTION outbox.allow_destination(regrole, text, text) FROM PUBLIC;

CREATE FUNCTION outbox.disallow_destination(
	role regrole,
	privilege text,
	pattern text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'outbox_disallow_destination'
LANGUAGE C;
COMMENT ON FUNCTION outbox.disallow_destination(regrole, text, text) IS
'remove a destination pattern of a role (all of them if NULL); a role left without patterns is no longer limited';
REVOKE ALL ON FUNCTION outbox.disallow_destination(regrole, text, text) FROM PUBLIC;

-- publishing is a right granted with EXECUTE, as subscribing is
REVOKE ALL ON FUNCTION outbox.publish(regclass, text, text, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.unpublish(regclass, text, text) FROM PUBLIC;

-- executable by PUBLIC: it shows each role only what it may see
COMMENT ON FUNCTION outbox.worker_status() IS
'the outbox workers the caller may see: all for superusers and pg_monitor, else its own consumers and its database''s publisher';
-- filtered by outbox.worker_status()
GRANT SELECT ON outbox.status TO PUBLIC;

/*
 * DDL must never leave a configuration that silently stops capturing, nor a
 * subscription without its callback.  Each event trigger looks only at what
 * its command touched: configurations of dropped tables are removed, and so
 * are those of a table whose capture trigger DROP TRIGGER dropped (that is
 * unpublishing it, as pg_restore --clean does, for a role that may), and a
 * command that would leave a published table without a column it names,
 * its serializer or its enabled capture trigger, or an unlogged published
 * table, or a serializer or callback that its stored name no longer finds,
 * is refused.  They fire in replica sessions too.  (Created after the
 * conversions above, so that they do not fire for them.)
 */
CREATE FUNCTION outbox.ddl_command_end()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'outbox_ddl_command_end'
LANGUAGE C;
CREATE FUNCTION outbox.sql_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'outbox_sql_drop'
LANGUAGE C;
CREATE FUNCTION outbox.ddl_command_start()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'outbox_ddl_command_start'
LANGUAGE C;
REVOKE ALL ON FUNCTION outbox.ddl_command_end() FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.sql_drop() FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox.ddl_command_start() FROM PUBLIC;

CREATE EVENT TRIGGER outbox_ddl_command_end ON ddl_command_end
	EXECUTE FUNCTION outbox.ddl_command_end();
CREATE EVENT TRIGGER outbox_sql_drop ON sql_drop
	EXECUTE FUNCTION outbox.sql_drop();
CREATE EVENT TRIGGER outbox_ddl_command_start ON ddl_command_start
	WHEN TAG IN ('ALTER FUNCTION', 'ALTER ROUTINE', 'ALTER SCHEMA',
				 'ALTER EXTENSION')
	EXECUTE FUNCTION outbox.ddl_command_start();
ALTER EVENT TRIGGER outbox_ddl_command_end ENABLE ALWAYS;
ALTER EVENT TRIGGER outbox_sql_drop ENABLE ALWAYS;
ALTER EVENT TRIGGER outbox_ddl_command_start ENABLE ALWAYS;

-- pg_dump dumps the rows of these tables (and the subscription ids'
-- sequence), which otherwise belong to the extension and would be lost.
SELECT pg_catalog.pg_extension_config_dump('outbox.publish_config', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.published', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.received', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.subscription', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.subscription_id_seq', '');

-- Replay: outbox.replay() puts sent messages of a destination back on the
-- wire with their ids (src/replay.c); outbox.replay_log records each
-- replay, for monitoring, and is dumped with the extension's data.
CREATE TABLE outbox.replay_log (
	replayed_at	timestamptz NOT NULL DEFAULT now(),
	replayed_by	name NOT NULL,
	destination	text NOT NULL,
	since		timestamptz NOT NULL,
	until		timestamptz NOT NULL,
	messages	bigint NOT NULL CHECK (messages >= 0)
);
CREATE INDEX replay_log_replayed_at_idx ON outbox.replay_log (replayed_at);
COMMENT ON TABLE outbox.replay_log IS
'one row per outbox.replay(): who replayed which destination''s messages added in [since, until), and how many';
SELECT pg_catalog.pg_extension_config_dump('outbox.replay_log', '');
GRANT SELECT ON outbox.replay_log TO pg_monitor;

CREATE FUNCTION outbox.replay(
	destination text,
	since timestamptz,
	until timestamptz DEFAULT now(),
	max_messages integer DEFAULT 10000)
RETURNS bigint
AS 'MODULE_PATHNAME', 'outbox_replay'
LANGUAGE C;
COMMENT ON FUNCTION outbox.replay(text, timestamptz, timestamptz, integer) IS
'send again, with their ids, the sent messages of a destination added in [since, until); at most max_messages; returns how many';
REVOKE ALL ON FUNCTION outbox.replay(text, timestamptz, timestamptz, integer) FROM PUBLIC;

-- Partitioned tables: a table published on its own cannot be attached as a
-- partition of a published table (src/event_triggers.c checks ALTER TABLE before it
-- runs; outbox_ddl_command_start keeps its own tags).
CREATE EVENT TRIGGER outbox_ddl_command_start_table ON ddl_command_start
	WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION outbox.ddl_command_start();
ALTER EVENT TRIGGER outbox_ddl_command_start_table ENABLE ALWAYS;

-- outbox.check_destination(): whether the queue a destination sends to
-- exists at the broker, to check before publishing (RabbitMQ confirms, and
-- drops, a message no queue takes).  Granted like send_event().
CREATE FUNCTION outbox.check_destination(destination text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'outbox_check_destination_sql'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION outbox.check_destination(text) IS
'whether the broker has the queue of a /queue/ or /amq/queue/ destination';
REVOKE ALL ON FUNCTION outbox.check_destination(text) FROM PUBLIC;

-- ---------------------------------------------------------------------
-- Destinations held apart or paused, and monitoring
-- ---------------------------------------------------------------------

-- Destinations an operator paused: the publisher sends none of their
-- messages (they keep their attempts) until outbox.resume().  A table, so
-- that a pause survives a restart and pg_dump.
CREATE TABLE outbox.destination_pause (
	destination text NOT NULL,
	paused_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	paused_by	name NOT NULL DEFAULT CURRENT_USER,
	CONSTRAINT destination_pause_pkey PRIMARY KEY (destination)
);
COMMENT ON TABLE outbox.destination_pause IS
'destinations whose messages the publisher holds back until outbox.resume()';
SELECT pg_catalog.pg_extension_config_dump('outbox.destination_pause', '');
GRANT SELECT ON outbox.destination_pause TO pg_monitor;

CREATE FUNCTION outbox.pause(destination text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'outbox_pause'
LANGUAGE C STRICT;
COMMENT ON FUNCTION outbox.pause(text) IS
'stop sending the messages of a destination until outbox.resume(); returns false if it was paused already';
REVOKE ALL ON FUNCTION outbox.pause(text) FROM PUBLIC;

CREATE FUNCTION outbox.resume(destination text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'outbox_resume'
LANGUAGE C STRICT;
COMMENT ON FUNCTION outbox.resume(text) IS
'send the messages of a paused destination again; returns false if it was not paused';
REVOKE ALL ON FUNCTION outbox.resume(text) FROM PUBLIC;

-- Counters kept across restarts (and pg_dump): what the workers of this database counted
-- since the row was made, moved here from shared memory by the publisher at
-- most every few seconds (never an UPDATE per message).  outbox.status
-- adds what the running workers counted and have not moved yet.
CREATE TABLE outbox.counter_total (
	kind		text NOT NULL CHECK (kind IN ('publisher', 'consumer')),
	queue		text NOT NULL DEFAULT '',
	sent		bigint NOT NULL DEFAULT 0,
	failed		bigint NOT NULL DEFAULT 0,
	processed	bigint NOT NULL DEFAULT 0,
	dead_lettered bigint NOT NULL DEFAULT 0,
	since		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT counter_total_pkey PRIMARY KEY (kind, queue)
);
COMMENT ON TABLE outbox.counter_total IS
'messages counted by the outbox workers of this database since "since", across restarts';
SELECT pg_catalog.pg_extension_config_dump('outbox.counter_total', '');
GRANT SELECT ON outbox.counter_total TO pg_monitor;

-- The destinations the publisher holds apart: refused by the broker as a
-- whole (a missing exchange, access refused), or sent by another route
-- (/queue/q through /amq/queue/q, q having arguments a SEND lacks).
CREATE FUNCTION outbox.destination_state(
	OUT database name,
	OUT destination text,
	OUT state text,
	OUT route text,
	OUT reason text,
	OUT refusals integer,
	OUT since timestamptz,
	OUT next_retry_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'outbox_destination_state'
LANGUAGE C;
-- it returns rows to superusers and members of pg_monitor only
COMMENT ON FUNCTION outbox.destination_state() IS
'destinations the publishers hold apart or send by another route, with the broker''s reason; superusers and pg_monitor only';

-- worker_status() gains progress, held destinations and the counters not
-- yet moved to outbox.counter_total; outbox.status is built on it again.
DROP VIEW outbox.status;
DROP FUNCTION outbox.worker_status();
CREATE FUNCTION outbox.worker_status(
	OUT pid integer,
	OUT database name,
	OUT kind text,
	OUT state text,
	OUT broker text,
	OUT queue text,
	OUT sent bigint,
	OUT failed bigint,
	OUT processed bigint,
	OUT dead_lettered bigint,
	OUT last_error text,
	OUT last_error_at timestamptz,
	OUT started timestamptz,
	OUT last_sent_at timestamptz,
	OUT last_active_at timestamptz,
	OUT held_destinations integer,
	OUT unsaved_sent bigint,
	OUT unsaved_failed bigint,
	OUT unsaved_processed bigint,
	OUT unsaved_dead_lettered bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'outbox_worker_status'
LANGUAGE C;
-- executable by PUBLIC: it shows each role only what it may see
COMMENT ON FUNCTION outbox.worker_status() IS
'the outbox workers the caller may see: all for superusers and pg_monitor, else its own consumers and its database''s publisher';

-- The workers and the backlog of this database's outbox.  pending counts
-- every scheduled row, due those whose next attempt is now (a row waiting
-- for its retry time is not late), paused destinations left out;
-- oldest_due_age is how long the longest-waiting due row has been due
-- (since its next_attempt_at: a redriven or replayed row is not days late).
-- The last replay shows when, how many, and how many still wait; which
-- destination and who is in outbox.replay_log, for pg_monitor.
-- sent/failed/... count since the worker started, total_* since
-- outbox.counter_total's row began; a total stops at the largest bigint,
-- as the publisher saves it, rather than fail the view.  One scan of the
-- scheduled rows counts the backlog and the replay's pending rows, the
-- paused destinations joined once (a million scheduled rows: about 1 s).
CREATE VIEW outbox.status AS
SELECT w.pid, w.database, w.kind, w.state, w.broker, w.queue,
	   b.pending, b.due, b.oldest_due_age,
	   b.oldest_due_age AS oldest_pending_age,
	   w.held_destinations, b.paused_destinations,
	   w.sent, w.failed, w.processed, w.dead_lettered,
	   LEAST(COALESCE(t.sent, 0)::pg_catalog.numeric OPERATOR(pg_catalog.+) w.unsaved_sent,
			 9223372036854775807)::pg_catalog.int8 AS total_sent,
	   LEAST(COALESCE(t.failed, 0)::pg_catalog.numeric OPERATOR(pg_catalog.+) w.unsaved_failed,
			 9223372036854775807)::pg_catalog.int8 AS total_failed,
	   LEAST(COALESCE(t.processed, 0)::pg_catalog.numeric OPERATOR(pg_catalog.+) w.unsaved_processed,
			 9223372036854775807)::pg_catalog.int8 AS total_processed,
	   LEAST(COALESCE(t.dead_lettered, 0)::pg_catalog.numeric OPERATOR(pg_catalog.+) w.unsaved_dead_lettered,
			 9223372036854775807)::pg_catalog.int8 AS total_dead_lettered,
	   t.since AS totals_since,
	   w.last_sent_at, w.last_active_at,
	   rp.replayed_at AS last_replay_at, rp.messages AS last_replay_messages,
	   CASE WHEN rp.replayed_at IS NOT NULL THEN b.replay_pending END AS last_replay_pending,
	   w.last_error, w.last_error_at, w.started
  FROM outbox.worker_status() w
  LEFT JOIN LATERAL (
		SELECT r.replayed_at, r.messages, r.destination, r.since, r.until
		  FROM outbox.replay_log r
		 ORDER BY r.replayed_at DESC LIMIT 1) rp
	ON w.kind OPERATOR(pg_catalog.=) 'publisher'
   AND w.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
  LEFT JOIN LATERAL (
		SELECT pg_catalog.count(*) AS pending,
			   pg_catalog.count(*) FILTER (WHERE p.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()
					AND dp.destination IS NULL) AS due,
			   pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(p.next_attempt_at)
					FILTER (WHERE p.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()
					AND dp.destination IS NULL) AS oldest_due_age,
			   pg_catalog.count(*) FILTER (WHERE p.destination OPERATOR(pg_catalog.=) rp.destination
					AND p.added OPERATOR(pg_catalog.>=) rp.since
					AND p.added OPERATOR(pg_catalog.<) rp.until) AS replay_pending,
			   (SELECT pg_catalog.count(*) FROM outbox.destination_pause) AS paused_destinations
		  FROM outbox.published p
		  LEFT JOIN outbox.destination_pause dp
			ON dp.destination OPERATOR(pg_catalog.=) p.destination
		 WHERE p.status OPERATOR(pg_catalog.=) 'scheduled') b
	ON w.kind OPERATOR(pg_catalog.=) 'publisher'
   AND w.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
  LEFT JOIN outbox.counter_total t
	ON w.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
   AND t.kind OPERATOR(pg_catalog.=) w.kind
   AND t.queue OPERATOR(pg_catalog.=) COALESCE(w.queue, '');
COMMENT ON VIEW outbox.status IS
'outbox workers: state, broker, progress, backlog, held and paused destinations, counters and last error';
-- filtered by outbox.worker_status()
GRANT SELECT ON outbox.status TO PUBLIC;

-- One row per destination with scheduled messages, held apart by the
-- publisher, or paused: what an alert on one destination needs.
CREATE VIEW outbox.destinations AS
SELECT COALESCE(b.destination, h.destination, dp.destination) AS destination,
	   CASE WHEN dp.destination IS NOT NULL THEN 'paused'
			WHEN h.state IS NOT NULL THEN h.state
			ELSE 'flowing' END AS state,
	   COALESCE(b.pending, 0) AS pending,
	   COALESCE(b.due, 0) AS due,
	   b.oldest_due_age,
	   COALESCE(b.failed, 0) AS failed,
	   h.route, h.reason, h.refusals, h.since AS held_since, h.next_retry_at,
	   dp.paused_at, dp.paused_by
  FROM (SELECT p.destination,
			   pg_catalog.count(*) FILTER (WHERE p.status OPERATOR(pg_catalog.=) 'scheduled') AS pending,
			   pg_catalog.count(*) FILTER (WHERE p.status OPERATOR(pg_catalog.=) 'scheduled'
					AND p.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()) AS due,
			   pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(p.next_attempt_at)
					FILTER (WHERE p.status OPERATOR(pg_catalog.=) 'scheduled'
					AND p.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()) AS oldest_due_age,
			   pg_catalog.count(*) FILTER (WHERE p.status OPERATOR(pg_catalog.=) 'failed') AS failed
		  FROM outbox.published p
		 WHERE p.status OPERATOR(pg_catalog.<>) 'succeeded'
		 GROUP BY p.destination) b
  FULL JOIN (SELECT s.* FROM outbox.destination_state() s
			  WHERE s.database OPERATOR(pg_catalog.=) pg_catalog.current_database()) h
	ON h.destination OPERATOR(pg_catalog.=) b.destination
  FULL JOIN outbox.destination_pause dp
	ON dp.destination OPERATOR(pg_catalog.=) COALESCE(b.destination, h.destination);
COMMENT ON VIEW outbox.destinations IS
'per destination: backlog, failed messages, and whether it flows, is held apart by the publisher (with the broker''s reason and the next retry), rerouted, or paused';
-- destination names and the broker's reasons: monitoring roles only
GRANT SELECT ON outbox.destinations TO pg_monitor;

-- How a publication renders its bodies: PostgreSQL's JSON
-- rendering by default, or django-outbox-pattern's (numeric as a string,
-- datetimes in UTC with milliseconds and Z), for consumers written against
-- that producer.  It is set by a function of its own rather than a new
-- argument of publish(): an overload of publish() with it would make every
-- call of publish() without it ambiguous, and replacing publish() would
-- change the signature its grants name.  Publishing again keeps it.
ALTER TABLE outbox.publish_config
	ADD COLUMN rendering text NOT NULL DEFAULT 'postgres'
	CONSTRAINT publish_config_rendering CHECK (rendering IN ('postgres', 'django'));

CREATE FUNCTION outbox.set_rendering(
	"table" regclass,
	destination text,
	rendering text,
	version text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'outbox_set_rendering'
LANGUAGE C;
COMMENT ON FUNCTION outbox.set_rendering(regclass, text, text, text) IS
'render the bodies of a publication as PostgreSQL does (''postgres'', the default) or as django-outbox-pattern does (''django'')';
-- a right granted with EXECUTE, as publish() is
REVOKE ALL ON FUNCTION outbox.set_rendering(regclass, text, text, text) FROM PUBLIC;

-- The dop-* headers made at send time: a row of outbox.published stores
-- only the headers that cannot be made again (the user's, those of the
-- outbox.generate_headers function, and dop-correlation-id); dop-msg-id,
-- dop-msg-destination, dop-msg-type and dop-msg-sent-time are made from the
-- row when it is sent.  outbox.message_headers() shows what a row is sent
-- with (but dop-msg-sent-time, the time of each send).  It shows nothing
-- but what its argument holds, so everyone may call it: reading the rows
-- takes a SELECT on outbox.published, granted as any other right.
CREATE FUNCTION outbox.message_headers(message outbox.published)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'outbox_message_headers'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION outbox.message_headers(outbox.published) IS
'the headers a message of outbox.published is sent with, the dop-* ones made from the row, but dop-msg-sent-time (the time of the send); NULL if its headers cannot be sent';
GRANT EXECUTE ON FUNCTION outbox.message_headers(outbox.published) TO PUBLIC;
