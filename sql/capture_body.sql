--
-- The body of a captured row is to_jsonb() of the row, byte for byte,
-- whatever its columns: the capture trigger forms it from a plan made once
-- per configuration, and this compares the two over every kind of column,
-- under odd session settings, through UPDATE, a fields projection, a
-- partition captured in its ancestor's row type, and catalog changes made
-- while the plan is cached.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS citext;
RESET client_min_messages;

-- The messages to dest whose body differs from the expected one (a query
-- returning id and body) in value, text or size (stored bytes, detoasted:
-- jsonb || '{}' returns its left side), and how many messages there are.
CREATE FUNCTION body_mismatches(dest text, expected text)
RETURNS TABLE (id int, captured text, expected_body text)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format(
		'SELECT coalesce(e.id, (p.body->>''id'')::int), p.body::text, e.body::text
		   FROM (SELECT body FROM outbox.published WHERE destination = $1) p
		   FULL JOIN (%s) e (id, body) ON (p.body->>''id'')::int = e.id
		  WHERE NOT (p.body IS NOT NULL AND e.body IS NOT NULL
		             AND p.body = e.body AND p.body::text = e.body::text
		             AND pg_column_size(p.body || ''{}'') =
		                 pg_column_size(e.body || ''{}''))
		  ORDER BY 1', expected) USING dest;
END $$;
CREATE FUNCTION check_bodies(dest text, expected text)
RETURNS TABLE (messages bigint, mismatches bigint)
LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM outbox.published p WHERE p.destination = dest),
	       (SELECT count(*) FROM body_mismatches(dest, expected))
$$;

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, b text, c numeric, d timestamptz, e mood, f jsonb);
CREATE TYPE floatrange AS RANGE (subtype = float8);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN stamp AS timestamptz;
CREATE DOMAIN day AS date;
CREATE DOMAIN doc AS jsonb;
CREATE DOMAIN jdoc AS json;
CREATE DOMAIN ints AS int[];
CREATE DOMAIN label AS varchar(10);
CREATE DOMAIN pair_d AS pair;
CREATE DOMAIN price AS numeric(10, 2);
CREATE DOMAIN ratio AS float8;
CREATE DOMAIN yes AS bool;
CREATE DOMAIN feeling AS mood;

CREATE TABLE everything (
	id			int PRIMARY KEY,
	i2			int2,
	i4			int4,
	i8			int8,
	num			numeric,
	num_typed	numeric(12, 2),
	f4			float4,
	f8			float8,
	flag		bool,
	t			text,
	vc			varchar(20),
	bp			char(6),
	ch			"char",
	nm			name,
	d			date,
	ts			timestamp,
	tstz		timestamptz,
	ts0			timestamp(0),
	tm			time,
	tmtz		timetz,
	iv			interval,
	js			json,
	jsb			jsonb,
	arr			int[],
	arr2		text[][],
	arr_num		numeric[],
	arr_pair	pair[],
	arr_mood	mood[],
	arr_ts		timestamptz[],
	rec			pair,
	e			mood,
	by			bytea,
	u			uuid,
	ip			inet,
	cidr_		cidr,
	mac			macaddr,
	m			money,
	bits		bit(4),
	vb			varbit,
	pt			point,
	tsv			tsvector,
	oid_		oid,
	rc			regclass,
	r			int4range,
	mr			int4multirange,
	fr			floatrange,
	x			xml,
	hs			hstore,
	ci			citext,
	dom_i		posint,
	dom_ts		stamp,
	dom_d		day,
	dom_doc		doc,
	dom_json	jdoc,
	dom_arr		ints,
	dom_label	label,
	dom_pair	pair_d,
	dom_price	price,
	dom_ratio	ratio,
	dom_yes		yes,
	dom_mood	feeling,
	dropped_one	int,
	"weird ""name"""	text,
	"back\slash"	text,
	"new
line"		text,
	"ünïcødé"	text,
	"Z"			int,
	"a_name_of_sixty_three_bytes_which_is_the_longest_a_name_may_be_"	int,
	gen			text GENERATED ALWAYS AS (upper(vc)) STORED,
	big			text,
	big_plain	text,
	dropped_two	text
);
ALTER TABLE everything DROP COLUMN dropped_one;
ALTER TABLE everything DROP COLUMN dropped_two;
ALTER TABLE everything ALTER COLUMN big_plain SET STORAGE EXTERNAL;

