--
-- Attacks on the body a captured row gets: it must be to_jsonb() of the
-- row, whatever the row, the session or the catalogs do meanwhile.
--
-- An oracle trigger (named to fire right after outbox_capture, under the
-- same settings and catalogs) compares every message with to_jsonb(NEW)
-- in value, text and stored size, and records what differs in "bad".
--
SET client_min_messages = warning;
CREATE TABLE seen (id uuid PRIMARY KEY);
CREATE TABLE bad (tab text, captured text, expected text);
CREATE FUNCTION zz_oracle() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	p record;
	n int := 0;
	e jsonb := to_jsonb(NEW);
BEGIN
	FOR p IN SELECT id, body FROM outbox.published
	          WHERE destination = TG_ARGV[0] AND id NOT IN (SELECT id FROM seen) LOOP
		n := n + 1;
		INSERT INTO seen VALUES (p.id);
		IF NOT (p.body = e AND p.body::text = e::text AND
		        pg_column_size(p.body || '{}') = pg_column_size(e || '{}')) THEN
			INSERT INTO bad VALUES (TG_TABLE_NAME, p.body::text, e::text);
		END IF;
	END LOOP;
	IF n <> 1 THEN
		INSERT INTO bad VALUES (TG_TABLE_NAME, n || ' messages', e::text);
	END IF;
	RETURN NULL;
