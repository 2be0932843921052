/*-------------------------------------------------------------------------
 *
 * consumer_batch.c
 *		  A batch of delivered messages: run in transactions of the
 *		  subscribing role, then acknowledged.
 *
 * The messages held (consumer_held.c: those the broker delivered, at most
 * its prefetch-count, at most CONSUMER_BATCH_MAX and about
 * CONSUMER_HELD_MAX_BYTES) are run in transactions
 * of the subscribing role, each message in a subtransaction of its own
 * (consumer_callback.c).  A transaction ends (consumer_batch_end(), in
 * src/decide/consumer_batch_end.c) when every message was taken, on
 * SIGTERM, once it has run for COMMIT_INTERVAL_MS, or once the messages
 * taken hold BATCH_MAX_BYTES; then it is committed and its messages are
 * acknowledged, and the next transaction takes the rest.
 *
 * When to commit and acknowledge: RabbitMQ closes the channel of a
 * delivery left unacknowledged for consumer_timeout (30 minutes by
 * default).  A processed message is acknowledged at most about a second
 * plus one callback after it was processed, whatever the batch size.  One
 * commit per message would cost a WAL flush per message; one per second
 * costs nothing.  What remains is the time a message waits behind the
 * others the broker handed over: up to prefetch-count times the slowest
 * callback (each is cancelled after five minutes at most).  That wait is
 * bounded by outbox.consumer_hold_timeout whatever the callbacks do
 * (consumer_batch_end.c): a transaction ends before a callback could take
 * one of its messages past the bound, and the deliveries not yet run that
 * it would take past are given back to the broker unrun (NACK with
 * requeue, at once, before the next transaction).  RabbitMQ puts them
 * back at the head of the queue and delivers them again, to this consumer
 * or another; they were never run, so nothing is lost or done twice, and
 * their return counts no attempt (consumer_held.c).
 *
 * Acknowledgements are sent only after the COMMIT, always, and only on the
 * connection the messages came on: a crash between the two leaves the
 * message unacknowledged; the broker delivers it again and the INSERT into
 * outbox.received finds it received.  What is sent for each message is
 * consumer_delivery_action()'s decision: ACK, NACK requeue:false (RabbitMQ
 * routes it to the DLQ by the queue's x-dead-letter-*), NACK with requeue,
 * or, on a queue SUBSCRIBE did not declare, a copy SENT to the DLQ
 * (consumer_dlq.c) and then ACK.  No message is dropped: while the DLQ is
 * not declared, a message to dead-letter is left unacknowledged, the
 * connection dropped (so the broker keeps it, at the head of the queue)
 * and the consumer backs off until the DLQ's next try.
 *
 * The transaction belongs to the subscribing role (run_as) from its first
 * action to its end: the user id is set to run_as with
 * SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION right after
 * StartTransactionCommand (outbox_xact_begin), and the worker's own is
 * restored after the COMMIT.  So whatever runs at commit runs as run_as,
 * and in a security-restricted operation PostgreSQL itself refuses SET
 * ROLE, SET SESSION AUTHORIZATION, set_config('role'), WITH HOLD cursors,
 * temporary tables and queueing a deferred trigger: nothing can be left
 * for later.  Before each transaction the subscription is read again: if it
 * is gone or changed the batch stops (nothing acknowledged) and so does the
 * worker; if run_as may no longer run the callback, the transaction errors
 * out.
 *
 * Error policy: an error of a message is that message's (consumer_callback.c).
 * An error before the COMMIT (the subscription unreadable, run_as gone)
 * propagates to the main loop.  A COMMIT that fails (consumer_commit_failure()):
 * for a transient reason, propagates (the consumer backs off, the broker
 * delivers the messages again); otherwise a COMMIT of several messages is
 * tried again one message per transaction, and a single message whose
 * COMMIT fails is dead-lettered.  A connection lost while acknowledging
 * ends the acknowledging: the broker delivers the rest again.
 *
 * Memory: the deliveries are allocated in the caller's (scratch) context;
 * every transaction goes back to it after its COMMIT or abort; the frames
 * are freed at the end of the batch, whatever happens.
 *
 * src/consumer_batch.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "consumer_internal.h"

/* a transaction commits, and its messages are acknowledged, after this */
#define COMMIT_INTERVAL_MS		1000
/* ... or once the messages it took hold this much (all a batch can hold) */
#define BATCH_MAX_BYTES			CONSUMER_HELD_MAX_BYTES
/* how often the connection's I/O (heart-beats) runs during a batch */
#define BATCH_IO_INTERVAL_MS	500
/* longest the ACKs written get to leave before a connection is dropped */
#define DLQ_FLUSH_MS			100

