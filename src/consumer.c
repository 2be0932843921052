/*-------------------------------------------------------------------------
 *
 * consumer.c
 *		  The consumer background worker: one per subscription, running its
 *		  callback once per message with an exactly-once effect.
 *
 * The launcher (consumer_launcher.c, in the database's publisher) starts one worker
 * per row of outbox.subscription; bgw_main_arg is the database, bgw_extra
 * the subscription id.  This file is the worker itself: its start, its
 * state machine and its main loop.  Each turn of the loop:
 *
 * 1. unless subscribed: checks that the subscription can be served, and
 *    (unless backing off) declares the dead-letter queue if it is not known
 *    to be there (consumer_dlq.c), connects and subscribes
 *    (consumer_subscribe.c);
 * 2. takes what the broker delivered (consumer_held.c), and runs it as a
 *    batch, acknowledged after each COMMIT (consumer_batch.c, one message
 *    in consumer_callback.c);
 * 3. or, idle, waits for deliveries, and now and then checks that the
 *    subscription is still wanted.
 *
 * Its decisions (when a batch ends, the route, when to try again, what
 * becomes of a message) are in src/decide/consumer_*.c.  It is built on
 * the runtime shared by the workers: the broker link (worker_link.c:
 * failover, backoff, settings fingerprint, receipts, polite disconnect)
 * and the main-loop skeleton (worker_loop.c: signals, the top of a turn,
 * the error catch, the transactions).
 *
 * The state machine (outbox.status shows the state; every change goes
 * through outbox_worker_transition(), checked against consumer_next[]):
 *
 *		+----------+   subscription unusable, error
 *		| STARTING | ----------------------------------+
 *		+----------+                                   |
 *		     |                                         v
 *		     v          no broker, SUBSCRIBE     +-------------+
 *		+------------+  refused, error           |             |
 *		| CONNECTING | ------------------------> | BACKING_OFF |
 *		|            | <------------------------ |             |
 *		+------------+  backoff over             +-------------+
 *		  |       ^                                      ^
 *		  | (1)   | (2)                                  |
 *		  v       |                                      |
 *		+-----------+  error in a batch, no DLQ for a    |
 *		| CONNECTED | -----------------------------------+
 *		+-----------+  message to dead-letter, run_as unusable
 *
 *		(1) subscribed  (2) connection lost: the next turn reconnects
 *
 *		every state ---> STOPPING   (SIGTERM, or the subscription gone)
 *
 * CONNECTING stays CONNECTING when a refusal found another route
 * (consumer_choose_route): it subscribes again at once.
 *
 * The privilege model of the consumer.  The worker connects as the
 * bootstrap superuser (a background worker cannot connect as a role that
 * may not log in), and runs the subscriber's code only in transactions
 * that are the subscriber's from start to end, the way PostgreSQL's own
 * maintenance commands run a table owner's code (REFRESH MATERIALIZED
 * VIEW, VACUUM's index expressions): see consumer_batch.c for the
 * transaction, consumer_callback.c for what a callback cannot leave
 * behind, consumer_tables.c for the worker's own statements, which no
 * setting, object or operator of the subscriber's can reach.  Before each
 * batch and before each connection, the consumer checks that run_as exists
 * and may still EXECUTE the callback.  If not, it stops consuming (nothing
 * is acknowledged, so nothing is lost), says why in the log and in
 * outbox.status, and checks again every CONSUMER_IDLE_CHECK_MS.  A
 * subscription whose run_as was changed by hand is restarted.
 *
 * Error policy:
 * - The broker unreachable, the connection lost, heart-beats missed:
 *   retried in place, with exponential backoff and jitter up to
 *   outbox.maximum_backoff; a login ends the run.  The subscription (or the
 *   DLQ) refused by a broker that answered: a configuration error, retried
 *   on a short schedule of its own (consumer_retry.c, stomp_retry.c).
 *   Messages held but not yet acknowledged are forgotten: the broker
 *   delivers them again.  Pending ACKs of a lost connection are never sent
 *   on another.
 * - An error in a callback: caught in its subtransaction; that message is
 *   dead-lettered (consumer_callback.c), the others of the batch are not
 *   touched.
 * - An error outside the messages (the subscription unreadable, COMMIT
 *   failing for a transient reason): caught by the main loop
 *   (outbox_loop_catch, which logs it with its SQLSTATE, detail, hint and
 *   context): the transaction is rolled back, the connection
 *   dropped (so the broker delivers its messages again), the error logged
 *   and shown in outbox.status, and the consumer backs off.  A COMMIT
 *   failing for several messages is retried one message per transaction,
 *   so that only the culprit is dead-lettered.
 * - run_as gone, or the callback gone or no longer executable by it: the
 *   same, and no new connection is made until it is fixed (checked every
 *   CONSUMER_IDLE_CHECK_MS).
 * - The subscription gone (unsubscribed, or the extension dropped): the
 *   worker unsubscribes, disconnects and exits with code 0.
 * - SIGTERM: the message in flight is finished, and the batch committed
 *   and acknowledged; the rest of the batch is left to the broker; then
 *   UNSUBSCRIBE and DISCONNECT.  A callback still running
 *   outbox.consumer_shutdown_timeout after SIGTERM is terminated (FATAL).
 *   The launcher starts the consumer again while its subscription exists.
 * - Messages held so long that a callback could keep one unacknowledged
 *   past outbox.consumer_hold_timeout (below RabbitMQ's consumer_timeout,
 *   which closes the channel) are given back to the broker unrun, and
 *   delivered again (consumer_batch.c); their return counts no attempt.
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
 * (worker_loop.c), so nothing is allocated for good after start-up.
 * The frames (malloc'd by the STOMP client) are freed once acknowledged or
 * dropped.
 *
 * src/consumer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "consumer_internal.h"

/* longest wait for a clean DISCONNECT when stopping */
#define DISCONNECT_WAIT_MS		3000

