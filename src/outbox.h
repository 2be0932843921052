/*-------------------------------------------------------------------------
 *
 * outbox.h
 *		  Declarations shared by the files of the outbox extension.
 *
 * One private header for the whole module, grouped by the file that
 * defines each symbol.  The STOMP client under src/stomp/ knows nothing of
 * PostgreSQL and has headers of its own.
 *
 * src/outbox.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef OUTBOX_H
#define OUTBOX_H

#include "postgres.h"

#include "access/attmap.h"
#include "access/htup.h"
#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "datatype/timestamp.h"
#include "utils/rel.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "stomp/stomp_conn.h"

/*
 * The search_path of every statement outbox runs for itself, and of its
 * workers' sessions: nothing of any user's schemas is resolved there.
 */
#define OUTBOX_SAFE_SEARCH_PATH		"pg_catalog, pg_temp"

/* Longest destination the broker is given, in bytes, version suffix included */
#define OUTBOX_MAX_DESTINATION_LEN	255
/* Longest version, as in django-outbox-pattern's model */
#define OUTBOX_MAX_VERSION_LEN		100
/* How long a message may wait to be sent before it is failed as expired */
#define OUTBOX_DEFAULT_EXPIRY_USECS (USECS_PER_DAY)

/* in settings.c */
extern char *outbox_stomp_host_and_ports;
extern char *outbox_stomp_username;
extern char *outbox_stomp_passcode_file;
extern char *outbox_stomp_vhost;
extern char *outbox_stomp_heartbeats;
extern bool outbox_stomp_use_ssl;
extern char *outbox_stomp_key_file;
extern char *outbox_stomp_cert_file;
extern char *outbox_stomp_ca_certs;
extern int	outbox_stomp_ssl_min_protocol;
extern char *outbox_stomp_ssl_password_file;
extern bool outbox_stomp_verify_hostname;
extern char *outbox_stomp_queue_headers;

/* items outbox.stomp_queue_headers may hold (settings.c checks) */
#define OUTBOX_MAX_QUEUE_HEADERS	32
extern bool outbox_queue_header_reserved(const char *name, size_t len);
extern bool outbox_exclusive_queue;
extern int	outbox_maximum_backoff;
extern int	outbox_maximum_retry_attempts;
extern int	outbox_pause_for_retry;
extern int	outbox_wait_retry;
extern int	outbox_published_chunk_size;
extern int	outbox_days_to_keep_data;
extern int	outbox_remove_data_interval;
extern char *outbox_generate_headers;
extern int	outbox_poll_interval;
extern int	outbox_consumer_shutdown_timeout;
extern int	outbox_consumer_hold_timeout;
extern char *outbox_database_name;
extern int	outbox_send_timeout;
extern char *outbox_correlation_id;
extern int	outbox_max_message_size;

extern void outbox_define_settings(void);
extern const char *outbox_ssl_protocol_name(int protocol);

/* in secret.c */
typedef enum OutboxSecret
{
	OUTBOX_SECRET_PASSCODE,		/* from outbox.stomp_passcode_file */
	OUTBOX_SECRET_SSL_PASSWORD	/* from outbox.stomp_ssl_password_file */
} OutboxSecret;

extern void outbox_secrets_refresh(int elevel);
extern const char *outbox_secret(OutboxSecret which);
extern uint64 outbox_secrets_generation(void);

/* in uuid7.c */
extern void outbox_uuid_v7(pg_uuid_t *uuid);
extern void outbox_uuid_v4(pg_uuid_t *uuid);
extern bool outbox_uuid_v7_unix_ms(const pg_uuid_t *uuid, int64 *unix_ms);
/* a UUID as text: 32 hex digits and 4 dashes */
#define OUTBOX_UUID_TEXT_LEN 36
extern void outbox_uuid_text(const pg_uuid_t *uuid, char *buf);

/* in message.c */

/*
 * A message on its way into outbox.published.  The capture trigger fills one
 * from a captured row, the BEFORE INSERT trigger from a row inserted by hand;
 * outbox_final_destination() and outbox_finish_message() then give both
 * the same treatment.
 */
