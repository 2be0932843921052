# Makefile for the outbox extension (PGXS)

MODULE_big = outbox
EXTENSION = outbox
DATA = src/outbox--1.0.sql src/outbox--1.0--1.1.sql
PGFILEDESC = "outbox - transactional outbox to a STOMP broker"

STOMP_OBJS = \
	src/stomp/stomp_buf.o \
	src/stomp/stomp_conn.o \
	src/stomp/stomp_decode.o \
	src/stomp/stomp_encode.o \
	src/stomp/stomp_failover.o \
	src/stomp/stomp_frame.o \
	src/stomp/stomp_heartbeat.o \
	src/stomp/stomp_io.o \
	src/stomp/stomp_number.o \
	src/stomp/stomp_refusal.o \
	src/stomp/stomp_retry.o \
	src/stomp/stomp_tls.o

# the workers' decisions: plain C, unit-tested in test/stomp
DECIDE_OBJS = \
	src/decide/consumer_batch_end.o \
	src/decide/consumer_delivery.o \
	src/decide/consumer_given_back.o \
	src/decide/consumer_retry.o \
	src/decide/consumer_route.o \
	src/decide/publisher_lanes.o \
	src/decide/publisher_receipts.o \
	src/decide/publisher_retry.o \
	src/decide/publisher_session.o

OBJS = \
	$(WIN32RES) \
	src/broker.o \
	src/capture.o \
	src/consumer.o \
	src/consumer_batch.o \
	src/consumer_callback.o \
	src/consumer_dlq.o \
	src/consumer_held.o \
	src/consumer_launcher.o \
	src/consumer_subscribe.o \
	src/consumer_tables.o \
	src/counters.o \
	src/destination.o \
	src/destination_state.o \
	src/event_triggers.o \
	src/message.o \
	src/message_headers.o \
	src/outbox.o \
	src/outbox_row.o \
	src/outbox_writer.o \
	src/pause.o \
	src/privileges.o \
	src/publication.o \
	src/publish_config.o \
	src/publisher.o \
	src/publisher_lanes.o \
	src/publisher_launcher.o \
	src/publisher_rows.o \
	src/publisher_send.o \
	src/queue_check.o \
	src/redrive.o \
	src/rendering.o \
	src/replay.o \
	src/retention.o \
	src/row_jsonb.o \
	src/secret.o \
	src/send_event.o \
	src/settings.o \
	src/shmem.o \
	src/status.o \
	src/stored_function.o \
	src/subscribe.o \
	src/uuid7.o \
	src/version.o \
	src/wakeup.o \
	src/wire.o \
	src/wire_inbound.o \
	src/worker_link.o \
	src/worker_loop.o \
	src/worker_state.o \
	src/writer_cache.o \
	$(STOMP_OBJS) \
	$(DECIDE_OBJS)

PG_CPPFLAGS = -I$(srcdir)/src
SHLIB_LINK = -lssl -lcrypto

REGRESS = capture published publish settings security ddl robustness \
	destination_patterns destination_shapes published_columns \
	generate_headers_path capture_config_path capture_trigger capture_writer \
	hand_inserts partitions replay packaging monitoring rendering \
	capture_forget published_refusal_order \
	headers_stored capture_body capture_writer_cache attack_writer \
	attack_headers attack_body broker_headers
REGRESS_OPTS = --temp-config=$(srcdir)/test/regress.conf \
	--temp-instance=./tmp_regress --load-extension=outbox

ISOLATION = capture_cache ddl_snapshot partition_cache
ISOLATION_OPTS = --temp-config=$(srcdir)/test/regress.conf \
	--temp-instance=./tmp_isolation --load-extension=outbox

TAP_TESTS = 1

# the schema version the library reads and writes: the control file's
# default_version (version.c refuses a database at another one)
OUTBOX_SCHEMA_VERSION = $(shell sed -n "s/^default_version = '\(.*\)'$$/\1/p" $(srcdir)/outbox.control)
PG_CPPFLAGS += -DOUTBOX_SCHEMA_VERSION=\"$(OUTBOX_SCHEMA_VERSION)\"

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# after the include: Makefile.global sets PROVE_FLAGS empty
PROVE_FLAGS += -I t/lib

# PGXS tracks no header dependencies: a changed struct must rebuild every
# object that uses it
$(OBJS): src/outbox.h $(wildcard $(srcdir)/src/stomp/*.h) \
	$(wildcard $(srcdir)/src/decide/*.h) $(wildcard $(srcdir)/src/*_internal.h)

# version.c is built for the control file's default_version
src/version.o: outbox.control
