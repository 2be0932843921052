/*-------------------------------------------------------------------------
 *
 * consumer_runtime.c
 *		  The consumer's connection, backoff and transaction plumbing: what
 *		  the runtime shared by every worker is to take over.
 *
 * Kept together, apart from what the consumer decides and does, so that
 * moving the consumer onto the shared runtime (one broker link with its
 * settings fingerprint, receipts and polite disconnect; one main-loop
 * skeleton with its transaction helpers and error catch) is one step:
 *
 * - the settings that shape the connection and the subscription, and what
 *   a reload that changed them does (a new connection and subscription);
 * - dropping the connection, backing off (consumer_retry.c decides when),
 *   waiting for a receipt, and leaving the broker politely;
 * - a transaction of the worker, as a role of its choosing, that goes back
 *   to the memory context it was started in;
 * - what the main loop does with an error it caught.
 *
 * Error policy: a lost connection is not an error here: the functions say
 * whether what they waited for came; an interrupt while waiting is served
 * (CHECK_FOR_INTERRUPTS).  consumer_recover() ends an error caught by the
 * main loop: it is logged and shown in outbox.status, every transaction is
 * rolled back, the connection dropped (the broker delivers its messages
 * again) and the consumer backs off.
 *
 * Memory: the settings string lives in TopMemoryContext; everything else
 * in the current context.  A transaction ends in the context it was begun
 * in (CommitTransactionCommand leaves TopMemoryContext current).
 *
 * src/consumer_runtime.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "consumer_internal.h"

/* longest wait for a clean DISCONNECT when stopping */
#define DISCONNECT_WAIT_MS		3000

/*
 * The settings that shape the connection and the subscription, as one
 * string, to tell whether a reload changed them.
 */
char *
consumer_current_settings(void)
{
	return psprintf("%s|%s|%d", outbox_broker_settings(),
					outbox_stomp_queue_headers, outbox_exclusive_queue);
}

/*
 * SIGHUP: reread postgresql.conf; new broker or queue settings mean a new
 * connection and subscription.
 */
void
consumer_reload_settings(void)
{
	char	   *settings;

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);

	settings = consumer_current_settings();
	if (strcmp(settings, consumer.broker_settings) != 0)
	{
		if (consumer.broker_ready)
		{
			ereport(LOG,
					(errmsg("outbox consumer of queue \"%s\": settings changed, reconnecting",
							consumer.queue_name)));
			consumer_disconnect();
			outbox_broker_free(&consumer.broker);
			consumer.broker_ready = false;
		}
		stomp_retry_reset(&consumer.retry);
		consumer.backoff_until_ms = 0;
		consumer.dlq_ready = false;
		consumer.dlq_retry_at_ms = 0;
		pfree(consumer.broker_settings);
		consumer.broker_settings = MemoryContextStrdup(TopMemoryContext, settings);
	}
	pfree(settings);
}

/*
 * Drop the connection and what came on it; its pending ACKs go with its
 * output buffer, never to be sent on another connection.
 */
void
consumer_disconnect(void)
{
	consumer_drop_held();
	if (consumer.broker_ready)
		outbox_broker_close(&consumer.broker);
	consumer.connected = false;
	consumer.subscribed = false;
	/* declared again with the next connection, as it may be gone */
	consumer.dlq_ready = false;
}

/*
 * Something failed: schedule the next try (consumer_retry_at() says when),
 * and say so in outbox.status and, now and then, in the log.
 */
void
consumer_back_off(ConsumerFailure failure, const char *what,
				  const char *detail)
{
	int64		now = outbox_monotonic_ms();
	int			failures;

	consumer.backoff_until_ms =
		consumer_retry_at(&consumer.retry, failure, now,
						  (int64) outbox_maximum_backoff * 1000,
						  pg_prng_uint64(&consumer.backoff_prng),
						  consumer.dlq_retry_at_ms);
	failures = consumer_failures_in_a_row(&consumer.retry, failure);
	consumer.recovering = true;
	outbox_worker_transition(&consumer.machine, OUTBOX_STATE_BACKING_OFF, "");
	outbox_slot_set_error(psprintf("%s: %s", what, detail));
	/* the first failure and then every tenth are worth a line in the log */
	if (failures % 10 == 1)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" %s, attempt %d, next in %d ms",
						consumer.queue_name, what, failures,
						(int) (consumer.backoff_until_ms - now)),
				 errdetail("%s", detail)));
}

