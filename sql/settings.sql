--
-- Every outbox.* setting refuses a bad value with a message naming it.
-- Settings that only postgresql.conf may change are tried through
-- ALTER SYSTEM, which checks values the same way.
--
SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'outbox.%' ORDER BY name;

-- the prefix is reserved
SET outbox.no_such_setting = 1;

ALTER SYSTEM SET outbox.stomp_host_and_ports = '';
ALTER SYSTEM SET outbox.stomp_host_and_ports = 'localhost:';
ALTER SYSTEM SET outbox.stomp_host_and_ports = 'localhost';
ALTER SYSTEM SET outbox.stomp_host_and_ports = 'localhost:0';
ALTER SYSTEM SET outbox.stomp_host_and_ports = 'localhost:65536';
ALTER SYSTEM SET outbox.stomp_host_and_ports = 'localhost:61613,';
ALTER SYSTEM SET outbox.stomp_host_and_ports = 'localhost:6161x';
ALTER SYSTEM SET outbox.stomp_host_and_ports = '::1:61613';
ALTER SYSTEM SET outbox.stomp_host_and_ports = '[::1:61613';
ALTER SYSTEM SET outbox.stomp_host_and_ports = 'a b:61613';
ALTER SYSTEM SET outbox.stomp_host_and_ports = 'rabbit-1:61613, [::1]:61614 ,10.0.0.1:1';
ALTER SYSTEM SET outbox.stomp_username = E'gu\nest';
ALTER SYSTEM SET outbox.stomp_vhost = '';
ALTER SYSTEM SET outbox.stomp_vhost = E'/\n';
ALTER SYSTEM SET outbox.stomp_heartbeats = '10000';
ALTER SYSTEM SET outbox.stomp_heartbeats = '-1,0';
ALTER SYSTEM SET outbox.stomp_heartbeats = '10000,abc';
ALTER SYSTEM SET outbox.stomp_heartbeats = '10000,3600001';
ALTER SYSTEM SET outbox.stomp_heartbeats = '0,0';
ALTER SYSTEM SET outbox.stomp_heartbeats = ' 3600000 , 1 ';
ALTER SYSTEM SET outbox.stomp_heartbeats = '1,2,3';
ALTER SYSTEM SET outbox.stomp_heartbeats = '1, ';
ALTER SYSTEM SET outbox.stomp_heartbeats = '99999999999999999999,1';
ALTER SYSTEM SET outbox.stomp_use_ssl = 'maybe';
ALTER SYSTEM SET outbox.stomp_ssl_min_protocol = 'SSLv3';
ALTER SYSTEM SET outbox.stomp_ssl_min_protocol = 'TLSv1.3';
ALTER SYSTEM SET outbox.stomp_verify_hostname = 'sometimes';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'durable';
ALTER SYSTEM SET outbox.stomp_queue_headers = ':true';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'durable:true,,x:y';
ALTER SYSTEM SET outbox.stomp_queue_headers = E'durable:\ntrue';
-- at most 32 headers, each named once
SELECT set_config('t.many', string_agg('x-queue-type:quorum', ','), false)
  FROM generate_series(1, 70) \gset
ALTER SYSTEM SET outbox.stomp_queue_headers = :'set_config';
SELECT set_config('t.many', string_agg('x-h' || i || ':v', ','), false)
  FROM generate_series(1, 33) i \gset
ALTER SYSTEM SET outbox.stomp_queue_headers = :'set_config';
SELECT set_config('t.many', string_agg('x-h' || i || ':v', ','), false)
  FROM generate_series(1, 32) i \gset