CREATE FUNCTION insert_everything() RETURNS void LANGUAGE sql AS $$
INSERT INTO everything (id, i2, i4, i8, num, num_typed, f4, f8, flag, t, vc,
	bp, ch, nm, d, ts, tstz, ts0, tm, tmtz, iv, js, jsb, arr, arr2, arr_num,
	arr_pair, arr_mood, arr_ts, rec, e, by, u, ip, cidr_, mac, m, bits, vb, pt,
	tsv, oid_, rc, r, mr, fr, x, hs, ci, dom_i, dom_ts, dom_d, dom_doc,
	dom_json, dom_arr, dom_label, dom_pair, dom_price, dom_ratio, dom_yes,
	dom_mood, "weird ""name""", "back\slash", "new
line", "ünïcødé", "Z",
	"a_name_of_sixty_three_bytes_which_is_the_longest_a_name_may_be_", big,
	big_plain)
VALUES
	-- ordinary values
	(1, 12, 1234, 123456789012, 10.50, 99.90, 1.5, 0.1, true, 'a note',
	 'short', 'ab', 'x', 'a_name', '2024-03-05', '2024-03-05 14:07:08.987654',
	 '2024-03-05 14:07:08.123456+00', '2024-03-05 14:07:08.6', '14:07:08.5',
	 '14:07:08.123456+05:30', '1 year 2 mons 3 days 04:05:06.7',
	 '{"b": 1, "a": [1, 2.50, null], "a": "dup"}', '{"n": 10.50, "l": [1, {"x": null}]}',
	 ARRAY[1, 2, 3], ARRAY[['a', 'b'], ['c', NULL]], ARRAY[1.50, NULL, 0.00000010],
	 ARRAY[ROW(1, 'x', 1.0, '2024-01-01 00:00+00', 'ok', '[1]')::pair],
	 ARRAY['sad', 'happy']::mood[], ARRAY['2024-03-05 14:07:08+00'::timestamptz],
	 ROW(7, 'seven', 7.70, '2024-03-05 14:07:08+02', 'happy', '{"k": "v"}'),
	 'ok', '\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24',
	 '10.0.0.0/8', '08:00:2b:01:02:03', 12.34, B'1010', B'101', '(1.5,2)',
	 'a fat cat sat', 1234, 'everything', '[1,10)', '{[1,3), [5,7)}', '[1.5,2.5]',
	 '<a href="x">t&amp;</a>', 'a=>1, b=>NULL', 'MiXeD', 5,
	 '2024-03-05 14:07:08+00', '2024-03-05', '{"d": [true, false]}', '  {"j" : 1}  ',
	 ARRAY[4, 5], 'label', ROW(1, 'd', 1, NULL, 'sad', 'null'), 12.30, 2.5,
	 false, 'happy', 'quote "q"', 'back\slash', E'line\nbreak', 'ünïcødé ☃',
	 26, 63, 'short big', 'short plain'),
	-- the edges of each type
	(2, -32768, -2147483648, -9223372036854775808, 'NaN', -0.00, 'NaN',
	 'Infinity', false, '', '', '', E'\\', '', '4713-01-01 BC', 'infinity',
	 '-infinity', '294276-12-31 23:59:59', '24:00:00', '00:00:00-15:59',
	 '-178000000 years', '"just a string"', '"a string"', '{}', '{}', '{}',
	 '{}', '{}', '{}', ROW(NULL, NULL, NULL, NULL, NULL, NULL), 'sad', '\x',
	 '00000000-0000-0000-0000-000000000000', '::1', '::/0', 'ff:ff:ff:ff:ff:ff',
	 '-92233720368547758.08', B'0000', B'', '(-0,1e-300)', '', 0, 'pg_class',
	 'empty', '{}', '(,)', '<x/>', '', '', 2147483647, 'infinity', '-infinity',
	 '[]', 'null', ARRAY[]::int[], '', NULL, 99999999.99, '-Infinity', true,
	 'sad', E'\u0001\u001f "\\/', '', '', '', 0, 0, '', ''),
	-- more edges
	(3, 32767, 2147483647, 9223372036854775807,
	 '123456789012345678901234567890.123456789012345678901234567890',
	 -9999999999.99, '-Infinity', '-0', NULL, E'tab\there', 'x', 'abcdef', 'y',
	 'nm', '0001-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00.000001+14',
	 '1999-12-31 23:59:59.5', '00:00:00.000001', '23:59:59.999999+15:59',
	 '-1 days +02:03:04', '[1, "two", {"three": 3.0}]', '[{"b": 2, "a": 1}, 3.14e2, "x"]',
	 ARRAY[NULL, -1]::int[], ARRAY[[NULL, NULL]]::text[], ARRAY[1e-20, 'NaN']::numeric[],
	 ARRAY[NULL]::pair[], ARRAY[NULL, 'ok']::mood[], ARRAY['infinity']::timestamptz[],
	 ROW(-1, E'"\\', 'Infinity', 'infinity', NULL, '"s"'), 'happy', '\xdeadbeef',
	 'ffffffff-ffff-ffff-ffff-ffffffffffff', '2001:db8::1', '2001:db8::/32',
	 '00:00:00:00:00:00', 0, B'1111', B'0101010101010101010', '(0,0)',
	 'a:1A b:2B', 4294967295, '-', '(,5]', '{(,5], [10,)}', '(-Infinity,Infinity)',
	 'text only', '"k\"ey"=>"v\\al"', '', 1, '2000-01-01 00:00:00.5+00',
	 '2000-02-29', '[[], {}]', '[]', ARRAY[NULL]::int[], '0123456789',
	 ROW(NULL, NULL, NULL, NULL, NULL, NULL), -0.01, 1e-310, NULL, 'ok',
	 repeat('w', 300), NULL, NULL, NULL, -1, -1, NULL, NULL),
	-- all NULL
	(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL),
	-- values toasted: compressed and stored apart, or apart uncompressed
	(5, 1, 1, 1, 1.0 / 3, 1, 3.4028235e38, 1.7976931348623157e308, true,
	 repeat('long text ', 1000), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, (SELECT json_agg(i) FROM generate_series(1, 3000) i),
	 (SELECT jsonb_agg(i * 1.5) FROM generate_series(1, 3000) i),
	 (SELECT array_agg(i) FROM generate_series(1, 3000) i), NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, repeat('0123456789', 20000),
	 (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i));
