--
-- Rows inserted into outbox.published by hand, and the headers of every message.
--
SET TimeZone = 'UTC';
TRUNCATE outbox.published;

-- A hand insert gets the version suffix and the generated headers: it
-- stores its correlation id, and is sent with the dop-* headers made from
-- the row (outbox.message_headers() shows them; dop-msg-sent-time is the
-- time of the send, checked by the TAP tests).
INSERT INTO outbox.published (destination, version, body) VALUES ('/topic/a', 'v2', '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/topic/b', '{"some": "data"}');
SELECT destination, version, body, status, retry, last_error,
       expires_at - added BETWEEN interval '1 day' AND interval '1 day 1 second' AS keeps_a_day,
       outbox.message_headers(p)->>'dop-msg-id' = id::text AS msg_id_is_id,
       outbox.message_headers(p)->>'dop-msg-destination' AS msg_destination,
       outbox.message_headers(p)->>'dop-msg-type' AS msg_type,
       headers - 'dop-correlation-id' AS stored_but_correlation,
       (headers->>'dop-correlation-id')::uuid IS NOT NULL AS correlation_is_uuid
  FROM outbox.published p ORDER BY id;
-- each message gets a fresh correlation id when none is set
SELECT count(DISTINCT headers->>'dop-correlation-id') FROM outbox.published;
TRUNCATE outbox.published;

-- The user's headers are kept; the generated ones win over them.
INSERT INTO outbox.published (destination, body, headers)
VALUES ('/topic/h', '{}', '{"x-tenant": "acme", "retries": 3, "urgent": true,
                            "dop-msg-type": "Forged", "line": "a\nb: c\\d ✓"}');
SELECT headers->>'x-tenant' AS tenant, headers->'retries' AS retries, headers->'urgent' AS urgent,
       outbox.message_headers(p)->>'dop-msg-type' AS msg_type, headers->>'line' AS line
  FROM outbox.published p;
TRUNCATE outbox.published;

-- Explicit id, added and expires_at are kept.
INSERT INTO outbox.published (id, destination, body, added, expires_at)
VALUES ('00000000-0000-7000-8000-000000000001', '/topic/e', '1', '2020-01-01', '2020-01-03');
SELECT id, outbox.message_headers(p)->>'dop-msg-id' AS msg_id, added, expires_at
  FROM outbox.published p;
TRUNCATE outbox.published;

-- SET LOCAL outbox.correlation_id sets dop-correlation-id for the transaction.
CREATE TABLE t (id int PRIMARY KEY, v text);
SELECT outbox.publish('t', '/topic/t');
BEGIN;
SET LOCAL outbox.correlation_id = 'req-42';
INSERT INTO t VALUES (1, 'a');
INSERT INTO outbox.published (destination, body) VALUES ('/topic/x', '{}');
COMMIT;
INSERT INTO t VALUES (2, 'b');
SELECT destination, headers->>'dop-correlation-id' = 'req-42' AS correlated
  FROM outbox.published ORDER BY id;
SHOW outbox.correlation_id;
TRUNCATE outbox.published;

-- outbox.generate_headers names a function whose headers are merged in,
-- without replacing the built-in ones.
CREATE FUNCTION my_headers(m outbox.published) RETURNS jsonb LANGUAGE sql AS
$$ SELECT jsonb_build_object('x-route', m.destination, 'x-kind', coalesce(m.body->>'kind', 'none'),
                             'dop-msg-id', 'forged', 'x-seen-id', m.headers->>'dop-msg-id' = m.id::text) $$;
SET outbox.generate_headers = 'public.my_headers';
INSERT INTO t VALUES (3, 'c');
INSERT INTO outbox.published (destination, version, body, headers)
VALUES ('/topic/g', 'v9', '{"kind": "hand"}', '{"x-kind": "user", "x-user": "u"}');
SELECT destination, headers->>'x-route' AS route, headers->>'x-kind' AS kind,
       headers->>'x-user' AS "user", NOT headers ? 'dop-msg-id' AS forged_not_stored,
       outbox.message_headers(p)->>'dop-msg-id' = id::text AS builtin_kept,
       headers->>'x-seen-id' AS seen_id
  FROM outbox.published p ORDER BY id;
