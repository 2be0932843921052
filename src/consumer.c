/*-------------------------------------------------------------------------
 *
 * consumer.c
 *		  The consumer background worker: one per subscription, running its
 *		  callback once per message with an exactly-once effect.
 *
 * The launcher (launcher.c, in the database's publisher) starts one worker
 * per row of outbox.subscription; bgw_main_arg is the database, bgw_extra
 * the subscription id.  The worker connects to the broker (broker.c: same
 * settings, failover and backoff as the publisher) and, on each new
 * connection:
 *
 * 1. declares the dead-letter queue DLQ.<queue> exactly as
 *    django-outbox-pattern's consumer does (durable, not auto-deleted,
 *    x-dead-letter-exchange "" and x-dead-letter-routing-key
 *    DLQ.DLQ.DLQ.<queue>), plus the x-queue-type of outbox.stomp_queue_headers
 *    (a quorum queue's DLQ must be a quorum queue too: a classic one lives
 *    on the node first reached and is gone while that node is down), and
 *    no other argument of the queue's (no length limit or TTL).  So either
 *    consumer can take over the queues the other declared.  The queue
 *    DLQ.DLQ.DLQ.<queue> is declared too (django-outbox-pattern does not),
 *    so that a message rejected from the DLQ is kept, not dropped.  A DLQ that
 *    exists with other arguments (declared by an older outbox, or by hand)
 *    is used as it is.  STOMP has no declare-only frame: the DLQ is
 *    subscribed (prefetch 1) on a short-lived connection of its own, so
 *    that whatever it delivers goes back to the DLQ when that connection
 *    closes (RabbitMQ refuses a NACK after UNSUBSCRIBE, and closes the
 *    connection).  A DLQ that cannot be declared never holds up
 *    consuming: it is declared again (every STOMP_DECLARE_RETRY_CAP_MS at
 *    most), and meanwhile only a message to dead-letter waits, with what
 *    the broker queued behind it (it is left unacknowledged and the
 *    connection dropped, so the broker keeps it, at the head of the queue,
 *    and it is not tried again before the DLQ is);
 * 2. subscribes to the destination with ack:client-individual, the headers
 *    of outbox.stomp_queue_headers, x-queue-name (for /topic/ and
 *    /exchange/), exclusive per outbox.exclusive_queue, and dead-lettering
 *    to DLQ.<queue>; it waits for the receipt, so that a refused
 *    declaration is seen as such.
 *
 * Messages are taken in batches: those the broker has delivered (at most
 * its prefetch-count, at most BATCH_MAX), in transactions of at most about
 * COMMIT_INTERVAL_MS each, each message in a subtransaction of its own:
 *
 *		INSERT INTO outbox.received ... ON CONFLICT (run_as, msg_id)
 *		  DO NOTHING
 *		  nothing inserted: a duplicate (already received by a subscription
 *		  of run_as, or by a concurrent consumer of run_as, whose commit the
 *		  INSERT waited for): ACK.  Another role's subscriptions of the same
 *		  topic take the message on their own: no role can make another's
 *		  consumer skip a message;
 *		  else the callback:
 *		    true or void: the subtransaction is kept: ACK after COMMIT;
 *		    false or NULL: rolled back: dead-lettered after COMMIT;
 *		    an error: rolled back, logged, shown in outbox.status:
 *		    dead-lettered; but a serialization failure or deadlock (class
 *		    40) of a first delivery is NACKed with requeue, to be retried.
 *
 * Acknowledgements are sent only after the COMMIT, always: a crash between
 * the two leaves the message unacknowledged; the broker delivers it again
 * and the INSERT finds it received.  msg_id is cap-msg-id, else dop-msg-id,
 * else message-id (which RabbitMQ changes on redelivery: only for messages
 * without a producer id).  A body that is not JSON (or not UTF-8) reaches
 * the callback as a JSON string.
 *
 * When to commit and acknowledge: RabbitMQ closes the channel of a
 * delivery left unacknowledged for consumer_timeout (30 minutes by
 * default).  A transaction is committed, and its messages acknowledged at
 * once, as soon as it has run for COMMIT_INTERVAL_MS (one second), not at
 * the end of the batch: a processed message is acknowledged at most about
 * a second plus one callback after it was processed, whatever the batch
 * size.  One commit per message would cost a WAL flush per message; one
 * per second costs nothing.  What remains is the time a message waits
 * behind the others the broker handed over: prefetch-count times the
 * slowest callback (each is cancelled after CALLBACK_TIMEOUT_MS, five
 * minutes) must stay below consumer_timeout, as the default
 * prefetch-count of 1 does.
 *
 * Dead-lettering: a message is NACKed with requeue:false, which RabbitMQ
 * routes by the queue's x-dead-letter-* arguments, set by our own
 * SUBSCRIBE.  A /amq/queue/ destination is never declared by SUBSCRIBE,
 * so its queue may have no such arguments and a NACK would drop the
 * message: there the consumer SENDs a copy (body and headers) to
 * /amq/queue/DLQ.<queue> itself, waits for its receipt, and only then
 * ACKs the original; the copy too waits until the DLQ is declared (a SEND
 * to a missing queue is confirmed and dropped).  Either way no message is
 * dropped.
 *
 * A /queue/X that exists with other arguments (a publisher's plain SEND
 * declared it before anyone subscribed, or an operator did) refuses our
 * SUBSCRIBE, which declares the dead-letter arguments.  The refusal proves
 * X exists, so the consumer then takes it as /amq/queue/X, dead-lettering
 * by SEND as above (choose_route()).
 *
 * The privilege model of the consumer.  The worker connects as the
 * bootstrap superuser (a background worker cannot connect as a role that
 * may not log in), and runs the subscriber's code only in transactions
 * that are the subscriber's from start to end, the way PostgreSQL's own
 * maintenance commands run a table owner's code (REFRESH MATERIALIZED
 * VIEW, VACUUM's index expressions):
 *
 * - A transaction that runs callbacks belongs to the subscribing role
 *   (run_as) from its first action to its end: the user id is set to
 *   run_as with SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION
 *   right after StartTransactionCommand (PostgreSQL wants no security
 *   context outside a transaction, and an abort restores the worker's),
 *   and the worker's own is restored after the COMMIT.  So whatever runs at
 *   commit runs as run_as, and in a security-restricted operation
 *   PostgreSQL itself refuses SET ROLE, SET SESSION AUTHORIZATION,
 *   set_config('role'), WITH HOLD cursors, temporary tables and queueing a
 *   deferred trigger: nothing can be left for later.
 * - Deferrable constraints are set IMMEDIATE (as by SET CONSTRAINTS ALL
 *   IMMEDIATE) before each callback, so that a DEFERRABLE INITIALLY
 *   DEFERRED constraint or trigger fires at the end of the callback's
 *   statement, as run_as, inside the message's subtransaction, instead of
 *   being refused; a callback that defers them itself is refused.  After
 *   the callback the same is done again: it fires anything still pending
 *   and undoes what the callback set, so nothing passes to the next message.
 * - Each callback runs in a GUC nest level of its own (NewGUCNestLevel,
 *   AtEOXact_GUC(false)), so every setting it makes, LOCAL or not, is
 *   undone when it returns.  Its search_path is the one the worker started
 *   with (the database's or the server's), "$user" meaning run_as.  The
 *   session-level advisory locks it took are released after it too.
 * - The worker's own statements (reading outbox.subscription, inserting
 *   into outbox.received) run as the owner of the outbox tables (the role
 *   that created the extension), in a security-restricted operation, with
 *   search_path pinned to pg_catalog, pg_temp for the statement (and for
 *   the session, from the start); every object and operator they name is
 *   schema-qualified.  No setting, object or operator of the subscriber's
 *   can reach them.
 * - Before each batch and before each connection, the consumer checks that
 *   run_as exists and may still EXECUTE the callback.  If not, it stops
 *   consuming (nothing is acknowledged, so nothing is lost), says why in
 *   the log and in outbox.status, and checks again every IDLE_CHECK_MS.
 *   A subscription whose run_as was changed by hand is restarted.
 * - A SECURITY DEFINER callback runs as its owner, exactly as when run_as
 *   calls it: its owner granted run_as that, and the security-restricted
 *   operation still holds.  Each callback is cancelled after
 *   statement_timeout (as set for the database or the server), and never
 *   later than CALLBACK_TIMEOUT_MS.
 *
 * Error policy:
 * - The broker unreachable, the connection lost, heart-beats missed:
 *   retried in place, with exponential backoff and jitter up to
 *   outbox.maximum_backoff; a login ends the run.  The subscription (or the
 *   DLQ) refused by a broker that answered: a configuration error, retried
 *   on a short schedule of its own (stomp_retry.c).  Messages held but not yet
 *   acknowledged are forgotten: the broker delivers them again.  Pending
 *   ACKs of a lost connection are never sent on another.
 * - An error in a callback: caught in its subtransaction; that message is
 *   dead-lettered (see above), the others of the batch are not touched.
 * - An error outside the messages (the subscription unreadable, COMMIT
 *   failing for a transient reason): the transaction is rolled back, the
 *   connection dropped (so the broker delivers its messages again), the
 *   error logged and shown in outbox.status, and the consumer backs off.
 *   A COMMIT failing for several messages is retried one message per
 *   transaction, so that only the culprit is dead-lettered.
 * - run_as gone, or the callback gone or no longer executable by it: the
 *   same, and no new connection is made until it is fixed (checked every
 *   IDLE_CHECK_MS).
 * - The subscription gone (unsubscribed, or the extension dropped): the
 *   worker unsubscribes, disconnects and exits with code 0.
 * - SIGTERM: the message in flight is finished, and the batch committed
 *   and acknowledged; the rest of the batch is left to the broker; then
 *   UNSUBSCRIBE and DISCONNECT.  A callback still running
 *   outbox.consumer_shutdown_timeout after SIGTERM is terminated (FATAL).
 *   The launcher starts the consumer again while its subscription exists.
 * - No heart-beat can be sent while a callback runs: one that outlasts the
 *   broker's patience (about two outbox.stomp_heartbeats intervals) costs
 *   the connection.  Its batch is committed all the same; the ACKs cannot
 *   be sent, so the broker delivers the messages again and they are
 *   skipped as duplicates.  Set heart-beats longer than the slowest
 *   callback.
 * - Postmaster death ends the worker at once.
 *
 * Memory: each turn of the main loop runs in a scratch context, reset
 * before the next (asserted at the top of the loop); every transaction
 * goes back to the context it was started in once it commits or aborts
 * (CommitTransactionCommand leaves TopMemoryContext current), so nothing
 * is allocated for good after start-up.  The frames (malloc'd by the STOMP
 * client) are freed once acknowledged or dropped.
 *
 * src/consumer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/wait_event.h"

#include "outbox.h"

/* most messages per batch */
#define BATCH_MAX				1000
/* a transaction commits, and its messages are acknowledged, after this */
#define COMMIT_INTERVAL_MS		1000
/* the search_path of the worker's own statements */
/* room for messages that arrive while a receipt is awaited */
#define HELD_MAX				(BATCH_MAX + 64)
/* longest a callback may run, whatever statement_timeout says */
#define CALLBACK_TIMEOUT_MS		(5 * 60 * 1000)
/* longest wait for a SUBSCRIBE's receipt */
#define SUBSCRIBE_TIMEOUT_MS	15000
/* longest wait for a clean DISCONNECT when stopping */
#define DISCONNECT_WAIT_MS		3000
/* how often an idle consumer checks that its subscription still exists */
#define IDLE_CHECK_MS			10000
/* how often the connection's I/O (heart-beats) runs during a batch */
#define BATCH_IO_INTERVAL_MS	500

