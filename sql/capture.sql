--
-- The capture trigger: what a write to a published table puts in the outbox.
--

-- the volatile headers are checked in published.sql; here the rest of
-- those a message is sent with
CREATE VIEW messages AS
SELECT destination, version, body,
       outbox.message_headers(p) - ARRAY['dop-msg-id', 'dop-correlation-id'] AS headers
  FROM outbox.published p ORDER BY id;

CREATE TABLE my_model (id serial PRIMARY KEY, field_one text, field_two text);

-- django-outbox-pattern's README examples, one by one.
-- Only destination: all columns.
SELECT outbox.publish('my_model', '/topic/my_route_key');
INSERT INTO my_model (field_one, field_two) VALUES ('Field One', 'Field Two');
SELECT * FROM messages;
SELECT outbox.unpublish('my_model');
TRUNCATE outbox.published;

-- With a version: destination '/topic/my_route_key.v1'.
SELECT outbox.publish('my_model', '/topic/my_route_key', 'v1');
INSERT INTO my_model (field_one, field_two) VALUES ('One', 'Two');
SELECT * FROM messages;
SELECT outbox.unpublish('my_model');
TRUNCATE outbox.published;

-- With fields: the primary key and field_one.
SELECT outbox.publish('my_model', '/topic/my_route_key', fields => ARRAY['field_one']);
INSERT INTO my_model (field_one, field_two) VALUES ('Field One', 'Field Two');
SELECT * FROM messages;
SELECT outbox.unpublish('my_model');
TRUNCATE outbox.published;

-- With a serializer.
CREATE FUNCTION my_serializer(m my_model) RETURNS json LANGUAGE sql AS
$$ SELECT json_build_object('id', m.id, 'one', m.field_one, 'two', m.field_two) $$;
SELECT outbox.publish('my_model', '/topic/my_route_key', serializer => 'my_serializer');
INSERT INTO my_model (field_one, field_two) VALUES ('Field One', 'Field Two');
SELECT * FROM messages;
SELECT outbox.unpublish('my_model');
TRUNCATE outbox.published;

-- With two destinations and two serializers: two messages per write.
CREATE FUNCTION my_serializer_1(m my_model) RETURNS jsonb LANGUAGE sql AS
$$ SELECT jsonb_build_object('id', m.id, 'one', m.field_one) $$;
CREATE FUNCTION my_serializer_2(m my_model) RETURNS jsonb LANGUAGE sql AS
$$ SELECT jsonb_build_object('id', m.id, 'two', m.field_two) $$;
SELECT outbox.publish('my_model', '/topic/my_route_key_1', serializer => 'my_serializer_1');
SELECT outbox.publish('my_model', '/topic/my_route_key_2', serializer => 'public.my_serializer_2(my_model)');
INSERT INTO my_model (field_one, field_two) VALUES ('Field One', 'Field Two');
SELECT * FROM messages;
SELECT relid, destination, version, fields, serializer FROM outbox.publish_config ORDER BY destination;

-- UPDATE publishes the new row too.
UPDATE my_model SET field_two = 'Changed' WHERE field_one = 'Field One' AND id = 5;
SELECT * FROM messages;
TRUNCATE outbox.published;

-- DELETE does not publish.
DELETE FROM my_model;
SELECT count(*) FROM outbox.published;

-- ROLLBACK leaves nothing, and neither does a rolled-back savepoint.
BEGIN;
INSERT INTO my_model (field_one) VALUES ('gone');
SELECT count(*) FROM outbox.published;
ROLLBACK;
SELECT count(*) FROM outbox.published;
BEGIN;
INSERT INTO my_model (field_one) VALUES ('kept');
SAVEPOINT s;
INSERT INTO my_model (field_one) VALUES ('gone');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT body->>'one' AS one FROM outbox.published ORDER BY id;
SELECT outbox.unpublish('my_model');
TRUNCATE outbox.published;

-- Publishing again the same (table, destination, version) replaces it.
SELECT outbox.publish('my_model', '/topic/again', fields => ARRAY['field_one']);
SELECT outbox.publish('my_model', '/topic/again', fields => ARRAY['field_two']);
SELECT destination, fields FROM outbox.publish_config;
INSERT INTO my_model (field_one, field_two) VALUES ('1', '2');
SELECT * FROM messages;
-- ... while another version is another configuration.
SELECT outbox.publish('my_model', '/topic/again', 'v2');
SELECT destination, version, fields FROM outbox.publish_config ORDER BY version NULLS FIRST;
SELECT outbox.unpublish('my_model', '/topic/again', 'v2');
SELECT outbox.unpublish('my_model', '/topic/again');
SELECT outbox.unpublish('my_model');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'my_model'::regclass;
TRUNCATE outbox.published;

-- Composite primary keys come whole with fields.
CREATE TABLE line (order_id int, line_no int, sku text, qty int, note text,
                   PRIMARY KEY (order_id, line_no));