/* How a batch's transaction ended */
typedef enum BatchResult
{
	BATCH_DONE,
	BATCH_RETRY_SOLO,			/* commit failed: one message at a time */
	BATCH_STOP					/* the subscription is gone or changed */
} BatchResult;

/*
 * Take the frames held into deliveries (allocated in the current context),
 * which own them from now on; returns how many.
 */
static int
take_held(ConsumerDelivery **deliveries)
{
	int			n = MyConsumer.nheld;
	ConsumerDelivery *ds = palloc0(sizeof(ConsumerDelivery) * n);
	int			i;

	for (i = 0; i < n; i++)
	{
		ConsumerDelivery *d = &ds[i];

		d->frame = MyConsumer.held[i];
		d->held_ms = MyConsumer.held_at_ms[i];
		d->ack_id = stomp_frame_get_header(d->frame, "ack");
		d->msg_id = NULL;
		d->id_read = false;
		d->context = CurrentMemoryContext;
		d->redelivered = consumer_held_redelivered(d->frame);
		d->bytes = stomp_frame_bytes(d->frame);
		d->outcome = CONSUMER_OUTCOME_NONE;
	}
	/* the frames' bytes still count against the held list's room */
	MyConsumer.batch_bytes = MyConsumer.held_bytes;
	MyConsumer.held_bytes = 0;
	MyConsumer.nheld = 0;
	*deliveries = ds;
	return n;
}

/*
 * The bounds of a batch's transactions, and of a message's wait: the
 * settings of now.
 */
static ConsumerBatchLimits
batch_limits(void)
{
	ConsumerBatchLimits limits;

	limits.interval_ms = COMMIT_INTERVAL_MS;
	limits.max_bytes = BATCH_MAX_BYTES;
	limits.hold_ms = outbox_consumer_hold_timeout;
	limits.callback_ms = consumer_callback_timeout_ms();
	return limits;
}

/*
 * In the batch's transaction: handle deliveries until consumer_batch_end()
 * says the transaction must end; returns how many it took.  The
 * connection's heart-beats go on meanwhile.
 */
static int
run_deliveries(ConsumerDelivery *deliveries, int n)
{
	ConsumerBatchLimits limits = batch_limits();
	ConsumerBatchProgress progress;
	int64		last_io;

	progress.taken = 0;
	progress.available = n;
	progress.started_ms = outbox_monotonic_ms();
	progress.bytes = 0;
	progress.first_held_ms = deliveries[0].held_ms;
	last_io = progress.started_ms;
	for (;;)
	{
		ConsumerDelivery *d;

		progress.shutdown = consumer_shutdown_requested;
		if (progress.taken < n)
			progress.next_held_ms = deliveries[progress.taken].held_ms;
		if (consumer_batch_end(&limits, &progress, outbox_monotonic_ms()) !=
			CONSUMER_BATCH_GOES_ON)
			break;
		d = &deliveries[progress.taken];
		if (d->outcome == CONSUMER_OUTCOME_NONE)
			consumer_handle_message(d);
		progress.bytes += d->bytes;
		progress.taken++;
		/* keep the heart-beats going through a long batch */
		if (outbox_monotonic_ms() - last_io >= BATCH_IO_INTERVAL_MS)
		{
			stomp_conn_process(MyConsumer.link.broker.conn, outbox_monotonic_ms());
			last_io = outbox_monotonic_ms();
		}
	}
	return progress.taken;
}

/*
 * In run_batch()'s PG_CATCH, the COMMIT of "count" deliveries having
 * failed: what consumer_commit_failure() says (re-throw, one by one, or
 * dead-letter the one).
 */
static BatchResult
commit_failed(ConsumerDelivery *deliveries, int count)
{
	ErrorData  *edata;
	BatchResult result = BATCH_DONE;

	MemoryContextSwitchTo(MyConsumer.scratch_context);
	edata = CopyErrorData();
	switch (consumer_commit_failure(unpack_sql_state(edata->sqlerrcode), count))
	{
		case CONSUMER_COMMIT_RAISE:
			PG_RE_THROW();
			break;
		case CONSUMER_COMMIT_ONE_BY_ONE:
			FlushErrorState();
			outbox_xact_abort();
			result = BATCH_RETRY_SOLO;
			break;
		case CONSUMER_COMMIT_DEAD_LETTER:
			FlushErrorState();
			outbox_xact_abort();
			deliveries[0].outcome = CONSUMER_OUTCOME_DEAD;
			ereport(WARNING,
					(errmsg("outbox consumer of queue \"%s\": could not commit message %s, dead-lettered",
							MyConsumer.queue_name,
							deliveries[0].msg_id ? deliveries[0].msg_id : "?"),
					 errdetail("%s", edata->message)));
			outbox_slot_set_error(edata->message);
			break;
	}
	FreeErrorData(edata);
	return result;
}