PGDLLEXPORT void outbox_consumer_main(Datum main_arg);

/* the worker's state (consumer_internal.h) */
ConsumerWorker MyConsumer;

/* SIGTERM, and when: the watchdog bounds the shutdown */
volatile sig_atomic_t consumer_shutdown_requested = false;
static volatile TimestampTz shutdown_requested_at = 0;

/* the states a consumer may go to next, by state (the diagram above) */
static const uint32 consumer_next[] = {
	[OUTBOX_STATE_STARTING] = OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_STOPPING),
	[OUTBOX_STATE_WAITING_FOR_EXTENSION] = 0,	/* not a consumer's */
	[OUTBOX_STATE_CONNECTING] = OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTED) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_STOPPING),
	[OUTBOX_STATE_CONNECTED] = OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_STOPPING),
	[OUTBOX_STATE_BACKING_OFF] = OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_STOPPING),
	[OUTBOX_STATE_STOPPING] = 0,
	[OUTBOX_STATE_NO_DATABASE] = 0	/* not a consumer's */
};

StaticAssertDecl(lengthof(consumer_next) == OUTBOX_STATE_NO_DATABASE + 1,
				 "consumer_next has a row for every state");

/* What a check of the subscription found */
typedef enum SubscriptionCheck
{
	SUBSCRIPTION_USABLE,
	SUBSCRIPTION_GONE,			/* unsubscribed, replaced, or no extension */
	SUBSCRIPTION_UNUSABLE		/* run_as gone, or may not run the callback */
} SubscriptionCheck;

/*
 * SIGTERM: finish the message in flight, then stop (see the file header).
 */
static void
consumer_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	if (!consumer_shutdown_requested)
	{
		shutdown_requested_at = GetCurrentTimestamp();
		consumer_shutdown_requested = true;
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
	if (consumer_shutdown_requested &&
		GetCurrentTimestamp() >= shutdown_requested_at +
		(TimestampTz) outbox_consumer_shutdown_timeout * USECS_PER_SEC)
	{
		ProcDiePending = true;
		InterruptPending = true;
		SetLatch(MyLatch);
	}
}

/*
 * The subscription cannot be served (run_as gone, or it may not execute
 * the callback): say so, in the log once, in outbox.status always, and
 * look again after CONSUMER_IDLE_CHECK_MS.  No message is taken meanwhile.
 */
static void
refuse_to_consume(const char *problem)
{
	if (!MyConsumer.refusing)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" stopped consuming: %s",
						MyConsumer.queue_name, problem),
				 errdetail("The messages wait in the queue."),
				 errhint("Grant the subscription's role EXECUTE on the callback, or outbox.unsubscribe() the queue.")));
	MyConsumer.refusing = true;
	outbox_worker_transition(&MyConsumer.machine, OUTBOX_STATE_BACKING_OFF, "");
	outbox_slot_set_error(problem);
	consumer_back_off(CONSUMER_FAILED_UNUSABLE, NULL, NULL);
}