/* What becomes of a message */
typedef enum Outcome
{
	OUTCOME_NONE,				/* not processed: left to the broker */
	OUTCOME_ACK,				/* processed, or a duplicate */
	OUTCOME_DEAD,				/* NACK requeue:false, to the DLQ */
	OUTCOME_REQUEUE				/* NACK with requeue */
} Outcome;

/* One delivered message of a batch */
typedef struct Delivery
{
	StompFrame *frame;			/* owned until the batch ends */
	const char *ack_id;			/* in frame */
	char	   *msg_id;			/* NULL: none at all */
	bool		id_read;		/* msg_id was looked for */
	MemoryContext context;		/* lives as long as the delivery */
	bool		redelivered;
	bool		duplicate;
	Outcome		outcome;
} Delivery;

/* The subscription as the batch reads it */
typedef struct SubscriptionRow
{
	char	   *queue_name;
	Oid			callback;
	char	   *destination;
	Oid			run_as;
} SubscriptionRow;

/* How a batch's transaction ended */
typedef enum BatchResult
{
	BATCH_DONE,
	BATCH_RETRY_SOLO,			/* commit failed: one message at a time */
	BATCH_STOP					/* the subscription is gone or changed */
} BatchResult;

/* What a check of the subscription found */
typedef enum SubscriptionCheck
{
	SUBSCRIPTION_USABLE,
	SUBSCRIPTION_GONE,			/* unsubscribed, replaced, or no extension */
	SUBSCRIPTION_UNUSABLE		/* run_as gone, or may not run the callback */
} SubscriptionCheck;

/* The user id and GUC level to go back to after the worker's own SQL */
typedef struct OwnerScope
{
	Oid			save_userid;
	int			save_sec_context;
	int			guc_level;
} OwnerScope;

PGDLLEXPORT void outbox_consumer_main(Datum main_arg);

/* the worker's state */
static int64 subscription_id;
static char *queue_name;		/* TopMemoryContext */
static char *destination;		/* TopMemoryContext */
static char main_sub_id[OUTBOX_MAX_QUEUE_NAME_LEN + 16];
static char dlq_sub_id[OUTBOX_MAX_QUEUE_NAME_LEN + 16];
static OutboxBroker broker;
static bool broker_ready = false;
static bool connected = false;
static bool subscribed = false;
static uint64 session = 0;		/* bumped by every new connection */
static StompRetry retry;		/* failures in a row, by kind */
static bool recovering = false;	/* a failure since the last subscription */
static bool dlq_ready = false;	/* DLQ.<queue> declared, or found */
static int64 dlq_retry_at_ms = 0;
static char dlq_problem[1024];	/* why the DLQ could not be declared */
static int64 backoff_until_ms = 0;
static int64 last_activity_ms = 0;
static char *broker_settings = NULL;
static pg_prng_state backoff_prng;
static MemoryContext scratch_context = NULL;
static MemoryContext xact_caller_context = NULL;
static bool stop_consumer = false;
static bool refusing = false;	/* the subscription cannot be served */

/* who the worker is, and for whom it runs callbacks */
static Oid	worker_userid;		/* the bootstrap superuser it connected as */
static Oid	run_as;				/* the subscription's role */
static Oid	tables_owner;		/* of the outbox tables; set per transaction */
static char *callback_search_path;	/* TopMemoryContext */
static bool dead_letter_by_send = false;	/* /amq/queue/: SEND to the DLQ */
static bool consume_existing_queue = false; /* /queue/X taken as /amq/queue/X */

/* delivered messages not yet handed to a batch (frames owned here) */
static StompFrame *held[HELD_MAX];
static int	nheld = 0;

/* per batch, valid while its transaction runs */
static FmgrInfo callback_finfo;
static Oid	callback_rettype;
static TupleDesc payload_desc;

/* saved plans */
static SPIPlanPtr insert_received_plan = NULL;
static SPIPlanPtr load_subscription_plan = NULL;

/* SIGTERM, and the watchdog that bounds the shutdown */
static volatile sig_atomic_t shutdown_requested = false;
static volatile TimestampTz shutdown_requested_at = 0;
static TimeoutId watchdog_timeout;

static void consumer_sigterm(SIGNAL_ARGS);
static void shutdown_watchdog(void);
static char *current_settings(void);
static void reload_settings(void);
static void drop_held(void);
static void disconnect(void);
static void back_off(StompFailure kind, const char *what, const char *detail);
static void refuse_to_consume(const char *problem);
static bool wait_for_receipt(OutboxBroker *b, uint64_t receipt,
							 int64 deadline);
static void hold_or_return(StompFrame *frame);
static bool declare_dlq(const char *dlq, int64 deadline, StringInfo why,
						bool *answered);
static void try_declare_dlq(const char *dlq, int64 deadline);
static void declare_last_resort(OutboxBroker *declarer, const char *name,
								StompHeaderPair *dlq_pairs, int n,
								int64 deadline);
static int	parse_queue_headers(StompHeaderPair *pairs, int max);
static bool subscribe_queue(const char *dlq, int64 deadline, StringInfo why);
static bool ensure_subscribed(void);
static bool collect_messages(void);
static void begin_xact(Oid role);
static void commit_xact(void);
static void abort_xact(void);
static void enter_owner(OwnerScope *scope);
static void leave_owner(OwnerScope *scope);
static int	execute_as_owner(SPIPlanPtr plan, Datum *args, bool read_only,
							 long count);
static void set_constraints_immediate(void);
static void prepare_plans(void);
static void free_plans(void);
static bool load_subscription(SubscriptionRow *row);
static void check_run_as(SubscriptionRow *row);
static SubscriptionCheck check_subscription(char **problem);
static char *utf8_text(const char *bytes, size_t len);
static Jsonb *message_body(StompFrame *frame, bool as_string);
static Jsonb *message_headers(StompFrame *frame);
static char *message_id(StompFrame *frame);
static bool transient_error(int sqlerrcode);
static void forget_session_state(void);
static bool read_message_id(Delivery *d);
static void handle_message(Delivery *d);
static bool run_callback(Delivery *d, Jsonb *body, Jsonb *headers);
static BatchResult run_batch(Delivery *deliveries, int n, int *covered);
static bool dead_letter(Delivery *d);
static void acknowledge(Delivery *deliveries, int n, uint64 batch_session);
static void process_held(void);
static void consumer_step(void);
static void stop_politely(void);