/*
 * One transaction over the deliveries, as run_as: read the subscription,
 * each message in its subtransaction, COMMIT when consumer_batch_end()
 * says so.  *covered is set to how many of them the transaction took;
 * their outcomes are set, nothing is acknowledged here.
 */
static BatchResult
run_batch(ConsumerDelivery *deliveries, int n, int *covered)
{
	ConsumerSubscriptionRow row;
	volatile bool committing = false;
	volatile BatchResult result = BATCH_DONE;
	volatile int count = 0;

	*covered = 0;
	outbox_xact_begin(MyConsumer.run_as);
	pgstat_report_activity(STATE_RUNNING, "consuming");

	if (!consumer_load_subscription(&row) ||
		!consumer_is_own_subscription(&row))
	{
		outbox_xact_abort();
		return BATCH_STOP;
	}
	consumer_check_run_as(&row);
	consumer_batch_begins(row.callback);

	enable_timeout_every(MyConsumer.watchdog_timeout,
						 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000),
						 1000);
	PG_TRY();
	{
		count = run_deliveries(deliveries, n);
		committing = true;
		outbox_xact_commit();
	}
	PG_CATCH();
	{
		disable_timeout(MyConsumer.watchdog_timeout, false);
		if (!committing)
			PG_RE_THROW();
		result = commit_failed(deliveries, count);
	}
	PG_END_TRY();
	disable_timeout(MyConsumer.watchdog_timeout, false);
	*covered = count;
	return result;
}

/*
 * Count the deliveries whose effect was committed, for outbox.status: at
 * the COMMIT, whether or not their ACK reaches the broker (if not, they
 * come back as duplicates, not counted again).  The dead-lettered are
 * counted by acknowledge(), once the NACK or the copy is sent: a message
 * left in the queue is not dead-lettered, and is tried again.
 */
static void
count_processed(ConsumerDelivery *deliveries, int n)
{
	uint64		processed = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		ConsumerDelivery *d = &deliveries[i];

		if (d->outcome == CONSUMER_OUTCOME_ACK && !d->duplicate)
			processed++;
	}
	outbox_slot_count(OUTBOX_COUNT_PROCESSED, processed);
}

/*
 * Send the ACK or NACK of "action" for a delivery; while the output buffer
 * is full, let the socket drain it (for CONSUMER_SUBSCRIBE_TIMEOUT_MS at
 * most: a connection that long unable to write is as good as lost).
 * Returns false if the frame could not be sent.
 */
static bool
send_action(ConsumerDelivery *d, ConsumerAction action)
{
	StompConn  *conn = MyConsumer.link.broker.conn;
	int64		deadline = outbox_monotonic_ms() + CONSUMER_SUBSCRIBE_TIMEOUT_MS;

	for (;;)
	{
		StompResult rc = STOMP_OK;

		switch (action)
		{
			case CONSUMER_ACTION_LEAVE:
			case CONSUMER_ACTION_SEND_TO_DLQ:
				rc = STOMP_OK;
				break;
			case CONSUMER_ACTION_ACK:
				rc = stomp_conn_ack(conn, d->ack_id, NULL);
				break;
			case CONSUMER_ACTION_NACK_DEAD:
				rc = stomp_conn_nack(conn, d->ack_id, false, NULL);
				break;
			case CONSUMER_ACTION_NACK_REQUEUE:
				rc = stomp_conn_nack(conn, d->ack_id, true, NULL);
				break;
		}
		if (rc != STOMP_ERR_FULL)
		{
			if (rc == STOMP_ERR_STATE)
				return false;
			if (action != CONSUMER_ACTION_LEAVE &&
				action != CONSUMER_ACTION_SEND_TO_DLQ)
				MyConsumer.session_settled++;
			return true;
		}
		if (!outbox_broker_make_room(&MyConsumer.link.broker, deadline))
			return false;
	}
}