/*
 * Check the subscription in a transaction of its own: gone (or replaced,
 * or its role changed by hand: a new consumer must start), unusable (with
 * the reason in *problem), or usable.
 */
static SubscriptionCheck
check_subscription(char **problem)
{
	ConsumerSubscriptionRow row;
	volatile SubscriptionCheck result = SUBSCRIPTION_USABLE;

	*problem = NULL;
	outbox_xact_begin(InvalidOid);
	PG_TRY();
	{
		if (!consumer_load_subscription(&row) ||
			!consumer_is_own_subscription(&row))
			result = SUBSCRIPTION_GONE;
		else
			consumer_check_run_as(&row);
		outbox_xact_commit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(MyConsumer.scratch_context);
		edata = CopyErrorData();
		if (edata->elevel > ERROR ||
			(edata->sqlerrcode != ERRCODE_UNDEFINED_OBJECT &&
			 edata->sqlerrcode != ERRCODE_UNDEFINED_FUNCTION &&
			 edata->sqlerrcode != ERRCODE_INSUFFICIENT_PRIVILEGE))
			PG_RE_THROW();
		FlushErrorState();
		outbox_xact_abort();
		*problem = edata->message;
		result = SUBSCRIPTION_UNUSABLE;
	}
	PG_END_TRY();
	return result;
}

/*
 * Check the subscription (check_subscription) and act on what is found:
 * gone, the worker stops; unusable, it refuses to consume (dropping the
 * connection if "connected").  Returns whether it is usable.
 */
static bool
subscription_usable(bool connected)
{
	char	   *problem;

	switch (check_subscription(&problem))
	{
		case SUBSCRIPTION_GONE:
			MyConsumer.stop = true;
			return false;
		case SUBSCRIPTION_UNUSABLE:
			if (connected)
				consumer_disconnect();
			refuse_to_consume(problem);
			return false;
		case SUBSCRIPTION_USABLE:
			break;
	}
	return true;
}

/*
 * Make sure there is a connection with the subscription in place, unless
 * backing off; returns whether there is.  The DLQ is declared first, but
 * is never a reason not to consume (consumer_dlq.c).
 */
static bool
ensure_subscribed(void)
{
	if (MyConsumer.link.connected && MyConsumer.subscribed)
		return true;
	if (outbox_monotonic_ms() < MyConsumer.link.backoff_until_ms)
		return false;

	/* take no message that could not be processed */
	if (!subscription_usable(false))
		return false;
	MyConsumer.refusing = false;

	outbox_worker_transition(&MyConsumer.machine, OUTBOX_STATE_CONNECTING, NULL);
	consumer_declare_dlq_if_due();
	return consumer_connect_and_subscribe();
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
		(void) outbox_loop_wait(MyConsumer.link.backoff_until_ms);
		return;
	}

	/* lost: the held messages go with it, the broker delivers them again */
	if (!consumer_collect_messages())
	{
		consumer_session_lost();
		return;
	}
	if (MyConsumer.nheld > 0)
	{
		consumer_process_held();
		MyConsumer.last_activity_ms = outbox_monotonic_ms();
		return;
	}

	/* idle: now and then, check that the subscription is still wanted */
	if (now - MyConsumer.last_activity_ms >= CONSUMER_IDLE_CHECK_MS)
	{
		MyConsumer.last_activity_ms = now;
		if (!subscription_usable(true))
			return;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	outbox_link_wait(&MyConsumer.link,
					 MyConsumer.last_activity_ms + CONSUMER_IDLE_CHECK_MS);
	consumer_held_waited();
}

/*
 * In the main loop's PG_CATCH: the turn failed outside the messages.  The
 * error is logged (outbox_loop_catch), the saved plans forgotten (they may
 * name what is gone), the connection dropped (the broker delivers the
 * batch again) and the consumer backs off.
 */
static void
consumer_failed(void)
{
	ErrorData  *edata = outbox_loop_catch(MyConsumer.failed_what, false);

	consumer_free_plans();
	consumer_disconnect();
	consumer_back_off(CONSUMER_FAILED_STEP, "failed", edata->message);
}

/*
 * Leave the broker cleanly: UNSUBSCRIBE, DISCONNECT, and a short wait for
 * its receipt.  Unacknowledged messages go back to the queue.
 */
