--
-- Headers the broker reads itself, and how many and how large the headers
-- of a message may be.  RabbitMQ answers a SEND with an ERROR for a
-- message-id header, a user-id other than its login, an expiration or
-- priority or timestamp that is not a whole number (an expiration past
-- ten years too), a reply-to holding a "/" that is no destination it
-- parses, and makes a temporary queue for the publisher's own connection
-- for a reply-to under /temp-queue/; every ERROR ends the publisher's
-- session.  It reads some x-* headers of a SEND to /queue/ as arguments
-- of the queue it declares: an x-message-ttl of 0 would make a new queue
-- drop every message; so are durable, auto-delete and exclusive.  It
-- carries some as AMQP short strings, of at most 255 bytes, as it does
-- header names: an AMQP consumer could not be given a longer one.  And
-- outbox's consumers read a frame only within
-- fixed bounds of header count and size.  Such headers are refused where
-- a message is written, and a row that holds them all the same (written
-- under session_replication_role = replica) cannot be sent: the
-- publisher fails it alone, and outbox.message_headers() is NULL for it.
--
CREATE FUNCTION bh_detail(headers text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    INSERT INTO outbox.published (destination, body, headers)
    VALUES ('/queue/bh', '{}', headers::jsonb);
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLERRM || ': ' || detail;
END $$;

-- 1. The headers RabbitMQ reads as message properties.
SELECT h, bh_detail(h) FROM (VALUES
    ('{"message-id": "m-1"}'),
    ('{"user-id": "guest"}'),
    ('{"reply-to": "/temp-queue/replies"}'),
    ('{"reply-to": "/queue/replies"}'),
    ('{"reply-to": "replies"}'),
    ('{"reply-to": "/amq/queue/replies"}'),
    ('{"reply-to": "/topic/replies.all"}'),
    ('{"reply-to": "/reply-queue/r"}'),
    ('{"reply-to": "/exchange/amq.direct"}'),
    ('{"reply-to": "/exchange/amq.direct/replies"}'),
    ('{"reply-to": "/queue/"}'),
    ('{"reply-to": "/queue/a/b"}'),
    ('{"reply-to": "/topic/a/b"}'),
    ('{"reply-to": "/exchange/"}'),
    ('{"reply-to": "/exchange/x/"}'),
    ('{"reply-to": "/exchange/x/k/j"}'),
    ('{"reply-to": "/foo"}'),
    ('{"reply-to": "a/b"}'),
    ('{"x-message-ttl": 0}'),
    ('{"x-max-length": "abc"}'),
    ('{"x-queue-type": "quorum"}'),
    ('{"x-dead-letter-exchange": ""}'),
    ('{"x-death": "x", "x-tenant": "t", "X-Message-TTL": 0}'),
    ('{"exclusive": "true"}'),
    ('{"auto-delete": "true"}'),
    ('{"durable": "false"}'),
    ('{"expiration": "60000"}'),
    ('{"expiration": 60000}'),
    ('{"expiration": "0"}'),
    ('{"expiration": "315360000000"}'),
    ('{"expiration": "315360000001"}'),
    ('{"expiration": "soon"}'),
    ('{"expiration": -5}'),
    ('{"expiration": "+5"}'),
    ('{"expiration": " 5"}'),
    ('{"expiration": 1.5}'),
    ('{"expiration": ""}'),
    ('{"priority": 9}'),
    ('{"priority": "255"}'),
    ('{"priority": 256}'),
    ('{"priority": "high"}'),
    ('{"priority": true}'),
    ('{"timestamp": 1700000000}'),
    ('{"timestamp": "9223372036854775807"}'),
    ('{"timestamp": "9223372036854775808"}'),
    ('{"timestamp": 1.5}'),
    ('{"amqp-message-id": "m-1", "correlation-id": "c", "type": "t", "app-id": "a"}')
) t(h);
SELECT count(*) AS accepted FROM outbox.published;
TRUNCATE outbox.published;

-- 2. How many headers, and how large: at most 500 of the message's own,
-- each name and value together at most 16 kB, all at most 256 kB, in
-- UTF-8 (a header as the publisher sends it).
SELECT n, bh_detail((SELECT jsonb_object_agg('x-h' || i, 'v')::text
                       FROM generate_series(1, n) i)) AS result
  FROM (VALUES (500), (501)) t(n);
SELECT n, bh_detail(jsonb_build_object('x-big', repeat('é', n))::text) AS result
  FROM (VALUES (8189), (8190)) t(n);
-- names, and the properties RabbitMQ carries as AMQP short strings: 255
-- bytes at most
SELECT n, bh_detail(jsonb_build_object(repeat('k', n), 'v')::text) AS result
  FROM (VALUES (255), (256)) t(n);
SELECT h, n, bh_detail(jsonb_build_object(h, repeat('c', n))::text) AS result
  FROM (VALUES ('correlation-id'), ('reply-to'), ('type'), ('app-id'),
               ('content-encoding'), ('amqp-message-id'), ('cluster-id'),
               ('x-long')) p(h),
       (VALUES (255), (256)) t(n)
 ORDER BY h, n;
SELECT bh_detail(jsonb_build_object('x-big', 1e16380)::text) AS a_long_number;
SELECT n, bh_detail((SELECT jsonb_object_agg('x-h' || i, repeat('v', 16000))::text
                       FROM generate_series(1, n) i)) AS result
  FROM (VALUES (16), (17)) t(n);
SELECT count(*) AS accepted FROM outbox.published;
TRUNCATE outbox.published;

-- 3. ... through outbox.send_event() and outbox.generate_headers as well:
-- refused before any broker is tried.
SELECT outbox.send_event('/queue/bh', '{}', '{"priority": "high"}');
SELECT outbox.send_event('/queue/bh', '{}',
    (SELECT jsonb_object_agg('x-h' || i, 'v') FROM generate_series(1, 501) i));
CREATE FUNCTION bh_generate(m outbox.published) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT '{"message-id": "from-the-function"}'::jsonb $$;
SET outbox.generate_headers = 'public.bh_generate';
INSERT INTO outbox.published (destination, body) VALUES ('/queue/bh', '{}');
RESET outbox.generate_headers;
DROP FUNCTION bh_generate(outbox.published);

-- 4. Rows that hold such headers all the same cannot be sent.
SET session_replication_role = replica;
INSERT INTO outbox.published (id, destination, body, headers, expires_at)
VALUES ('01900000-0000-7000-8000-000000000061', '/queue/bh', '{}', '{"message-id": "m"}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000062', '/queue/bh', '{}', '{"expiration": "soon"}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000063', '/queue/bh', '{}', '{"reply-to": "/temp-queue/r"}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000064', '/queue/bh', '{}',
        (SELECT jsonb_object_agg('x-h' || i, 'v') FROM generate_series(1, 501) i), now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000065', '/queue/bh', '{}',
        jsonb_build_object('x-big', repeat('v', 16384)), now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000066', '/queue/bh', '{}', '{"priority": 5}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-00000000006a', '/queue/bh', '{}', '{"x-message-ttl": 0}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-00000000006b', '/queue/bh', '{}', '{"reply-to": "/queue/"}', now() + interval '1 day'),
       -- a destination as a header, dop-msg-destination: as checked where it enters
       ('01900000-0000-7000-8000-000000000067', E'/queue/bh\r', '{}', '{}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000068', '/queue/' || repeat('d', 100000), '{}', '{}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000069', '/queue/' || repeat('d', 248), '{}', '{}', now() + interval '1 day');
RESET session_replication_role;
SELECT id, outbox.message_headers(p) IS NULL AS cannot_be_sent
  FROM outbox.published p ORDER BY id;
TRUNCATE outbox.published;

DROP FUNCTION bh_detail(text);