typedef struct OutboxMessage
{
	pg_uuid_t	id;
	char	   *destination;	/* as given; suffixed with the version */
	char	   *version;		/* NULL if none */
	Jsonb	   *body;
	Jsonb	   *headers;		/* the user's own, or NULL; then those stored */
	TimestampTz added;
	bool		expires_at_isnull;
	TimestampTz expires_at;
} OutboxMessage;

extern void outbox_check_destination(const char *destination,
									 const char *version);
extern void outbox_final_destination(OutboxMessage *message);
extern void outbox_check_stored_destination(OutboxMessage *message);
extern bool outbox_finishing_runs_user_code(void);
extern void outbox_finish_message(OutboxMessage *message, Relation rel);
extern void outbox_check_kept_message(OutboxMessage *message);
extern Datum outbox_call_user_function(FunctionCallInfo fcinfo);

/* in outbox_row.c: the outbox row format */

/* what a column of outbox.published is */
typedef enum OutboxRowColumn
{
	OUTBOX_ROW_DROPPED,
	OUTBOX_ROW_ID,
	OUTBOX_ROW_DESTINATION,
	OUTBOX_ROW_VERSION,
	OUTBOX_ROW_BODY,
	OUTBOX_ROW_HEADERS,
	OUTBOX_ROW_ADDED,
	OUTBOX_ROW_EXPIRES_AT,
	OUTBOX_ROW_RETRY,
	OUTBOX_ROW_STATUS,
	OUTBOX_ROW_LAST_ERROR,
	OUTBOX_ROW_NEXT_ATTEMPT_AT,
	OUTBOX_ROW_OTHER			/* added by hand: its default, else NULL */
} OutboxRowColumn;

/* how to form rows of one descriptor of outbox.published */
typedef struct OutboxRowFormat
{
	TupleDesc	desc;
	OutboxRowColumn *columns;	/* by attribute number - 1 */
	Datum		scheduled;		/* the 'scheduled' status */
} OutboxRowFormat;

extern Oid	outbox_table_relid(const char *relname);
extern Oid	outbox_published_relid(void);
extern void outbox_row_format_init(OutboxRowFormat *format, TupleDesc desc);
extern HeapTuple outbox_row_form(const OutboxRowFormat *format,
								 OutboxMessage *message);
extern HeapTuple outbox_form_published_tuple(Relation rel,
											 OutboxMessage *message);
extern Datum outbox_row_column(HeapTuple tuple, TupleDesc desc,
							   const char *name, int *attnum, bool *isnull);
extern bool outbox_row_read_message(HeapTuple tuple, TupleDesc desc,
									OutboxMessage *message);

/* in outbox_writer.c: also the triggers of outbox.published */
extern void outbox_insert_published(OutboxMessage *message);

/* in writer_cache.c: what the writer keeps across transactions */
extern void outbox_writer_cache_format(Relation rel, OutboxRowFormat *format);
struct ResultRelInfo;
extern void outbox_writer_cache_predicates(struct ResultRelInfo *resultRelInfo);

/* in wire.c */
/* what django-outbox-pattern puts in dop-msg-type: the name of its model */
#define OUTBOX_MESSAGE_TYPE "Published"

typedef struct OutboxWireMessage
{
	char	   *destination;	/* in UTF-8, as every text below */
	StompHeaderPair *headers;
	size_t		nheaders;
	char	   *body;
	size_t		body_len;
} OutboxWireMessage;

/*
 * Bytes of a SEND frame that are not the body nor the message's headers:
 * the command, the destination, content-type, content-length, persistent
 * and receipt headers that the STOMP client adds, and the NUL.
 */
#define OUTBOX_FRAME_OVERHEAD_BYTES	(128 + 2 * OUTBOX_MAX_DESTINATION_LEN)

extern bool outbox_wire_message(const pg_uuid_t *id, const char *destination,
								Jsonb *body, Jsonb *headers,
								OutboxWireMessage *wire, char **reason);
extern uint64 outbox_wire_frame_size(const OutboxWireMessage *wire);
extern uint64 outbox_wire_frame_size_bound(const OutboxWireMessage *wire);
extern bool outbox_wire_header_is_builtin(const char *name, size_t len);
extern char *outbox_wire_header_value_text(JsonbValue *value, const char *key);

