-- bench/capture_tables.sql — the tables bench/capture.sh and
-- bench/capture_profile.sh write to, side by side:
--   bench_plain    no trigger;
--   bench_outbox   published with outbox.publish() (the C capture trigger);
--   bench_plpgsql  the best SQL-level alternative: a statement-level
--                  PL/pgSQL trigger over the transition table, writing the
--                  same rows (to_jsonb(row), a v7 id, the dop-* headers)
--                  into a copy of outbox.published with its indexes (but
--                  without its checks);
--   bench_emit     the physical floor: a statement-level trigger writing
--                  each row's JSON as one WAL record,
--                  pg_logical_emit_message().
CREATE EXTENSION outbox;
CREATE TABLE bench_plain (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                          customer int, amount numeric(12,2), note text,
                          created timestamptz DEFAULT now());
CREATE TABLE bench_outbox (LIKE bench_plain INCLUDING ALL);
CREATE TABLE bench_plpgsql (LIKE bench_plain INCLUDING ALL);
CREATE TABLE bench_emit (LIKE bench_plain INCLUDING ALL);
SELECT outbox.publish('bench_outbox', '/topic/bench', 'v1');

-- the same outbox table, filled by PL/pgSQL once per statement
CREATE TABLE plpgsql_published (LIKE outbox.published INCLUDING ALL);
CREATE FUNCTION plpgsql_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO plpgsql_published (id, destination, version, body, headers, added, expires_at)
    SELECT m.id, '/topic/bench.v1', 'v1', m.body,
           jsonb_build_object('dop-msg-id', m.id::text,
                              'dop-msg-destination', '/topic/bench.v1',
                              'dop-msg-type', 'Published',
                              'dop-msg-sent-time', to_jsonb(clock_timestamp()) #>> '{}',
                              'dop-correlation-id',
                              coalesce(nullif(current_setting('outbox.correlation_id'), ''),
                                       gen_random_uuid()::text)),
           clock_timestamp(), clock_timestamp() + interval '1 day'
      FROM (SELECT outbox.uuid_generate_v7() AS id, to_jsonb(n) AS body
              FROM new_rows n) m;
    RETURN NULL;
END $$;
CREATE TRIGGER plpgsql_capture AFTER INSERT ON bench_plpgsql
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION plpgsql_capture();

-- one WAL record per row, nothing stored
CREATE FUNCTION emit_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_logical_emit_message(true, 'outbox', to_jsonb(n)::text)
       FROM new_rows n;
    RETURN NULL;
END $$;
CREATE TRIGGER emit_capture AFTER INSERT ON bench_emit
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION emit_capture();
