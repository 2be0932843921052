/*-------------------------------------------------------------------------
 *
 * consumer_decide.h
 *	  The consumer's decisions, as plain functions of their inputs.
 *
 * What the consumer worker decides, apart from what it does: when a batch's
 * transaction must end, which route to subscribe by after a refusal, when
 * to try again after which failure, and what becomes of a delivery by how
 * its callback ended.  None of these files includes PostgreSQL or a socket
 * header; the time is always passed in.  They are unit-tested, broker-less,
 * in test/stomp/test_consumer_decide.c.
 *
 * src/decide/consumer_decide.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSUMER_DECIDE_H
#define CONSUMER_DECIDE_H

#include <stdbool.h>
#include <stdint.h>

#include "stomp/stomp_conn.h"

/* in consumer_batch_end.c: when a batch's transaction must end */

/* what ends a batch's transaction, or not */
typedef enum ConsumerBatchEnd
{
	CONSUMER_BATCH_GOES_ON,		/* take the next delivery */
	CONSUMER_BATCH_END_ALL_TAKEN,	/* every delivery was taken */
	CONSUMER_BATCH_END_SHUTDOWN,	/* SIGTERM: finish, leave the rest */
	CONSUMER_BATCH_END_TIME,	/* ran long enough: commit and acknowledge */
	CONSUMER_BATCH_END_BYTES,	/* took enough bytes: commit and free them */
	CONSUMER_BATCH_END_HELD		/* a message taken, or the next, would be
								 * held past hold_ms: commit now */
} ConsumerBatchEnd;

/* the bounds of one transaction */
typedef struct ConsumerBatchLimits
{
	int64_t		interval_ms;	/* commit at least this often */
	uint64_t	max_bytes;		/* commit once this much was taken */
	int64_t		hold_ms;		/* longest a delivery may wait for its ACK
								 * or NACK; 0: no bound */
	int64_t		callback_ms;	/* longest a callback may run (its cancel
								 * bound) */
} ConsumerBatchLimits;

/* where a batch's transaction stands */
typedef struct ConsumerBatchProgress
{
	int			taken;			/* deliveries handled in this transaction */
	int			available;		/* deliveries it could take in all */
	int64_t		started_ms;		/* when it began */
	uint64_t	bytes;			/* bodies and headers of those taken */
	bool		shutdown;		/* SIGTERM was received */
	int64_t		first_held_ms;	/* when the first one taken was delivered */
	int64_t		next_held_ms;	/* when the next one was delivered */
} ConsumerBatchProgress;

extern ConsumerBatchEnd consumer_batch_end(const ConsumerBatchLimits *limits,
										   const ConsumerBatchProgress *progress,
										   int64_t now_ms);
extern const char *consumer_batch_end_name(ConsumerBatchEnd end);
extern bool consumer_must_give_back(const ConsumerBatchLimits *limits,
									int64_t held_ms, int64_t now_ms);

/* in consumer_given_back.c: the messages given back, unrun, to the broker */

/* how many given-back messages are remembered (the oldest are forgotten) */
#define CONSUMER_GIVEN_BACK_MAX		2048
/* longest id remembered (longer ones count their return as an attempt) */
#define CONSUMER_GIVEN_BACK_ID_MAX	256

/* the ids of messages given back unrun, and how they had been delivered */
typedef struct ConsumerGivenBack
{
	char	   *ids[CONSUMER_GIVEN_BACK_MAX];	/* malloc'd; NULL: free */
	size_t		id_lens[CONSUMER_GIVEN_BACK_MAX];
	bool		redelivered[CONSUMER_GIVEN_BACK_MAX];
	int			next;			/* the slot written next */
} ConsumerGivenBack;

extern bool consumer_given_back_remember(ConsumerGivenBack *given,
										 const char *id, size_t id_len,
										 bool redelivered);
extern bool consumer_given_back_recall(ConsumerGivenBack *given,
									   const char *id, size_t id_len,
									   bool *redelivered);

/* in consumer_route.c: which route a subscription takes */

/* how a destination is subscribed to */
typedef enum ConsumerRoute
{
	CONSUMER_ROUTE_AS_GIVEN,	/* the destination itself, which SUBSCRIBE
								 * declares (or /amq/queue/, which it never
								 * does) */
	CONSUMER_ROUTE_EXISTING_QUEUE	/* a /queue/X declared by someone else,
									 * taken as /amq/queue/X */
} ConsumerRoute;

