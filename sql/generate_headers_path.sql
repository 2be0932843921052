--
-- outbox.generate_headers, attacked: a function name resolved once per
-- backend, with whatever search_path the first writer had, then called for
-- every later writer of that backend, whoever it is.
--
CREATE ROLE outbox_eve;
CREATE SCHEMA app;
CREATE SCHEMA eve AUTHORIZATION outbox_eve;
GRANT USAGE ON SCHEMA app TO PUBLIC;
CREATE TABLE app.spy (who name, what text);
GRANT INSERT ON app.spy TO PUBLIC;
GRANT INSERT ON outbox.published TO outbox_eve;
-- the administrator's function, named as the documentation's examples do
CREATE FUNCTION app.hdrs(p outbox.published) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT '{"x-app": "1"}'::jsonb $$;
-- a privileged helper done by the book: SECURITY DEFINER, pinned path
CREATE FUNCTION app.log_order(n int) RETURNS void LANGUAGE sql
	SECURITY DEFINER SET search_path = app, pg_catalog
	AS $$ INSERT INTO outbox.published (destination, body)
		  VALUES ('/topic/orders', pg_catalog.jsonb_build_object('n', n)) $$;
REVOKE ALL ON FUNCTION app.log_order(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.log_order(int) TO outbox_eve;
-- an unqualified name may be refused; either way the attack below fails
DO $$
BEGIN
	PERFORM pg_catalog.set_config('outbox.generate_headers', 'hdrs', false);
EXCEPTION WHEN OTHERS THEN
	NULL;
END $$;
SET ROLE outbox_eve;
CREATE FUNCTION eve.hdrs(p outbox.published) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO app.spy VALUES (current_user, 'eve.hdrs');
	BEGIN
		ALTER ROLE outbox_eve SUPERUSER;
	EXCEPTION WHEN insufficient_privilege THEN
		NULL;
	END;
	RETURN '{}';
END $$;
SET search_path = eve, app, pg_catalog;
-- eve's own write: whatever it runs, it runs as eve
DO $$
BEGIN
	INSERT INTO outbox.published (destination, body) VALUES ('/topic/eve', '{}');
EXCEPTION WHEN OTHERS THEN
	NULL;
END $$;
-- the privileged helper must not run eve's function as its owner
DO $$
BEGIN
	PERFORM app.log_order(1);
EXCEPTION WHEN OTHERS THEN
	NULL;
END $$;
RESET search_path;
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'outbox_eve';
SELECT who, what FROM app.spy WHERE who <> 'outbox_eve';
RESET outbox.generate_headers;
TRUNCATE outbox.published;
DROP SCHEMA app, eve CASCADE;
DROP OWNED BY outbox_eve;
DROP ROLE outbox_eve;