SELECT outbox.publish('line', '/topic/line', fields => ARRAY['qty', 'qty', 'order_id']);
INSERT INTO line VALUES (7, 1, 'A-1', 3, 'not sent');
SELECT body FROM outbox.published;
TRUNCATE outbox.published;

-- A table without a primary key publishes just the fields.
CREATE TABLE nokey (a int, b text);
SELECT outbox.publish('nokey', '/topic/nokey', fields => ARRAY['b']);
INSERT INTO nokey VALUES (1, 'only b');
SELECT body FROM outbox.published;
TRUNCATE outbox.published;

-- Values keep PostgreSQL's JSON rendering.
SET TimeZone = 'UTC';
CREATE TABLE kinds (
    id bigint PRIMARY KEY,
    n numeric, f float8, b boolean, t text, ts timestamptz, d date,
    arr int[], tags text[], j jsonb, u uuid, nothing text, big numeric);
SELECT outbox.publish('kinds', '/topic/kinds');
INSERT INTO kinds VALUES (1, 1.10, 0.5, true, 'ünïcødé ✓ "quoted" \ back', '2024-02-29 23:59:59.123456+00',
                          '2024-01-01', '{1,2,3}', '{a,"b c",NULL}', '{"x": [1, {"y": null}]}',
                          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL,
                          123456789012345678901234567890.000000000000000000001);
SELECT jsonb_pretty(body) FROM outbox.published;
SELECT body->'n' AS n, (body->>'n')::numeric = 1.10 AS same_value, body->>'n' = '1.10' AS same_scale
  FROM outbox.published;
TRUNCATE outbox.published;

-- A 1 MB value stored out of line (TOAST) comes whole.
CREATE TABLE big (id int PRIMARY KEY, payload text);
ALTER TABLE big ALTER COLUMN payload SET STORAGE EXTERNAL;
SELECT outbox.publish('big', '/topic/big');
INSERT INTO big SELECT 1, string_agg(md5(i::text), '') FROM generate_series(1, 32768) i;
SELECT length(body->>'payload') AS length,
       body->>'payload' = (SELECT payload FROM big) AS same
  FROM outbox.published;
-- ... also when an UPDATE leaves it untouched
UPDATE big SET id = 2;
SELECT length(body->>'payload') AS length FROM outbox.published ORDER BY id DESC LIMIT 1;
TRUNCATE outbox.published;

-- Generated columns are part of the row.
CREATE TABLE gen (id int PRIMARY KEY, price numeric, qty int,
                  total numeric GENERATED ALWAYS AS (price * qty) STORED);
SELECT outbox.publish('gen', '/topic/gen');
INSERT INTO gen (id, price, qty) VALUES (1, 2.50, 4);
SELECT body FROM outbox.published;
TRUNCATE outbox.published;

-- COPY and multi-row statements capture every row.
COPY nokey FROM stdin;
2	copied
3	copied too
\.
INSERT INTO nokey SELECT i, 'row ' || i FROM generate_series(10, 14) i;
SELECT count(*) FROM outbox.published;
TRUNCATE outbox.published;

-- A serializer that returns NULL is an error, and the write does not happen.
CREATE FUNCTION null_serializer(n nokey) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
SELECT outbox.publish('nokey', '/topic/nokey', serializer => 'null_serializer');
INSERT INTO nokey VALUES (99, 'no body');
SELECT count(*) FROM nokey WHERE a = 99;
-- Redefining the serializer is seen at once.
CREATE OR REPLACE FUNCTION null_serializer(n nokey) RETURNS jsonb LANGUAGE sql AS $$ SELECT jsonb_build_object('a', n.a) $$;
INSERT INTO nokey VALUES (99, 'a body');
SELECT body FROM outbox.published;
TRUNCATE outbox.published;

-- A configuration added after the cache was filled is seen at once.
SELECT outbox.unpublish('nokey');
SELECT outbox.publish('nokey', '/topic/one');
INSERT INTO nokey VALUES (100, 'x');
SELECT destination FROM outbox.published;
SELECT outbox.publish('nokey', '/topic/two');
INSERT INTO nokey VALUES (101, 'y');
SELECT destination, body->>'a' AS a FROM outbox.published ORDER BY id;
TRUNCATE outbox.published;

-- Each message has its own time-ordered id, and ids grow.
INSERT INTO nokey SELECT i, 'order' FROM generate_series(200, 299) i;
SELECT count(DISTINCT id) AS ids,
       bool_and(substr(id::text, 15, 1) = '7') AS version_7,
       array_agg(id ORDER BY id) = array_agg(id ORDER BY (body->>'a')::int, destination) AS ordered
  FROM outbox.published;

-- leave nothing published for the next tests
SELECT sum(outbox.unpublish(relid)) AS unpublished FROM (SELECT DISTINCT relid FROM outbox.publish_config) c;
TRUNCATE outbox.published;
