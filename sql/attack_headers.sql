--
-- Attacks on the rule that keeps a row written back by pg_restore as it
-- is (outbox_writer.c, row_is_restored()).  Since 1.1 a completed row
-- stores dop-correlation-id alone of the dop-* headers, so a row inserted
-- by the table's owner with an expiry and a dop-correlation-id header of
-- its own looks restored.  Such a row must not skip what a new message
-- gets: the version suffix, the check of its headers, the size limit.
--
CREATE FUNCTION ah_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN 'refused: ' || SQLERRM;
END $$;

-- 1. The owner writes a message by hand with a correlation id of its own
-- and an expiry: it is a new message, its destination gets the version
-- suffix.
INSERT INTO outbox.published (destination, version, body, headers, expires_at)
VALUES ('/queue/ah', 'v2', '{}', '{"dop-correlation-id": "req-1", "x": "y"}',
        now() + interval '1 day');
SELECT destination, version, headers - 'dop-correlation-id' AS stored
  FROM outbox.published;
TRUNCATE outbox.published;

-- 2. ... and its headers are checked: a reserved header, a null value, an
-- empty name are refused at INSERT, never left for the publisher to fail.
SELECT ah_try($$INSERT INTO outbox.published (destination, body, headers, expires_at)
    VALUES ('/queue/ah', '{}', '{"dop-correlation-id": "req-1", "receipt": "r"}',
            now() + interval '1 day')$$);
SELECT ah_try($$INSERT INTO outbox.published (destination, body, headers, expires_at)
    VALUES ('/queue/ah', '{}', '{"dop-correlation-id": "req-1", "k": null}',
            now() + interval '1 day')$$);
SELECT ah_try($$INSERT INTO outbox.published (destination, body, headers, expires_at)
    VALUES ('/queue/ah', '{}', '{"dop-correlation-id": "req-1", "": "e"}',
            now() + interval '1 day')$$);
-- 3. ... and so is its size.
SET outbox.max_message_size = '2kB';
SELECT ah_try($$INSERT INTO outbox.published (destination, body, headers, expires_at)
    VALUES ('/queue/ah', to_jsonb(repeat('x', 4000)), '{"dop-correlation-id": "req-1"}',
            now() + interval '1 day')$$);
RESET outbox.max_message_size;
SELECT count(*) AS stored FROM outbox.published;
TRUNCATE outbox.published;

-- 4. A row as pg_dump writes it back is still kept as it is: its
-- destination carries its version's suffix, its status stays.
INSERT INTO outbox.published (id, destination, version, body, headers, added, expires_at, status)
VALUES ('01900000-0000-7000-8000-000000000031', '/queue/ah.v2', 'v2', '{}',
        '{"dop-correlation-id": "c-restored", "x-tenant": "t"}',
        now() - interval '1 hour', now() + interval '1 day', 'succeeded');
SELECT id, destination, status, headers->>'dop-correlation-id' AS correlation
  FROM outbox.published;
TRUNCATE outbox.published;

-- 5. outbox.message_headers() is NULL for a row whose headers cannot be
-- sent, whatever makes them so: the publisher fails a row (written under
-- session_replication_role = replica, which skips the triggers) with a
-- header the STOMP client sets itself, an empty name or a name with a line
-- break, as it does one with a null value.
SET session_replication_role = replica;
INSERT INTO outbox.published (id, destination, body, headers, expires_at)
VALUES ('01900000-0000-7000-8000-000000000041', '/queue/ah', '{}', '{"receipt": "r"}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000042', '/queue/ah', '{}', '{"": "e"}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000043', '/queue/ah', '{}', E'{"a\\nb": "v"}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000044', '/queue/ah', '{}', '{"k": null}', now() + interval '1 day'),
       ('01900000-0000-7000-8000-000000000045', '/queue/ah', '{}', '{"k": "v"}', now() + interval '1 day');
RESET session_replication_role;
SELECT id, headers, outbox.message_headers(p) IS NULL AS cannot_be_sent
  FROM outbox.published p ORDER BY id;
TRUNCATE outbox.published;

