--
-- Who may do what through outbox: no role gets past its own rights.
--
CREATE ROLE outbox_alice;
CREATE ROLE outbox_mallory;
CREATE SCHEMA evil AUTHORIZATION outbox_mallory;

--
-- 1. The functions that write outbox's tables as the extension's owner
-- ignore the caller's search_path: a table owner's operators and functions,
-- put first in the path, never run as the owner.
--
GRANT EXECUTE ON FUNCTION outbox.publish(regclass, text, text, text[], text),
	outbox.unpublish(regclass, text, text),
	outbox.subscribe(text, text, text), outbox.unsubscribe(text),
	outbox.redrive(text, uuid) TO outbox_mallory;
SET ROLE outbox_mallory;
CREATE TABLE evil.t (id int PRIMARY KEY);
CREATE TABLE evil.spy (who name, what text);
-- each trap records who ran it and tries to make mallory a superuser
CREATE FUNCTION evil.trap(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO evil.spy VALUES (current_user, what);
	BEGIN
		ALTER ROLE outbox_mallory SUPERUSER;
	EXCEPTION WHEN insufficient_privilege THEN
		NULL;
	END;
END $$;
GRANT INSERT ON evil.spy TO PUBLIC;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE FUNCTION evil.oideq(a oid, b oid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('oid = oid'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION evil.texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('text = text'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION evil.nametexteq(a name, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('name = text'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION evil.uuideq(a uuid, b uuid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('uuid = uuid'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION evil.statuseq(a outbox.message_status, b outbox.message_status)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('status = status'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.trap('now()'); RETURN pg_catalog.now(); END $$;
CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.oideq);
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = text, FUNCTION = evil.nametexteq);
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.uuideq);
CREATE OPERATOR evil.= (LEFTARG = outbox.message_status,
						RIGHTARG = outbox.message_status, FUNCTION = evil.statuseq);
CREATE FUNCTION evil.cb(p outbox.payload) RETURNS boolean LANGUAGE sql
	AS $$ SELECT true $$;
RESET ROLE;
-- a failed message, for redrive to update
INSERT INTO outbox.published (destination, body) VALUES ('/topic/evil', '{}');
UPDATE outbox.published SET status = 'failed', last_error = 'refused';
SELECT id AS evil_id FROM outbox.published \gset
SET ROLE outbox_mallory;
SET search_path = evil, pg_catalog;
SELECT outbox.publish('evil.t', '/topic/evil');
SELECT outbox.publish('evil.t', '/topic/evil', 'v2');
SELECT outbox.unpublish('evil.t', '/topic/evil', 'v2');
SELECT outbox.unpublish('evil.t', '/topic/evil');
SELECT outbox.subscribe('evil.cb', '/topic/evil', 'evil_queue');
SELECT outbox.unsubscribe('evil_queue');
SELECT outbox.redrive();
SELECT outbox.redrive('/topic/evil');
RESET ROLE;
UPDATE outbox.published SET status = 'failed';
SET ROLE outbox_mallory;
SELECT outbox.redrive(id => :'evil_id');
RESET search_path;
RESET ROLE;
-- mallory is no superuser, and no trap ran as anyone but mallory
SELECT rolsuper FROM pg_roles WHERE rolname = 'outbox_mallory';
SELECT who, what FROM evil.spy WHERE who <> 'outbox_mallory' ORDER BY 1, 2;
-- nor as mallory: every operator those functions use is qualified
SELECT who, what FROM evil.spy ORDER BY 1, 2;
TRUNCATE outbox.published;
DROP SCHEMA evil CASCADE;
REVOKE ALL ON FUNCTION outbox.publish(regclass, text, text, text[], text),
	outbox.unpublish(regclass, text, text),
	outbox.subscribe(text, text, text), outbox.unsubscribe(text),
	outbox.redrive(text, uuid) FROM outbox_mallory;

--
-- 2. Every right is granted, none is PUBLIC: a role with only CONNECT and
-- TEMP (what PUBLIC has on a database) can neither publish nor send.
--
CREATE ROLE outbox_nobody;
SET ROLE outbox_nobody;
CREATE TEMP TABLE tmp_orders (id int PRIMARY KEY);
SELECT outbox.publish('tmp_orders', '/queue/other-team');
SELECT outbox.unpublish('tmp_orders');
SELECT outbox.send_event('/queue/other-team', '{"forged": true}');
INSERT INTO outbox.published (destination, body) VALUES ('/queue/other-team', '{"forged": true}');
SELECT outbox.subscribe('f', '/queue/other-team');
SELECT outbox.unsubscribe('other-team');
SELECT outbox.redrive();
SELECT outbox.allow_destination('outbox_nobody', 'publish', '*');
SELECT outbox.disallow_destination('outbox_nobody', 'publish');
SELECT * FROM outbox.destination_grant;
-- what PUBLIC may do: look
SELECT count(*) >= 0 AS can_look FROM outbox.status;
SELECT count(*) >= 0 AS can_look FROM outbox.subscription;
DROP TABLE tmp_orders;
RESET ROLE;
SELECT count(*) FROM outbox.published;

--
-- 3. A publisher may publish only its own permanent, logged tables, to
-- destinations the broker can route.
--
GRANT EXECUTE ON FUNCTION outbox.publish(regclass, text, text, text[], text),
	outbox.unpublish(regclass, text, text),
	outbox.send_event(text, jsonb, jsonb) TO outbox_alice;
GRANT CREATE ON SCHEMA public TO outbox_alice;
SET ROLE outbox_alice;
CREATE TEMP TABLE alice_temp (id int PRIMARY KEY);
SELECT outbox.publish('alice_temp', '/topic/alice');
CREATE UNLOGGED TABLE alice_unlogged (id int PRIMARY KEY);
SELECT outbox.publish('alice_unlogged', '/topic/alice');
CREATE TABLE alice_t (id int PRIMARY KEY, v text);
SELECT outbox.publish('alice_t', 'topic/alice');
SELECT outbox.publish('alice_t', 'alice');
SELECT outbox.publish('alice_t', '/topic/');
SELECT outbox.publish('alice_t', '/topic//x');
SELECT outbox.publish('alice_t', '/temp/alice');
SELECT outbox.send_event('queue/alice', '{}');
SELECT count(*) FROM outbox.publish_config WHERE relid = 'alice_t'::regclass;
RESET ROLE;

--
-- 4. Destination patterns: opt-in, managed by superusers and the
-- extension's owner only, checked wherever a destination enters.
--
SELECT outbox.allow_destination('outbox_alice', 'publish', '/topic/alice.*');
SELECT outbox.allow_destination('outbox_alice', 'publish', '/topic/alice.*');
SELECT outbox.allow_destination('outbox_alice', 'publish', '/queue/alice');
SELECT outbox.allow_destination('outbox_alice', 'bogus', '*');
SELECT outbox.allow_destination('outbox_alice', 'publish', '');
SELECT outbox.allow_destination('outbox_alice', 'publish', E'/topic/\n');
SELECT outbox.allow_destination(NULL, 'publish', '*');
SELECT outbox.allow_destination(12345::oid::regrole, 'publish', '*');
SELECT role, privilege, pattern FROM outbox.destination_grant ORDER BY 1, 2, 3;
-- EXECUTE on the functions is not enough to manage patterns
GRANT EXECUTE ON FUNCTION outbox.allow_destination(regrole, text, text),
	outbox.disallow_destination(regrole, text, text) TO outbox_alice;
SET ROLE outbox_alice;
SELECT outbox.allow_destination('outbox_alice', 'publish', '*');
SELECT outbox.disallow_destination('outbox_alice', 'publish');
UPDATE outbox.destination_grant SET pattern = '*';
RESET ROLE;
REVOKE EXECUTE ON FUNCTION outbox.allow_destination(regrole, text, text),
	outbox.disallow_destination(regrole, text, text) FROM outbox_alice;
-- publish(): the final, version-suffixed destination must match
SET ROLE outbox_alice;
SELECT outbox.publish('alice_t', '/topic/bob');
SELECT outbox.publish('alice_t', '/topic/alicexyz');
SELECT outbox.publish('alice_t', '/topic/alice.orders');
SELECT outbox.publish('alice_t', '/topic/alice', 'v1');
SELECT outbox.publish('alice_t', '/queue/alice', 'v1');
SELECT outbox.publish('alice_t', '/queue/alice');
SELECT destination, version FROM outbox.publish_config
 WHERE relid = 'alice_t'::regclass ORDER BY 1, 2;
-- send_event(): refused before any connection is tried
SELECT outbox.send_event('/topic/bob', '{}');
\set VERBOSITY terse
SELECT outbox.send_event('/topic/alice.direct', '{}');
\set VERBOSITY default
RESET ROLE;
-- hand inserts, as the inserting role
GRANT INSERT ON outbox.published TO outbox_alice;
SET ROLE outbox_alice;
INSERT INTO outbox.published (destination, body) VALUES ('/topic/bob', '{}');
INSERT INTO outbox.published (destination, body)
	VALUES ('/topic/alice.ok', '{}'), ('/topic/bob.ok', '{}');
INSERT INTO outbox.published (destination, version, body) VALUES ('/topic/alice', 'v3', '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/queue/alice', '{}');
-- captured rows need no pattern of the writer: publish() checked them
INSERT INTO alice_t VALUES (1, 'captured');
RESET ROLE;
SELECT destination, body FROM outbox.published ORDER BY destination, body::text;
-- a superuser is never limited
SELECT outbox.allow_destination(current_user::regrole, 'publish', '/nowhere');
INSERT INTO outbox.published (destination, body) VALUES ('/topic/anywhere', '{}');
SELECT outbox.disallow_destination(current_user::regrole, 'publish');

--
-- 5. redrive() schedules again only the failed messages the caller may
-- publish.
--
TRUNCATE outbox.published;
INSERT INTO outbox.published (destination, body)
	VALUES ('/topic/alice.a', '{"n": 1}'), ('/topic/alice.a', '{"n": 2}'),
		   ('/topic/bob.b', '{"n": 3}'), ('/topic/bob.c', '{"n": 4}');
UPDATE outbox.published SET status = 'failed', retry = 50, last_error = 'refused';
SELECT id AS bob_id FROM outbox.published WHERE destination = '/topic/bob.b' \gset
GRANT EXECUTE ON FUNCTION outbox.redrive(text, uuid) TO outbox_alice;
SET ROLE outbox_alice;
SELECT outbox.redrive('/topic/bob.b');
SELECT outbox.redrive(id => :'bob_id');
SELECT outbox.redrive();
SELECT outbox.redrive();
RESET ROLE;
SELECT destination, status, retry, last_error FROM outbox.published ORDER BY destination, body::text;
SELECT outbox.redrive();
TRUNCATE outbox.published;

--
-- 6. Subscribing patterns hold for the destination, the queue and its
-- dead-letter queue DLQ.<queue>; a role sees only its own subscriptions.
--
GRANT EXECUTE ON FUNCTION outbox.subscribe(text, text, text),
	outbox.unsubscribe(text) TO outbox_alice, outbox_mallory;
SELECT outbox.allow_destination('outbox_alice', 'subscribe', '/topic/alice.*');
SELECT outbox.allow_destination('outbox_alice', 'subscribe', 'alice_*');
SET ROLE outbox_alice;
CREATE FUNCTION alice_cb(p outbox.payload) RETURNS boolean LANGUAGE sql
	AS $$ SELECT true $$;
GRANT EXECUTE ON FUNCTION alice_cb(outbox.payload) TO outbox_mallory;
SELECT outbox.subscribe('alice_cb', '/topic/bob.x', 'alice_q');
SELECT outbox.subscribe('alice_cb', '/topic/alice.x', 'bob_q');
SELECT outbox.subscribe('alice_cb', '/topic/alice.x', 'alice_q');
SELECT outbox.subscribe('alice_cb', 'topic/alice.x', 'alice_q');
RESET ROLE;
SELECT outbox.allow_destination('outbox_alice', 'subscribe', 'DLQ.alice_*');
SET ROLE outbox_alice;
SELECT outbox.subscribe('alice_cb', '/topic/alice.x', 'alice_q');
SELECT queue_name, destination, run_as FROM outbox.subscription;
RESET ROLE;
SET ROLE outbox_mallory;
SELECT outbox.subscribe('alice_cb', '/topic/mallory', 'mallory_q');
SELECT queue_name, destination, run_as FROM outbox.subscription;
SELECT outbox.unsubscribe('alice_q');
RESET ROLE;
SELECT queue_name, destination, run_as FROM outbox.subscription ORDER BY 1;
-- removing the last pattern lifts the limit, and says so
SELECT outbox.disallow_destination('outbox_alice', 'subscribe', 'alice_*');
SELECT outbox.disallow_destination('outbox_alice', 'subscribe', 'no such pattern');
SELECT outbox.disallow_destination('outbox_alice', 'subscribe');
SELECT outbox.disallow_destination('outbox_alice', 'publish');
SELECT count(*) FROM outbox.destination_grant;
SET ROLE outbox_alice;
SELECT outbox.publish('alice_t', '/topic/bob');
SELECT outbox.unpublish('alice_t');
SELECT outbox.unsubscribe('alice_q');
RESET ROLE;
SET ROLE outbox_mallory;
SELECT outbox.unsubscribe('mallory_q');
RESET ROLE;

--
-- 7. outbox.status shows a plain role none of the workers of other
-- databases; pg_monitor sees them all.  (The database of this test has no
-- worker; t/010_privileges.pl checks a role's own workers.)
--
DO $$
BEGIN
	FOR i IN 1..300 LOOP
		EXIT WHEN EXISTS (SELECT 1 FROM outbox.worker_status() WHERE kind = 'publisher');
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT database, kind FROM outbox.status;
CREATE ROLE outbox_watcher IN ROLE pg_monitor;
SET ROLE outbox_watcher;
SELECT database, kind FROM outbox.status;
RESET ROLE;
SET ROLE outbox_alice;
SELECT count(*) FROM outbox.status;
SELECT count(*) FROM outbox.worker_status();
RESET ROLE;

DROP OWNED BY outbox_alice, outbox_mallory, outbox_nobody, outbox_watcher;
DROP ROLE outbox_alice, outbox_mallory, outbox_nobody, outbox_watcher;
