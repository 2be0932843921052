--
-- The body's rendering: PostgreSQL's own by default, django-outbox-pattern's
-- (Django's serializer and DjangoJSONEncoder) per publication on request.
--

SET TimeZone = 'America/Sao_Paulo';

CREATE TYPE money_amount AS (amount numeric, currency text);
CREATE DOMAIN price AS numeric(12, 2);
CREATE TABLE orders (
	id			int PRIMARY KEY,
	amount		numeric(12, 2),
	tiny		numeric,
	big			numeric,
	unit_price	price,
	placed		timestamptz,
	local_time	timestamp,
	day			date,
	at_time		time,
	at_timetz	timetz,
	took		interval,
	ref			uuid,
	tags		text[],
	amounts		numeric[],
	grid		numeric[][],
	total		money_amount,
	doc			jsonb,
	doc_json	json,
	note		text,
	flag		boolean,
	qty			int
);

CREATE VIEW bodies AS
SELECT destination, body FROM outbox.published ORDER BY id;

-- every type, in one row, and a row of NULLs
CREATE FUNCTION insert_orders() RETURNS void LANGUAGE sql AS $$
INSERT INTO orders VALUES
	(1, 10.50, 0.0000001, 12345678901234567890.123456789, 3.10,
	 '2024-03-05 14:07:08.123456+00', '2024-03-05 14:07:08.987654',
	 '2024-03-05', '14:07:08.5', '14:07:08.123456+05:30',
	 '1 day 02:03:04.000005', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
	 ARRAY['a', NULL, 'c'], ARRAY[1.50, NULL, 0.00000010],
	 ARRAY[[1.0, 2.5], [3, 4.25]], ROW(99.90, 'EUR'),
	 '{"n": 10.50, "list": [1, 2.0, {"x": null}]}', '{"n": 10.50}',
	 'a note', true, 7),
	(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
$$;

-- PostgreSQL's rendering stays the default
SELECT outbox.publish('orders', '/topic/orders');
SELECT rendering FROM outbox.publish_config WHERE relid = 'orders'::regclass;
SELECT insert_orders();
SELECT * FROM bodies;
TRUNCATE outbox.published;
DELETE FROM orders;

-- django-outbox-pattern's rendering: numeric as a string, datetimes in UTC
-- with milliseconds (cut, not rounded) and Z, durations as Django's
SELECT outbox.set_rendering('orders', '/topic/orders', 'django');
SELECT rendering FROM outbox.publish_config WHERE relid = 'orders'::regclass;
SELECT insert_orders();
SELECT * FROM bodies;
TRUNCATE outbox.published;
DELETE FROM orders;

-- the session's time zone does not change it
SET TimeZone = 'Asia/Kolkata';
SELECT insert_orders();
DELETE FROM orders;
SET TimeZone = 'UTC';
SELECT insert_orders();
SELECT body->'placed' AS placed, body->'local_time' AS local_time,
       body->'at_timetz' AS at_timetz FROM bodies;
TRUNCATE outbox.published;
DELETE FROM orders;

-- the edges of each rule
CREATE TABLE edges (id serial PRIMARY KEY, n numeric, ts timestamptz,
                    t time, i interval, d date);
SELECT outbox.publish('edges', '/topic/edges');
SELECT outbox.set_rendering('edges', '/topic/edges', 'django');
INSERT INTO edges (n, ts, t, i, d) VALUES
	(0.00, '2024-01-01 00:00:00+00', '00:00:00', '0', '2024-01-01'),
	(0.0000000, '2024-01-01 00:00:00.000999+00', '23:59:59.999999', '-1 hour', '0001-01-01'),
	(-123.4500, '2024-01-01 00:00:00.5-03', '12:00:00.000001', '-1 day 01:00:00', '9999-12-31'),
	(1000000, 'infinity', '24:00:00', '1 year 2 mons 3 days', 'infinity'),
	('NaN', '-infinity', '01:02:03', '-00:00:00.000001', '-infinity'),
	('Infinity', '1999-12-31 23:59:59.999999+14', '01:02:03.010', '27:00:00.5', '2000-02-29'),
	(0.000001, '0044-03-15 12:00:00+00 BC', '00:00:00.001', '1 mon -1 day', '0044-03-15 BC'),
	(-0.0000001234, '2024-06-01 12:34:56.789+05:45', NULL, '100 years', NULL);
SELECT body - 'id' AS body FROM bodies;
TRUNCATE outbox.published;

-- with fields: the primary key and the named columns, rendered the same
-- way; publishing again keeps the rendering
SELECT outbox.publish('orders', '/topic/orders', fields => ARRAY['amount', 'placed']);
SELECT rendering FROM outbox.publish_config WHERE relid = 'orders'::regclass;
SELECT insert_orders();
SELECT * FROM bodies;
TRUNCATE outbox.published;
DELETE FROM orders;

-- and back to PostgreSQL's rendering
SELECT outbox.set_rendering('orders', '/topic/orders', 'postgres');
SELECT rendering FROM outbox.publish_config WHERE relid = 'orders'::regclass;
SELECT insert_orders();
SELECT * FROM bodies;
TRUNCATE outbox.published;
DELETE FROM orders;

-- two publications of one table, each with its own rendering
SELECT outbox.publish('orders', '/topic/orders', 'v2');
SELECT outbox.set_rendering('orders', '/topic/orders', 'django', version => 'v2');
SELECT insert_orders();
SELECT destination, body->'amount' AS amount, body->'placed' AS placed FROM bodies;
TRUNCATE outbox.published;
DELETE FROM orders;

-- a serializer makes the body itself: the rendering does not apply
CREATE FUNCTION order_body(o orders) RETURNS jsonb LANGUAGE sql AS
$$ SELECT jsonb_build_object('id', o.id, 'amount', o.amount) $$;
SELECT outbox.unpublish('orders', '/topic/orders', 'v2');
SELECT outbox.set_rendering('orders', '/topic/orders', 'django');
SELECT outbox.publish('orders', '/topic/orders', serializer => 'order_body');
SELECT insert_orders();
SELECT * FROM bodies;
TRUNCATE outbox.published;
DELETE FROM orders;

-- what is refused: unknown renderings, a publication that does not exist,
-- a table of someone else's, a call without the right to it
SELECT outbox.set_rendering('orders', '/topic/orders', 'python');
SELECT outbox.set_rendering('orders', '/topic/orders', NULL);
SELECT outbox.set_rendering('orders', '/topic/orders', 'DJANGO');
SELECT outbox.set_rendering('orders', '/topic/other', 'django');
SELECT outbox.set_rendering('orders', '/topic/orders', 'django', 'v9');
UPDATE outbox.publish_config SET rendering = 'nonsense';
CREATE ROLE rendering_writer;
GRANT EXECUTE ON FUNCTION outbox.set_rendering(regclass, text, text, text)
	TO rendering_writer;
SET ROLE rendering_writer;
SELECT outbox.set_rendering('orders', '/topic/orders', 'postgres');
RESET ROLE;
REVOKE ALL ON FUNCTION outbox.set_rendering(regclass, text, text, text)
	FROM rendering_writer;
SET ROLE rendering_writer;
SELECT outbox.set_rendering('orders', '/topic/orders', 'postgres');
RESET ROLE;
DROP ROLE rendering_writer;
SELECT rendering FROM outbox.publish_config WHERE relid = 'orders'::regclass;

-- the writing session's settings do not change the django rendering, not
-- even of values rendered as PostgreSQL does (a timestamptz Python cannot
-- hold, a huge interval, a range); floats as Python's repr() gives them
-- (2.0 stays a float), bytea in base64 as Django's BinaryField
CREATE TABLE odd (id int PRIMARY KEY, f8 float8, f4 float4, b bytea,
                  far timestamptz, bc timestamptz, huge interval,
                  dr daterange, tr tstzrange, fa float8[]);
SELECT outbox.publish('odd', '/topic/odd');
SELECT outbox.set_rendering('odd', '/topic/odd', 'django');
CREATE FUNCTION insert_odd(k int) RETURNS void LANGUAGE sql AS $$
INSERT INTO odd VALUES (k, 2.0, 0.1, '\x00ff10'::bytea,
	'10000-01-01 00:30:00+00', '0044-03-15 12:00:00+00 BC',
	'2800000 years 3 mons 4 days 05:06:07.5', '[2024-03-05,2024-04-01)',
	'[2024-03-05 14:07:08+00,)', ARRAY[1e15, 1.5e-7, -0.0, 1e16, 0.0001]);
$$;
SELECT insert_odd(1);
SET TimeZone = 'America/Sao_Paulo';
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = -10;
SET bytea_output = 'escape';
SELECT insert_odd(2);
SET TimeZone = '+05:30';
SET DateStyle = 'German';
SET IntervalStyle = 'iso_8601';
SELECT insert_odd(3);
RESET DateStyle;
RESET IntervalStyle;
RESET extra_float_digits;
RESET bytea_output;
SET TimeZone = 'UTC';
SELECT count(DISTINCT (body - 'id')::text) AS bodies FROM bodies;
SELECT body - 'id' AS body FROM bodies LIMIT 1;
SELECT outbox.unpublish('odd');
DROP TABLE odd;
DROP FUNCTION insert_odd(int);
TRUNCATE outbox.published;

SELECT outbox.unpublish('orders');
SELECT outbox.unpublish('edges');
DROP FUNCTION order_body(orders);
DROP TABLE orders, edges;
DROP TYPE money_amount;
DROP DOMAIN price;
DROP FUNCTION insert_orders();
DROP VIEW bodies;
RESET TimeZone;