/*
 * SIGTERM: finish the message in flight, then stop (see the file header).
 */
static void
consumer_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	if (!shutdown_requested)
	{
		shutdown_requested_at = GetCurrentTimestamp();
		shutdown_requested = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * Every second during a batch: once outbox.consumer_shutdown_timeout has
 * passed since SIGTERM, terminate the callback still running.
 */
static void
shutdown_watchdog(void)
{
	if (shutdown_requested &&
		GetCurrentTimestamp() >= shutdown_requested_at +
		(TimestampTz) outbox_consumer_shutdown_timeout * USECS_PER_SEC)
	{
		ProcDiePending = true;
		InterruptPending = true;
		SetLatch(MyLatch);
	}
}

/*
 * The settings that shape the connection and the subscription, as one
 * string, to tell whether a reload changed them.
 */
static char *
current_settings(void)
{
	return psprintf("%s|%s|%d", outbox_broker_settings(),
					outbox_stomp_queue_headers, outbox_exclusive_queue);
}

/*
 * SIGHUP: reread postgresql.conf; new broker or queue settings mean a new
 * connection and subscription.
 */
static void
reload_settings(void)
{
	char	   *settings;

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);

	settings = current_settings();
	if (strcmp(settings, broker_settings) != 0)
	{
		if (broker_ready)
		{
			ereport(LOG,
					(errmsg("outbox consumer of queue \"%s\": settings changed, reconnecting",
							queue_name)));
			disconnect();
			outbox_broker_free(&broker);
			broker_ready = false;
		}
		stomp_retry_reset(&retry);
		backoff_until_ms = 0;
		dlq_ready = false;
		dlq_retry_at_ms = 0;
		pfree(broker_settings);
		broker_settings = MemoryContextStrdup(TopMemoryContext, settings);
	}
	pfree(settings);
}

/*
 * Forget the messages held: the broker delivers them again once the
 * connection they came on is gone.
 */
static void
drop_held(void)
{
	int			i;

	for (i = 0; i < nheld; i++)
		stomp_frame_free(held[i]);
	nheld = 0;
}

/*
 * Drop the connection and what came on it; its pending ACKs go with its
 * output buffer, never to be sent on another connection.
 */
static void
disconnect(void)
{
	drop_held();
	if (broker_ready)
		outbox_broker_close(&broker);
	connected = false;
	subscribed = false;
	/* declared again with the next connection, as it may be gone */
	dlq_ready = false;
}

/*
 * A connection or subscription failed: schedule the next try with
 * exponential backoff and full jitter, and say so.
 */
static void
back_off(StompFailure kind, const char *what, const char *detail)
{
	int64		now = outbox_monotonic_ms();
	int			failures;

	backoff_until_ms = stomp_retry_failed(&retry, kind, now,
										  (int64) outbox_maximum_backoff * 1000,
										  pg_prng_uint64(&backoff_prng));
	failures = kind == STOMP_FAILURE_DECLARE ? retry.declare_failures :
		retry.connect_failures;
	recovering = true;
	outbox_slot_set_state(OUTBOX_STATE_BACKING_OFF, "");
	outbox_slot_set_error(psprintf("%s: %s", what, detail));
	/* the first failure and then every tenth are worth a line in the log */
	if (failures % 10 == 1)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" %s, attempt %d, next in %d ms",
						queue_name, what, failures,
						(int) (backoff_until_ms - now)),
				 errdetail("%s", detail)));
}

/*
 * The subscription cannot be served (run_as gone, or it may not execute
 * the callback): say so, in the log once, in outbox.status always, and
 * look again after IDLE_CHECK_MS.  No message is taken meanwhile.
 */
static void
refuse_to_consume(const char *problem)
{
	if (!refusing)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" stopped consuming: %s",
						queue_name, problem),
				 errdetail("The messages wait in the queue."),
				 errhint("Grant the subscription's role EXECUTE on the callback, or outbox.unsubscribe() the queue.")));
	refusing = true;
	outbox_slot_set_state(OUTBOX_STATE_BACKING_OFF, "");
	outbox_slot_set_error(problem);
	backoff_until_ms = outbox_monotonic_ms() + IDLE_CHECK_MS;
}

/*
 * Keep a delivered frame for the next batch if it is for our subscription
 * and there is room; otherwise give it back to the broker at once (NACK
 * with requeue).
 */
static void
hold_or_return(StompFrame *frame)
{
	const char *sub = stomp_frame_get_header(frame, "subscription");
	const char *ack = stomp_frame_get_header(frame, "ack");

	if (sub != NULL && strcmp(sub, main_sub_id) == 0 && nheld < HELD_MAX)
	{
		held[nheld++] = frame;
		return;
	}
	if (ack != NULL)
		(void) stomp_conn_nack(broker.conn, ack, true, NULL);
	stomp_frame_free(frame);
}

/*
 * Wait for a receipt on a connection; on the consumer's own, the messages
 * that arrive meanwhile are kept, on another they are left unacknowledged
 * (they go back to their queue when it closes).  Returns false if the
 * session ended (ERROR, closed) or the deadline passed.
 */
static bool
wait_for_receipt(OutboxBroker *b, uint64_t receipt, int64 deadline)
{
	for (;;)
	{
		StompEvent	event;

		while (stomp_conn_next_event(b->conn, &event))
		{
			if (event.type == STOMP_EVENT_MESSAGE && b == &broker)
			{
				hold_or_return(event.frame);
				event.frame = NULL;
			}
			else if (event.type == STOMP_EVENT_RECEIPT &&
					 event.receipt_id == receipt)
			{
				stomp_event_clear(&event);
				return true;
			}
			else if (event.type == STOMP_EVENT_ERROR ||
					 event.type == STOMP_EVENT_CLOSED)
			{
				stomp_event_clear(&event);
				return false;
			}
			stomp_event_clear(&event);
		}
		if (outbox_monotonic_ms() >= deadline)
			return false;
		if (outbox_broker_wait(b, deadline) & WL_LATCH_SET)
			CHECK_FOR_INTERRUPTS();
	}
}

/*
 * On the DLQ's declaring connection: declare the queue the DLQ dead-letters
 * to, DLQ.DLQ.DLQ.<queue> (django-outbox-pattern's name), durable and
 * dead-lettering nowhere, so that a message rejected from the DLQ is kept
 * there instead of dropped.  The pairs are the DLQ's (its type); a failure
 * is logged, the DLQ being what matters.
 */
static void
declare_last_resort(OutboxBroker *declarer, const char *name,
					StompHeaderPair *dlq_pairs, int n, int64 deadline)
{
	StompHeaderPair pairs[64];
	uint64_t	receipt;
	int			m = 0;
	int			i;

	if (strlen(name) > 255)
	{
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\": no queue \"%s\" for what is rejected from its dead-letter queue: the name is too long for RabbitMQ",
						queue_name, name)));
		return;
	}
	for (i = 0; i < n; i++)
		if (strncmp(dlq_pairs[i].name, "x-dead-letter-", 14) != 0)
			pairs[m++] = dlq_pairs[i];
	if (stomp_conn_subscribe(declarer->conn, psprintf("outbox-%s", name),
							 psprintf("/queue/%s", name),
							 "client-individual", pairs, m,
							 &receipt) != STOMP_OK ||
		!wait_for_receipt(declarer, receipt, deadline))
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" could not declare \"%s\", for what is rejected from its dead-letter queue",
						queue_name, name),
				 errdetail("%s: %s", declarer->where,
						   stomp_conn_state(declarer->conn) == STOMP_CONN_OPEN ?
						   "no receipt for SUBSCRIBE" :
						   stomp_conn_error(declarer->conn))));
}

/*
 * Declare the DLQ as django-outbox-pattern does (see the file header) on a
 * connection of its own, closed at once.  Returns false if no broker could
 * be reached (*answered false) or the one that answered refused; why gets
 * "host: reason".
 */
