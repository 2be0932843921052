--
-- A row written by hand into outbox.published whose destination the
-- writer may not use, or the broker cannot route, is refused before any
-- user code runs for it: the outbox.generate_headers function (which may
-- do anything, as the writer) is not called for a message that is refused
-- anyway, and the writer is told why it was refused, not what that
-- function did.
--
TRUNCATE outbox.published;
CREATE ROLE order_writer;
GRANT INSERT, UPDATE, SELECT ON outbox.published TO order_writer;
SELECT outbox.allow_destination('order_writer', 'publish', '/topic/ok*');
CREATE SCHEMA order_hdr;
GRANT USAGE ON SCHEMA order_hdr TO order_writer;
-- says that it ran, and for which message
CREATE FUNCTION order_hdr.loud(p outbox.published) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'generate_headers ran for %', p.destination;
END $$;
CREATE FUNCTION order_hdr.quiet(p outbox.published) RETURNS jsonb
LANGUAGE sql AS $$ SELECT '{"x-quiet": "yes"}'::jsonb $$;
SET outbox.generate_headers = 'order_hdr.loud';
SET ROLE order_writer;

-- 1. refused by the writer's patterns, with and without a version
INSERT INTO outbox.published (destination, body) VALUES ('/topic/no', '{}');
INSERT INTO outbox.published (destination, version, body)
    VALUES ('/topic/no', 'v1', '{}');
-- 2. refused as unroutable
INSERT INTO outbox.published (destination, body) VALUES ('topic/ok', '{}');
-- 3. allowed: the function runs, with the final destination
INSERT INTO outbox.published (destination, version, body)
    VALUES ('/topic/ok', 'v1', '{}');
RESET ROLE;
SET outbox.generate_headers = 'order_hdr.quiet';
SET ROLE order_writer;
INSERT INTO outbox.published (destination, version, body)
    VALUES ('/topic/ok', 'v1', '{"n": 1}');

-- 4. the same for an UPDATE that changes the message
RESET ROLE;
SET outbox.generate_headers = 'order_hdr.loud';
SET ROLE order_writer;
UPDATE outbox.published SET destination = '/topic/no.v1';
UPDATE outbox.published SET destination = 'nowhere';
UPDATE outbox.published SET body = '{"n": 2}';
RESET ROLE;

-- 5. the same for outbox.send_event(): refused before the function runs
-- (and before any connection to a broker)
GRANT EXECUTE ON FUNCTION outbox.send_event(text, jsonb, jsonb) TO order_writer;
SET ROLE order_writer;
SELECT outbox.send_event('/topic/no', '{}');
SELECT outbox.send_event('topic/ok', '{}');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION outbox.send_event(text, jsonb, jsonb) FROM order_writer;
RESET outbox.generate_headers;

SELECT destination, version, body, headers->>'x-quiet' AS quiet,
       outbox.message_headers(p)->>'dop-msg-destination' AS header_destination
  FROM outbox.published p ORDER BY id;

TRUNCATE outbox.published;
DROP SCHEMA order_hdr CASCADE;
SELECT outbox.disallow_destination('order_writer', 'publish');
REVOKE ALL ON outbox.published FROM order_writer;
DROP ROLE order_writer;
