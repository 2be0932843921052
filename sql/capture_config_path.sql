--
-- The capture cache, attacked: the configurations of a published table
-- are read once per backend, as the writer, and used for every later
-- write.  A writer's search_path must not change which configurations
-- that read finds, or a role allowed to write one table sends its rows
-- to every destination of every published table.
--
CREATE ROLE outbox_writer;
CREATE SCHEMA shop;
CREATE SCHEMA writer AUTHORIZATION outbox_writer;
GRANT USAGE ON SCHEMA shop TO outbox_writer;
CREATE TABLE shop.orders (id int PRIMARY KEY);
CREATE TABLE shop.payroll (id int PRIMARY KEY, salary int);
SELECT outbox.publish('shop.orders', '/topic/orders');
SELECT outbox.publish('shop.payroll', '/queue/payroll');
GRANT INSERT ON shop.orders TO outbox_writer;
SET ROLE outbox_writer;
-- an oid = oid that matches everything
CREATE FUNCTION writer.oideq(a oid, b oid) RETURNS boolean LANGUAGE sql
	AS $$ SELECT true $$;
CREATE OPERATOR writer.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = writer.oideq);
SET search_path = writer, pg_catalog;
INSERT INTO shop.orders VALUES (1);
RESET search_path;
INSERT INTO shop.orders VALUES (2);
RESET ROLE;
-- only the orders' destination got the orders
SELECT destination, body FROM outbox.published ORDER BY destination, body::text;
TRUNCATE outbox.published;
SELECT outbox.unpublish('shop.orders');
SELECT outbox.unpublish('shop.payroll');
DROP SCHEMA shop, writer CASCADE;
DROP OWNED BY outbox_writer;
DROP ROLE outbox_writer;