/*
 * The headers of its own a message may carry, in UTF-8, names and values:
 * how many, each one's size, and all of them (outbox_header_sendable()).
 */
#define OUTBOX_MAX_HEADERS			500
#define OUTBOX_MAX_HEADER_BYTES		(16 * 1024)
#define OUTBOX_MAX_HEADERS_BYTES	(256 * 1024)
typedef struct OutboxHeaderTally
{
	int			count;			/* headers counted so far */
	uint64		bytes;			/* their names and values, in UTF-8 */
} OutboxHeaderTally;
extern bool outbox_header_sendable(OutboxHeaderTally *tally, const char *name,
								   const char *value, size_t value_len,
								   char **reason);
extern uint64 outbox_wire_builtin_headers_bound(void);
/*
 * The longest dop-msg-sent-time escaped for STOMP 1.2: the 35 characters
 * of YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM:SS, each of its five colons escaped
 * to two bytes.  Its length varies with the clock (the fraction loses its
 * trailing zeros) and the time zone (an offset may have seconds).
 */
#define OUTBOX_SENT_TIME_MAX_ESCAPED	(35 + 5)
extern uint64 outbox_wire_sent_time_slack(const OutboxWireMessage *wire);
extern Jsonb *outbox_wire_headers(const pg_uuid_t *id, const char *destination,
								  Jsonb *headers, char **reason);

/* in broker.c */
/* time allowed to connect (or to declare), per host of outbox.stomp_host_and_ports */
#define OUTBOX_CONNECT_MS_PER_HOST 15000
typedef struct OutboxBroker
{
	StompConn  *conn;
	StompHostList hosts;
	bool		holds_fd;		/* one external fd reserved for the socket */
	bool		login_refused;	/* the last connect failed on the login */
	char		where[STOMP_MAX_HOST_LEN + 16]; /* host:port connected to */
	char		refusal[STOMP_ERRMSG_SIZE]; /* what the broker said to it */
} OutboxBroker;

/* how a wait for a RECEIPT ended (outbox_broker_await_receipt) */
typedef enum OutboxReceiptWait
{
	OUTBOX_RECEIPT_CONFIRMED,
	OUTBOX_RECEIPT_REFUSED,		/* the broker's ERROR */
	OUTBOX_RECEIPT_LOST,		/* the connection closed */
	OUTBOX_RECEIPT_TIMED_OUT
} OutboxReceiptWait;

/*
 * Takes a delivered MESSAGE (the callee owns the frame from then on);
 * returns whether there is room for the next one now.
 */
typedef bool (*OutboxMessageFn) (StompFrame *frame, void *arg);

extern int64 outbox_monotonic_ms(void);
extern char *outbox_broker_settings(void);
extern void outbox_broker_init(OutboxBroker *broker);
extern void outbox_broker_note_failure(StringInfo failures, const char *where,
									   const char *reason);
extern void outbox_broker_connect_or_error(OutboxBroker *broker,
										   int64 deadline_ms);
extern bool outbox_broker_connect(OutboxBroker *broker, int64 deadline_ms,
								  StringInfo failures);
extern int	outbox_broker_wait(OutboxBroker *broker, int64 deadline_ms);
extern OutboxReceiptWait outbox_broker_await_receipt(OutboxBroker *broker,
													 uint64_t receipt,
													 int64 deadline_ms,
													 OutboxMessageFn on_message,
													 void *arg);
extern void outbox_broker_wait_interruptible(OutboxBroker *broker,
											 int64 deadline_ms);
extern bool outbox_broker_latch_seen(void);
extern bool outbox_broker_make_room(OutboxBroker *broker, int64 deadline_ms);
extern void outbox_broker_flush(OutboxBroker *broker, int64 deadline_ms);
extern void outbox_broker_disconnect_politely(OutboxBroker *broker,
											  int64 deadline_ms);
extern void outbox_broker_close(OutboxBroker *broker);
extern void outbox_broker_free(OutboxBroker *broker);

/* in worker_link.c: a worker's (or a backend's) link to the broker */
struct OutboxStateMachine;

/* the settings of a worker's own that a reload compares, as one string */
typedef char *(*OutboxSettingsFn) (void);

