--
-- Rows written into outbox.published by hand by a role granted INSERT: the
-- bookkeeping columns are outbox's, and no date may keep a row forever.
-- outbox.generate_headers must name a plain function.
--
SET TimeZone = 'UTC';
TRUNCATE outbox.published;
CREATE ROLE outbox_hand;
GRANT INSERT ON outbox.published TO outbox_hand;
SET ROLE outbox_hand;
-- a hand insert cannot mark its row sent, failed, retried or postponed
INSERT INTO outbox.published (destination, body, status, retry, last_error,
							  next_attempt_at)
VALUES ('/topic/hand', '{}', 'succeeded', 7, 'forged', 'infinity');
INSERT INTO outbox.published (destination, body, status, next_attempt_at)
VALUES ('/topic/hand', '{"n": 2}', 'failed', '2000-01-01');
-- nor keep it from retention, or date it ahead of the clock
INSERT INTO outbox.published (destination, body, added)
VALUES ('/topic/hand', '{}', 'infinity');
INSERT INTO outbox.published (destination, body, added)
VALUES ('/topic/hand', '{}', '-infinity');
INSERT INTO outbox.published (destination, body, expires_at)
VALUES ('/topic/hand', '{}', 'infinity');
INSERT INTO outbox.published (destination, body, added)
VALUES ('/topic/hand', '{}', now() + interval '2 days');
-- a little ahead (another server's clock) is fine
INSERT INTO outbox.published (destination, body, added)
VALUES ('/topic/hand', '{"n": 3}', now() + interval '1 hour');
RESET ROLE;
SELECT body, status, retry, last_error,
	   next_attempt_at BETWEEN now() - interval '1 hour' AND clock_timestamp() AS due_now
  FROM outbox.published ORDER BY body->>'n';
-- an update cannot make a row last forever either
UPDATE outbox.published SET added = 'infinity';
UPDATE outbox.published SET expires_at = 'infinity';
UPDATE outbox.published SET expires_at = '-infinity', body = '{"n": 9}';
SELECT count(*) FROM outbox.published WHERE NOT isfinite(added) OR NOT isfinite(expires_at);
TRUNCATE outbox.published;

-- outbox.generate_headers naming something that is not a plain function
CREATE SCHEMA hand;
CREATE FUNCTION hand.srf(p outbox.published) RETURNS SETOF jsonb LANGUAGE sql
	AS $$ VALUES ('{"x-a": "1"}'::jsonb), ('{"x-b": "2"}'::jsonb) $$;
CREATE PROCEDURE hand.proc(p outbox.published) LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION hand.step(s jsonb, p outbox.published) RETURNS jsonb
	LANGUAGE sql AS $$ SELECT s $$;
CREATE AGGREGATE hand.agg(outbox.published) (SFUNC = hand.step, STYPE = jsonb,
	INITCOND = '{}');
SET outbox.generate_headers = 'hand.srf';
INSERT INTO outbox.published (destination, body) VALUES ('/topic/hand', '{}');
SET outbox.generate_headers = 'hand.proc';
INSERT INTO outbox.published (destination, body) VALUES ('/topic/hand', '{}');
SET outbox.generate_headers = 'hand.agg';
INSERT INTO outbox.published (destination, body) VALUES ('/topic/hand', '{}');
RESET outbox.generate_headers;
SELECT count(*) FROM outbox.published;
DROP SCHEMA hand CASCADE;
REVOKE ALL ON outbox.published FROM outbox_hand;
DROP ROLE outbox_hand;
-- a destination RabbitMQ cannot route is refused by hand as by publish()
INSERT INTO outbox.published (destination, body) VALUES ('topic/x', '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/t', '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/queue/x', '{}');
UPDATE outbox.published SET destination = 'queue/x';
SELECT destination FROM outbox.published;
TRUNCATE outbox.published;
