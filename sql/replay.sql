--
-- outbox.replay(): sent messages of one destination and range of added
-- times scheduled again, with their ids and bodies; limited, privileged,
-- recorded in outbox.replay_log.
--
SET TimeZone = 'UTC';
INSERT INTO outbox.published (id, destination, body, added)
SELECT ('00000000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid,
       CASE WHEN i % 2 = 0 THEN '/topic/even' ELSE '/topic/odd' END,
       jsonb_build_object('n', i),
       '2026-01-01 00:00+00'::timestamptz + i * interval '1 hour'
  FROM generate_series(1, 10) i;
SELECT count(*), min(added), max(added) FROM outbox.published;
-- as if the publisher had sent them all but the last one
UPDATE outbox.published SET status = 'succeeded' WHERE body->>'n' <> '10';
CREATE VIEW state AS
SELECT body->>'n' AS n, destination, status, retry FROM outbox.published
 ORDER BY id;

-- [since, until) on added, one destination, succeeded rows only
SELECT outbox.replay('/topic/even', '2026-01-01 02:00+00', '2026-01-01 08:00+00');
SELECT * FROM state;
SELECT replayed_by, destination, since, until, messages FROM outbox.replay_log;
-- ids and bodies are kept
SELECT id, body FROM outbox.published WHERE status = 'scheduled' ORDER BY id;
-- the scheduled ones are not replayed again, nor is the pending one
SELECT outbox.replay('/topic/even', '2026-01-01 00:00+00');
SELECT * FROM state;

-- until defaults to now(), and is at most now()
UPDATE outbox.published SET status = 'succeeded';
SELECT outbox.replay('/topic/odd', '2026-01-01 00:00+00', 'infinity');
SELECT outbox.replay('/topic/odd', '2026-01-01 00:00+00', '2999-01-01');
SELECT destination, messages, until = replayed_at AS until_now FROM outbox.replay_log ORDER BY replayed_at;

-- limited: a larger replay is refused whole
UPDATE outbox.published SET status = 'succeeded';
SELECT outbox.replay('/topic/odd', '2026-01-01 00:00+00', max_messages => 4);
SELECT count(*) FROM outbox.published WHERE status = 'scheduled';
SELECT outbox.replay('/topic/odd', '2026-01-01 00:00+00', max_messages => 5);
SELECT outbox.replay('/topic/odd', '2026-01-01 00:00+00', max_messages => 0);
SELECT outbox.replay(NULL, '2026-01-01 00:00+00');
SELECT outbox.replay('/topic/odd', NULL);
SELECT outbox.replay('/topic/odd', '-infinity');
-- bounds the wrong way round, or since after now(), are refused
SELECT outbox.replay('/topic/odd', '2026-01-01 08:00+00', '2026-01-01 02:00+00');
SELECT outbox.replay('/topic/odd', now() + interval '1 day');
SELECT count(*) FROM outbox.replay_log;
-- any max_messages an integer holds
UPDATE outbox.published SET status = 'succeeded';
SELECT outbox.replay('/topic/odd', '2026-01-01 00:00+00', max_messages => 2147483647);

-- privileges: EXECUTE is granted, destination patterns apply
CREATE ROLE replayer;
SET ROLE replayer;
SELECT outbox.replay('/topic/odd', '2026-01-01 00:00+00');
SELECT count(*) FROM outbox.replay_log;
RESET ROLE;
GRANT EXECUTE ON FUNCTION outbox.replay(text, timestamptz, timestamptz, integer) TO replayer;
SELECT outbox.allow_destination('replayer', 'publish', '/topic/e*');
UPDATE outbox.published SET status = 'succeeded';
SET ROLE replayer;
SELECT outbox.replay('/topic/odd', '2026-01-01 00:00+00');
SELECT outbox.replay('/topic/even', '2026-01-01 00:00+00');
RESET ROLE;
SELECT replayed_by, destination, messages FROM outbox.replay_log ORDER BY replayed_at DESC, messages DESC LIMIT 1;
SELECT has_function_privilege('public', 'outbox.replay(text, timestamptz, timestamptz, integer)', 'EXECUTE');
-- replay_log is dumped with the extension
SELECT extcondition IS NOT NULL AS dumped
  FROM pg_extension, unnest(extconfig) AS c(oid)
 WHERE extname = 'outbox' AND c.oid = 'outbox.replay_log'::regclass;
SELECT outbox.disallow_destination('replayer', 'publish', '/topic/e*');
REVOKE EXECUTE ON FUNCTION outbox.replay(text, timestamptz, timestamptz, integer) FROM replayer;
DROP ROLE replayer;
TRUNCATE outbox.published, outbox.replay_log;
