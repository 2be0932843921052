/*-------------------------------------------------------------------------
 *
 * consumer.c
 *		  The consumer background worker: one per subscription, running its
 *		  callback once per message with an exactly-once effect.
 *
 * The launcher (launcher.c, in the database's publisher) starts one worker
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
 * becomes of a message) are in src/decide/consumer_*.c; the plumbing that
 * the runtime shared by the workers is to take over in consumer_runtime.c.
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
 *   (consumer_recover): the transaction is rolled back, the connection
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
 * (consumer_runtime.c), so nothing is allocated for good after start-up.
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

PGDLLEXPORT void outbox_consumer_main(Datum main_arg);

/* the worker's state (consumer_internal.h) */
ConsumerWorker consumer;

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
	if (!consumer.refusing)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" stopped consuming: %s",
						consumer.queue_name, problem),
				 errdetail("The messages wait in the queue."),
				 errhint("Grant the subscription's role EXECUTE on the callback, or outbox.unsubscribe() the queue.")));
	consumer.refusing = true;
	outbox_worker_transition(&consumer.machine, OUTBOX_STATE_BACKING_OFF, "");
	outbox_slot_set_error(problem);
	consumer.backoff_until_ms =
		consumer_retry_at(&consumer.retry, CONSUMER_FAILED_UNUSABLE,
						  outbox_monotonic_ms(), 0, 0, 0);
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
	consumer_begin_xact(InvalidOid);
	PG_TRY();
	{
		if (!consumer_load_subscription(&row) ||
			!consumer_is_own_subscription(&row))
			result = SUBSCRIPTION_GONE;
		else
			consumer_check_run_as(&row);
		consumer_commit_xact();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(consumer.xact_caller_context);
		edata = CopyErrorData();
		if (edata->elevel > ERROR ||
			(edata->sqlerrcode != ERRCODE_UNDEFINED_OBJECT &&
			 edata->sqlerrcode != ERRCODE_UNDEFINED_FUNCTION &&
			 edata->sqlerrcode != ERRCODE_INSUFFICIENT_PRIVILEGE))
			PG_RE_THROW();
		FlushErrorState();
		consumer_abort_xact();
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
			consumer.stop = true;
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
	int64		now = outbox_monotonic_ms();
	int64		deadline;

	if (consumer.connected && consumer.subscribed)
		return true;
	if (now < consumer.backoff_until_ms)
		return false;

	/* take no message that could not be processed */
	if (!subscription_usable(false))
		return false;
	consumer.refusing = false;

	if (!consumer.broker_ready)
	{
		outbox_broker_init(&consumer.broker);
		consumer.broker_ready = true;
	}
	outbox_worker_transition(&consumer.machine, OUTBOX_STATE_CONNECTING, NULL);
	deadline = now + (int64) consumer.broker.hosts.count * 15000;
	consumer_declare_dlq_if_due(deadline);
	return consumer_connect_and_subscribe(deadline);
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
								   Max(consumer.backoff_until_ms - now, 0),
								   PG_WAIT_EXTENSION);

		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		return;
	}

	/* lost: the held messages go with it, the broker delivers them again */
	if (!consumer_collect_messages())
	{
		consumer_disconnect();
		return;
	}
	if (consumer.nheld > 0)
	{
		consumer_process_held();
		consumer.last_activity_ms = outbox_monotonic_ms();
		return;
	}

	/* idle: now and then, check that the subscription is still wanted */
	if (now - consumer.last_activity_ms >= CONSUMER_IDLE_CHECK_MS)
	{
		consumer.last_activity_ms = now;
		if (!subscription_usable(true))
			return;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	outbox_broker_wait_interruptible(&consumer.broker,
									 consumer.last_activity_ms +
									 CONSUMER_IDLE_CHECK_MS);
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

	memcpy(&consumer.subscription_id, MyBgworkerEntry->bgw_extra,
		   sizeof(consumer.subscription_id));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, consumer_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg),
											  InvalidOid, 0);
	pgstat_report_appname("outbox consumer");

	consumer.worker_userid = GetUserId();
	consumer.callback_search_path =
		MemoryContextStrdup(TopMemoryContext,
							GetConfigOption("search_path", false, false));
	SetConfigOption("search_path", OUTBOX_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);

	/* what to consume, for whom */
	consumer_begin_xact(InvalidOid);
	found = consumer_load_subscription(&row);
	if (found)
	{
		consumer.queue_name = MemoryContextStrdup(TopMemoryContext, row.queue_name);
		consumer.destination = MemoryContextStrdup(TopMemoryContext, row.destination);
		consumer.run_as = row.run_as;
	}
	consumer_commit_xact();
	if (!found)
		proc_exit(0);			/* unsubscribed meanwhile */
	if (outbox_slot_acquire_consumer(consumer.queue_name,
									 consumer.subscription_id,
									 row.run_as) == NULL)
		proc_exit(0);			/* another consumer has this queue */
	outbox_worker_state_init(&consumer.machine, "consumer", consumer_next);

	consumer.dlq = MemoryContextStrdup(TopMemoryContext,
									   psprintf("DLQ.%s", consumer.queue_name));
	consumer.route = CONSUMER_ROUTE_AS_GIVEN;
	snprintf(consumer.main_sub_id, sizeof(consumer.main_sub_id),
			 "outbox-%s", consumer.queue_name);
	snprintf(consumer.dlq_sub_id, sizeof(consumer.dlq_sub_id),
			 "outbox-DLQ.%s", consumer.queue_name);
	consumer.watchdog_timeout = RegisterTimeout(USER_TIMEOUT, shutdown_watchdog);
	pg_prng_seed(&consumer.backoff_prng,
				 (uint64) MyProcPid ^ (uint64) GetCurrentTimestamp());
	consumer.scratch_context = AllocSetContextCreate(TopMemoryContext,
													 "outbox consumer scratch",
													 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(consumer.scratch_context);
	consumer.broker_settings = MemoryContextStrdup(TopMemoryContext,
												   consumer_current_settings());
	consumer.last_activity_ms = outbox_monotonic_ms();
	ereport(LOG,
			(errmsg("outbox consumer of queue \"%s\" started for \"%s\"",
					consumer.queue_name, consumer.destination)));
}

/*
 * Entry point of a consumer: bgw_main_arg is the database, bgw_extra the
 * subscription id.
 */
void
outbox_consumer_main(Datum main_arg)
{
	consumer_start(main_arg);

	while (!consumer_shutdown_requested && !consumer.stop)
	{
		/* a turn, and each transaction in it, ends where it started */
		Assert(CurrentMemoryContext == consumer.scratch_context);
		MemoryContextReset(consumer.scratch_context);

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			consumer_reload_settings();

		PG_TRY();
		{
			consumer_step();
		}
		PG_CATCH();
		{
			consumer_recover();
		}
		PG_END_TRY();
	}

	consumer_stop_politely();
	ereport(LOG,
			(errmsg("outbox consumer of queue \"%s\" stopped%s",
					consumer.queue_name,
					consumer.stop ? ": its subscription is gone" : "")));
	proc_exit(0);
}