typedef struct OutboxLink
{
	OutboxBroker broker;		/* valid once ready */
	const char *who;			/* "outbox publisher": begins its log lines */
	struct OutboxStateMachine *machine; /* the worker's; NULL in a backend */
	OutboxSettingsFn more_settings; /* NULL: the broker's alone */
	char	   *settings;		/* as last loaded, in TopMemoryContext */
	bool		ready;			/* broker set up from the settings */
	bool		connected;		/* logged in; the session may have ended */
	bool		recovering;		/* backed off since last established */
	uint64		session;		/* counts the logins */
	StompRetry	retry;			/* failures in a row, by kind */
	unsigned int session_losses;	/* sessions lost in a row */
	int64		backoff_until_ms;	/* no connection attempt before */
	pg_prng_state prng;			/* for the jitter */
} OutboxLink;

extern void outbox_link_init(OutboxLink *link, const char *who,
							 struct OutboxStateMachine *machine,
							 OutboxSettingsFn more_settings);
extern bool outbox_link_reload(OutboxLink *link);
extern bool outbox_link_connect(OutboxLink *link);
extern void outbox_link_connect_or_error(OutboxLink *link, int64 deadline_ms);
extern bool outbox_link_established(OutboxLink *link, const char *what);
extern void outbox_link_back_off(OutboxLink *link, StompFailure kind,
								 const char *what, const char *detail);
extern void outbox_link_defer(OutboxLink *link, int64 until_ms);
extern void outbox_link_session_end(OutboxLink *link, bool lost,
									int confirmed);
extern void outbox_link_show_state(OutboxLink *link);
extern StompResult outbox_link_send(OutboxLink *link,
									const OutboxWireMessage *wire,
									uint64_t *receipt, int64 deadline_ms);
extern OutboxReceiptWait outbox_link_await_receipt(OutboxLink *link,
												   uint64_t receipt,
												   int64 deadline_ms,
												   OutboxMessageFn on_message,
												   void *arg);
extern bool outbox_link_drain(OutboxLink *link, OutboxMessageFn on_message,
							  void *arg);
extern void outbox_link_wait(OutboxLink *link, int64 deadline_ms);
extern void outbox_link_disconnect_politely(OutboxLink *link, int wait_ms);
extern void outbox_link_close(OutboxLink *link);
extern void outbox_link_free(OutboxLink *link);

/* in worker_loop.c: the main-loop skeleton of every outbox worker */
extern void outbox_loop_signals(pqsigfunc on_sigterm);
extern MemoryContext outbox_loop_scratch(const char *name);
extern bool outbox_loop_top(void);
extern void outbox_loop_interrupts(void);
extern int	outbox_loop_wait(int64 deadline_ms);
extern ErrorData *outbox_loop_catch(const char *what, bool show_in_status);
extern void outbox_xact_begin(Oid role);
extern void outbox_xact_commit(void);
extern void outbox_xact_abort(void);
struct BackgroundWorker;
extern void outbox_worker_init(struct BackgroundWorker *worker,
							   const char *function, const char *type,
							   const char *name, int restart_time);
extern struct _SPI_plan *outbox_keep_plan(const char *sql, int nargs,
										  Oid *argtypes);
extern struct _SPI_plan *outbox_keep_plan_options(const char *sql, int nargs,
												  Oid *argtypes,
												  int cursor_options);

/* in shmem.c */
#define OUTBOX_MAX_WORKERS 64
/* Longest broker reason or error kept for outbox.status and outbox.destinations */
#define OUTBOX_MAX_REASON_LEN 1024
/* Destinations held apart or rerouted at once, over all databases */
#define OUTBOX_MAX_HELD_DESTINATIONS 128
/* Longest queue name: RabbitMQ's 255 bytes, less the "DLQ." of its DLQ */
#define OUTBOX_MAX_QUEUE_NAME_LEN 251

typedef enum OutboxWorkerKind
{
	OUTBOX_WORKER_PUBLISHER,
	OUTBOX_WORKER_CONSUMER
} OutboxWorkerKind;

typedef enum OutboxWorkerState
{
	OUTBOX_STATE_STARTING,
	OUTBOX_STATE_WAITING_FOR_EXTENSION,
	OUTBOX_STATE_CONNECTING,
	OUTBOX_STATE_CONNECTED,
	OUTBOX_STATE_BACKING_OFF,
	OUTBOX_STATE_STOPPING,
	OUTBOX_STATE_NO_DATABASE	/* a row of the launcher, no worker */
} OutboxWorkerState;

