--
-- Destination patterns, attacked: group roles, and patterns and
-- destinations full of characters that mean something elsewhere.
--
CREATE ROLE outbox_team_a;
CREATE ROLE outbox_carol IN ROLE outbox_team_a;
CREATE ROLE outbox_dave IN ROLE outbox_team_a;
CREATE ROLE outbox_loner NOINHERIT IN ROLE outbox_team_a;
CREATE SCHEMA carol AUTHORIZATION outbox_carol;

--
-- 1. The rights of a group role are its members' rights: so must its
-- limits be.  Publishing and subscribing granted to a team and limited to
-- the team's patterns hold for every member, who has no patterns of its
-- own; a member's own patterns add to the team's.
--
GRANT EXECUTE ON FUNCTION outbox.publish(regclass, text, text, text[], text),
	outbox.unpublish(regclass, text, text),
	outbox.send_event(text, jsonb, jsonb),
	outbox.subscribe(text, text, text), outbox.unsubscribe(text),
	outbox.redrive(text, uuid) TO outbox_team_a;
GRANT INSERT ON outbox.published TO outbox_team_a;
SELECT outbox.allow_destination('outbox_team_a', 'publish', '/topic/team-a.*');
SELECT outbox.allow_destination('outbox_team_a', 'subscribe', '/topic/team-a.*');
SELECT outbox.allow_destination('outbox_team_a', 'subscribe', 'team-a.*');
SELECT outbox.allow_destination('outbox_team_a', 'subscribe', 'DLQ.team-a.*');
SELECT outbox.allow_destination('outbox_dave', 'publish', '/topic/dave.*');
SET ROLE outbox_carol;
CREATE TABLE carol.orders (id int PRIMARY KEY);
CREATE FUNCTION carol.cb(p outbox.payload) RETURNS boolean LANGUAGE sql
	AS $$ SELECT true $$;
SELECT outbox.publish('carol.orders', '/topic/team-b.orders');
SELECT outbox.publish('carol.orders', '/topic/team-a', 'orders');
INSERT INTO outbox.published (destination, body) VALUES ('/topic/team-b.x', '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/topic/team-a.x', '{}');
SELECT outbox.send_event('/topic/team-b.x', '{}');
SELECT outbox.subscribe('carol.cb', '/topic/team-b.x', 'team-a.b');
SELECT outbox.subscribe('carol.cb', '/topic/team-a.x', 'team-b.x');
SELECT outbox.subscribe('carol.cb', '/topic/team-a.x');
SELECT outbox.redrive('/topic/team-b.x');
RESET ROLE;
-- a member's own patterns widen the team's, not the other way round
SET ROLE outbox_dave;
INSERT INTO outbox.published (destination, body) VALUES ('/topic/dave.x', '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/topic/team-a.y', '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/topic/team-b.y', '{}');
RESET ROLE;
-- a NOINHERIT member has the team's rights, and limits, only as the team
SET ROLE outbox_loner;
INSERT INTO outbox.published (destination, body) VALUES ('/topic/team-b.z', '{}');
SET ROLE outbox_team_a;
INSERT INTO outbox.published (destination, body) VALUES ('/topic/team-b.z', '{}');
RESET ROLE;
SELECT destination FROM outbox.published ORDER BY 1;
SELECT queue_name, destination, run_as FROM outbox.subscription;
-- the last pattern of the team removed: the members are no longer limited
SELECT outbox.disallow_destination('outbox_team_a', 'publish');
SET ROLE outbox_carol;
INSERT INTO outbox.published (destination, body) VALUES ('/topic/team-b.x', '{}');
SET ROLE outbox_dave;
INSERT INTO outbox.published (destination, body) VALUES ('/topic/team-b.x', '{}');
RESET ROLE;
SELECT outbox.disallow_destination('outbox_dave', 'publish');
TRUNCATE outbox.published;

--
-- 2. "*" is the only special character of a pattern: LIKE's % _ \,
-- regular expressions' . [ ] ^ $ ? + ( ) |, and AMQP's # mean themselves;
-- case matters; "*" matches an empty run, at either end or both.
--
SELECT outbox.allow_destination('outbox_carol', 'publish', p)
  FROM (VALUES ('/topic/a%'), ('/topic/b_c'), (E'/topic/d\\e'), ('/topic/f.g'),
			   ('/topic/[h]'), ('/topic/^i$'), ('/topic/j?+(k)|'), ('/topic/l.#'),
			   ('/topic/Mixed'), ('*.end'), ('/queue/start*'), ('*.mid.*'),
			   ('/exchange/x/**y')) AS v(p);
