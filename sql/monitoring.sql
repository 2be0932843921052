--
-- Pausing destinations, and what monitoring roles see.
--
CREATE ROLE outbox_operator;
CREATE ROLE outbox_limited;
CREATE ROLE outbox_watcher IN ROLE pg_monitor;
CREATE ROLE outbox_nobody;

--
-- 1. outbox.pause() and outbox.resume(): granted to nobody by default.
--
SET ROLE outbox_nobody;
SELECT outbox.pause('/queue/orders');
SELECT outbox.resume('/queue/orders');
RESET ROLE;

GRANT EXECUTE ON FUNCTION outbox.pause(text), outbox.resume(text)
	TO outbox_operator, outbox_limited;
SET ROLE outbox_operator;
SELECT outbox.pause('/queue/orders');
-- twice: already paused
SELECT outbox.pause('/queue/orders');
-- the caller cannot write the table itself
INSERT INTO outbox.destination_pause (destination) VALUES ('/queue/other');
-- names the publisher could never send to are refused where they enter
SELECT outbox.pause('queue/orders');
SELECT outbox.pause('');
SELECT outbox.pause(E'/queue/a\nb');
SELECT outbox.pause(NULL);
RESET ROLE;
SELECT destination, paused_by FROM outbox.destination_pause;

-- a role limited to publishing patterns pauses only what it may publish
SELECT outbox.allow_destination('outbox_limited', 'publish', '/queue/team.*');
SET ROLE outbox_limited;
SELECT outbox.pause('/queue/orders');
SELECT outbox.resume('/queue/orders');
SELECT outbox.pause('/queue/team.a');
SELECT outbox.resume('/queue/team.a');
SELECT outbox.resume('/queue/team.a');
RESET ROLE;

--
-- 2. What outbox.destinations shows of paused destinations and the
-- backlog: due rows are those whose time has come (a row waiting for its
-- retry is not late).  outbox.status's backlog is tested in t/020, with
-- the database's publisher.
--
INSERT INTO outbox.published (destination, body) VALUES
	('/queue/orders', '{"n": 1}'), ('/queue/orders', '{"n": 2}'),
	('/queue/flowing', '{"n": 3}'), ('/queue/later', '{"n": 4}');
UPDATE outbox.published SET next_attempt_at = now() + interval '1 day',
	   added = now() - interval '2 days'
 WHERE destination = '/queue/later';
UPDATE outbox.published SET added = now() - interval '3 days'
 WHERE destination = '/queue/orders';
SELECT destination, state, pending, due, oldest_due_age IS NOT NULL AS has_due,
	   failed, paused_by
  FROM outbox.destinations ORDER BY destination;

--
-- 3. Who sees what: outbox.destinations and the totals are for monitoring
-- roles; outbox.status is for everyone, filtered.
--
SET ROLE outbox_nobody;
SELECT count(*) FROM outbox.destinations;
SELECT count(*) FROM outbox.counter_total;
SELECT count(*) FROM outbox.destination_state();
SELECT count(*) >= 0 AS sees_status FROM outbox.status;
RESET ROLE;
SET ROLE outbox_watcher;
SELECT destination, state FROM outbox.destinations ORDER BY destination;
SELECT count(*) FROM outbox.counter_total;
SELECT count(*) FROM outbox.destination_pause;
RESET ROLE;

-- resumed: the rows are due again
SET ROLE outbox_operator;
SELECT outbox.resume('/queue/orders');
SELECT outbox.resume('/queue/orders');
RESET ROLE;
SELECT destination, state, due FROM outbox.destinations ORDER BY destination;

DELETE FROM outbox.published;
SELECT outbox.disallow_destination('outbox_limited', 'publish');
REVOKE EXECUTE ON FUNCTION outbox.pause(text), outbox.resume(text)
	FROM outbox_operator, outbox_limited;
DROP ROLE outbox_operator, outbox_limited, outbox_watcher, outbox_nobody;