static bool
declare_dlq(const char *dlq, int64 deadline, StringInfo why, bool *answered)
{
	OutboxBroker declarer;
	StompHeaderPair pairs[64];
	StompHeaderPair queue_pairs[64];
	char	   *last_resort = psprintf("DLQ.DLQ.%s", dlq);
	uint64_t	receipt;
	volatile bool ok = false;
	int			n = 0;
	int			nqueue;
	int			i;

	pairs[n].name = "durable";
	pairs[n++].value = "true";
	pairs[n].name = "auto-delete";
	pairs[n++].value = "false";
	pairs[n].name = "x-dead-letter-exchange";
	pairs[n++].value = "";
	pairs[n].name = "x-dead-letter-routing-key";
	pairs[n++].value = last_resort;
	pairs[n].name = "prefetch-count";
	pairs[n++].value = "1";
	/* the queue's type, and no other of its arguments */
	nqueue = parse_queue_headers(queue_pairs, lengthof(queue_pairs));
	for (i = 0; i < nqueue; i++)
		if (strcmp(queue_pairs[i].name, "x-queue-type") == 0)
			pairs[n++] = queue_pairs[i];

	*answered = false;
	outbox_broker_init(&declarer);
	PG_TRY();
	{
		StringInfoData failures;

		initStringInfo(&failures);
		if (!outbox_broker_connect(&declarer, deadline, &failures))
			appendStringInfoString(why, failures.data);
		else
		{
			*answered = true;
			if (stomp_conn_subscribe(declarer.conn, dlq_sub_id,
									 psprintf("/queue/%s", dlq),
									 "client-individual", pairs, n,
									 &receipt) == STOMP_OK &&
				wait_for_receipt(&declarer, receipt, deadline))
			{
				ok = true;
				declare_last_resort(&declarer, last_resort, pairs, n, deadline);
			}
			else
				outbox_broker_note_failure(why, declarer.where,
										   stomp_conn_state(declarer.conn) == STOMP_CONN_OPEN ?
										   "no receipt for SUBSCRIBE" :
										   stomp_conn_error(declarer.conn));
		}
		/* a clean goodbye, not waited for long */
		if (ok && stomp_conn_disconnect(declarer.conn, outbox_monotonic_ms()) == STOMP_OK)
		{
			int64		until = Min(deadline, outbox_monotonic_ms() + 1000);

			while (stomp_conn_state(declarer.conn) == STOMP_CONN_CLOSING &&
				   outbox_monotonic_ms() < until)
			{
				StompEvent	event;

				while (stomp_conn_next_event(declarer.conn, &event))
					stomp_event_clear(&event);
				if (outbox_broker_wait(&declarer, until) & WL_LATCH_SET)
					CHECK_FOR_INTERRUPTS();
			}
		}
	}
	PG_FINALLY();
	{
		outbox_broker_free(&declarer);
	}
	PG_END_TRY();
	return ok;
}

/*
 * Declare the DLQ if it is not known to be there and its retry is due.  A
 * refusal saying that it exists with other arguments (django-outbox-pattern's
 * or an older outbox's) means it is there.  Any other failure is shown and
 * logged, and the DLQ is declared again on the short schedule; consuming
 * goes on meanwhile.
 */
static void
try_declare_dlq(const char *dlq, int64 deadline)
{
	StringInfoData why;
	bool		answered;
	int64		now = outbox_monotonic_ms();

	if (dlq_ready || now < dlq_retry_at_ms)
		return;
	initStringInfo(&why);
	if (declare_dlq(dlq, deadline, &why, &answered))
		dlq_ready = true;
	else if (answered &&
			 stomp_refusal_classify(why.data) == STOMP_REFUSAL_INEQUIVALENT)
	{
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" uses its dead-letter queue \"%s\" as it was declared",
						queue_name, dlq),
				 errdetail("%s", why.data)));
		dlq_ready = true;
	}
	else
	{
		char	   *problem = psprintf("could not declare its dead-letter queue \"%s\": %s",
									   dlq, why.data);

		strlcpy(dlq_problem, problem, sizeof(dlq_problem));
		outbox_slot_set_error(problem);
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" %s", queue_name, problem),
				 errhint("Consuming goes on; a message to dead-letter, and those behind it, wait in the queue until the dead-letter queue can be declared.")));
		dlq_retry_at_ms = now + STOMP_DECLARE_RETRY_CAP_MS;
	}
}

/*
 * The pairs of outbox.stomp_queue_headers (name:value, comma-separated;
 * checked when set), without the headers the consumer sets itself.
 * Returns how many were stored in pairs; the strings are palloc'd.
 */
static int
parse_queue_headers(StompHeaderPair *pairs, int max)
{
	static const char *const ours[] = {
		"id", "destination", "ack", "receipt", "content-length",
		"x-queue-name", "x-dead-letter-exchange", "x-dead-letter-routing-key",
		"exclusive"
	};
	char	   *list = pstrdup(outbox_stomp_queue_headers);
	char	   *item = list;
	int			n = 0;

	while (item != NULL && *item != '\0' && n < max)
	{
		char	   *next = strchr(item, ',');
		char	   *colon;
		int			i;
		bool		reserved = false;

		if (next != NULL)
			*next++ = '\0';
		colon = strchr(item, ':');
		if (colon != NULL && colon != item)
		{
			*colon = '\0';
			for (i = 0; i < lengthof(ours); i++)
				reserved |= (strcmp(item, ours[i]) == 0);
			if (!reserved)
			{
				pairs[n].name = item;
				pairs[n].value = colon + 1;
				n++;
			}
		}
		item = next;
	}
	return n;
}

/*
 * On a new connection: subscribe to the destination and wait for the
 * broker to confirm.  Returns false, with the reason in why, if it
 * refused.
 */
static bool
subscribe_queue(const char *dlq, int64 deadline, StringInfo why)
{
	StompHeaderPair pairs[64];
	uint64_t	receipt;
	bool		has_prefetch = false;
	const char *target = destination;
	int			n;
	int			i;

	if (consume_existing_queue)
		target = psprintf("/amq/queue/%s", destination + strlen("/queue/"));

	n = parse_queue_headers(pairs, lengthof(pairs) - 5);
	for (i = 0; i < n; i++)
		has_prefetch |= (strcmp(pairs[i].name, "prefetch-count") == 0);
	if (!has_prefetch)
	{
		/* say it: unlimited, as when not set */
		pairs[n].name = "prefetch-count";
		pairs[n++].value = "0";
	}
	pairs[n].name = "exclusive";
	pairs[n++].value = outbox_exclusive_queue ? "true" : "false";
	pairs[n].name = "x-dead-letter-exchange";
	pairs[n++].value = "";
	pairs[n].name = "x-dead-letter-routing-key";
	pairs[n++].value = dlq;
	if (strncmp(destination, "/queue/", 7) != 0 &&
		strncmp(destination, "/amq/queue/", 11) != 0)
	{
		pairs[n].name = "x-queue-name";
		pairs[n++].value = queue_name;
	}
	if (stomp_conn_subscribe(broker.conn, main_sub_id, target,
							 "client-individual", pairs, n,
							 &receipt) != STOMP_OK ||
		!wait_for_receipt(&broker, receipt, deadline))
	{
		outbox_broker_note_failure(why, broker.where,
								   stomp_conn_state(broker.conn) == STOMP_CONN_OPEN ?
								   "no receipt for SUBSCRIBE" :
								   stomp_conn_error(broker.conn));
		return false;
	}
	return true;
}

/*
 * After a SUBSCRIBE was refused: choose how to reach a /queue/ destination.
 * A refusal for other arguments proves the queue exists, so it is taken as
 * /amq/queue/X from now on (see the file header); a /amq/queue/X that is
 * gone sends the consumer back to /queue/X, which declares it again.
 * Returns whether to subscribe again at once, without backing off: only
 * for the first, which can happen once per route found.
 */
static bool
choose_route(const char *refusal)
{
	StompRefusal kind = stomp_refusal_classify(refusal);
	const char *queue = destination + strlen("/queue/");

	if (strncmp(destination, "/queue/", 7) != 0)
		return false;
	if (!consume_existing_queue && kind == STOMP_REFUSAL_INEQUIVALENT)
	{
		consume_existing_queue = true;
		dead_letter_by_send = true;
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" found \"%s\" declared with other arguments, and consumes it as \"/amq/queue/%s\"",
						queue_name, destination, queue),
				 errdetail("%s", refusal),
				 errhint("Messages it refuses are sent to \"/amq/queue/DLQ.%s\".",
						 queue_name)));
		return true;
	}
	if (consume_existing_queue && kind == STOMP_REFUSAL_NOT_FOUND)
	{
		consume_existing_queue = false;
		dead_letter_by_send = false;
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" found no queue behind \"/amq/queue/%s\", and subscribes to \"%s\" again",
						queue_name, queue, destination)));
	}
	return false;
}

/*
 * Make sure there is a connection with the subscription in place, unless
 * backing off; returns whether there is.
 */
static bool
ensure_subscribed(void)
{
	StringInfoData failures;
	int64		now = outbox_monotonic_ms();
	int64		deadline;
	char	   *dlq = psprintf("DLQ.%s", queue_name);
	char	   *problem;

	if (connected && subscribed)
		return true;
	if (now < backoff_until_ms)
		return false;

	/* take no message that could not be processed */
	switch (check_subscription(&problem))
	{
		case SUBSCRIPTION_GONE:
			stop_consumer = true;
			return false;
		case SUBSCRIPTION_UNUSABLE:
			refuse_to_consume(problem);
			return false;
		case SUBSCRIPTION_USABLE:
			break;
	}
	refusing = false;

	if (!broker_ready)
	{
		outbox_broker_init(&broker);
		broker_ready = true;
	}

	outbox_slot_set_state(OUTBOX_STATE_CONNECTING, NULL);
	deadline = now + (int64) broker.hosts.count * 15000;
	/* never a reason not to consume (see the file header) */
	try_declare_dlq(dlq, deadline);

	initStringInfo(&failures);
	if (!outbox_broker_connect(&broker, deadline, &failures))
	{
		back_off(STOMP_FAILURE_CONNECT, "could not connect", failures.data);
		return false;
	}
	connected = true;
	session++;
	stomp_retry_connected(&retry);

	/* a refusal names the broker that answered, and nothing before it */
	resetStringInfo(&failures);
	if (!subscribe_queue(dlq, outbox_monotonic_ms() + SUBSCRIBE_TIMEOUT_MS,
						 &failures))
	{
		disconnect();
		if (choose_route(failures.data))
			return false;		/* subscribed again at the next loop */
		back_off(STOMP_FAILURE_DECLARE,
				 psprintf("could not subscribe to \"%s\"", destination),
				 failures.data);
		return false;
	}
	subscribed = true;
	if (recovering)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" subscribed at %s",
						queue_name, broker.where)));
	recovering = false;
	stomp_retry_subscribed(&retry);
	outbox_slot_set_state(OUTBOX_STATE_CONNECTED, broker.where);
	return true;
}