SET ROLE outbox_carol;
CREATE FUNCTION carol.try(d text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO outbox.published (destination, body) VALUES (d, '{}');
	RETURN 'sent';
EXCEPTION WHEN insufficient_privilege THEN
	RETURN 'refused';
END $$;
SELECT d, carol.try(d)
  FROM (VALUES ('/topic/a%'), ('/topic/abc'), ('/topic/a'),
			   ('/topic/b_c'), ('/topic/bxc'),
			   (E'/topic/d\\e'), ('/topic/de'), ('/topic/d\\e'),
			   ('/topic/f.g'), ('/topic/fxg'),
			   ('/topic/[h]'), ('/topic/h'),
			   ('/topic/^i$'), ('/topic/i'),
			   ('/topic/j?+(k)|'), ('/topic/jk'), ('/topic/jjk'),
			   ('/topic/l.#'), ('/topic/l.x'),
			   ('/topic/Mixed'), ('/topic/mixed'), ('/topic/MIXED'),
			   ('/queue/x.end'), ('/queue/.end'), ('/queue/x.end2'),
			   ('/queue/start'), ('/queue/starting'), ('/queue/restart'),
			   ('/topic/a.mid.'), ('/exchange/e/x.mid.k'), ('/topic/mid'),
			   ('/exchange/x/y'), ('/exchange/x/zzy'), ('/exchange/x/yz')) AS v(d);
-- a version suffix is part of what must match
SELECT outbox.publish('carol.orders', '/queue/start', 'v1');
SELECT outbox.publish('carol.orders', '/topic/a', '%');
SELECT outbox.publish('carol.orders', '/topic/f', 'g');
SELECT outbox.publish('carol.orders', '/topic/Mixed', 'v1');
SELECT destination, version FROM outbox.publish_config
 WHERE relid = 'carol.orders'::regclass ORDER BY 1, 2;
-- a destination as long as the limit, against patterns that backtrack
SELECT carol.try('/queue/' || repeat('.en', 82) || 'd') AS long;
SELECT carol.try('/queue/' || repeat('.en', 82) || 'x') AS long;
RESET ROLE;
-- a pattern is held to the rules of a destination
SELECT outbox.allow_destination('outbox_carol', 'publish', repeat('*', 256));
SELECT outbox.allow_destination('outbox_carol', 'publish', E'/topic/\r');
SELECT outbox.allow_destination('outbox_carol', 'publish', NULL);
SELECT outbox.disallow_destination('outbox_carol', 'publish');
TRUNCATE outbox.published;

--
-- 3. A serializer or a callback outlives the session that names it: a
-- temporary function, dropped at its end, would break every later write
-- of the table, or every message of the queue.
--
SET ROLE outbox_carol;
CREATE FUNCTION pg_temp.ser(r carol.orders) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION pg_temp.cb(p outbox.payload) RETURNS boolean LANGUAGE sql
	AS $$ SELECT true $$;
SELECT outbox.publish('carol.orders', '/topic/team-a.tmp', NULL, NULL, 'pg_temp.ser');
SELECT outbox.publish('carol.orders', '/topic/team-a.tmp', NULL, NULL,
					  'pg_temp.ser(carol.orders)');
SELECT outbox.subscribe('pg_temp.cb', '/topic/team-a.tmp');
SELECT outbox.subscribe('pg_temp.cb(outbox.payload)', '/topic/team-a.tmp');
SELECT count(*) FROM outbox.publish_config WHERE destination = '/topic/team-a.tmp';
SELECT count(*) FROM outbox.subscription WHERE destination = '/topic/team-a.tmp';
DROP FUNCTION pg_temp.ser(carol.orders), pg_temp.cb(outbox.payload);

RESET ROLE;

--
-- 4. A queue has one consumer: the queue of a subscription and its
-- dead-letter queue DLQ.<queue> are both taken, whichever comes first.
--
CREATE ROLE outbox_erin;
GRANT EXECUTE ON FUNCTION outbox.subscribe(text, text, text),
	outbox.unsubscribe(text) TO outbox_erin;
GRANT USAGE ON SCHEMA carol TO outbox_erin;
GRANT EXECUTE ON FUNCTION carol.cb(outbox.payload) TO outbox_erin;
SET ROLE outbox_erin;
SELECT outbox.subscribe('carol.cb', '/topic/erin', 'DLQ.team-a.x');
SELECT outbox.subscribe('carol.cb', '/queue/DLQ.team-a.x');
SELECT outbox.subscribe('carol.cb', '/topic/erin', 'DLQ.zed');
SELECT outbox.subscribe('carol.cb', '/topic/erin', 'zed');
SELECT outbox.subscribe('carol.cb', '/topic/erin', 'DLQ.DLQ.zed');
SELECT outbox.subscribe('carol.cb', '/topic/erin', 'DLQ.zed.x');
SELECT queue_name FROM outbox.subscription ORDER BY 1;
SELECT outbox.unsubscribe(q) FROM (VALUES ('DLQ.team-a.x'), ('DLQ.zed'),
	('zed'), ('DLQ.DLQ.zed'), ('DLQ.zed.x')) AS v(q);
RESET ROLE;
DROP OWNED BY outbox_erin;
DROP ROLE outbox_erin;

SET ROLE outbox_carol;
SELECT outbox.unsubscribe(q) FROM (VALUES ('team-a.x'), ('team-a.b'), ('team-b.x'), ('team-a.tmp')) AS v(q);
SELECT outbox.unpublish('carol.orders');
RESET ROLE;
SELECT outbox.disallow_destination('outbox_team_a', 'subscribe');
DROP SCHEMA carol CASCADE;
DROP OWNED BY outbox_team_a, outbox_carol, outbox_dave, outbox_loner;
DROP ROLE outbox_team_a, outbox_carol, outbox_dave, outbox_loner;
