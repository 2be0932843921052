--
-- The shapes of destination RabbitMQ's STOMP plugin parses, and the ones
-- it refuses with an ERROR that ends the connection: one more "/" than
-- the shape allows is refused where a destination enters, with the
-- version suffix it gets, by every way in.
--
TRUNCATE outbox.published;
CREATE TABLE shapes (id int PRIMARY KEY);

-- what the broker parses: accepted
SELECT outbox.publish('shapes', '/queue/orders');
SELECT outbox.publish('shapes', '/amq/queue/orders');
SELECT outbox.publish('shapes', '/topic/orders.created');
SELECT outbox.publish('shapes', '/topic/orders', 'v1');
SELECT outbox.publish('shapes', '/exchange/amq.fanout');
SELECT outbox.publish('shapes', '/exchange/amq.topic/orders.created');
SELECT outbox.publish('shapes', '/exchange/amq.direct/');
SELECT outbox.publish('shapes', '/queue/with%2Fslash');
SELECT destination FROM outbox.publish_config ORDER BY 1;
SELECT outbox.unpublish('shapes');

-- one "/" too many, wherever it is: refused
SELECT outbox.publish('shapes', '/topic/orders/created');
SELECT outbox.publish('shapes', '/topic/orders/');
SELECT outbox.publish('shapes', '/queue/a/b');
SELECT outbox.publish('shapes', '/amq/queue/a/b');
SELECT outbox.publish('shapes', '/exchange/amq.topic/a/b');
SELECT outbox.publish('shapes', '/exchange/amq.topic//');
-- by the version suffix
SELECT outbox.publish('shapes', '/topic/orders', 'v1/x');
SELECT outbox.publish('shapes', '/exchange/amq.topic', 'v1/x/y');
SELECT count(*) FROM outbox.publish_config;

-- the same by hand, by UPDATE, to send_event(), pause() and subscribe()
INSERT INTO outbox.published (destination, body) VALUES ('/topic/a/b', '{}');
INSERT INTO outbox.published (destination, version, body)
VALUES ('/queue/a', 'v/2', '{}');
INSERT INTO outbox.published (destination, body) VALUES ('/topic/a.b', '{}');
UPDATE outbox.published SET destination = '/topic/a/b';
UPDATE outbox.published SET version = 'x/y';
SELECT destination, version FROM outbox.published;
SELECT outbox.send_event('/queue/a/b', '{}');
SELECT outbox.pause('/topic/a/b');
CREATE FUNCTION shapes_cb(p outbox.payload) RETURNS boolean LANGUAGE sql
	AS $$ SELECT true $$;
SELECT outbox.subscribe('shapes_cb', '/topic/a/b');
SELECT outbox.subscribe('shapes_cb', '/exchange/x/y/z', 'q');
SELECT outbox.subscribe('shapes_cb', '/queue/a/b', 'q');
SELECT count(*) FROM outbox.subscription;

TRUNCATE outbox.published;
DROP TABLE shapes;
DROP FUNCTION shapes_cb(outbox.payload);