END $$;
CREATE FUNCTION watch(t regclass, dest text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM outbox.publish(t, dest);
	EXECUTE format('CREATE TRIGGER zz_oracle AFTER INSERT OR UPDATE ON %s
	                FOR EACH ROW EXECUTE FUNCTION zz_oracle(%L)', t, dest);
END $$;
RESET client_min_messages;

-- The columns are rendered in the row's order, as to_jsonb() renders them,
-- not in the order of the object's keys: a cast to json that is volatile
-- sees the same calls in the same order, and of two casts that fail, the
-- error is the first column's.
CREATE TYPE tick AS ENUM ('t');
CREATE SEQUENCE ticks;
CREATE FUNCTION tick_json(tick) RETURNS json LANGUAGE sql VOLATILE AS
$$ SELECT to_json(nextval('ticks')) $$;
CREATE CAST (tick AS json) WITH FUNCTION tick_json(tick);
CREATE TABLE ordered (id int PRIMARY KEY, the_first_tick tick, b tick, a tick);
SELECT outbox.publish('ordered', '/topic/ordered');
INSERT INTO ordered VALUES (1, 't', 't', 't');
SELECT setval('ticks', 1, false);
SELECT p.body, p.body = to_jsonb(o) AS same
  FROM outbox.published p, ordered o WHERE p.destination = '/topic/ordered';
SELECT outbox.unpublish('ordered');
TRUNCATE outbox.published;

CREATE TYPE boom AS ENUM ('x');
CREATE FUNCTION boom_json(boom) RETURNS json LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'the cast of the first column fails'; END $$;
CREATE CAST (boom AS json) WITH FUNCTION boom_json(boom);
CREATE TYPE bang AS ENUM ('x');
CREATE FUNCTION bang_json(bang) RETURNS json LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'the cast of the last column fails'; END $$;
CREATE CAST (bang AS json) WITH FUNCTION bang_json(bang);
CREATE TABLE failing (id int PRIMARY KEY, a_long_name boom, z bang);
SELECT outbox.publish('failing', '/topic/failing');
SELECT to_jsonb(f) FROM (VALUES (1, 'x'::boom, 'x'::bang)) f (id, a_long_name, z);
INSERT INTO failing VALUES (1, 'x', 'x');
-- and after an error in the middle of a row, the next row is whole
INSERT INTO failing VALUES (2, NULL, NULL);
SELECT body FROM outbox.published WHERE destination = '/topic/failing';
SELECT outbox.unpublish('failing');
TRUNCATE outbox.published;

-- An output function may cache in its FmgrInfo (range_out keeps its
-- subtype's record_out, which keeps a slot per attribute): the plan lives
-- as long as the configuration, and the output functions' caches must not
-- pile up in it while the composite is altered again and again.
CREATE TYPE piece AS (a int, b text);
CREATE TYPE pieces AS RANGE (subtype = piece);
CREATE TABLE ranged (id int PRIMARY KEY, r pieces);
SELECT watch('ranged', '/topic/ranged');
INSERT INTO ranged VALUES (1, '["(1,a)","(2,b)")');
DO $$
BEGIN
	FOR i IN 1..300 LOOP
		EXECUTE 'ALTER TYPE piece ' ||
			CASE WHEN i % 2 = 1 THEN 'ADD ATTRIBUTE z int' ELSE 'DROP ATTRIBUTE z' END;
		UPDATE ranged SET id = id;
	END LOOP;
END $$;
SELECT max(total_bytes) < 65536 AS small
  FROM pg_backend_memory_contexts WHERE name = 'outbox capture entry';
SELECT body FROM outbox.published ORDER BY id DESC LIMIT 1;
SELECT * FROM bad;
SELECT outbox.unpublish('ranged');
TRUNCATE outbox.published, seen;

-- What held: types altered under a cached plan, casts made and undone in
-- one transaction, settings changed between the rows of a transaction,
-- columns added with defaults (missing attributes), renamed, dropped or
-- retyped, typed tables following ALTER TYPE ... CASCADE, a column of a
-- table's row type, values toasted every way, numerics at their limits.
CREATE TYPE pair AS (a int, b text);
CREATE TYPE colour AS ENUM ('red');
CREATE DOMAIN colour_d AS colour;
CREATE DOMAIN colours AS colour[];
CREATE DOMAIN small AS int;
CREATE TABLE typed OF pair (PRIMARY KEY (a));
CREATE TABLE wide (id int PRIMARY KEY, c pair, e colour, de colour_d,
	da colours, ad small[], tstz timestamptz, tm timetz, iv interval,
	b bytea, f float8, rows_of typed[],
	t_lz4 text COMPRESSION lz4, t_pglz text COMPRESSION pglz, t_ext text,
	j jsonb COMPRESSION lz4, n numeric);
ALTER TABLE wide ALTER COLUMN t_ext SET STORAGE EXTERNAL;
SELECT watch('wide', '/topic/wide'), watch('typed', '/topic/typed');
INSERT INTO typed VALUES (1, 'x');
BEGIN;
INSERT INTO wide (id, c, e, de, da, ad, tstz, tm, iv, b, f)
	VALUES (1, ROW(1, 'a'), 'red', 'red', '{red}', '{1,2}',
	        '2024-03-05 14:07:08.5+00', '12:00+03', '1 day 2 hours', '\x01', 0.1);
SET LOCAL TimeZone = 'Asia/Tokyo';
SET LOCAL IntervalStyle = 'iso_8601';
SET LOCAL bytea_output = 'escape';
SET LOCAL extra_float_digits = -3;
SET LOCAL DateStyle = 'German';
UPDATE wide SET id = 2 WHERE id = 1;
ALTER TYPE colour ADD VALUE 'blue';
COMMIT;
INSERT INTO wide (id, e, de, da) VALUES (3, 'blue', 'blue', '{blue,red}');
ALTER TYPE pair ADD ATTRIBUTE c numeric CASCADE;
INSERT INTO wide (id, c) VALUES (4, ROW(1, 'a', 2.5));
INSERT INTO typed VALUES (2, 'y', 3.5);
ALTER TYPE pair RENAME ATTRIBUTE b TO bee CASCADE;
INSERT INTO wide (id, c) VALUES (5, ROW(1, 'a', 2.5));
INSERT INTO typed VALUES (3, 'z', 4.5);
ALTER TYPE pair DROP ATTRIBUTE a CASCADE;
INSERT INTO typed VALUES ('w', 5.5);
UPDATE wide SET rows_of = ARRAY(SELECT t FROM typed t) WHERE id = 4;
CREATE FUNCTION colour_json(colour) RETURNS json LANGUAGE sql AS
$$ SELECT json_build_object('c', $1::text) $$;
BEGIN;
INSERT INTO wide (id, e, de, da) VALUES (6, 'red', 'red', '{red}');
SAVEPOINT s;
CREATE CAST (colour AS json) WITH FUNCTION colour_json(colour);
INSERT INTO wide (id, e, de, da) VALUES (7, 'red', 'red', '{red}');
ROLLBACK TO s;
INSERT INTO wide (id, e, de, da) VALUES (8, 'red', 'red', '{red}');
CREATE CAST (colour AS json) WITH FUNCTION colour_json(colour);
INSERT INTO wide (id, e, de, da) VALUES (9, 'red', 'red', '{red}');
CREATE OR REPLACE FUNCTION colour_json(colour) RETURNS json LANGUAGE sql AS
$$ SELECT json_build_object('c2', $1::text) $$;
INSERT INTO wide (id, e, de, da) VALUES (10, 'red', 'red', '{red}');
COMMIT;
SELECT body->>'id' AS id, body->'e' AS e, body->'da' AS da
  FROM outbox.published WHERE body->>'id' IN ('6', '7', '8', '9', '10')
 ORDER BY (body->>'id')::int;
ALTER TABLE wide ADD COLUMN m1 text DEFAULT 'missing',
	ADD COLUMN m2 numeric DEFAULT 1.50, ADD COLUMN m3 colour[] DEFAULT '{red}';
UPDATE wide SET f = 1 WHERE id = 2;
ALTER TABLE wide RENAME COLUMN f TO eff;
ALTER TABLE wide DROP COLUMN tm;
ALTER TABLE wide ALTER COLUMN iv TYPE text;
INSERT INTO wide (id, t_lz4, t_pglz, t_ext, j, n) VALUES
	(11, repeat('x', 100000), repeat('y', 100000),
	 (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i),
	 (SELECT jsonb_agg(i * 1.5) FROM generate_series(1, 10000) i), 10::numeric ^ 131071),
	(12, NULL, NULL, NULL, NULL, 1::numeric / (10::numeric ^ 16000)),
	(13, NULL, NULL, NULL, NULL, '1e-16383'),
	(14, NULL, NULL, NULL, NULL, round(1.25, 1000)),
	(15, NULL, NULL, NULL, NULL, '-Infinity');
UPDATE wide SET eff = 2;
SELECT count(*) AS compared FROM seen;
SELECT * FROM bad;
SELECT outbox.unpublish('wide'), outbox.unpublish('typed');
TRUNCATE outbox.published, seen;

-- a partition captured by its ancestor: columns added with defaults and
-- renamed on the ancestor, under another TimeZone inside a transaction
CREATE TABLE expect_parted (id int, body jsonb);
CREATE FUNCTION expect_parted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO expect_parted SELECT NEW.id, to_jsonb(q) FROM parted q WHERE q.id = NEW.id;
	RETURN NULL;
END $$;
CREATE TABLE parted (id int, a text, b numeric, c timestamptz, PRIMARY KEY (id))
	PARTITION BY LIST (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1, 11, 21, 31);
CREATE TABLE parted_2 (x int, c timestamptz, b numeric, a text, id int NOT NULL);
ALTER TABLE parted_2 DROP COLUMN x;
ALTER TABLE parted ATTACH PARTITION parted_2 FOR VALUES IN (2, 12, 22, 32);
SELECT outbox.publish('parted', '/topic/parted');
CREATE TRIGGER zz_expect AFTER INSERT OR UPDATE ON parted
	FOR EACH ROW EXECUTE FUNCTION expect_parted();
INSERT INTO parted VALUES (1, 'a', 1.5, '2024-03-05 14:07:08+00'),
	(2, 'b', 2.5, '2024-03-05 14:07:08+00');
ALTER TABLE parted ADD COLUMN d text DEFAULT 'default', ADD COLUMN e int[] DEFAULT '{1}';
INSERT INTO parted (id, a) VALUES (11, 'a'), (12, 'b');
UPDATE parted SET b = 0 WHERE id < 10;
ALTER TABLE parted RENAME COLUMN a TO aa;
INSERT INTO parted (id, aa) VALUES (21, 'a'), (22, 'b');
ALTER TABLE parted DROP COLUMN b;
BEGIN;
SET LOCAL TimeZone = 'Asia/Kolkata';
INSERT INTO parted (id, aa, c) VALUES (31, 'a', '2024-03-05 14:07:08+00'),
	(32, 'b', '2024-03-05 14:07:08+00');
COMMIT;
SELECT count(*) AS messages,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT FROM expect_parted e
            WHERE e.body = p.body AND e.body::text = p.body::text
              AND pg_column_size(e.body || '{}') = pg_column_size(p.body || '{}'))) AS mismatches
  FROM outbox.published p;
SELECT outbox.unpublish('parted');
TRUNCATE outbox.published;

SET client_min_messages = warning;
DROP TABLE ordered, failing, ranged, wide, typed, parted, expect_parted, seen, bad;
DROP FUNCTION zz_oracle(), watch(regclass, text), expect_parted();
DROP DOMAIN colour_d, colours, small;
DROP TYPE tick, boom, bang, pieces, piece, colour, pair CASCADE;
DROP SEQUENCE ticks;
RESET client_min_messages;