/*
 * Wait for a receipt on the consumer's connection, keeping the messages
 * that arrive meanwhile (consumer_hold_or_return).  Returns false if the
 * session ended (ERROR, closed) or the deadline passed.
 */
bool
consumer_wait_for_receipt(uint64_t receipt, int64 deadline)
{
	OutboxBroker *b = &consumer.broker;

	for (;;)
	{
		StompEvent	event;

		while (stomp_conn_next_event(b->conn, &event))
		{
			if (event.type == STOMP_EVENT_MESSAGE)
			{
				consumer_hold_or_return(event.frame);
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
		outbox_broker_wait_interruptible(b, deadline);
	}
}

/*
 * Say DISCONNECT on a connection and wait, until "until" at most, for the
 * broker to close it; what arrives meanwhile is dropped (unacknowledged,
 * it goes back to its queue).
 */
void
consumer_say_goodbye(OutboxBroker *b, int64 until)
{
	if (stomp_conn_disconnect(b->conn, outbox_monotonic_ms()) != STOMP_OK)
		return;
	while (stomp_conn_state(b->conn) == STOMP_CONN_CLOSING &&
		   outbox_monotonic_ms() < until)
	{
		StompEvent	event;
		bool		done = false;

		while (stomp_conn_next_event(b->conn, &event))
		{
			done |= (event.type == STOMP_EVENT_CLOSED ||
					 event.type == STOMP_EVENT_ERROR);
			stomp_event_clear(&event);
		}
		if (done)
			break;
		outbox_broker_wait_interruptible(b, until);
	}
}

/*
 * Leave the broker cleanly: UNSUBSCRIBE, DISCONNECT, and a short wait for
 * its receipt.  Unacknowledged messages go back to the queue.
 */
void
consumer_stop_politely(void)
{
	outbox_worker_transition(&consumer.machine, OUTBOX_STATE_STOPPING, NULL);
	consumer_drop_held();
	if (!consumer.connected ||
		stomp_conn_state(consumer.broker.conn) != STOMP_CONN_OPEN)
		return;
	if (consumer.subscribed)
		(void) stomp_conn_unsubscribe(consumer.broker.conn,
									  consumer.main_sub_id, NULL);
	consumer_say_goodbye(&consumer.broker,
						 outbox_monotonic_ms() + DISCONNECT_WAIT_MS);
	outbox_broker_close(&consumer.broker);
	consumer.connected = false;
}

/*
 * Start a transaction of the worker, connected to SPI, with a snapshot.
 * With a valid role, the whole transaction is that role's, in a
 * security-restricted operation (see consumer.c): the context is set first
 * thing in the transaction, since PostgreSQL wants none outside one, and
 * an abort restores the worker's own.
 */
void
consumer_begin_xact(Oid role)
{
	consumer.xact_caller_context = CurrentMemoryContext;
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
 * Commit the transaction of consumer_begin_xact(); what runs at commit
 * runs as its role still.  Then the worker is itself again, in the memory
 * context it was in before the transaction.
 */
void
consumer_commit_xact(void)
{
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	SetUserIdAndSecContext(consumer.worker_userid, 0);
	MemoryContextSwitchTo(consumer.xact_caller_context);
}

/*
 * Roll back the transaction of consumer_begin_xact() after an error was
 * caught; the abort restores the worker's user id.
 */
void
consumer_abort_xact(void)
{
	AbortCurrentTransaction();
	SetUserIdAndSecContext(consumer.worker_userid, 0);
	MemoryContextSwitchTo(consumer.xact_caller_context);
}

/*
 * In the main loop's PG_CATCH: end the error that a turn raised (see the
 * file header).  The saved plans are forgotten, as they may name what is
 * gone.
 */
void
consumer_recover(void)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(consumer.scratch_context);
	edata = CopyErrorData();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	SetUserIdAndSecContext(consumer.worker_userid, 0);
	MemoryContextSwitchTo(consumer.scratch_context);
	consumer_free_plans();
	QueryCancelPending = false;
	ereport(LOG,
			(errmsg("outbox consumer of queue \"%s\" failed: %s",
					consumer.queue_name, edata->message),
			 edata->detail ? errdetail("%s", edata->detail) : 0,
			 errhint("The messages not yet acknowledged will be delivered again.")));
	/* the broker takes the batch back with the connection */
	consumer_disconnect();
	consumer_back_off(CONSUMER_FAILED_STEP, "failed", edata->message);
}