ALTER SYSTEM SET outbox.stomp_queue_headers = :'set_config';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'durable:true,x-queue-type:quorum,durable:true';
-- spaces around names and values do not count; outbox's own headers are refused
ALTER SYSTEM SET outbox.stomp_queue_headers = 'x-queue-type:quorum, x-queue-type:classic';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'durable:true, :x';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'durable:true,x-dead-letter-exchange:dlx';
ALTER SYSTEM SET outbox.stomp_queue_headers = ' id :5';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'durable:true,';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'durable: true, auto-delete :false , x-queue-type:quorum';
-- queues that keep their messages; counts that are numbers
ALTER SYSTEM SET outbox.stomp_queue_headers = 'durable:true,auto-delete:true';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'durable:false';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'prefetch-count:abc';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'x-max-length:-1';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'x-max-length:9223372036854775807';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'x-max-length:9223372036854775808';
ALTER SYSTEM SET outbox.stomp_queue_headers = 'durable:true, prefetch-count: 50, x-message-ttl:60000';
ALTER SYSTEM SET outbox.stomp_queue_headers = '';
ALTER SYSTEM SET outbox.exclusive_queue = 'perhaps';
ALTER SYSTEM SET outbox.maximum_backoff = 0;
ALTER SYSTEM SET outbox.maximum_backoff = '1 fortnight';
ALTER SYSTEM SET outbox.maximum_backoff = '2h';
ALTER SYSTEM SET outbox.maximum_retry_attempts = 0;
ALTER SYSTEM SET outbox.maximum_retry_attempts = 'many';
ALTER SYSTEM SET outbox.pause_for_retry = -1;
ALTER SYSTEM SET outbox.wait_retry = -1;
ALTER SYSTEM SET outbox.published_chunk_size = 0;
ALTER SYSTEM SET outbox.published_chunk_size = 10001;
ALTER SYSTEM SET outbox.days_to_keep_data = 0;
ALTER SYSTEM SET outbox.remove_data_interval = 0;
ALTER SYSTEM SET outbox.poll_interval = '5ms';
ALTER SYSTEM SET outbox.poll_interval = '2h';
ALTER SYSTEM SET outbox.consumer_shutdown_timeout = -1;
ALTER SYSTEM SET outbox.consumer_hold_timeout = '500ms';
ALTER SYSTEM SET outbox.database_name = '';
ALTER SYSTEM SET outbox.database_name = 'a,,b';
ALTER SYSTEM SET outbox.database_name = 'mydb,mydb';
ALTER SYSTEM SET outbox.database_name = 'a, mydb, "mydb"';
ALTER SYSTEM SET outbox.database_name = 'mydb,MyDB';
ALTER SYSTEM SET outbox.database_name = 'postgres,dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd';
ALTER SYSTEM SET outbox.generate_headers = '1+1';
ALTER SYSTEM SET outbox.generate_headers = 'f()';
ALTER SYSTEM SET outbox.generate_headers = '"unterminated';
ALTER SYSTEM SET outbox.generate_headers = 'schema.';
ALTER SYSTEM SET outbox.generate_headers = 'my_schema."My Headers"';
ALTER SYSTEM RESET ALL;

-- postgresql.conf-only settings cannot be changed in a session
SET outbox.stomp_host_and_ports = '127.0.0.1:61613';
SET outbox.database_name = 'postgres';

-- session settings
SET outbox.send_timeout = 0;
SET outbox.send_timeout = 'soon';
SET outbox.send_timeout = '2min';
SHOW outbox.send_timeout;
SET outbox.correlation_id = E'req\n1';
SET outbox.correlation_id = E'req\t1';
SELECT set_config('outbox.correlation_id', repeat('c', 256), false);
SELECT length(set_config('outbox.correlation_id', repeat('c', 255), false));
RESET outbox.correlation_id;
SET outbox.generate_headers = 'a.b.c';
SET outbox.generate_headers = '"Quoted".name';
RESET ALL;

-- The passcode and the key password are read from files; the settings that
-- held them refuse any value, never quoting it, and point at the files.
ALTER SYSTEM SET outbox.stomp_passcode = 'NotShownAnywhere';
ALTER SYSTEM SET outbox.stomp_ssl_password = 'NotShownAnywhere';
SET outbox.stomp_passcode = 'NotShownAnywhere';
SELECT name FROM pg_settings WHERE name IN ('outbox.stomp_passcode', 'outbox.stomp_ssl_password');
SHOW outbox.stomp_passcode_file;
SHOW outbox.stomp_ssl_password_file;
ALTER SYSTEM RESET ALL;

-- The broker settings are superuser-only.
CREATE ROLE outbox_plain;
SET ROLE outbox_plain;
SHOW outbox.stomp_passcode_file;
SHOW outbox.stomp_ssl_password_file;
SHOW outbox.stomp_username;
SHOW outbox.stomp_host_and_ports;
SET outbox.generate_headers = 'my_headers';
SELECT count(*) FROM pg_settings WHERE name LIKE 'outbox.stomp_%_file';
RESET ROLE;
DROP ROLE outbox_plain;