$$;

-- every column, under settings that change how values print
SELECT outbox.publish('everything', '/topic/all');
SET TimeZone = 'Asia/Kathmandu';
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = 0;
SET bytea_output = 'escape';
SELECT insert_everything();
SELECT * FROM check_bodies('/topic/all', 'SELECT w.id, to_jsonb(w) FROM everything w');
SELECT * FROM body_mismatches('/topic/all', 'SELECT w.id, to_jsonb(w) FROM everything w');
TRUNCATE outbox.published;

-- UPDATE (the new row), under other settings, with the plan cached
SET TimeZone = 'America/St_Johns';
SET DateStyle = 'Postgres, MDY';
SET IntervalStyle = 'iso_8601';
SET extra_float_digits = 3;
SET bytea_output = 'hex';
UPDATE everything SET i4 = i4 / 2, t = t || '!';
SELECT * FROM check_bodies('/topic/all', 'SELECT w.id, to_jsonb(w) FROM everything w');
SELECT * FROM body_mismatches('/topic/all', 'SELECT w.id, to_jsonb(w) FROM everything w');
TRUNCATE outbox.published;
RESET TimeZone;
RESET DateStyle;
RESET IntervalStyle;
RESET extra_float_digits;
RESET bytea_output;

-- a cast to json of a type defined after initdb is used by to_jsonb():
-- creating and dropping it changes the body at once
CREATE FUNCTION mood_json(mood) RETURNS json LANGUAGE sql IMMUTABLE AS
$$ SELECT json_build_object('mood', $1::text, 'level', array_position(enum_range($1), $1)) $$;
UPDATE everything SET i4 = 1 WHERE id = 1;
TRUNCATE outbox.published;
CREATE CAST (mood AS json) WITH FUNCTION mood_json(mood);
UPDATE everything SET i4 = 2;
SELECT body->'e', body->'arr_mood', body->'rec'->'e', body->'dom_mood'
  FROM outbox.published ORDER BY body->>'id' LIMIT 1;
SELECT * FROM check_bodies('/topic/all', 'SELECT w.id, to_jsonb(w) FROM everything w');
SELECT * FROM body_mismatches('/topic/all', 'SELECT w.id, to_jsonb(w) FROM everything w');
TRUNCATE outbox.published;
DROP CAST (mood AS json);
UPDATE everything SET i4 = 3;
SELECT * FROM check_bodies('/topic/all', 'SELECT w.id, to_jsonb(w) FROM everything w');
SELECT * FROM body_mismatches('/topic/all', 'SELECT w.id, to_jsonb(w) FROM everything w');
SELECT body->'e' FROM outbox.published ORDER BY body->>'id' LIMIT 1;
TRUNCATE outbox.published;

-- a column whose type changes, one added, one dropped: planned again
ALTER TABLE everything ALTER COLUMN i2 TYPE numeric, ADD COLUMN added mood DEFAULT 'ok',
	DROP COLUMN "Z";
UPDATE everything SET i4 = 4;
SELECT * FROM check_bodies('/topic/all', 'SELECT w.id, to_jsonb(w) FROM everything w');
SELECT * FROM body_mismatches('/topic/all', 'SELECT w.id, to_jsonb(w) FROM everything w');
SELECT body->'i2', body->'added', body ? 'Z' FROM outbox.published ORDER BY body->>'id' LIMIT 1;
SELECT outbox.unpublish('everything');
TRUNCATE outbox.published;

