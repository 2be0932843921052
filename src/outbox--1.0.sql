/* src/outbox--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION outbox" to load this file. \quit

-- The schema outbox is created by CREATE EXTENSION (outbox.control names it).
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
-- destination and headers, and generates the dop-* headers.
CREATE TABLE outbox.published (
	id			uuid NOT NULL DEFAULT outbox.uuid_generate_v7(),
	destination text NOT NULL,
	version		text,
	body		jsonb NOT NULL,
	headers		jsonb NOT NULL DEFAULT '{}',
	added		timestamptz NOT NULL DEFAULT now(),
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

-- One row per (table, destination, version) given to outbox.publish().
CREATE TABLE outbox.publish_config (
	relid		regclass NOT NULL,
	destination text NOT NULL,
	version		text,
	fields		text[],
	serializer	regprocedure,
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

-- Consumed messages: the inbox that makes each message take effect once.
CREATE TABLE outbox.received (
	id			uuid NOT NULL DEFAULT outbox.uuid_generate_v7(),
	msg_id		text NOT NULL,
	headers		jsonb,
	body		jsonb,
	added		timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL DEFAULT now() + interval '1 day',
	retry		integer NOT NULL DEFAULT 0 CHECK (retry >= 0),
	status		outbox.message_status NOT NULL DEFAULT 'succeeded',
	CONSTRAINT received_pkey PRIMARY KEY (id),
	CONSTRAINT received_msg_id_key UNIQUE (msg_id)
);
COMMENT ON TABLE outbox.received IS
'messages consumed by subscriptions, one row per message id';

-- One row per consumer.
CREATE TABLE outbox.subscription (
	queue_name	text NOT NULL,
	callback	regprocedure NOT NULL,
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
GRANT SELECT ON outbox.subscription TO PUBLIC;

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

CREATE FUNCTION outbox.unpublish(
	"table" regclass,
	destination text DEFAULT NULL,
	version text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'outbox_unpublish'
LANGUAGE C;
COMMENT ON FUNCTION outbox.unpublish(regclass, text, text) IS
'stop publishing a table (all its configurations, one destination, or one version)';

CREATE FUNCTION outbox.capture()
RETURNS trigger
AS 'MODULE_PATHNAME', 'outbox_capture'
LANGUAGE C;
COMMENT ON FUNCTION outbox.capture() IS
'trigger of published tables: writes one outbox.published row per configuration';

/*
 * DDL must never leave a configuration that silently stops capturing.  After
 * each DDL command that can touch one: configurations of dropped tables are
 * removed (their trigger went with them); a command that would leave a
 * configuration naming a missing column or serializer, or a published table
 * without its trigger, is refused.
 */
CREATE FUNCTION outbox.check_publish_config()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bad record;
BEGIN
	DELETE FROM outbox.publish_config c
	 WHERE NOT EXISTS (SELECT 1 FROM pg_class r WHERE r.oid = c.relid);

	SELECT c.relid::oid AS relid, f.name INTO bad
	  FROM outbox.publish_config c, unnest(c.fields) AS f(name)
	 WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
						WHERE a.attrelid = c.relid AND a.attname = f.name
						  AND a.attnum > 0 AND NOT a.attisdropped)
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'column "%" of table % is published by outbox',
			bad.name, bad.relid::regclass
			USING ERRCODE = 'dependent_objects_still_exist',
				  DETAIL = 'outbox.publish() was given this column in its fields.',
				  HINT = 'Call outbox.publish() again without this column, or outbox.unpublish() the table first.';
	END IF;

	SELECT c.relid::oid AS relid INTO bad
	  FROM outbox.publish_config c
	 WHERE c.serializer IS NOT NULL
	   AND NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = c.serializer)
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'cannot drop the serializer of a publication of table %',
			bad.relid::regclass
			USING ERRCODE = 'dependent_objects_still_exist',
				  HINT = 'Call outbox.publish() again without this serializer, or outbox.unpublish() the table first.';
	END IF;

	SELECT c.relid::oid AS relid INTO bad
	  FROM outbox.publish_config c
	 WHERE NOT EXISTS (SELECT 1 FROM pg_trigger t
						WHERE t.tgrelid = c.relid AND t.tgname = 'outbox_capture'
						  AND t.tgfoid = 'outbox.capture()'::regprocedure)
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'table % is published by outbox and needs its trigger "outbox_capture"',
			bad.relid::regclass
			USING ERRCODE = 'dependent_objects_still_exist',
				  HINT = 'Use outbox.unpublish() to stop publishing the table.';
	END IF;
END;
$$;

CREATE EVENT TRIGGER outbox_check_publish_config ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'DROP TABLE', 'DROP SCHEMA', 'DROP OWNED',
				 'DROP FUNCTION', 'DROP ROUTINE', 'DROP TRIGGER', 'DROP TYPE',
				 'ALTER TRIGGER')
	EXECUTE FUNCTION outbox.check_publish_config();

REVOKE ALL ON FUNCTION outbox.check_publish_config() FROM PUBLIC;

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
