--
-- What a message stores of its headers, and what outbox.message_headers()
-- shows of those it is sent with.  Only what cannot be made again is
-- stored: the user's headers, the outbox.generate_headers function's, and
-- dop-correlation-id; dop-msg-id, dop-msg-destination, dop-msg-type and
-- dop-msg-sent-time are made from the row when it is sent.
--
CREATE TABLE hs_orders (id int PRIMARY KEY, note text);
SELECT outbox.publish('hs_orders', '/topic/hs', 'v1');

-- 1. A captured row stores its correlation id alone.
INSERT INTO hs_orders VALUES (1, 'a');
SELECT destination, headers ?& ARRAY['dop-correlation-id'] AS has_correlation,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(headers) k) AS stored_keys
  FROM outbox.published;
-- ... and is sent with all five but the time of the send
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(outbox.message_headers(p)) k) AS keys,
       outbox.message_headers(p)->>'dop-msg-id' = p.id::text AS msg_id_is_id,
       outbox.message_headers(p)->>'dop-msg-destination' AS msg_destination,
       outbox.message_headers(p)->>'dop-msg-type' AS msg_type,
       outbox.message_headers(p)->'dop-correlation-id' = p.headers->'dop-correlation-id' AS same_correlation
  FROM outbox.published p;
TRUNCATE outbox.published;

-- 2. A hand insert stores the user's headers, but the dop-* ones they
-- forge; the correlation id is the transaction's.
BEGIN;
SET LOCAL outbox.correlation_id = 'req-hs';
INSERT INTO outbox.published (destination, version, body, headers)
VALUES ('/queue/hs', 'v2', '{"n": 1}',
        '{"x-tenant": "acme", "n": 3, "urgent": true, "dop-msg-id": "forged",
          "dop-msg-destination": "/x", "dop-msg-type": "Forged",
          "dop-msg-sent-time": "2020-01-01T00:00:00Z", "dop-correlation-id": "forged"}');
COMMIT;
SELECT destination, headers FROM outbox.published;
SELECT outbox.message_headers(p) - 'dop-msg-id' AS sent,
       outbox.message_headers(p)->>'dop-msg-id' = id::text AS msg_id_is_id
  FROM outbox.published p;

-- 3. An UPDATE of the message keeps storing only what cannot be made again;
-- the dop-* headers it sends follow the row.
UPDATE outbox.published SET destination = '/queue/hs2',
       headers = headers || '{"dop-msg-destination": "/y", "x-more": "m"}';
SELECT destination, headers - 'dop-correlation-id' AS stored,
       outbox.message_headers(p)->>'dop-msg-destination' AS msg_destination
  FROM outbox.published p;
TRUNCATE outbox.published;

-- 4. outbox.generate_headers: the function still sees all five dop-*
-- headers in the row it is given; its own are stored, winning over the
-- user's, and it cannot replace the built-in ones.
CREATE FUNCTION public.hs_headers(m outbox.published) RETURNS jsonb LANGUAGE sql AS
$$ SELECT jsonb_build_object('x-gen', 'g', 'x-tenant', 'from-function',
                             'dop-msg-type', 'Forged', 'dop-correlation-id', 'forged',
                             'x-saw', m.headers ?& ARRAY['dop-msg-id', 'dop-msg-destination',
                                 'dop-msg-type', 'dop-msg-sent-time', 'dop-correlation-id'],
                             'x-saw-id', m.headers->>'dop-msg-id' = m.id::text) $$;
SET outbox.generate_headers = 'public.hs_headers';
INSERT INTO outbox.published (destination, body, headers)
VALUES ('/queue/hs', '{}', '{"x-tenant": "acme", "x-user": "u"}');
INSERT INTO hs_orders VALUES (2, 'b');
RESET outbox.generate_headers;
SELECT destination, headers - 'dop-correlation-id' AS stored,
       outbox.message_headers(p)->>'dop-msg-type' AS msg_type,
       outbox.message_headers(p)->'dop-correlation-id' = p.headers->'dop-correlation-id' AS same_correlation
  FROM outbox.published p ORDER BY destination;
TRUNCATE outbox.published;
DROP FUNCTION public.hs_headers(outbox.published);

-- 5. A row stored by 1.0 holds all five dop-* headers, some stale or
-- forged here (written under session_replication_role = replica, which
-- skips the triggers): those made at send time win, its correlation id is
-- kept.  A row with no correlation id is sent with its id as one.
SET session_replication_role = replica;
INSERT INTO outbox.published (id, destination, body, headers, expires_at)
VALUES ('01900000-0000-7000-8000-000000000001', '/queue/old.v1', '{}',
        '{"dop-msg-id": "01900000-0000-7000-8000-000000000009",
          "dop-msg-destination": "/queue/elsewhere", "dop-msg-type": "Order",
          "dop-msg-sent-time": "2024-06-01T00:00:00.1+00:00",
          "dop-correlation-id": "c-1.0", "x-tenant": "old"}',
        now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000002', '/queue/bare', '{}', '{}',
        now() + interval '1 day');
RESET session_replication_role;
SELECT id, outbox.message_headers(p) FROM outbox.published p ORDER BY id;

