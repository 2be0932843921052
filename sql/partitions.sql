--
-- Partitioned tables: outbox.publish() of the parent captures every
-- partition, present and future, by the parent's configurations and in the
-- parent's row type; a detached partition stops; unpublish() stops them all.
--
SET client_min_messages = notice;
CREATE VIEW messages AS
SELECT destination, body FROM outbox.published ORDER BY id;

-- range partitioning, a partition whose columns are in another order and
-- whose attribute numbers differ (a dropped column), a default partition
CREATE TABLE orders (id int, region text, amount numeric, note text,
                     PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE orders_1 PARTITION OF orders FOR VALUES FROM (0) TO (100);
CREATE TABLE orders_2 (junk int, note text, amount numeric, region text, id int NOT NULL);
ALTER TABLE orders_2 DROP COLUMN junk;
ALTER TABLE orders ATTACH PARTITION orders_2 FOR VALUES FROM (100) TO (200);
CREATE TABLE orders_default PARTITION OF orders DEFAULT;

SELECT outbox.publish('orders', '/topic/orders');
SELECT tgrelid::regclass, tgname, tgparentid <> 0 AS cloned
  FROM pg_trigger WHERE tgname = 'outbox_capture' ORDER BY tgrelid::regclass::text;
INSERT INTO orders VALUES (1, 'eu', 10.50, 'first'), (150, 'us', 2, 'second'),
                          (900, 'ap', 3, 'default');
-- written to a partition directly: the same message
INSERT INTO orders_2 (id, region, amount, note) VALUES (151, 'us', 4, 'direct');
UPDATE orders SET amount = amount + 1 WHERE id = 1;
-- an update that moves the row to another partition is a delete and an insert
UPDATE orders SET id = 120 WHERE id = 900;
SELECT * FROM messages;
TRUNCATE outbox.published;

-- partitions created or attached later, and sub-partitions
CREATE TABLE orders_3 PARTITION OF orders FOR VALUES FROM (200) TO (300)
  PARTITION BY RANGE (id);
CREATE TABLE orders_3_a PARTITION OF orders_3 FOR VALUES FROM (200) TO (250);
CREATE TABLE orders_4 (LIKE orders);
ALTER TABLE orders DETACH PARTITION orders_default;
ALTER TABLE orders ATTACH PARTITION orders_4 FOR VALUES FROM (300) TO (400);
ALTER TABLE orders ATTACH PARTITION orders_default DEFAULT;
INSERT INTO orders VALUES (201, 'eu', 1, 'sub'), (301, 'eu', 1, 'attached'), (5000, 'x', 1, 'back');
SELECT * FROM messages;
TRUNCATE outbox.published;

-- a detached partition stops being captured, and keeps no trigger
ALTER TABLE orders DETACH PARTITION orders_4;
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders_4'::regclass;
INSERT INTO orders_4 VALUES (302, 'eu', 1, 'detached');
SELECT count(*) FROM outbox.published;
-- ... and it may be published on its own
SELECT outbox.publish('orders_4', '/topic/orders_4');
INSERT INTO orders_4 VALUES (303, 'eu', 1, 'own');
SELECT * FROM messages;
TRUNCATE outbox.published;

-- fields and serializers are those of the parent's row type
SELECT outbox.publish('orders', '/topic/orders_fields', fields => ARRAY['amount']);
CREATE FUNCTION order_json(o orders) RETURNS jsonb LANGUAGE sql AS
$$ SELECT jsonb_build_object('order', o.id, 'note', o.note) $$;
SELECT outbox.publish('orders', '/topic/orders_serialized', serializer => 'order_json');
INSERT INTO orders VALUES (160, 'us', 7, 'three ways');
SELECT * FROM messages;
TRUNCATE outbox.published;

-- DDL on a partition cannot break the parent's publication
ALTER TABLE orders_2 DISABLE TRIGGER outbox_capture;
ALTER TABLE orders_2 RENAME COLUMN note TO remark;
ALTER TABLE orders_2 SET UNLOGGED;
DROP TRIGGER outbox_capture ON orders_2;
CREATE UNLOGGED TABLE orders_5 PARTITION OF orders FOR VALUES FROM (500) TO (600);
CREATE UNLOGGED TABLE orders_6 (LIKE orders);
ALTER TABLE orders ATTACH PARTITION orders_6 FOR VALUES FROM (600) TO (700);
-- ... nor on the parent
ALTER TABLE orders DISABLE TRIGGER outbox_capture;
ALTER TABLE orders DROP COLUMN amount;
-- a table published on its own cannot become a partition of a published one
ALTER TABLE orders ATTACH PARTITION orders_4 FOR VALUES FROM (300) TO (400);
-- ... nor a partition be published on its own, nor its parent then
SELECT outbox.publish('orders_1', '/topic/orders_1');
SELECT outbox.unpublish('orders_1');
-- ... nor a table with a partition published on its own
CREATE TABLE orders_7 (id int NOT NULL, region text, amount numeric, note text)
  PARTITION BY RANGE (id);
CREATE TABLE orders_7_a PARTITION OF orders_7 FOR VALUES FROM (700) TO (750);
SELECT outbox.publish('orders_7_a', '/topic/orders_7_a');
ALTER TABLE orders ATTACH PARTITION orders_7 FOR VALUES FROM (700) TO (800);
-- ... nor, either way round, a configuration written by hand
INSERT INTO outbox.publish_config (relid, destination) VALUES ('orders_1', '/topic/by_hand');
INSERT INTO outbox.publish_config (relid, destination) VALUES ('orders_7', '/topic/by_hand');
SELECT count(*) FROM outbox.publish_config WHERE destination = '/topic/by_hand';
SELECT outbox.unpublish('orders_7_a');
-- ... nor under a partition of a published table
CREATE TABLE orders_8 (LIKE orders);
SELECT outbox.publish('orders_8', '/topic/orders_8');
ALTER TABLE orders_3 ATTACH PARTITION orders_8 FOR VALUES FROM (250) TO (300);
DROP TABLE orders_8;
ALTER TABLE orders ATTACH PARTITION orders_7 FOR VALUES FROM (700) TO (800);
CREATE TABLE other (id int, v text) PARTITION BY LIST (id);
CREATE TABLE other_1 PARTITION OF other FOR VALUES IN (1);
SELECT outbox.publish('other_1', '/topic/other_1');
SELECT outbox.publish('other', '/topic/other');
SELECT outbox.unpublish('other_1');
SELECT outbox.publish('other', '/topic/other');
INSERT INTO other VALUES (1, 'list');
SELECT * FROM messages;
TRUNCATE outbox.published;
-- unlogged and foreign partitions cannot be published through their parent
CREATE UNLOGGED TABLE other_2 (id int, v text);
ALTER TABLE other ATTACH PARTITION other_2 FOR VALUES IN (2);
DROP TABLE other_2;
CREATE FOREIGN DATA WRAPPER dummy;
CREATE SERVER nowhere FOREIGN DATA WRAPPER dummy;
CREATE FOREIGN TABLE other_3 PARTITION OF other FOR VALUES IN (3) SERVER nowhere;
-- a table with a trigger of its own named as the capture trigger cannot
-- take the parent's clone: attached, or under a parent published later
CREATE FUNCTION own_trigger() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RETURN NEW; END $$;
CREATE TABLE other_4 (id int, v text);
CREATE TRIGGER outbox_capture AFTER INSERT ON other_4
  FOR EACH ROW EXECUTE FUNCTION own_trigger();
ALTER TABLE other ATTACH PARTITION other_4 FOR VALUES IN (4);
CREATE TABLE another (id int, v text) PARTITION BY LIST (id);
ALTER TABLE another ATTACH PARTITION other_4 FOR VALUES IN (4);
SELECT outbox.publish('another', '/topic/another');
DROP TABLE another;
DROP FUNCTION own_trigger();
-- that is how it stayed
SELECT relid, destination FROM outbox.publish_config ORDER BY 1::text, 2;
SELECT tgrelid::regclass, tgenabled FROM pg_trigger
 WHERE tgname = 'outbox_capture' ORDER BY tgrelid::regclass::text;

-- one owns every partition one publishes
CREATE ROLE partition_owner;
CREATE ROLE partition_other;
GRANT CREATE ON SCHEMA public TO partition_owner, partition_other;
GRANT EXECUTE ON FUNCTION outbox.publish(regclass, text, text, text[], text) TO partition_owner;
SET ROLE partition_owner;
CREATE TABLE mine (id int) PARTITION BY RANGE (id);
CREATE TABLE mine_1 PARTITION OF mine FOR VALUES FROM (0) TO (10);
RESET ROLE;
CREATE TABLE theirs (id int);
ALTER TABLE theirs OWNER TO partition_other;
ALTER TABLE mine ATTACH PARTITION theirs FOR VALUES FROM (10) TO (20);
SET ROLE partition_owner;
SELECT outbox.publish('mine', '/topic/mine');
RESET ROLE;
ALTER TABLE mine DETACH PARTITION theirs;
SET ROLE partition_owner;
SELECT outbox.publish('mine', '/topic/mine');
INSERT INTO mine VALUES (1);
RESET ROLE;
SELECT * FROM messages;
TRUNCATE outbox.published;

-- in one session: the cache follows attach and detach of a partition
CREATE TABLE plain (id int PRIMARY KEY, region text, amount numeric, note text);
INSERT INTO plain VALUES (350, 'eu', 1, 'before');
ALTER TABLE orders ATTACH PARTITION plain FOR VALUES FROM (350) TO (360);
INSERT INTO plain VALUES (351, 'eu', 1, 'attached');
ALTER TABLE orders DETACH PARTITION plain;
INSERT INTO plain VALUES (352, 'eu', 1, 'detached');
SELECT destination, body->>'note' AS note FROM messages;
TRUNCATE outbox.published;

-- unpublish() of the parent stops every partition, and removes the clones
SELECT outbox.unpublish('orders');
SELECT count(*) FROM pg_trigger WHERE tgname = 'outbox_capture'
   AND tgrelid IN (SELECT relid FROM pg_partition_tree('orders'));
INSERT INTO orders VALUES (2, 'eu', 1, 'after');
SELECT count(*) FROM outbox.published;

-- DROP TRIGGER on the parent unpublishes it too; DROP TABLE forgets it
SELECT outbox.publish('orders', '/topic/orders');
DROP TRIGGER outbox_capture ON orders;
SELECT count(*) FROM outbox.publish_config WHERE relid = 'orders'::regclass;
SELECT outbox.publish('orders', '/topic/orders');
DROP TABLE orders CASCADE;
SELECT relid, destination FROM outbox.publish_config ORDER BY 1::text, 2;
