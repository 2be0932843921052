--
-- outbox.publish() and outbox.unpublish() refuse what cannot work, and DDL
-- cannot leave a publication that silently stops capturing.
--
CREATE TABLE item (id int PRIMARY KEY, name text, price numeric);
CREATE VIEW item_view AS SELECT * FROM item;
CREATE FUNCTION item_json(i item) RETURNS json LANGUAGE sql AS $$ SELECT row_to_json(i) $$;
CREATE FUNCTION item_text(i item) RETURNS text LANGUAGE sql AS $$ SELECT i.name $$;
CREATE FUNCTION item_two(i item, x int) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION int_json(x int) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION item_set(i item) RETURNS SETOF jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;

-- unknown table, not a table, NULLs
SELECT outbox.publish('no_such_table', '/topic/x');
SELECT outbox.publish('item_view', '/topic/x');
SELECT outbox.publish('pg_class', '/topic/x');
SELECT outbox.publish('outbox.published', '/topic/x');
SELECT outbox.publish(NULL, '/topic/x');
SELECT outbox.publish('item', NULL);

-- destination and version
SELECT outbox.publish('item', '');
SELECT outbox.publish('item', E'/topic/\n');
SELECT outbox.publish('item', E'/topic/\r');
SELECT outbox.publish('item', repeat('x', 256));
SELECT outbox.publish('item', '/topic/x', '');
SELECT outbox.publish('item', '/topic/x', E'v\n');
SELECT outbox.publish('item', '/topic/x', repeat('v', 101));
SELECT outbox.publish('item', repeat('x', 250), 'v1234');

-- fields
SELECT outbox.publish('item', '/topic/x', fields => ARRAY['nope']);
SELECT outbox.publish('item', '/topic/x', fields => ARRAY[]::text[]);
SELECT outbox.publish('item', '/topic/x', fields => ARRAY['name', NULL]);
SELECT outbox.publish('item', '/topic/x', fields => ARRAY[ARRAY['name']]);

-- serializer
SELECT outbox.publish('item', '/topic/x', serializer => 'no_such_function');
SELECT outbox.publish('item', '/topic/x', serializer => 'int_json');
SELECT outbox.publish('item', '/topic/x', serializer => 'int_json(integer)');
SELECT outbox.publish('item', '/topic/x', serializer => 'item_two(item, integer)');
SELECT outbox.publish('item', '/topic/x', serializer => 'item_text');
SELECT outbox.publish('item', '/topic/x', serializer => 'item_set');
SELECT outbox.publish('item', '/topic/x', serializer => 'no_such_function(item)');
SELECT outbox.publish('item', '/topic/x', serializer => 'bad name(');

-- fields and serializer: the serializer wins, with a NOTICE
SELECT outbox.publish('item', '/topic/x', fields => ARRAY['name'], serializer => 'item_json');
SELECT destination, fields, serializer FROM outbox.publish_config;

-- nothing half-done was left behind by the failures above
SELECT count(*) FROM outbox.publish_config WHERE destination <> '/topic/x';
SELECT tgname FROM pg_trigger WHERE tgrelid = 'item'::regclass;

-- unpublish: bad input, and nothing to remove
SELECT outbox.unpublish(NULL);
SELECT outbox.unpublish('item', NULL, 'v1');
SELECT outbox.unpublish('no_such_table');
SELECT outbox.unpublish('item', '/topic/not-published');
SELECT outbox.unpublish('item', '/topic/x', 'v7');

-- Only the table's owner may publish or unpublish it; nobody may write the
-- configurations directly.
CREATE ROLE outbox_owner;
CREATE ROLE outbox_other;
GRANT EXECUTE ON FUNCTION outbox.publish(regclass, text, text, text[], text),
	outbox.unpublish(regclass, text, text) TO outbox_owner, outbox_other;