/* what a refused SUBSCRIBE leads to */
typedef struct ConsumerRouteChoice
{
	ConsumerRoute route;		/* the route from now on */
	bool		changed;		/* not the route it was refused on */
	bool		at_once;		/* subscribe again now, without backing off */
} ConsumerRouteChoice;

extern ConsumerRouteChoice consumer_choose_route(const char *destination,
												 ConsumerRoute current,
												 StompRefusal refusal);
extern bool consumer_dead_letters_by_send(const char *destination,
										  ConsumerRoute route);

/* in consumer_retry.c: when to try again, after which failure */

/* what failed (a login that failed is the broker link's: worker_link.c) */
typedef enum ConsumerFailure
{
	CONSUMER_FAILED_SUBSCRIBE,	/* a broker refused the SUBSCRIBE */
	CONSUMER_FAILED_STEP,		/* an error outside the messages */
	CONSUMER_FAILED_DEAD_LETTER,	/* a message to dead-letter, no DLQ */
	CONSUMER_FAILED_UNUSABLE,	/* run_as, or its right to the callback, gone */
	CONSUMER_FAILED_DLQ_DECLARE /* the DLQ could not be declared */
} ConsumerFailure;

/* what a failure leads to */
typedef struct ConsumerRetryPlan
{
	bool		counted;		/* a failure of schedule "kind": the next try
								 * after stomp_retry_failed() */
	StompFailure kind;
	int64_t		not_before_ms;	/* and not before this; 0: no such bound */
} ConsumerRetryPlan;

/* how often an unusable subscription is looked at again */
#define CONSUMER_IDLE_CHECK_MS		10000

extern ConsumerRetryPlan consumer_retry_plan(ConsumerFailure failure,
											 int64_t now_ms,
											 int64_t dlq_retry_at_ms);

/* in consumer_delivery.c: what becomes of a delivery */

/* how the message's subtransaction ended */
typedef enum ConsumerCallbackEnd
{
	CONSUMER_CALLBACK_KEPT,		/* returned true or void */
	CONSUMER_CALLBACK_DUPLICATE,	/* already in outbox.received */
	CONSUMER_CALLBACK_REFUSED,	/* returned false or NULL */
	CONSUMER_CALLBACK_FAILED,	/* raised an error (with its SQLSTATE) */
	CONSUMER_CALLBACK_NO_ID,	/* no id to receive it by */
	CONSUMER_CALLBACK_ID_UNREADABLE,	/* an id with no form in the database */
	CONSUMER_CALLBACK_HEADERS_UNREAD	/* headers past what the decoder reads */
} ConsumerCallbackEnd;

/* what becomes of a message after its transaction */
typedef enum ConsumerOutcome
{
	CONSUMER_OUTCOME_NONE,		/* not processed: left to the broker */
	CONSUMER_OUTCOME_ACK,		/* processed, or a duplicate */
	CONSUMER_OUTCOME_DEAD,		/* to the DLQ */
	CONSUMER_OUTCOME_REQUEUE	/* NACK with requeue, to be tried again */
} ConsumerOutcome;

/* what is sent to the broker for it, after the COMMIT */
typedef enum ConsumerAction
{
	CONSUMER_ACTION_LEAVE,		/* nothing: the broker delivers it again */
	CONSUMER_ACTION_ACK,
	CONSUMER_ACTION_NACK_DEAD,	/* NACK requeue:false: the queue's DLQ */
	CONSUMER_ACTION_NACK_REQUEUE,
	CONSUMER_ACTION_SEND_TO_DLQ /* SEND a copy to the DLQ, then ACK */
} ConsumerAction;

/* what a failed COMMIT leads to */
typedef enum ConsumerCommitFailure
{
	CONSUMER_COMMIT_RAISE,		/* the database's trouble: back off */
	CONSUMER_COMMIT_ONE_BY_ONE, /* again, one message per transaction */
	CONSUMER_COMMIT_DEAD_LETTER /* the one message is the culprit */
} ConsumerCommitFailure;

extern bool consumer_sqlstate_transient(const char *sqlstate);
extern ConsumerOutcome consumer_delivery_outcome(ConsumerCallbackEnd end,
												 const char *sqlstate,
												 bool redelivered);
extern ConsumerAction consumer_delivery_action(ConsumerOutcome outcome,
											   bool dlq_ready,
											   bool dead_letter_by_send);
extern ConsumerCommitFailure consumer_commit_failure(const char *sqlstate,
													 int taken);

#endif							/* CONSUMER_DECIDE_H */