TRUNCATE outbox.published;
-- a function returning NULL adds nothing
CREATE OR REPLACE FUNCTION my_headers(m outbox.published) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
INSERT INTO t VALUES (4, 'd');
SELECT count(*) FROM outbox.published;
-- bad functions are refused with the write
CREATE OR REPLACE FUNCTION my_headers(m outbox.published) RETURNS jsonb LANGUAGE sql AS $$ SELECT '[1]'::jsonb $$;
INSERT INTO t VALUES (5, 'e');
CREATE OR REPLACE FUNCTION my_headers(m outbox.published) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"content-length": 1}'::jsonb $$;
INSERT INTO t VALUES (5, 'e');
DROP FUNCTION my_headers(outbox.published);
CREATE FUNCTION my_headers(m outbox.published) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
INSERT INTO t VALUES (5, 'e');
DROP FUNCTION my_headers(outbox.published);
INSERT INTO t VALUES (5, 'e');
SET outbox.generate_headers = 'not a name!';
SET outbox.generate_headers = 'a.b.c';
RESET outbox.generate_headers;
INSERT INTO t VALUES (5, 'e');
SELECT count(*) FROM t;
TRUNCATE outbox.published;

-- Destinations, versions and headers that cannot be sent are refused at INSERT.
INSERT INTO outbox.published (destination, body) VALUES ('', '{}');
INSERT INTO outbox.published (destination, body) VALUES (E'/topic/a\nb', '{}');
INSERT INTO outbox.published (destination, body) VALUES (E'/topic/a\rb', '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/queue/' || repeat('d', 249), '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/queue/' || repeat('d', 248), '{}');
INSERT INTO outbox.published (destination, version, body) VALUES ('/queue/' || repeat('d', 245), 'v12', '{}');
INSERT INTO outbox.published (destination, version, body) VALUES ('/queue/' || repeat('d', 244), 'v12', '{}');
INSERT INTO outbox.published (destination, version, body) VALUES ('/queue/t', '', '{}');
INSERT INTO outbox.published (destination, version, body) VALUES ('/queue/t', E'v\n1', '{}');
INSERT INTO outbox.published (destination, version, body) VALUES ('/queue/t', repeat('v', 101), '{}');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '[]');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '"h"');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '{"": "v"}');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '{"a\nb": "v"}');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '{"k": null}');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '{"k": {"n": 1}}');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '{"k": [1]}');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '{"destination": "/elsewhere"}');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '{"receipt": "1"}');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '{"content-length": "1"}');
INSERT INTO outbox.published (destination, body, headers) VALUES ('/queue/t', '{}', '{"transaction": "tx1"}');
\set VERBOSITY terse
INSERT INTO outbox.published (destination, body) VALUES (NULL, '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/queue/t', NULL);
\set VERBOSITY default
INSERT INTO outbox.published (destination, body) VALUES ('/queue/t', 'not json');
SELECT length(destination) FROM outbox.published ORDER BY 1;
TRUNCATE outbox.published;

-- The outbox cannot be written by a role that was not granted it, but that
-- role's writes to a published table are still captured.
CREATE ROLE outbox_writer;
GRANT INSERT ON t TO outbox_writer;
SET ROLE outbox_writer;
INSERT INTO outbox.published (destination, body) VALUES ('/topic/sneaky', '{}');
INSERT INTO t VALUES (6, 'by writer');
RESET ROLE;
SELECT destination, body FROM outbox.published;
TRUNCATE outbox.published;
REVOKE ALL ON t FROM outbox_writer;
DROP ROLE outbox_writer;

-- outbox.uuid_generate_v7 makes increasing version 7 UUIDs.
SELECT bool_and(a < b) AS increasing FROM (
  SELECT u AS a, lead(u) OVER (ORDER BY n) AS b
    FROM (SELECT n, outbox.uuid_generate_v7() AS u FROM generate_series(1, 1000) n) s) p
 WHERE b IS NOT NULL;
SELECT substr(outbox.uuid_generate_v7()::text, 15, 1) AS version,
       substr(outbox.uuid_generate_v7()::text, 20, 1) IN ('8', '9', 'a', 'b') AS variant;
