/* src/outbox--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION outbox UPDATE TO '1.1'" to load this file. \quit

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