#define OUTBOX_STATE_BIT(state)	((uint32) 1 << (state))

/* in worker_state.c: a worker's state, changed only by a transition */
typedef struct OutboxStateMachine
{
	const char *worker;			/* "publisher", "consumer": for messages */
	const uint32 *next;			/* by state: OUTBOX_STATE_BIT()s it may go to */
	OutboxWorkerState state;
	uint64		reported;		/* disallowed moves already logged */
} OutboxStateMachine;

extern void outbox_worker_state_init(OutboxStateMachine *machine,
									 const char *worker, const uint32 *next);
extern bool outbox_worker_may_transition(const OutboxStateMachine *machine,
										 OutboxWorkerState to);
extern void outbox_worker_transition(OutboxStateMachine *machine,
									 OutboxWorkerState to, const char *broker);

typedef enum OutboxCounter
{
	OUTBOX_COUNT_SENT,
	OUTBOX_COUNT_FAILED,
	OUTBOX_COUNT_PROCESSED,
	OUTBOX_COUNT_DEAD_LETTERED
} OutboxCounter;

/* A worker's slot; see shmem.c for who writes what under which lock */
typedef struct OutboxWorkerSlot
{
	/* under OutboxShared->lock */
	pid_t		pid;			/* 0: free */
	OutboxWorkerKind kind;
	Oid			database;
	char		database_name[NAMEDATALEN]; /* when database is invalid */
	Latch	   *latch;
	/* written by the owner alone: a publisher that a wake-up can help */
	volatile bool accepts_wakeups;
	/* under mutex, written by the owner */
	slock_t		mutex;
	OutboxWorkerState state;
	char		broker[STOMP_MAX_HOST_LEN + 16];
	char		queue[OUTBOX_MAX_QUEUE_NAME_LEN + 1];
	int64		subscription_id;	/* consumers: outbox.subscription.id */
	Oid			role;			/* consumers: run_as, whose status it is */
	char		last_error[OUTBOX_MAX_REASON_LEN];
	TimestampTz last_error_at;
	TimestampTz started_at;
	TimestampTz last_sent_at;	/* publishers: the last RECEIPT taken in */
	TimestampTz last_active_at; /* publishers: the end of the last pass */
	/* atomics, written by the owner; keep them last (status.c copies up to sent) */
	pg_atomic_uint64 sent;
	pg_atomic_uint64 failed;
	pg_atomic_uint64 processed;
	pg_atomic_uint64 dead_lettered;
	/* counted, not yet added to outbox.counter_total (the publisher moves them) */
	pg_atomic_uint64 unsaved[4];	/* by OutboxCounter */
} OutboxWorkerSlot;

/*
 * A destination that the publisher of a database holds apart (the broker
 * refused it as a whole) or sends by another route (/queue/q through
 * /amq/queue/q); see destination_state.c.  Under OutboxShared->lock,
 * written by that publisher only.
 */
typedef enum OutboxHoldState
{
	OUTBOX_HOLD_FREE,			/* the entry is unused */
	OUTBOX_HOLD_HELD,			/* none of its messages are sent */
	OUTBOX_HOLD_REROUTED		/* sent to route instead */
} OutboxHoldState;

typedef struct OutboxHeldDestination
{
	OutboxHoldState state;
	Oid			database;
	char		destination[OUTBOX_MAX_DESTINATION_LEN + 1];
	char		reason[OUTBOX_MAX_REASON_LEN];
	int			refusals;		/* in a row */
	TimestampTz since;
	TimestampTz next_retry_at;	/* held: the next probe; rerouted: the
								 * next try of the destination itself */
} OutboxHeldDestination;

/* What a worker counted and has not saved (outbox_unsaved_counts()) */
typedef struct OutboxUnsavedCounts
{
	int			slot;
	pid_t		pid;
	OutboxWorkerKind kind;
	char		queue[OUTBOX_MAX_QUEUE_NAME_LEN + 1];
	uint64		counts[4];		/* by OutboxCounter */
} OutboxUnsavedCounts;