/*
 * Move the delivered messages from the connection to the held list; on
 * ERROR or a closed connection, drop it.  Returns whether it is still up.
 */
static bool
collect_messages(void)
{
	StompEvent	event;

	while (nheld < BATCH_MAX && stomp_conn_next_event(broker.conn, &event))
	{
		if (event.type == STOMP_EVENT_MESSAGE)
		{
			hold_or_return(event.frame);
			event.frame = NULL;
		}
		else if (event.type == STOMP_EVENT_ERROR ||
				 event.type == STOMP_EVENT_CLOSED)
		{
			stomp_event_clear(&event);
			ereport(LOG,
					(errmsg("outbox consumer of queue \"%s\" lost its connection to the STOMP broker at %s",
							queue_name, broker.where),
					 errdetail("%s", stomp_conn_error(broker.conn))));
			outbox_slot_set_error(stomp_conn_error(broker.conn));
			disconnect();
			return false;
		}
		stomp_event_clear(&event);
	}
	return true;
}

/*
 * Start a transaction of the worker, connected to SPI, with a snapshot.
 * With a valid role, the whole transaction is that role's, in a
 * security-restricted operation (see the file header): the context is set
 * first thing in the transaction, since PostgreSQL wants none outside one,
 * and an abort restores the worker's own.
 */