-- 6. The size limit holds at send time too: dop-msg-sent-time is made
-- when the message is sent, in the publisher's time zone, and its length
-- varies (the fraction of a second loses its trailing zeros; an offset
-- may have seconds).  A message is measured with the longest it can be,
-- so that whether it is accepted depends neither on the writer's
-- TimeZone nor on the clock.  The largest body accepted under UTC is
-- accepted under an offset with seconds, and one byte more is refused.
CREATE FUNCTION ah_fits(n int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox.published (destination, body)
    VALUES ('/queue/ah', to_jsonb(repeat('x', n)));
    DELETE FROM outbox.published;
    RETURN true;
EXCEPTION WHEN program_limit_exceeded THEN
    RETURN false;
END $$;
CREATE FUNCTION ah_largest() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    lo int := 0;
    hi int := 4096;
    mid int;
BEGIN
    WHILE lo < hi LOOP
        mid := (lo + hi + 1) / 2;
        IF ah_fits(mid) THEN lo := mid; ELSE hi := mid - 1; END IF;
    END LOOP;
    RETURN lo;
END $$;
SET outbox.max_message_size = '2kB';
SET TimeZone = 'UTC';
CREATE TEMP TABLE ah_largest AS SELECT ah_largest() AS n;
SET TIME ZONE INTERVAL '00:00:15';
SELECT ah_fits(n) AS largest_fits, ah_fits(n + 1) AS one_more_fits FROM ah_largest;
-- A row written back as pg_restore does is not refused for the length of
-- a send time: the largest message accepted when written, measured with
-- a send time longer than the one it had, is restored.
INSERT INTO outbox.published (id, destination, body, headers, added, expires_at)
SELECT '01900000-0000-7000-8000-000000000051', '/queue/ah', to_jsonb(repeat('x', n + 10)),
       '{"dop-correlation-id": "c-restored-000000000000000000000000"}', now() - interval '1 hour',
       now() + interval '1 day'
  FROM ah_largest;
SELECT id, headers FROM outbox.published;
TRUNCATE outbox.published;
RESET TimeZone;
RESET outbox.max_message_size;
DROP TABLE ah_largest;
DROP FUNCTION ah_largest();
DROP FUNCTION ah_fits(int);

-- 7. A row written before is restored as it was, whatever it holds: one
-- the publisher sent or failed with none of outbox's headers (written
-- under session_replication_role = replica), one failed for headers that
-- cannot be sent; one still to be sent that cannot be now is restored
-- with a WARNING.  Dated now, the same rows are new messages, checked.
INSERT INTO outbox.published (id, destination, body, headers, added, expires_at, status, retry, last_error)
VALUES ('01900000-0000-7000-8000-000000000061', '/queue/ah', '{}', '{}',
        now() - interval '1 hour', now() + interval '1 day', 'succeeded', 0, NULL),
       ('01900000-0000-7000-8000-000000000062', '/queue/ah', '{}', '[1, 2]',
        now() - interval '1 hour', now() + interval '1 day', 'failed', 0, 'not an object'),
       ('01900000-0000-7000-8000-000000000063', '/queue/ah', '{}', '{"receipt": "r"}',
        now() - interval '1 hour', now() + interval '1 day', 'scheduled', 2, 'refused');
SELECT id, headers, status, retry, last_error FROM outbox.published ORDER BY id;
SELECT ah_try($$INSERT INTO outbox.published (destination, body, headers, expires_at, status, retry, last_error)
    VALUES ('/queue/ah', '{}', '[1, 2]', now() + interval '1 day', 'failed', 0, 'not an object')$$);
INSERT INTO outbox.published (destination, body, expires_at, status)
VALUES ('/queue/ah', '{"n": "now"}', now() + interval '1 day', 'succeeded');
SELECT status, retry FROM outbox.published WHERE body->>'n' = 'now';
TRUNCATE outbox.published;

-- 8. cap-msg-id, which consumers take as a message's id before
-- dop-msg-id, is nobody's to set: by hand, by UPDATE, to send_event(), by
-- the outbox.generate_headers function.
SELECT ah_try($$INSERT INTO outbox.published (destination, body, headers)
    VALUES ('/queue/ah', '{}', '{"cap-msg-id": "01900000-0000-7000-8000-000000000061"}')$$);
INSERT INTO outbox.published (destination, body) VALUES ('/queue/ah', '{}');
SELECT ah_try($$UPDATE outbox.published SET headers = headers || '{"cap-msg-id": "x"}'$$);
SELECT ah_try($$SELECT outbox.send_event('/queue/ah', '{}', '{"cap-msg-id": "x"}')$$);
CREATE FUNCTION public.ah_cap_headers(m outbox.published) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT '{"cap-msg-id": "x"}'::jsonb $$;
SET outbox.generate_headers = 'public.ah_cap_headers';
SELECT ah_try($$INSERT INTO outbox.published (destination, body) VALUES ('/queue/ah', '{}')$$);
RESET outbox.generate_headers;
DROP FUNCTION public.ah_cap_headers(outbox.published);
SELECT count(*) FROM outbox.published;
TRUNCATE outbox.published;

DROP FUNCTION ah_try(text);