/*
 * A message to dead-letter could not be (no DLQ, or the broker refused its
 * copy, for the reason why): give the ACKs already queued a moment to
 * leave (DLQ_FLUSH_MS at most), drop the connection (the broker keeps the
 * message, at the head of the queue) and back off, at least until the
 * DLQ's next try (consumer_retry_plan()), rather than run its callback
 * again at once, over and over.
 */
static void
wait_for_dlq(const char *why)
{
	outbox_broker_flush(&MyConsumer.link.broker,
						outbox_monotonic_ms() + DLQ_FLUSH_MS);
	consumer_disconnect();
	consumer_back_off(CONSUMER_FAILED_DEAD_LETTER,
					  "could not dead-letter a message, which waits in the queue",
					  why);
}

/*
 * After the COMMIT: ACK, NACK, requeue or SEND to the DLQ each message, as
 * consumer_delivery_action() says, on the connection it came from only.
 */
static void
acknowledge(ConsumerDelivery *deliveries, int n, uint64 batch_session)
{
	bool		by_send = consumer_dead_letters_by_send(MyConsumer.destination,
														MyConsumer.route);
	bool		dlq_missing = false;
	int			i;

	count_processed(deliveries, n);
	if (!MyConsumer.link.connected || MyConsumer.link.session != batch_session ||
		stomp_conn_state(MyConsumer.link.broker.conn) != STOMP_CONN_OPEN)
		return;					/* the broker delivers them again */

	for (i = 0; i < n; i++)
	{
		ConsumerDelivery *d = &deliveries[i];
		ConsumerAction action = consumer_delivery_action(d->outcome,
														 MyConsumer.dlq_ready,
														 by_send);

		/* no DLQ: left to the broker, which gets it back with the connection */
		if (d->outcome == CONSUMER_OUTCOME_DEAD && action == CONSUMER_ACTION_LEAVE)
		{
			d->outcome = CONSUMER_OUTCOME_NONE;
			dlq_missing = true;
		}
		if (action == CONSUMER_ACTION_SEND_TO_DLQ)
		{
			char	   *why;

			if (!consumer_send_to_dlq(d->frame, &why))
			{
				/*
				 * The broker gives back what was not acknowledged; tried
				 * again, with the DLQ declared again, on the DLQ's schedule
				 */
				MyConsumer.dlq_retry_at_ms =
					consumer_retry_plan(CONSUMER_FAILED_DLQ_DECLARE,
										outbox_monotonic_ms(), 0).not_before_ms;
				wait_for_dlq(why);
				return;
			}
			outbox_slot_count(OUTBOX_COUNT_DEAD_LETTERED, 1);
			d->outcome = CONSUMER_OUTCOME_ACK;
			action = CONSUMER_ACTION_ACK;
		}
		if (!send_action(d, action))
		{
			/* what was not acknowledged comes back with a new connection */
			consumer_session_lost();
			return;
		}
		if (action == CONSUMER_ACTION_NACK_DEAD)
			outbox_slot_count(OUTBOX_COUNT_DEAD_LETTERED, 1);
	}
	/* write them now, without waiting */
	stomp_conn_process(MyConsumer.link.broker.conn, outbox_monotonic_ms());
	if (dlq_missing)
		wait_for_dlq(MyConsumer.dlq_problem);
}

/*
 * Give back to the broker, unrun, the first of the deliveries that could
 * no longer run within the hold bound (consumer_must_give_back()), oldest
 * first; returns how many were given back.  Stops at the first that may
 * run, and if the connection is lost (the broker gets the rest back).
 */
static int
give_back_stale(ConsumerDelivery *deliveries, int n)
{
	ConsumerBatchLimits limits = batch_limits();
	int64		now = outbox_monotonic_ms();
	int			given = 0;

	while (given < n &&
		   consumer_must_give_back(&limits, deliveries[given].held_ms, now))
	{
		ConsumerDelivery *d = &deliveries[given];

		consumer_remember_given_back(d->frame, d->redelivered);
		if (!send_action(d, CONSUMER_ACTION_NACK_REQUEUE))
		{
			consumer_session_lost();
			break;
		}
		given++;
	}
	if (given > 0)
	{
		stomp_conn_process(MyConsumer.link.broker.conn, outbox_monotonic_ms());
		ereport(LOG,
				(errmsg_plural("outbox consumer of queue \"%s\" gave %d message back to the broker unrun",
							   "outbox consumer of queue \"%s\" gave %d messages back to the broker unrun",
							   given, MyConsumer.queue_name, given),
				 errdetail_plural("It was held for %lld ms, and its callback could have taken it past outbox.consumer_hold_timeout (%d ms).",
								  "They were held for %lld ms, and their callbacks could have taken them past outbox.consumer_hold_timeout (%d ms).",
								  given,
								  (long long) (now - deliveries[0].held_ms),
								  outbox_consumer_hold_timeout)));
	}
	return given;
}

