/* src/outbox--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION outbox UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------------
-- Destinations held apart or paused, and monitoring (destinations helper)
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
-- oldest_due_age is the age of the oldest due row.  sent/failed/... count
-- since the worker started, total_* since outbox.counter_total's row began.
CREATE VIEW outbox.status AS
SELECT w.pid, w.database, w.kind, w.state, w.broker, w.queue,
	   b.pending, b.due, b.oldest_due_age,
	   b.oldest_due_age AS oldest_pending_age,
	   w.held_destinations, b.paused_destinations,
	   w.sent, w.failed, w.processed, w.dead_lettered,
	   COALESCE(t.sent, 0) + w.unsaved_sent AS total_sent,
	   COALESCE(t.failed, 0) + w.unsaved_failed AS total_failed,
	   COALESCE(t.processed, 0) + w.unsaved_processed AS total_processed,
	   COALESCE(t.dead_lettered, 0) + w.unsaved_dead_lettered AS total_dead_lettered,
	   t.since AS totals_since,
	   w.last_sent_at, w.last_active_at,
	   w.last_error, w.last_error_at, w.started
  FROM outbox.worker_status() w
  LEFT JOIN LATERAL (
		SELECT pg_catalog.count(*) AS pending,
			   pg_catalog.count(*) FILTER (WHERE p.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()
					AND NOT EXISTS (SELECT FROM outbox.destination_pause dp
									 WHERE dp.destination OPERATOR(pg_catalog.=) p.destination)) AS due,
			   pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(p.added)
					FILTER (WHERE p.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()
					AND NOT EXISTS (SELECT FROM outbox.destination_pause dp
									 WHERE dp.destination OPERATOR(pg_catalog.=) p.destination)) AS oldest_due_age,
			   (SELECT pg_catalog.count(*) FROM outbox.destination_pause) AS paused_destinations
		  FROM outbox.published p
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
			   pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(p.added)
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
