/* src/outbox--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION outbox UPDATE TO '1.1'" to load this file. \quit

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
-- partition of a published table (src/ddl.c checks ALTER TABLE before it
-- runs; outbox_ddl_command_start keeps its own tags).
CREATE EVENT TRIGGER outbox_ddl_command_start_table ON ddl_command_start
	WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION outbox.ddl_command_start();
ALTER EVENT TRIGGER outbox_ddl_command_start_table ENABLE ALWAYS;
