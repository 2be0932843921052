--
-- The capture cache of a backend that runs for months: a table dropped
-- (a daily partition rotated out, a table of a test run) must not leave
-- its cache entry, with the memory of its configurations, behind for the
-- life of the backend, while the tables that stay keep capturing.
--
TRUNCATE outbox.published;
CREATE SCHEMA forget;
CREATE TABLE forget.stays (id int PRIMARY KEY);
SELECT outbox.publish('forget.stays', '/topic/forget-stays');

--
-- 1. Plain tables, each published, written once and dropped: one
-- transaction, then one statement each.
--
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXECUTE format('CREATE TABLE forget.t%s (id int PRIMARY KEY, v text)', i);
        PERFORM outbox.publish(format('forget.t%s', i)::regclass, '/topic/forget');
        EXECUTE format('INSERT INTO forget.t%s VALUES (%s, %L)', i, i, 'x');
        INSERT INTO forget.stays VALUES (i);
        EXECUTE format('DROP TABLE forget.t%s', i);
    END LOOP;
END $$;
SELECT count(*) < 10 AS bounded
  FROM pg_backend_memory_contexts WHERE name = 'outbox capture entry';

CREATE TABLE forget.once (id int PRIMARY KEY);
SELECT outbox.publish('forget.once', '/topic/forget');
INSERT INTO forget.once VALUES (1);
DROP TABLE forget.once;
INSERT INTO forget.stays VALUES (1001);
SELECT count(*) < 10 AS bounded
  FROM pg_backend_memory_contexts WHERE name = 'outbox capture entry';

--
-- 2. Partitions of a published table, attached, written and dropped in
-- turn, as a rotation does.
--
CREATE TABLE forget.log (day int, id int, PRIMARY KEY (day, id))
    PARTITION BY LIST (day);
SELECT outbox.publish('forget.log', '/topic/forget-log');
DO $$
BEGIN
    FOR d IN 1..100 LOOP
        EXECUTE format('CREATE TABLE forget.log_%s PARTITION OF forget.log'
                       ' FOR VALUES IN (%s)', d, d);
        INSERT INTO forget.log VALUES (d, 1), (d, 2);
        INSERT INTO forget.stays VALUES (2000 + d);
        EXECUTE format('DROP TABLE forget.log_%s', d);
    END LOOP;
END $$;
SELECT count(*) < 10 AS bounded
  FROM pg_backend_memory_contexts WHERE name = 'outbox capture entry';

-- every row of every table was captured, once per configuration
SELECT destination, count(*) FROM outbox.published
 GROUP BY destination ORDER BY destination;

DROP SCHEMA forget CASCADE;
TRUNCATE outbox.published;