typedef struct OutboxShared
{
	LWLock	   *lock;
	/* bumped when a subscribe() or unsubscribe() commits (consumer_launcher.c) */
	pg_atomic_uint64 subscription_generation;
	OutboxWorkerSlot slots[OUTBOX_MAX_WORKERS];
	OutboxHeldDestination held[OUTBOX_MAX_HELD_DESTINATIONS];
} OutboxShared;

extern OutboxShared *outbox_shared;

extern void outbox_shmem_init(void);
extern OutboxWorkerSlot *outbox_slot_acquire(OutboxWorkerKind kind,
											 const char *queue_name);
extern OutboxWorkerSlot *outbox_slot_acquire_consumer(const char *queue_name,
													  int64 subscription_id,
													  Oid role);
extern OutboxWorkerSlot *outbox_slot_acquire_missing_database(const char *dbname);
extern void outbox_slot_release_missing_database(OutboxWorkerSlot *slot);
extern OutboxWorkerSlot *outbox_my_slot(void);
extern void outbox_slot_set_state(OutboxWorkerState state, const char *broker);
extern void outbox_slot_set_error(const char *message);
extern void outbox_slot_count(OutboxCounter counter, uint64 n);
extern void outbox_slot_clear_error(void);
extern void outbox_slot_note_sent(void);
extern void outbox_slot_note_active(void);
extern int	outbox_unsaved_counts(OutboxUnsavedCounts *out);
extern void outbox_unsaved_counts_saved(const OutboxUnsavedCounts *saved,
										int n);
extern const char *outbox_state_name(OutboxWorkerState state);

/* in destination_state.c: also outbox.destination_state() */
extern bool outbox_hold_destination(const char *destination,
									const char *reason);
extern bool outbox_reroute_destination(const char *destination,
									   const char *reason);
extern bool outbox_destination_rerouted(const char *destination);
extern void outbox_release_destination(const char *destination);
extern char *outbox_due_held_destination(void);
extern Datum outbox_held_destinations(void);
extern int	outbox_held_destination_count(Oid database);
extern void outbox_forget_destinations(void);

/* in pause.c: outbox.pause() and outbox.resume() live there */

/* in wakeup.c */
extern void outbox_wake_publisher_at_commit(void);
extern void outbox_wake_publisher(void);
extern void outbox_accept_wakeups(bool accept);

/* in publisher_launcher.c: also the publisher launcher's entry point */
extern void outbox_register_publishers(void);

/* in subscribe.c: outbox.subscribe() and outbox.unsubscribe() live there */
extern Oid	outbox_payload_type(void);
extern void outbox_check_callback(Oid funcoid, Oid role, bool at_subscribe);
extern char *outbox_default_queue_name(const char *destination);

/* in consumer_launcher.c */
extern void outbox_launch_consumers(void);

/*
 * in consumer.c: the consumer worker's entry point, outbox_consumer_main;
 * the consumer's own declarations are in consumer_internal.h
 */

/* in wire_inbound.c: a message coming in, as a consumer's callback sees it */
extern char *outbox_inbound_text(const char *bytes, size_t len);
extern Jsonb *outbox_inbound_body(StompFrame *frame, bool as_string);
extern Jsonb *outbox_inbound_headers(StompFrame *frame);
extern char *outbox_inbound_message_id(StompFrame *frame);

/* in capture.c; the trigger is created by outbox.publish() */
/* name of the capture trigger outbox.publish() puts on a table */
#define OUTBOX_CAPTURE_TRIGGER_NAME "outbox_capture"
extern Oid	outbox_check_serializer(Relation rel, Oid funcoid);


/* in publication.c: outbox.publish() and outbox.unpublish() live there */

/* in privileges.c: also outbox.allow_destination(), disallow_destination() */
extern Oid	outbox_table_owner(const char *relname);
extern int	outbox_push_search_path(const char *path);
extern void outbox_execute_as(Oid role, const char *sql, int nargs,
							  Oid *argtypes, Datum *args, const char *nulls,
							  int expected);
extern bool outbox_destination_allowed(Oid role, const char *privilege,
									   const char *destination);
extern void outbox_check_destination_allowed(Oid role, const char *privilege,
											 const char *destination);