/*
 * Run deliveries[done..done+covered) again one message per transaction,
 * after their COMMIT together failed; returns BATCH_STOP if the
 * subscription went meanwhile.
 */
static BatchResult
run_one_by_one(ConsumerDelivery *deliveries, int covered)
{
	int			i;

	/*
	 * What the rolled-back transaction decided is void for all of them,
	 * those SIGTERM leaves untried too: they are left to the broker, never
	 * acknowledged on the strength of a COMMIT that failed
	 */
	for (i = 0; i < covered; i++)
	{
		deliveries[i].outcome = CONSUMER_OUTCOME_NONE;
		deliveries[i].duplicate = false;
	}
	for (i = 0; i < covered && !consumer_shutdown_requested; i++)
	{
		int			one;

		/* held too long by now: given back unrun (left alone after) */
		if (give_back_stale(&deliveries[i], 1) == 1)
			continue;
		if (!MyConsumer.link.connected)
			return BATCH_DONE;	/* the broker delivers them again */
		if (run_batch(&deliveries[i], 1, &one) == BATCH_STOP)
			return BATCH_STOP;
	}
	return BATCH_DONE;
}

/*
 * After a transaction's messages were acknowledged: take what the broker
 * delivered meanwhile into the held list, so that it is stamped with the
 * time of its arrival, not of the next batch; a lost connection is
 * dropped (the broker delivers it all again).
 */
static void
collect_meanwhile(uint64 batch_session)
{
	if (!MyConsumer.link.connected || MyConsumer.link.session != batch_session)
		return;
	if (!consumer_collect_messages())
		consumer_session_lost();
}

/*
 * Free the frames of deliveries that are done with (acknowledged, or given
 * back), and give their bytes back to the held list's room: the connection
 * then reads on after each transaction, not after the whole batch.  A
 * connection left paused for long stops RabbitMQ, blocked writing to it,
 * from reading our heart-beats, and it drops the connection.
 */
static void
release_deliveries(ConsumerDelivery *deliveries, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		ConsumerDelivery *d = &deliveries[i];

		if (d->frame == NULL)
			continue;
		stomp_frame_free(d->frame);
		d->frame = NULL;
		d->ack_id = NULL;
		MyConsumer.batch_bytes -= Min(d->bytes, MyConsumer.batch_bytes);
	}
}

/*
 * Process the held messages, in as many transactions as
 * consumer_batch_end() makes (one message per transaction for those whose
 * COMMIT failed together), acknowledging each transaction's messages after
 * its COMMIT, and free them.
 */
void
consumer_process_held(void)
{
	ConsumerDelivery *deliveries;
	uint64		batch_session = MyConsumer.link.session;
	int			n = take_held(&deliveries);
	int			i;

	PG_TRY();
	{
		int			done = 0;

		/* the connection lost, the broker delivers the rest again */
		while (done < n && !consumer_shutdown_requested && !MyConsumer.stop &&
			   MyConsumer.link.connected && MyConsumer.link.session == batch_session)
		{
			int			covered;
			int			given;
			BatchResult result;

			/* those held too long to run are given back first */
			given = give_back_stale(&deliveries[done], n - done);
			release_deliveries(&deliveries[done], given);
			done += given;
			if (done >= n || !MyConsumer.link.connected ||
				MyConsumer.link.session != batch_session)
				break;
			result = run_batch(&deliveries[done], n - done, &covered);

			if (result == BATCH_RETRY_SOLO)
				result = run_one_by_one(&deliveries[done], covered);
			if (result == BATCH_STOP)
			{
				MyConsumer.stop = true;
				break;
			}
			acknowledge(&deliveries[done], covered, batch_session);
			release_deliveries(&deliveries[done], covered);
			done += covered;
			collect_meanwhile(batch_session);
		}
	}
	PG_FINALLY();
	{
		for (i = 0; i < n; i++)
			stomp_frame_free(deliveries[i].frame);
		MyConsumer.batch_bytes = 0;
	}
	PG_END_TRY();
}