static void
stop_politely(void)
{
	outbox_worker_transition(&MyConsumer.machine, OUTBOX_STATE_STOPPING, NULL);
	consumer_drop_held();
	if (MyConsumer.link.connected && MyConsumer.subscribed &&
		stomp_conn_state(MyConsumer.link.broker.conn) == STOMP_CONN_OPEN)
		(void) stomp_conn_unsubscribe(MyConsumer.link.broker.conn,
									  MyConsumer.main_sub_id, NULL);
	outbox_link_disconnect_politely(&MyConsumer.link, DISCONNECT_WAIT_MS);
}

/*
 * Start-up: read what to consume and for whom, and take the queue's slot;
 * exits (code 0) if the subscription is gone or another consumer has the
 * queue.  The worker's own statements never see a search_path of anyone's
 * choosing; the callbacks get the one it started with.
 */
static void
consumer_start(Datum main_arg)
{
	ConsumerSubscriptionRow row;
	bool		found;

	memcpy(&MyConsumer.subscription_id, MyBgworkerEntry->bgw_extra,
		   sizeof(MyConsumer.subscription_id));

	outbox_loop_signals(consumer_sigterm);
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg),
											  InvalidOid, 0);
	pgstat_report_appname("outbox consumer");
	MyConsumer.scratch_context = outbox_loop_scratch("outbox consumer scratch");

	MyConsumer.callback_search_path =
		MemoryContextStrdup(TopMemoryContext,
							GetConfigOption("search_path", false, false));
	SetConfigOption("search_path", OUTBOX_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);

	/* what to consume, for whom */
	outbox_xact_begin(InvalidOid);
	found = consumer_load_subscription(&row);
	if (found)
	{
		MyConsumer.queue_name = MemoryContextStrdup(TopMemoryContext, row.queue_name);
		MyConsumer.destination = MemoryContextStrdup(TopMemoryContext, row.destination);
		MyConsumer.run_as = row.run_as;
	}
	outbox_xact_commit();
	if (!found)
		proc_exit(0);			/* unsubscribed meanwhile */
	if (outbox_slot_acquire_consumer(MyConsumer.queue_name,
									 MyConsumer.subscription_id,
									 row.run_as) == NULL)
		proc_exit(0);			/* another consumer has this queue */
	outbox_worker_state_init(&MyConsumer.machine, "consumer", consumer_next);

	MyConsumer.who = MemoryContextStrdup(TopMemoryContext,
									   psprintf("outbox consumer of queue \"%s\"",
												MyConsumer.queue_name));
	MyConsumer.failed_what = MemoryContextStrdup(TopMemoryContext,
											   psprintf("%s failed", MyConsumer.who));
	MyConsumer.dlq = MemoryContextStrdup(TopMemoryContext,
									   psprintf("DLQ.%s", MyConsumer.queue_name));
	MyConsumer.route = CONSUMER_ROUTE_AS_GIVEN;
	snprintf(MyConsumer.main_sub_id, sizeof(MyConsumer.main_sub_id),
			 "outbox-%s", MyConsumer.queue_name);
	snprintf(MyConsumer.dlq_sub_id, sizeof(MyConsumer.dlq_sub_id),
			 "outbox-DLQ.%s", MyConsumer.queue_name);
	MyConsumer.watchdog_timeout = RegisterTimeout(USER_TIMEOUT, shutdown_watchdog);
	outbox_link_init(&MyConsumer.link, MyConsumer.who, &MyConsumer.machine,
					 consumer_settings);
	MyConsumer.last_activity_ms = outbox_monotonic_ms();
	ereport(LOG,
			(errmsg("outbox consumer of queue \"%s\" started for \"%s\"",
					MyConsumer.queue_name, MyConsumer.destination)));
}

/*
 * Entry point of a consumer: bgw_main_arg is the database, bgw_extra the
 * subscription id.
 */
void
outbox_consumer_main(Datum main_arg)
{
	consumer_start(main_arg);

	while (!consumer_shutdown_requested && !MyConsumer.stop)
	{
		/*
		 * The turn starts in the emptied scratch context; SIGHUP: new
		 * broker or queue settings mean a new connection and subscription
		 */
		if (outbox_loop_top() && outbox_link_reload(&MyConsumer.link))
			consumer_settings_changed();

		PG_TRY();
		{
			consumer_step();
		}
		PG_CATCH();
		{
			consumer_failed();
		}
		PG_END_TRY();
	}

	stop_politely();
	ereport(LOG,
			(errmsg("outbox consumer of queue \"%s\" stopped%s",
					MyConsumer.queue_name,
					MyConsumer.stop ? ": its subscription is gone" : "")));
	proc_exit(0);
}
