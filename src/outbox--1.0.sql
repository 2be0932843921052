/* src/outbox--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION outbox" to load this file. \quit

CREATE SCHEMA outbox;
GRANT USAGE ON SCHEMA outbox TO PUBLIC;

CREATE TYPE outbox.message_status AS ENUM ('scheduled', 'succeeded', 'failed');

CREATE FUNCTION outbox.uuid_generate_v7()
RETURNS uuid
AS 'MODULE_PATHNAME', 'outbox_uuid_generate_v7'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION outbox.uuid_generate_v7() IS
'a time-ordered (version 7) UUID, increasing within a session';

-- The outbox.  Rows arrive from the capture trigger of published tables or
-- by hand; either way the BEFORE INSERT trigger below (or the same C code
-- called by the capture trigger) applies the version suffix, validates the
-- id, destination, headers and size, and generates the dop-* headers.  The
-- BEFORE UPDATE trigger does the same for a row whose message is changed.
-- added is when the row was written, expires_at a day later by default.
CREATE TABLE outbox.published (
	id			uuid NOT NULL DEFAULT outbox.uuid_generate_v7(),
	destination text NOT NULL,
	version		text,
	body		jsonb NOT NULL,
	headers		jsonb NOT NULL DEFAULT '{}',
	added		timestamptz NOT NULL DEFAULT clock_timestamp(),
	expires_at	timestamptz NOT NULL,
	retry		integer NOT NULL DEFAULT 0 CHECK (retry >= 0),
	status		outbox.message_status NOT NULL DEFAULT 'scheduled',
	last_error	text,
	next_attempt_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT published_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE outbox.published IS
'messages to send to the broker once their transaction commits';
CREATE INDEX published_scheduled_idx ON outbox.published (id)
	WHERE status = 'scheduled';
-- The publisher's isolation lane: messages refused before, by due time.
CREATE INDEX published_retrying_idx ON outbox.published (next_attempt_at, id)
	WHERE status = 'scheduled' AND retry > 0;
-- Retention finds old rows through the primary key: ids are time-ordered.

CREATE FUNCTION outbox.published_before_insert()
RETURNS trigger
AS 'MODULE_PATHNAME', 'outbox_published_before_insert'
LANGUAGE C;
CREATE TRIGGER published_before_insert
	BEFORE INSERT ON outbox.published
	FOR EACH ROW EXECUTE FUNCTION outbox.published_before_insert();

CREATE FUNCTION outbox.published_before_update()
RETURNS trigger
AS 'MODULE_PATHNAME', 'outbox_published_before_update'
LANGUAGE C;
-- the publisher's updates set none of these columns
CREATE TRIGGER published_before_update
	BEFORE UPDATE OF id, destination, version, body, headers, added, expires_at
	ON outbox.published
	FOR EACH ROW EXECUTE FUNCTION outbox.published_before_update();

-- One row per (table, destination, version) given to outbox.publish().
CREATE TABLE outbox.publish_config (
	relid		regclass NOT NULL,
	destination text NOT NULL,
	version		text,
	fields		text[],
	-- schema-qualified name of a function taking the table's row type
	-- (a name, not an OID, survives pg_upgrade and pg_dump)
	serializer	text,
	CONSTRAINT publish_config_key UNIQUE NULLS NOT DISTINCT (relid, destination, version),
	CONSTRAINT publish_config_fields_or_serializer
		CHECK (fields IS NULL OR serializer IS NULL)
);
COMMENT ON TABLE outbox.publish_config IS
'what outbox.publish() captures: one row per table, destination and version';
GRANT SELECT ON outbox.publish_config TO PUBLIC;

-- Every change of a configuration reaches each backend's capture cache
-- through a relcache invalidation of the table concerned.
CREATE FUNCTION outbox.publish_config_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'outbox_publish_config_changed'
LANGUAGE C;
CREATE TRIGGER publish_config_changed
	AFTER INSERT OR UPDATE OR DELETE ON outbox.publish_config
	FOR EACH ROW EXECUTE FUNCTION outbox.publish_config_changed();
CREATE TRIGGER publish_config_truncated
	AFTER TRUNCATE ON outbox.publish_config
	FOR EACH STATEMENT EXECUTE FUNCTION outbox.publish_config_changed();

-- Only outbox.publish() and outbox.unpublish() change configurations; a row
-- written by hand (as pg_restore does) must be consistent.  The guard fires
-- in replica sessions too, and so does the invalidation above.
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

-- Consumed messages: the inbox that makes each message take effect once.
CREATE TABLE outbox.received (
	id			uuid NOT NULL DEFAULT outbox.uuid_generate_v7(),
	-- the subscribing role: a message takes effect once per role (the
	-- subscriptions of one role share their inbox, as in
	-- django-outbox-pattern), whatever other roles' consumers did (NULL:
	-- inserted by hand)
	run_as		regrole,
	msg_id		text NOT NULL,
	headers		jsonb,
	body		jsonb,
	added		timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL DEFAULT now() + interval '1 day',
	retry		integer NOT NULL DEFAULT 0 CHECK (retry >= 0),
	status		outbox.message_status NOT NULL DEFAULT 'succeeded',
	CONSTRAINT received_pkey PRIMARY KEY (id),
	CONSTRAINT received_msg_id_key UNIQUE NULLS NOT DISTINCT (run_as, msg_id)
);
COMMENT ON TABLE outbox.received IS
'messages consumed by subscriptions, one row per subscribing role and message id';

-- One row per consumer.
CREATE TABLE outbox.subscription (
	queue_name	text NOT NULL,
	-- schema-qualified name of a function taking outbox.payload
	callback	text NOT NULL,
	destination text NOT NULL,
	run_as		regrole NOT NULL,
	created		timestamptz NOT NULL DEFAULT now(),
	-- names the consumer worker: a queue unsubscribed and subscribed again
	-- (in one transaction, say) gets a new consumer
	id			bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
	CONSTRAINT subscription_pkey PRIMARY KEY (queue_name),
	CONSTRAINT subscription_id_key UNIQUE (id)
);
COMMENT ON TABLE outbox.subscription IS
'consumers: each runs its callback as run_as for every message of its queue';
-- a role sees its own subscriptions, pg_monitor all (as in outbox.status);
-- the extension's owner and the workers own or bypass the policy
GRANT SELECT ON outbox.subscription TO PUBLIC;
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

CREATE FUNCTION outbox.publish(
	"table" regclass,
	destination text,
	version text DEFAULT NULL,
	fields text[] DEFAULT NULL,
	serializer text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'outbox_publish'
LANGUAGE C;
COMMENT ON FUNCTION outbox.publish(regclass, text, text, text[], text) IS
'publish every inserted or updated row of a table to a destination';
-- publishing is a right granted with EXECUTE, as subscribing is
REVOKE ALL ON FUNCTION outbox.publish(regclass, text, text, text[], text) FROM PUBLIC;

CREATE FUNCTION outbox.unpublish(
	"table" regclass,
	destination text DEFAULT NULL,
	version text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'outbox_unpublish'
LANGUAGE C;
COMMENT ON FUNCTION outbox.unpublish(regclass, text, text) IS
'stop publishing a table (all its configurations, one destination, or one version)';
REVOKE ALL ON FUNCTION outbox.unpublish(regclass, text, text) FROM PUBLIC;

CREATE FUNCTION outbox.capture()
RETURNS trigger
AS 'MODULE_PATHNAME', 'outbox_capture'
LANGUAGE C;
COMMENT ON FUNCTION outbox.capture() IS
'trigger of published tables: writes one outbox.published row per configuration';

CREATE FUNCTION outbox.send_event(
	destination text,
	body jsonb,
	headers jsonb DEFAULT '{}')
RETURNS uuid
AS 'MODULE_PATHNAME', 'outbox_send_event'
LANGUAGE C;
COMMENT ON FUNCTION outbox.send_event(text, jsonb, jsonb) IS
'send one message to the broker now, outside the outbox, and wait for its receipt; returns its dop-msg-id';
REVOKE ALL ON FUNCTION outbox.send_event(text, jsonb, jsonb) FROM PUBLIC;

CREATE FUNCTION outbox.redrive(
	destination text DEFAULT NULL,
	id uuid DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'outbox_redrive'
LANGUAGE C;
COMMENT ON FUNCTION outbox.redrive(text, uuid) IS
'schedule failed messages again (all, one destination, or one id); returns how many';
REVOKE ALL ON FUNCTION outbox.redrive(text, uuid) FROM PUBLIC;

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
	OUT started timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'outbox_worker_status'
LANGUAGE C;
-- executable by PUBLIC: it shows each role only what it may see
COMMENT ON FUNCTION outbox.worker_status() IS
'the outbox workers the caller may see: all for superusers and pg_monitor, else its own consumers and its database''s publisher';

-- The workers, and the backlog of this database's outbox.
CREATE VIEW outbox.status AS
SELECT w.pid, w.database, w.kind, w.state, w.broker, w.queue,
	   b.pending, b.oldest_pending_age,
	   w.sent, w.failed, w.processed, w.dead_lettered,
	   w.last_error, w.last_error_at, w.started
  FROM outbox.worker_status() w
  LEFT JOIN LATERAL (
		SELECT count(*) AS pending, now() - min(p.added) AS oldest_pending_age
		  FROM outbox.published p
		 WHERE p.status = 'scheduled') b
	ON w.kind = 'publisher' AND w.database = current_database();
COMMENT ON VIEW outbox.status IS
'outbox workers: state, broker, backlog, counters and last error';
-- filtered by outbox.worker_status()
GRANT SELECT ON outbox.status TO PUBLIC;


-- What a subscription's callback is given, one message per call.
CREATE TYPE outbox.payload AS (
	body		jsonb,			-- the message body; a JSON string if it was not JSON
	headers		jsonb,			-- every STOMP header, unescaped, as strings
	msg_id		text,			-- cap-msg-id, else dop-msg-id, else message-id
	destination text,			-- the MESSAGE's destination header
	queue_name	text,			-- the subscription's queue
	redelivered boolean			-- the broker delivered it before
);
COMMENT ON TYPE outbox.payload IS
'the argument of subscription callbacks: one consumed message';

CREATE FUNCTION outbox.subscribe(
	callback text,
	destination text,
	queue_name text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'outbox_subscribe'
LANGUAGE C;
COMMENT ON FUNCTION outbox.subscribe(text, text, text) IS
'consume a destination in a background worker that runs callback(outbox.payload) once per message, as the calling role';
REVOKE ALL ON FUNCTION outbox.subscribe(text, text, text) FROM PUBLIC;

CREATE FUNCTION outbox.unsubscribe(queue_name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'outbox_unsubscribe'
LANGUAGE C;
COMMENT ON FUNCTION outbox.unsubscribe(text) IS
'stop and remove the consumer of a queue; returns whether there was one';
REVOKE ALL ON FUNCTION outbox.unsubscribe(text) FROM PUBLIC;

/*
 * DDL must never leave a configuration that silently stops capturing, nor a
 * subscription without its callback.  Each event trigger looks only at what
 * its command touched: configurations of dropped tables are removed, and so
 * are those of a table whose capture trigger DROP TRIGGER dropped (that is
 * unpublishing it, as pg_restore --clean does, for a role that may), and a
 * command that would leave a published table without a column it names,
 * its serializer or its enabled capture trigger, or an unlogged published
 * table, or a serializer or callback that its stored name no longer finds,
 * is refused.  They fire in replica sessions too.  (Created last, so that
 * they do not fire for this script.)
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