/* in destination.c */
extern const char *outbox_destination_queue(const char *destination);
extern void outbox_check_destination_routable(const char *destination,
											  bool subscribing);

/* in stored_function.c */
extern char *outbox_stored_function_name(Oid funcoid);
extern Oid	outbox_resolve_stored_function(const char *name, Oid argtype);
extern bool outbox_stored_function_name_is_canonical(const char *name,
													 Oid funcoid);
extern void outbox_check_stored_function_lasts(Oid funcoid, const char *what);

/* in publish_config.c (the capture trigger's name is under capture.c) */

/* what a configuration is checked for */
typedef enum OutboxConfigCheck
{
	OUTBOX_CHECK_INSERT,		/* a row written by hand (or pg_restore) */
	OUTBOX_CHECK_DDL,			/* after a DDL command touched the table */
	OUTBOX_CHECK_TRIGGER		/* ... or its capture trigger */
} OutboxConfigCheck;

extern Oid	outbox_publish_config_relid(void);
extern Oid	outbox_capture_function_oid(void);
extern char *outbox_qualified_relname(Oid relid);
extern void outbox_write_publish_config(const char *sql, int nargs,
										Oid *argtypes, Datum *args,
										const char *nulls, int expected);
extern void outbox_check_publication(Oid relid, OutboxConfigCheck check);
extern bool outbox_is_published(Oid relid);
extern List *outbox_partition_ancestors(Oid relid);
extern Oid	outbox_published_ancestor(Oid relid);
extern void outbox_refuse_published_partition(Oid relid, Oid ancestor);
extern void outbox_refuse_published_partitions(Oid relid, Oid ancestor);
extern void outbox_refuse_capture_trigger_name(Oid relid, Oid ancestor);
extern List *outbox_tables_serialized_by(const char *name);

/* in version.c */
typedef enum OutboxSchemaState
{
	OUTBOX_SCHEMA_MISSING,		/* no CREATE EXTENSION outbox here */
	OUTBOX_SCHEMA_OUTDATED,		/* another version than the library's */
	OUTBOX_SCHEMA_CURRENT
} OutboxSchemaState;

extern OutboxSchemaState outbox_schema_state(char **installed);
extern char *outbox_schema_outdated_message(const char *installed);
extern bool outbox_schema_is_current(void);
extern void outbox_require_current_schema(void);

/* in rendering.c */

/* how a configuration renders the rows it captures */
typedef enum OutboxRendering
{
	OUTBOX_RENDERING_POSTGRES,	/* to_jsonb(): PostgreSQL's own */
	OUTBOX_RENDERING_DJANGO		/* as django-outbox-pattern sends it */
} OutboxRendering;

#define OUTBOX_RENDERING_POSTGRES_NAME "postgres"
#define OUTBOX_RENDERING_DJANGO_NAME "django"

extern OutboxRendering outbox_rendering_from_name(const char *name);
extern Jsonb *outbox_render_django(Datum row);

/* in row_jsonb.c: a row as to_jsonb() renders it, by a plan made once */
typedef struct OutboxRowJsonbPlan OutboxRowJsonbPlan;

extern OutboxRowJsonbPlan *outbox_row_jsonb_plan(TupleDesc desc,
												 const AttrNumber *attnums,
												 int natts,
												 const AttrMap *map);
extern Jsonb *outbox_row_jsonb(const OutboxRowJsonbPlan *plan,
							   HeapTuple tuple, TupleDesc desc);

/* in event_triggers.c: the event trigger functions live there */
/* in send_event.c: outbox.send_event() lives there */
/* in publisher.c: the publisher worker's entry point, outbox_publisher_main */
/* in redrive.c: outbox.redrive() lives there */
/*
 * The SET list that schedules a message again, as if new (attempts reset,
 * due now, expiring no sooner than the parameter named): redrive.c and
 * replay.c use it.
 */
#define OUTBOX_RESCHEDULE_SET(expiry_param) \
	"status = 'scheduled', retry = 0," \
	" next_attempt_at = pg_catalog.now(), last_error = NULL," \
	" expires_at = greatest(expires_at, " expiry_param ")"
/* in replay.c: outbox.replay() lives there */
/* in status.c: outbox.worker_status() lives there */

#endif							/* OUTBOX_H */