-- fields: the primary key and the named columns, as a row of their own
SELECT outbox.publish('everything', '/topic/fields',
	fields => ARRAY['tstz', 'num', 'js', 'weird "name"', 'rec', 'f8', 'added']);
SET TimeZone = 'Pacific/Chatham';
UPDATE everything SET i4 = 5;
SELECT * FROM check_bodies('/topic/fields',
	'SELECT w.id, to_jsonb(sub) FROM everything w,
	        LATERAL (SELECT w.id, w.tstz, w.num, w.js, w."weird ""name""", w.rec, w.f8, w.added) sub');
SELECT * FROM body_mismatches('/topic/fields',
	'SELECT w.id, to_jsonb(sub) FROM everything w,
	        LATERAL (SELECT w.id, w.tstz, w.num, w.js, w."weird ""name""", w.rec, w.f8, w.added) sub');
SELECT body FROM outbox.published ORDER BY body->>'id' LIMIT 1;
SELECT outbox.unpublish('everything');
TRUNCATE outbox.published;
RESET TimeZone;

-- a partition captured in its ancestor's row type: another column order,
-- dropped columns, a sub-partition, and the ancestor's fields
CREATE TABLE parted (id int, label text, amount numeric, at timestamptz,
                     tags text[], doc jsonb, e mood, PRIMARY KEY (id))
	PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TABLE parted_2 (junk int, e mood, doc jsonb, tags text[], at timestamptz,
                       amount numeric, label text, id int NOT NULL);
ALTER TABLE parted_2 DROP COLUMN junk;
ALTER TABLE parted ATTACH PARTITION parted_2 FOR VALUES FROM (100) TO (200);
CREATE TABLE parted_3 PARTITION OF parted FOR VALUES FROM (200) TO (300)
	PARTITION BY RANGE (id);
CREATE TABLE parted_3_a (LIKE parted);
ALTER TABLE parted_3_a DROP COLUMN label;
ALTER TABLE parted_3_a ADD COLUMN label text;
ALTER TABLE parted_3 ATTACH PARTITION parted_3_a FOR VALUES FROM (200) TO (300);
SELECT outbox.publish('parted', '/topic/parted');
SELECT outbox.publish('parted', '/topic/parted_fields', fields => ARRAY['label', 'doc']);
INSERT INTO parted VALUES
	(1, 'one', 1.10, '2024-03-05 14:07:08+00', ARRAY['a'], '{"x": 1}', 'ok'),
	(101, 'hundred and one', 101.10, 'infinity', ARRAY[NULL, 'b'], '[1]', 'sad'),
	(201, 'two hundred and one', NULL, NULL, NULL, NULL, 'happy');
INSERT INTO parted_2 (id, label) VALUES (102, 'directly');
SELECT * FROM check_bodies('/topic/parted', 'SELECT p.id, to_jsonb(p) FROM parted p');
SELECT * FROM body_mismatches('/topic/parted', 'SELECT p.id, to_jsonb(p) FROM parted p');
SELECT * FROM check_bodies('/topic/parted_fields',
	'SELECT p.id, to_jsonb(sub) FROM parted p, LATERAL (SELECT p.id, p.label, p.doc) sub');
SELECT * FROM body_mismatches('/topic/parted_fields',
	'SELECT p.id, to_jsonb(sub) FROM parted p, LATERAL (SELECT p.id, p.label, p.doc) sub');
SELECT destination, body FROM outbox.published WHERE body->>'id' = '101' ORDER BY id;
TRUNCATE outbox.published;
UPDATE parted SET amount = 0;
SELECT * FROM check_bodies('/topic/parted', 'SELECT p.id, to_jsonb(p) FROM parted p');
SELECT * FROM body_mismatches('/topic/parted', 'SELECT p.id, to_jsonb(p) FROM parted p');
SELECT outbox.unpublish('parted');
TRUNCATE outbox.published;

-- a table with no columns left has an empty body
CREATE TABLE bare (gone int);
SELECT outbox.publish('bare', '/topic/bare');
ALTER TABLE bare DROP COLUMN gone;
INSERT INTO bare DEFAULT VALUES;
SELECT body, body = to_jsonb(b) FROM outbox.published, bare b;
SELECT outbox.unpublish('bare');
TRUNCATE outbox.published;

DROP TABLE everything, parted, bare;
DROP FUNCTION insert_everything(), mood_json(mood), check_bodies(text, text),
	body_mismatches(text, text);
DROP DOMAIN posint, stamp, day, doc, jdoc, ints, label, pair_d, price, ratio,
	yes, feeling;
DROP TYPE pair, floatrange, mood;
DROP EXTENSION hstore, citext;
