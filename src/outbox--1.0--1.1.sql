/* src/outbox--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION outbox UPDATE TO '1.1'" to load this file. \quit

-- How a publication renders its bodies (capperf): PostgreSQL's JSON
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