GRANT CREATE ON SCHEMA public TO outbox_owner;
SET ROLE outbox_other;
SELECT outbox.publish('item', '/topic/stolen');
SELECT outbox.unpublish('item');
INSERT INTO outbox.publish_config (relid, destination) VALUES ('item', '/topic/stolen');
DELETE FROM outbox.publish_config;
SELECT count(*) FROM outbox.publish_config;
RESET ROLE;
SET ROLE outbox_owner;
CREATE TABLE owned (id int PRIMARY KEY, secret text);
SELECT outbox.publish('owned', '/topic/owned', fields => ARRAY['id']);
INSERT INTO owned VALUES (1, 'not in the message');
RESET ROLE;
SELECT body FROM outbox.published;
SET ROLE outbox_owner;
-- a serializer the owner may not execute is refused
RESET ROLE;
CREATE FUNCTION private_json(o owned) RETURNS jsonb LANGUAGE sql AS $$ SELECT to_jsonb(o) $$;
REVOKE EXECUTE ON FUNCTION private_json(owned) FROM PUBLIC;
SET ROLE outbox_owner;
SELECT outbox.publish('owned', '/topic/owned', serializer => 'private_json');
SELECT outbox.unpublish('owned');
RESET ROLE;
DROP FUNCTION private_json(owned);
TRUNCATE outbox.published;

-- DDL: a dropped table takes its configurations and trigger with it.
SELECT outbox.publish('owned', '/topic/owned');
DROP TABLE owned;
SELECT count(*) FROM outbox.publish_config WHERE destination = '/topic/owned';
DROP OWNED BY outbox_owner;
REVOKE CREATE ON SCHEMA public FROM outbox_owner;
REVOKE ALL ON FUNCTION outbox.publish(regclass, text, text, text[], text),
	outbox.unpublish(regclass, text, text) FROM outbox_owner, outbox_other;
DROP ROLE outbox_owner;
DROP ROLE outbox_other;

-- DDL: columns named in fields can be neither dropped nor renamed, other
-- columns can; the serializer cannot be dropped; the trigger cannot be dropped.
DROP VIEW item_view;
SELECT outbox.unpublish('item');
SELECT outbox.publish('item', '/topic/fields', fields => ARRAY['name']);
ALTER TABLE item DROP COLUMN name;
ALTER TABLE item RENAME COLUMN name TO title;
ALTER TABLE item RENAME COLUMN price TO cost;
ALTER TABLE item ADD COLUMN note text;
ALTER TABLE item DROP COLUMN note;
SELECT outbox.publish('item', '/topic/serialized', serializer => 'item_json');
DROP FUNCTION item_json(item);
-- DROP TRIGGER itself is unpublishing the table (sql/capture_trigger.sql)
BEGIN;
DROP TRIGGER outbox_capture ON item;
ROLLBACK;
ALTER TRIGGER outbox_capture ON item RENAME TO something_else;
INSERT INTO item VALUES (1, 'still captured', 2);
SELECT destination, body FROM outbox.published ORDER BY destination;
TRUNCATE outbox.published;
-- a renamed table stays published
ALTER TABLE item RENAME TO article;
INSERT INTO article VALUES (2, 'renamed', 3);
SELECT destination, body FROM outbox.published ORDER BY destination;
SELECT relid, destination FROM outbox.publish_config ORDER BY destination;
TRUNCATE outbox.published;
-- after unpublish, all of it may go
SELECT outbox.unpublish('article');
ALTER TABLE article DROP COLUMN name;
DROP FUNCTION item_json(article);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'article'::regclass;

-- DROP SCHEMA ... CASCADE takes the publications of its tables.
CREATE SCHEMA shop;
CREATE TABLE shop.cart (id int PRIMARY KEY);
CREATE FUNCTION shop.cart_json(c shop.cart) RETURNS jsonb LANGUAGE sql AS $$ SELECT to_jsonb(c) $$;
SELECT outbox.publish('shop.cart', '/topic/cart', serializer => 'shop.cart_json');
SELECT outbox.publish('shop.cart', '/topic/cart', 'v2');
DROP SCHEMA shop CASCADE;
SELECT count(*) FROM outbox.publish_config;