static void
begin_xact(Oid role)
{
	xact_caller_context = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (OidIsValid(role))
		SetUserIdAndSecContext(role, SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * Commit the transaction of begin_xact(); what runs at commit runs as its
 * role still.  Then the worker is itself again, in the memory context it
 * was in before the transaction.
 */
static void
commit_xact(void)
{
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	SetUserIdAndSecContext(worker_userid, 0);
	MemoryContextSwitchTo(xact_caller_context);
}

/*
 * Roll back the transaction of begin_xact() after an error was caught;
 * the abort restores the worker's user id.
 */
static void
abort_xact(void)
{
	AbortCurrentTransaction();
	SetUserIdAndSecContext(worker_userid, 0);
	MemoryContextSwitchTo(xact_caller_context);
}

/*
 * Become the owner of the outbox tables for one of the worker's own
 * statements: a security-restricted operation, with search_path pinned to
 * OUTBOX_SAFE_SEARCH_PATH whatever the callbacks or the session did.  An error
 * before leave_owner() is undone by the (sub)transaction's abort.
 */
static void
enter_owner(OwnerScope *scope)
{
	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(tables_owner, scope->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	scope->guc_level = outbox_push_search_path(OUTBOX_SAFE_SEARCH_PATH);
}

/*
 * Back from enter_owner(): the settings and the user id as they were.
 */
static void
leave_owner(OwnerScope *scope)
{
	AtEOXact_GUC(true, scope->guc_level);
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

/*
 * Run one of the worker's saved plans as the owner of the outbox tables
 * (enter_owner); returns SPI's result code.
 */
static int
execute_as_owner(SPIPlanPtr plan, Datum *args, bool read_only, long count)
{
	OwnerScope	scope;
	int			ret;

	enter_owner(&scope);
	ret = SPI_execute_plan(plan, args, NULL, read_only, count);
	leave_owner(&scope);
	return ret;
}

/*
 * SET CONSTRAINTS ALL IMMEDIATE: fire every deferred trigger event pending
 * in the transaction now, as the current user, and make the ones queued
 * later fire at the end of their statement.
 */
static void
set_constraints_immediate(void)
{
	ConstraintsSetStmt *stmt = makeNode(ConstraintsSetStmt);

	stmt->constraints = NIL;
	stmt->deferred = false;
	AfterTriggerSetState(stmt);
	pfree(stmt);
}

/*
 * Prepare the worker's statements, once per worker, as the owner of the
 * outbox tables and under the pinned search_path (a plan is parsed again
 * if the search_path it was made under changes).
 */
static void
prepare_plans(void)
{
	Oid			insert_args[4] = {REGROLEOID, TEXTOID, JSONBOID, JSONBOID};
	Oid			load_args[1] = {INT8OID};
	OwnerScope	scope;

	if (insert_received_plan != NULL)
		return;
	enter_owner(&scope);
	insert_received_plan =
		outbox_keep_plan("INSERT INTO outbox.received"
						 "            (run_as, msg_id, headers, body)"
						 " VALUES ($1, $2, $3, $4)"
						 " ON CONFLICT (run_as, msg_id) DO NOTHING",
						 4, insert_args);
	load_subscription_plan =
		outbox_keep_plan("SELECT queue_name, callback,"
						 "       destination, run_as::pg_catalog.oid"
						 "  FROM outbox.subscription"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 1, load_args);
	leave_owner(&scope);
}

/*
 * Forget the saved plans, to prepare them again (they may name what is
 * gone, the extension dropped and created again).
 */
static void
free_plans(void)
{
	if (insert_received_plan != NULL)
		SPI_freeplan(insert_received_plan);
	if (load_subscription_plan != NULL)
		SPI_freeplan(load_subscription_plan);
	insert_received_plan = NULL;
	load_subscription_plan = NULL;
}

/*
 * Read this worker's subscription in the current transaction (begin_xact);
 * false if it is gone, or the extension is (or is of another version than
 * the library: version.c).  Also learns who owns the outbox tables, for the
 * worker's other statements of the transaction.
 */
static bool
load_subscription(SubscriptionRow *row)
{
	Datum		args[1];
	HeapTuple	tuple;
	TupleDesc	desc;
	bool		isnull;

	/* of another version: the launcher starts it again after the update */
	if (outbox_schema_state(NULL) != OUTBOX_SCHEMA_CURRENT)
		return false;
	tables_owner = outbox_table_owner("received");
	prepare_plans();
	args[0] = Int64GetDatum(subscription_id);
	if (execute_as_owner(load_subscription_plan, args, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read outbox.subscription");
	if (SPI_processed == 0)
		return false;
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	row->queue_name = TextDatumGetCString(SPI_getbinval(tuple, desc, 1, &isnull));
	/* stored by name (stored_function.c): InvalidOid if it finds nothing */
	row->callback = outbox_resolve_stored_function(TextDatumGetCString(SPI_getbinval(tuple, desc, 2, &isnull)),
												   outbox_payload_type());
	row->destination = TextDatumGetCString(SPI_getbinval(tuple, desc, 3, &isnull));
	row->run_as = DatumGetObjectId(SPI_getbinval(tuple, desc, 4, &isnull));
	return true;
}

/*
 * Error out unless the subscription's role exists and may execute its
 * callback (both can change at any time: DROP ROLE, REVOKE).
 */
static void
check_run_as(SubscriptionRow *row)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(row->run_as)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role of the subscription of queue \"%s\" does not exist",
						queue_name),
				 errhint("outbox.unsubscribe() the queue and subscribe it again as an existing role.")));
	outbox_check_callback(row->callback, row->run_as, false);
}

/*
 * Check the subscription in a transaction of its own: gone (or replaced,
 * or its role changed by hand: a new consumer must start), unusable (with
 * the reason in *problem), or usable.
 */
static SubscriptionCheck
check_subscription(char **problem)
{
	SubscriptionRow row;
	volatile SubscriptionCheck result = SUBSCRIPTION_USABLE;

	*problem = NULL;
	begin_xact(InvalidOid);
	PG_TRY();
	{
		if (!load_subscription(&row) ||
			strcmp(row.destination, destination) != 0 ||
			row.run_as != run_as)
			result = SUBSCRIPTION_GONE;
		else
			check_run_as(&row);
		commit_xact();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(xact_caller_context);
		edata = CopyErrorData();
		if (edata->elevel > ERROR ||
			(edata->sqlerrcode != ERRCODE_UNDEFINED_OBJECT &&
			 edata->sqlerrcode != ERRCODE_UNDEFINED_FUNCTION &&
			 edata->sqlerrcode != ERRCODE_INSUFFICIENT_PRIVILEGE))
			PG_RE_THROW();
		FlushErrorState();
		abort_xact();
		*problem = edata->message;
		result = SUBSCRIPTION_UNUSABLE;
	}
	PG_END_TRY();
	return result;
}

/*
 * Bytes from the broker as text of the database: invalid UTF-8 and NUL
 * bytes become U+FFFD, then the text is converted to the database
 * encoding.
 */
static char *
utf8_text(const char *bytes, size_t len)
{
	StringInfoData buf;

	if (!pg_verify_mbstr(PG_UTF8, bytes, (int) len, true))
	{
		initStringInfo(&buf);
		while (len > 0)
		{
			int			l = pg_utf_mblen((const unsigned char *) bytes);

			if (*bytes != '\0' && (size_t) l <= len &&
				pg_utf8_islegal((const unsigned char *) bytes, l))
			{
				appendBinaryStringInfo(&buf, bytes, l);
				bytes += l;
				len -= l;
			}
			else
			{
				appendBinaryStringInfo(&buf, "\xEF\xBF\xBD", 3);
				bytes++;
				len--;
			}
		}
		bytes = buf.data;
		len = buf.len;
	}
	else
		bytes = pnstrdup(bytes, len);
	return pg_any_to_server(bytes, (int) len, PG_UTF8);
}

/*
 * The body as jsonb: parsed as JSON, or (as_string) as one JSON string.
 * Parsing errors out on a body that is not JSON; the caller then tries
 * again with as_string.
 */
static Jsonb *
message_body(StompFrame *frame, bool as_string)
{
	char	   *text = utf8_text(frame->body ? frame->body : "", frame->body_len);
	JsonbValue	value;

	if (!as_string)
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	value.type = jbvString;
	value.val.string.val = text;
	value.val.string.len = strlen(text);
	return JsonbValueToJsonb(&value);
}

/*
 * The headers as a jsonb object of strings; of a repeated header, the
 * first wins (as at the broker).
 */
static Jsonb *
message_headers(StompFrame *frame)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;
	size_t		i;

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	/* backwards: jsonb keeps the last of equal keys */
	for (i = frame->nheaders; i > 0; i--)
	{
		StompHeader *h = &frame->headers[i - 1];
		JsonbValue	key;
		JsonbValue	value;

		key.type = jbvString;
		key.val.string.val = utf8_text(h->name, h->name_len);
		key.val.string.len = strlen(key.val.string.val);
		value.type = jbvString;
		value.val.string.val = utf8_text(h->value, h->value_len);
		value.val.string.len = strlen(value.val.string.val);
		(void) pushJsonbValue(&state, WJB_KEY, &key);
		(void) pushJsonbValue(&state, WJB_VALUE, &value);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}

/*
 * The message's id for idempotency: cap-msg-id, else dop-msg-id, else
 * message-id (empty ones do not count, as in django-outbox-pattern); NULL
 * if none.
 */
static char *
message_id(StompFrame *frame)
{
	static const char *const names[] = {"cap-msg-id", "dop-msg-id", "message-id"};
	int			i;

	for (i = 0; i < lengthof(names); i++)
	{
		const StompHeader *h = stomp_frame_find_header(frame, names[i]);

		if (h != NULL && h->value_len > 0)
			return utf8_text(h->value, h->value_len);
	}
	return NULL;
}

/*
 * Errors that say nothing about the message: the database's trouble, to
 * be retried rather than dead-lettered.
 */
static bool
transient_error(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_TO_CATEGORY(ERRCODE_T_R_SERIALIZATION_FAILURE):	/* 40 */
		case ERRCODE_TO_CATEGORY(ERRCODE_INSUFFICIENT_RESOURCES):	/* 53 */
		case ERRCODE_TO_CATEGORY(ERRCODE_SYSTEM_ERROR):	/* 58 */
		case ERRCODE_TO_CATEGORY(ERRCODE_CONNECTION_EXCEPTION):	/* 08 */
		case ERRCODE_TO_CATEGORY(ERRCODE_ADMIN_SHUTDOWN):	/* 57 */
			return true;
		default:
			return false;
	}
}

/*
 * Claim the message in outbox.received and run the callback; returns
 * whether the subtransaction is to be kept.  Errors propagate.  The
 * transaction is run_as's already (run_batch); the callback gets a GUC
 * level of its own, and its deferred work is done before it is judged.
 */
static bool
run_callback(Delivery *d, Jsonb *body, Jsonb *headers)
{
	Datum		args[4];
	Datum		values[6];
	bool		nulls[6];
	const char *dest = stomp_frame_get_header(d->frame, "destination");
	const StompHeader *corr;
	Datum		result;
	bool		result_isnull;
	int			timeout_ms;
	int			guc_level;
	LOCAL_FCINFO(fcinfo, 1);

	args[0] = ObjectIdGetDatum(run_as);
	args[1] = CStringGetTextDatum(d->msg_id);
	args[2] = JsonbPGetDatum(headers);
	args[3] = JsonbPGetDatum(body);
	if (execute_as_owner(insert_received_plan, args, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into outbox.received");
	if (SPI_processed == 0)
	{
		d->duplicate = true;
		return true;
	}

	memset(nulls, 0, sizeof(nulls));
	values[0] = JsonbPGetDatum(body);
	values[1] = JsonbPGetDatum(headers);
	values[2] = CStringGetTextDatum(d->msg_id);
	values[3] = dest ? CStringGetTextDatum(utf8_text(dest, strlen(dest))) : (Datum) 0;
	nulls[3] = (dest == NULL);
	values[4] = CStringGetTextDatum(queue_name);
	values[5] = BoolGetDatum(d->redelivered);

	InitFunctionCallInfoData(*fcinfo, &callback_finfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = HeapTupleGetDatum(heap_form_tuple(payload_desc,
															  values, nulls));
	fcinfo->args[0].isnull = false;

	timeout_ms = CALLBACK_TIMEOUT_MS;
	if (StatementTimeout > 0 && StatementTimeout < timeout_ms)
		timeout_ms = StatementTimeout;

	/* deferrable constraints fire at the end of the callback's statements */
	set_constraints_immediate();
	guc_level = outbox_push_search_path(callback_search_path);
	/*
	 * What the callback writes carries the message's correlation id on, as
	 * django-outbox-pattern's consumer does with its request id; a value
	 * the setting refuses is ignored (a fresh one is made).  Undone with
	 * the callback's other settings.
	 */
	corr = stomp_frame_find_header(d->frame, "dop-correlation-id");
	if (corr != NULL && corr->value_len > 0)
		(void) set_config_option("outbox.correlation_id",
								 utf8_text(corr->value, corr->value_len),
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
								 true, DEBUG1, false);
	enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms);
	result = FunctionCallInvoke(fcinfo);
	result_isnull = fcinfo->isnull;
	/* whatever it left pending fires now, charged to this message */
	set_constraints_immediate();
	disable_timeout(STATEMENT_TIMEOUT, true);
	/* a timeout that fired as the callback returned is moot */
	if (get_timeout_indicator(STATEMENT_TIMEOUT, true))
		QueryCancelPending = false;
	/* every setting the callback made, LOCAL or not, is undone */
	AtEOXact_GUC(false, guc_level);

	if (callback_rettype == VOIDOID)
		return true;
	return !result_isnull && DatumGetBool(result);
}

/*
 * Undo what a callback may have left in the worker's session beyond its
 * transaction, whatever became of it: session-level advisory locks, which
 * would otherwise be held for months.  (PREPARE, temporary tables and
 * WITH HOLD cursors are refused in a security-restricted operation.)
 */
static void
forget_session_state(void)
{
	LockReleaseSession(USER_LOCKMETHOD);
}

/*
 * Look for the message's id (message_id()) in a subtransaction of the
 * batch, once: converting it to the database encoding may fail, and that
 * must fail this message alone.  Returns false, the reason logged, if it
 * failed.
 */
static bool
read_message_id(Delivery *d)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

	if (d->id_read)
		return true;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		char	   *id = message_id(d->frame);

		d->msg_id = id ? MemoryContextStrdup(d->context, id) : NULL;
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(WARNING,
				(errmsg("outbox consumer of queue \"%s\": a message whose id cannot be read in this database is dead-lettered",
						queue_name),
				 errdetail("%s", edata->message)));
		outbox_slot_set_error(edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcontext);
	CurrentResourceOwner = oldowner;
	d->id_read = ok;
	return ok;
}

/*
 * Run one message in a subtransaction of the batch and decide its outcome.
 * Catches every error but FATAL ones.
 */
static void
handle_message(Delivery *d)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool as_string = false;
	volatile bool retry = true;

	if (!read_message_id(d))
	{
		d->outcome = OUTCOME_DEAD;
		return;
	}
	if (d->msg_id == NULL)
	{
		ereport(WARNING,
				(errmsg("outbox consumer of queue \"%s\": a message without any id is dead-lettered",
						queue_name),
				 errdetail("It has none of cap-msg-id, dop-msg-id and message-id.")));
		outbox_slot_set_error("a message without any id was dead-lettered");
		d->outcome = OUTCOME_DEAD;
		return;
	}

	while (retry)
	{
		volatile bool in_body = false;

		retry = false;
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcontext);
		PG_TRY();
		{
			Jsonb	   *body;
			Jsonb	   *headers;
			bool		keep;

			in_body = true;
			body = message_body(d->frame, as_string);
			in_body = false;
			headers = message_headers(d->frame);
			keep = run_callback(d, body, headers);
			if (keep)
				ReleaseCurrentSubTransaction();
			else
				RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
			CurrentResourceOwner = oldowner;
			d->outcome = keep ? OUTCOME_ACK : OUTCOME_DEAD;
			if (!keep)
			{
				ereport(LOG,
						(errmsg("outbox consumer of queue \"%s\": the callback refused message %s, dead-lettered",
								queue_name, d->msg_id)));
				outbox_slot_set_error(psprintf("the callback refused message %s", d->msg_id));
			}
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			disable_timeout(STATEMENT_TIMEOUT, false);
			MemoryContextSwitchTo(oldcontext);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
			CurrentResourceOwner = oldowner;
			QueryCancelPending = false;

			if (in_body && !as_string)
			{
				/* not JSON: the callback gets it as a JSON string */
				as_string = true;
				retry = true;
			}
			else
			{
				d->outcome = (ERRCODE_TO_CATEGORY(edata->sqlerrcode) ==
							  ERRCODE_TO_CATEGORY(ERRCODE_T_R_SERIALIZATION_FAILURE) &&
							  !d->redelivered) ? OUTCOME_REQUEUE : OUTCOME_DEAD;
				ereport(WARNING,
						(errmsg("outbox consumer of queue \"%s\": the callback failed on message %s, %s",
								queue_name, d->msg_id,
								d->outcome == OUTCOME_DEAD ? "dead-lettered" : "requeued"),
						 errdetail("%s", edata->message)));
				outbox_slot_set_error(edata->message);
			}
			FreeErrorData(edata);
		}
		PG_END_TRY();
		forget_session_state();
	}
}