-- 6. Headers that cannot be sent (the publisher fails such a row) show as
-- NULL, never as an error: a query over every row goes through.
SET session_replication_role = replica;
INSERT INTO outbox.published (destination, body, headers, expires_at)
VALUES ('/queue/bad', '{}', '[1]', now() + interval '1 day'),
       ('/queue/bad', '{}', '{"k": null}', now() + interval '1 day');
RESET session_replication_role;
SELECT destination, outbox.message_headers(p) IS NULL AS cannot_be_sent
  FROM outbox.published p ORDER BY destination, id;
-- and on a row value made up, it shows only what that value holds
SELECT outbox.message_headers(ROW('01900000-0000-7000-8000-000000000003', '/queue/made-up',
           NULL, '{}', '{"x": 1}', now(), now(), 0, 'scheduled', NULL, now())::outbox.published);
SELECT outbox.message_headers(ROW(NULL, '/queue/made-up', NULL, '{}', '{}', now(), now(),
           0, 'scheduled', NULL, now())::outbox.published) IS NULL AS no_id;
TRUNCATE outbox.published;

-- 7. A completed row written back (as pg_restore does, with the time it
-- was written) is kept as it is, whether stored by 1.0 (all five dop-*
-- headers) or since (its correlation id alone): no second version suffix,
-- no new correlation id, its status kept.  Without the version's suffix
-- it is a new message.
INSERT INTO outbox.published (id, destination, version, body, headers, added, expires_at, status)
VALUES ('01900000-0000-7000-8000-000000000011', '/queue/r.v2', 'v2', '{}',
        '{"dop-correlation-id": "c-restored", "x-tenant": "t"}',
        now() - interval '1 hour', now() + interval '1 day', 'succeeded'),
       ('01900000-0000-7000-8000-000000000012', '/queue/r.v2', 'v2', '{}',
        '{"dop-msg-id": "01900000-0000-7000-8000-000000000012",
          "dop-msg-destination": "/queue/r.v2", "dop-msg-type": "Published",
          "dop-msg-sent-time": "2024-06-01T00:00:00+00:00",
          "dop-correlation-id": "c-restored-1.0"}',
        now() - interval '1 hour', now() + interval '1 day', 'succeeded'),
       ('01900000-0000-7000-8000-000000000013', '/queue/r', 'v2', '{}',
        '{"x-tenant": "t"}', now() - interval '1 hour', now() + interval '1 day', 'succeeded'),
       ('01900000-0000-7000-8000-000000000014', '/queue/r', 'v2', '{}',
        '{"dop-msg-id": "01900000-0000-7000-8000-000000000099",
          "dop-correlation-id": "c-not-its-own"}',
        now() - interval '1 hour', now() + interval '1 day', 'succeeded');
SELECT id, destination, status,
       CASE WHEN headers->>'dop-correlation-id' LIKE 'c-%' THEN headers->>'dop-correlation-id'
            ELSE 'a fresh one' END AS correlation,
       headers ? 'dop-msg-type' AS keeps_1_0_headers
  FROM outbox.published ORDER BY id;
TRUNCATE outbox.published;

-- 8. Only a role that may act as the table's owner writes a row back as
-- it is; anyone else's is a new message.
CREATE ROLE hs_writer;
GRANT INSERT ON outbox.published TO hs_writer;
SET ROLE hs_writer;
INSERT INTO outbox.published (id, destination, version, body, headers, expires_at, status)
VALUES ('01900000-0000-7000-8000-000000000021', '/queue/w.v2', 'v2', '{}',
        '{"dop-correlation-id": "c-forged"}', now() + interval '1 day', 'succeeded');
-- 9. Everyone may call outbox.message_headers(), but reading a row takes a
-- SELECT on outbox.published.
SELECT outbox.message_headers(p) FROM outbox.published p;
RESET ROLE;
SELECT destination, status, headers->>'dop-correlation-id' = 'c-forged' AS forged_kept
  FROM outbox.published;
GRANT SELECT ON outbox.published TO hs_writer;
SET ROLE hs_writer;
SELECT outbox.message_headers(p)->>'dop-msg-destination' AS msg_destination
  FROM outbox.published p;
RESET ROLE;
REVOKE ALL ON outbox.published FROM hs_writer;
DROP ROLE hs_writer;
TRUNCATE outbox.published;

-- 10. The size limit counts the headers made at send time, though they
-- are not stored: a destination of 255 bytes goes out twice.
SET outbox.max_message_size = '2kB';
CREATE FUNCTION hs_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'accepted';
EXCEPTION WHEN program_limit_exceeded THEN
    RETURN 'refused';
END $$;
-- a frame of about 2020 bytes, its 255-byte destination twice: taken
SELECT hs_try(format($$INSERT INTO outbox.published (destination, body) VALUES (%L, to_jsonb(repeat('x', 900)))$$,
                     '/queue/' || repeat('d', 248)));
-- about 2190 bytes, of which 276 are the line of dop-msg-destination (and
-- some 130 the other dop-* headers made at send time): refused, though
-- what is stored would fit
SELECT hs_try(format($$INSERT INTO outbox.published (destination, body) VALUES (%L, to_jsonb(repeat('x', 1065)))$$,
                     '/queue/' || repeat('d', 248)));
SELECT count(*) FROM outbox.published;
RESET outbox.max_message_size;
DROP FUNCTION hs_try(text);
TRUNCATE outbox.published;

SELECT outbox.unpublish('hs_orders');
DROP TABLE hs_orders;