/*
 * One transaction over the deliveries, as run_as: read the subscription,
 * each message in its subtransaction, COMMIT once COMMIT_INTERVAL_MS has
 * passed or the deliveries are done.  *covered is set to how many of them
 * the transaction took; their outcomes are set, nothing is acknowledged
 * here.
 */
static BatchResult
run_batch(Delivery *deliveries, int n, int *covered)
{
	SubscriptionRow row;
	volatile bool committing = false;
	volatile BatchResult result = BATCH_DONE;
	volatile int count = 0;
	int64		started = outbox_monotonic_ms();
	int64		last_io = started;

	*covered = 0;
	begin_xact(run_as);
	pgstat_report_activity(STATE_RUNNING, "consuming");

	if (!load_subscription(&row) || strcmp(row.destination, destination) != 0 ||
		row.run_as != run_as)
	{
		abort_xact();
		return BATCH_STOP;
	}
	check_run_as(&row);
	fmgr_info(row.callback, &callback_finfo);
	callback_rettype = get_func_rettype(row.callback);
	payload_desc = lookup_rowtype_tupdesc_copy(outbox_payload_type(), -1);

	enable_timeout_every(watchdog_timeout,
						 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000),
						 1000);
	PG_TRY();
	{
		int			i;

		for (i = 0; i < n; i++)
		{
			Delivery   *d = &deliveries[i];

			/*
			 * SIGTERM: finish the message in flight, leave the rest; and
			 * commit (and acknowledge) at least every COMMIT_INTERVAL_MS
			 */
			if (i > 0 && (shutdown_requested ||
						  outbox_monotonic_ms() - started >= COMMIT_INTERVAL_MS))
				break;
			if (d->outcome == OUTCOME_NONE)
				handle_message(d);
			/* keep the heart-beats going through a long batch */
			if (outbox_monotonic_ms() - last_io >= BATCH_IO_INTERVAL_MS)
			{
				stomp_conn_process(broker.conn, outbox_monotonic_ms());
				last_io = outbox_monotonic_ms();
			}
		}
		count = i;
		committing = true;
		commit_xact();
		pgstat_report_stat(false);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(watchdog_timeout, false);
		if (!committing)
			PG_RE_THROW();
		MemoryContextSwitchTo(xact_caller_context);
		edata = CopyErrorData();
		if (transient_error(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		abort_xact();

		if (count > 1)
			result = BATCH_RETRY_SOLO;
		else
		{
			deliveries[0].outcome = OUTCOME_DEAD;
			ereport(WARNING,
					(errmsg("outbox consumer of queue \"%s\": could not commit message %s, dead-lettered",
							queue_name, deliveries[0].msg_id ? deliveries[0].msg_id : "?"),
					 errdetail("%s", edata->message)));
			outbox_slot_set_error(edata->message);
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
	disable_timeout(watchdog_timeout, false);
	*covered = count;
	return result;
}

/*
 * Dead-letter a message of a /amq/queue/ destination, whose queue may not
 * dead-letter anything: SEND a copy to /amq/queue/DLQ.<queue> and wait for
 * its receipt.  Returns false if that failed (the caller drops the
 * connection, and the original, unacknowledged, comes back).
 */
static bool
dead_letter(Delivery *d)
{
	static const char *const dropped[] = {
		"destination", "content-length", "content-type", "receipt",
		"persistent", "transaction", "subscription", "message-id", "ack",
		"redelivered"
	};
	StompFrame *f = d->frame;
	StompHeaderPair *pairs = palloc(sizeof(StompHeaderPair) * (f->nheaders + 1));
	int			npairs = 0;
	uint64_t	receipt;
	size_t		i;

	for (i = 0; i < f->nheaders; i++)
	{
		bool		keep = true;
		int			j;

		for (j = 0; j < lengthof(dropped); j++)
			keep &= (strcmp(f->headers[i].name, dropped[j]) != 0);
		if (keep)
		{
			pairs[npairs].name = f->headers[i].name;
			pairs[npairs++].value = f->headers[i].value;
		}
	}
	pairs[npairs].name = "outbox-dead-lettered-from";
	pairs[npairs++].value = queue_name;

	if (stomp_conn_send(broker.conn, psprintf("/amq/queue/DLQ.%s", queue_name),
						pairs, npairs,
						stomp_frame_get_header(f, "content-type"),
						f->body ? f->body : "", f->body_len,
						&receipt) != STOMP_OK)
		return false;
	return wait_for_receipt(&broker, receipt,
							outbox_monotonic_ms() + SUBSCRIBE_TIMEOUT_MS);
}

/*
 * After the COMMIT: ACK, NACK or requeue each message, on the connection
 * it came from only.
 */
static void
acknowledge(Delivery *deliveries, int n, uint64 batch_session)
{
	uint64		processed = 0;
	uint64		dead = 0;
	bool		dlq_missing = false;
	int			i;

	for (i = 0; i < n; i++)
	{
		Delivery   *d = &deliveries[i];

		if (d->outcome == OUTCOME_ACK && !d->duplicate)
			processed++;
		else if (d->outcome == OUTCOME_DEAD)
			dead++;
	}
	outbox_slot_count(OUTBOX_COUNT_PROCESSED, processed);
	outbox_slot_count(OUTBOX_COUNT_DEAD_LETTERED, dead);

	if (!connected || session != batch_session ||
		stomp_conn_state(broker.conn) != STOMP_CONN_OPEN)
		return;					/* the broker delivers them again */

	for (i = 0; i < n; i++)
	{
		Delivery   *d = &deliveries[i];
		StompResult rc = STOMP_OK;

		/*
		 * No DLQ to take it: RabbitMQ would drop it, the NACK's as well as
		 * the copy SENT to /amq/queue/DLQ.<queue> (confirmed, as a SEND
		 * that no queue takes is).  Leave it to the broker, which gets it
		 * back with the connection, dropped below.
		 */
		if (d->outcome == OUTCOME_DEAD && !dlq_ready)
		{
			d->outcome = OUTCOME_NONE;
			dlq_missing = true;
		}
		if (d->outcome == OUTCOME_DEAD && dead_letter_by_send)
		{
			if (!dead_letter(d))
			{
				/* the broker gives back what was not acknowledged */
				disconnect();
				return;
			}
			d->outcome = OUTCOME_ACK;
		}
		for (;;)
		{
			switch (d->outcome)
			{
				case OUTCOME_NONE:
					rc = STOMP_OK;
					break;
				case OUTCOME_ACK:
					rc = stomp_conn_ack(broker.conn, d->ack_id, NULL);
					break;
				case OUTCOME_DEAD:
					rc = stomp_conn_nack(broker.conn, d->ack_id, false, NULL);
					break;
				case OUTCOME_REQUEUE:
					rc = stomp_conn_nack(broker.conn, d->ack_id, true, NULL);
					break;
			}
			if (rc != STOMP_ERR_FULL)
				break;
			/* the output buffer is full: let the socket drain it */
			if (outbox_broker_wait(&broker, outbox_monotonic_ms() + 1000) & WL_LATCH_SET)
				CHECK_FOR_INTERRUPTS();
			if (stomp_conn_state(broker.conn) != STOMP_CONN_OPEN)
				return;
		}
		if (rc == STOMP_ERR_STATE)
			return;
	}
	/* write them now, without waiting */
	stomp_conn_process(broker.conn, outbox_monotonic_ms());
	if (dlq_missing)
	{
		(void) outbox_broker_wait(&broker, outbox_monotonic_ms() + 100);
		disconnect();
		back_off(STOMP_FAILURE_DECLARE,
				 "could not dead-letter a message, which waits in the queue",
				 dlq_problem);

		/*
		 * The message comes back with the next connection, at the head of
		 * the queue, and fails the same way until the DLQ is declared: not
		 * before the DLQ's next try.  (The subscription ends the run of
		 * declare failures, so back_off alone would reconnect, run the
		 * callback and log about every second for as long as the DLQ
		 * stays refused.)
		 */
		if (backoff_until_ms < dlq_retry_at_ms)
			backoff_until_ms = dlq_retry_at_ms;
	}
}

/*
 * Process the held messages, in as many transactions as COMMIT_INTERVAL_MS
 * makes (one message per transaction for those whose COMMIT failed
 * together), acknowledging each transaction's messages after its COMMIT,
 * and free them.
 */
static void
process_held(void)
{
	int			n = nheld;
	Delivery   *deliveries = palloc0(sizeof(Delivery) * n);
	uint64		batch_session = session;
	int			i;

	for (i = 0; i < n; i++)
	{
		Delivery   *d = &deliveries[i];
		const char *redelivered;

		d->frame = held[i];
		d->ack_id = stomp_frame_get_header(d->frame, "ack");
		d->msg_id = NULL;
		d->id_read = false;
		d->context = CurrentMemoryContext;
		redelivered = stomp_frame_get_header(d->frame, "redelivered");
		d->redelivered = (redelivered != NULL && strcmp(redelivered, "true") == 0);
		d->outcome = OUTCOME_NONE;
	}
	/* the frames are the batch's now; freed below, or by drop_held's caller */
	nheld = 0;

	PG_TRY();
	{
		int			done = 0;

		/* the connection lost, the broker delivers the rest again */
		while (done < n && !shutdown_requested && !stop_consumer &&
			   connected && session == batch_session)
		{
			int			covered;
			BatchResult result = run_batch(&deliveries[done], n - done, &covered);

			if (result == BATCH_RETRY_SOLO)
			{
				for (i = done; i < done + covered && !shutdown_requested; i++)
				{
					int			one;

					deliveries[i].outcome = OUTCOME_NONE;
					deliveries[i].duplicate = false;
					if (run_batch(&deliveries[i], 1, &one) == BATCH_STOP)
					{
						result = BATCH_STOP;
						break;
					}
				}
			}
			if (result == BATCH_STOP)
			{
				stop_consumer = true;
				break;
			}
			acknowledge(&deliveries[done], covered, batch_session);
			done += covered;
		}
	}
	PG_FINALLY();
	{
		for (i = 0; i < n; i++)
			stomp_frame_free(deliveries[i].frame);
	}
	PG_END_TRY();
}

/*
 * One turn of the worker: connect and subscribe if need be, then process
 * what was delivered, or wait for it.
 */
static void
consumer_step(void)
{
	int64		now = outbox_monotonic_ms();

	if (!ensure_subscribed())
	{
		int			rc = WaitLatch(MyLatch,
								   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								   Max(backoff_until_ms - now, 0),
								   PG_WAIT_EXTENSION);

		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		return;
	}

	if (!collect_messages())
		return;
	if (nheld > 0)
	{
		process_held();
		last_activity_ms = outbox_monotonic_ms();
		return;
	}

	/* idle: now and then, check that the subscription is still wanted */
	if (now - last_activity_ms >= IDLE_CHECK_MS)
	{
		char	   *problem;

		last_activity_ms = now;
		switch (check_subscription(&problem))
		{
			case SUBSCRIPTION_GONE:
				stop_consumer = true;
				return;
			case SUBSCRIPTION_UNUSABLE:
				disconnect();
				refuse_to_consume(problem);
				return;
			case SUBSCRIPTION_USABLE:
				break;
		}
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	if (outbox_broker_wait(&broker, last_activity_ms + IDLE_CHECK_MS) & WL_LATCH_SET)
		CHECK_FOR_INTERRUPTS();
}

/*
 * Leave the broker cleanly: UNSUBSCRIBE, DISCONNECT, and a short wait for
 * its receipt.  Unacknowledged messages go back to the queue.
 */
static void
stop_politely(void)
{
	int64		deadline = outbox_monotonic_ms() + DISCONNECT_WAIT_MS;

	outbox_slot_set_state(OUTBOX_STATE_STOPPING, NULL);
	drop_held();
	if (!connected || stomp_conn_state(broker.conn) != STOMP_CONN_OPEN)
		return;
	if (subscribed)
		(void) stomp_conn_unsubscribe(broker.conn, main_sub_id, NULL);
	if (stomp_conn_disconnect(broker.conn, outbox_monotonic_ms()) != STOMP_OK)
		return;
	while (outbox_monotonic_ms() < deadline)
	{
		StompEvent	event;
		bool		done = false;

		while (stomp_conn_next_event(broker.conn, &event))
		{
			done |= (event.type == STOMP_EVENT_CLOSED ||
					 event.type == STOMP_EVENT_ERROR);
			stomp_event_clear(&event);
		}
		if (done)
			break;
		(void) outbox_broker_wait(&broker, deadline);
	}
	outbox_broker_close(&broker);
	connected = false;
}

/*
 * Entry point of a consumer: bgw_main_arg is the database, bgw_extra the
 * subscription id.
 */
void
outbox_consumer_main(Datum main_arg)
{
	SubscriptionRow row;
	bool		found;

	memcpy(&subscription_id, MyBgworkerEntry->bgw_extra, sizeof(subscription_id));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, consumer_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg),
											  InvalidOid, 0);
	pgstat_report_appname("outbox consumer");

	/*
	 * The worker's own statements never see a search_path of anyone's
	 * choosing; the callbacks get the one it started with.
	 */
	worker_userid = GetUserId();
	callback_search_path =
		MemoryContextStrdup(TopMemoryContext,
							GetConfigOption("search_path", false, false));
	SetConfigOption("search_path", OUTBOX_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);

	/* what to consume, for whom */
	begin_xact(InvalidOid);
	found = load_subscription(&row);
	if (found)
	{
		queue_name = MemoryContextStrdup(TopMemoryContext, row.queue_name);
		destination = MemoryContextStrdup(TopMemoryContext, row.destination);
		run_as = row.run_as;
	}
	commit_xact();
	if (!found)
		proc_exit(0);			/* unsubscribed meanwhile */
	if (outbox_slot_acquire_consumer(queue_name, subscription_id,
									 row.run_as) == NULL)
		proc_exit(0);			/* another consumer has this queue */

	dead_letter_by_send = (strncmp(destination, "/amq/queue/", 11) == 0);
	snprintf(main_sub_id, sizeof(main_sub_id), "outbox-%s", queue_name);
	snprintf(dlq_sub_id, sizeof(dlq_sub_id), "outbox-DLQ.%s", queue_name);
	watchdog_timeout = RegisterTimeout(USER_TIMEOUT, shutdown_watchdog);
	pg_prng_seed(&backoff_prng, (uint64) MyProcPid ^ (uint64) GetCurrentTimestamp());
	scratch_context = AllocSetContextCreate(TopMemoryContext,
											"outbox consumer scratch",
											ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(scratch_context);
	broker_settings = MemoryContextStrdup(TopMemoryContext, current_settings());
	last_activity_ms = outbox_monotonic_ms();
	ereport(LOG,
			(errmsg("outbox consumer of queue \"%s\" started for \"%s\"",
					queue_name, destination)));

	while (!shutdown_requested && !stop_consumer)
	{
		/* a turn, and each transaction in it, ends where it started */
		Assert(CurrentMemoryContext == scratch_context);
		MemoryContextReset(scratch_context);

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			reload_settings();

		PG_TRY();
		{
			consumer_step();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(scratch_context);
			edata = CopyErrorData();
			FlushErrorState();
			AbortOutOfAnyTransaction();
			SetUserIdAndSecContext(worker_userid, 0);
			MemoryContextSwitchTo(scratch_context);
			free_plans();
			QueryCancelPending = false;
			ereport(LOG,
					(errmsg("outbox consumer of queue \"%s\" failed: %s",
							queue_name, edata->message),
					 edata->detail ? errdetail("%s", edata->detail) : 0,
					 errhint("The messages not yet acknowledged will be delivered again.")));
			/* the broker takes the batch back with the connection */
			disconnect();
			back_off(STOMP_FAILURE_CONNECT, "failed", edata->message);
		}
		PG_END_TRY();
	}

	stop_politely();
	ereport(LOG,
			(errmsg("outbox consumer of queue \"%s\" stopped%s", queue_name,
					stop_consumer ? ": its subscription is gone" : "")));
	proc_exit(0);
}
