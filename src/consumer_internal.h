/*-------------------------------------------------------------------------
 *
 * consumer_internal.h
 *	  Declarations shared by the files of the consumer worker.
 *
 * The consumer is one worker per subscription, in these files:
 *
 *	consumer.c				the worker: entry point, state machine, main loop
 *	consumer_subscribe.c	its session on the broker link: SUBSCRIBE, the
 *							route, the queue's headers, receipts, backoff
 *	consumer_dlq.c			the dead-letter queue: declare it, SEND to it
 *	consumer_held.c			messages delivered, not yet in a batch
 *	consumer_batch.c		a batch in one transaction, then acknowledged
 *	consumer_callback.c		one message: the callback, as the subscriber
 *	consumer_tables.c		the worker's own statements on the outbox tables
 *
 * Its decisions are in src/decide/consumer_*.c, the mapping of a frame to
 * what the callback sees in wire_inbound.c; the broker link, the main-loop
 * skeleton and the transactions are the runtime's (worker_link.c,
 * worker_loop.c).  Nothing here is used outside
 * the consumer.
 *
 * src/consumer_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef CONSUMER_INTERNAL_H
#define CONSUMER_INTERNAL_H

#include <signal.h>

#include "utils/timeout.h"

#include "outbox.h"
#include "decide/consumer_decide.h"

/* most messages per batch */
#define CONSUMER_BATCH_MAX			1000
/* room for messages that arrive while a receipt is awaited */
#define CONSUMER_HELD_MAX			(CONSUMER_BATCH_MAX + 64)
/*
 * Most bytes of messages held and in the batch being run, together (one
 * message larger than that is taken alone): what a batch's transaction
 * takes at most (consumer_batch.c), so holding more would gain nothing
 */
#define CONSUMER_HELD_MAX_BYTES		((uint64) 64 * 1024 * 1024)
/* longest wait for a SUBSCRIBE's receipt (or a dead-lettered copy's) */
#define CONSUMER_SUBSCRIBE_TIMEOUT_MS	15000

/* The worker's state; one per process */
typedef struct ConsumerWorker
{
	/* what it consumes, for whom: set at start, in TopMemoryContext */
	int64		subscription_id;
	char	   *queue_name;
	char	   *destination;
	char	   *dlq;			/* DLQ.<queue> */
	Oid			run_as;			/* the subscribing role */
	char	   *callback_search_path;
	char		main_sub_id[OUTBOX_MAX_QUEUE_NAME_LEN + 16];
	char		dlq_sub_id[OUTBOX_MAX_QUEUE_NAME_LEN + 16];
	ConsumerRoute route;		/* by which SUBSCRIBE takes the destination */

	/* its state, as outbox.status shows it (consumer.c) */
	OutboxStateMachine machine;
	bool		stop;			/* the subscription is gone: exit */
	bool		refusing;		/* the subscription cannot be served */
	int64		last_activity_ms;

	/* the connection: the shared broker link (worker_link.c) */
	OutboxLink	link;
	char	   *who;			/* "outbox consumer of queue ...": log lines */
	char	   *failed_what;	/* "<who> failed": a turn's caught error */
	bool		subscribed;
	int			session_settled;	/* ACKs and NACKs sent on the session */

	/* the dead-letter queue */
	bool		dlq_ready;		/* declared, or found */
	int64		dlq_retry_at_ms;
	char		dlq_problem[1024];	/* why it could not be declared */

	/* memory, and the callback's time after SIGTERM */
	MemoryContext scratch_context;	/* of a turn of the main loop */
	TimeoutId	watchdog_timeout;	/* bounds a callback after SIGTERM */

	/* delivered, not yet handed to a batch (frames owned here) */
	StompFrame *held[CONSUMER_HELD_MAX];
	int64		held_at_ms[CONSUMER_HELD_MAX];	/* delivered no later than */
	int			nheld;
	uint64		held_bytes;		/* stomp_frame_bytes() of those held */
	uint64		batch_bytes;	/* ... of those taken by the batch running */
	int64		queue_empty_at_ms;	/* last seen with no frame waiting */

	/* messages given back unrun: their return counts no attempt */
	ConsumerGivenBack given_back;
} ConsumerWorker;

extern ConsumerWorker MyConsumer;
extern volatile sig_atomic_t consumer_shutdown_requested;

/* One delivered message of a batch */
typedef struct ConsumerDelivery
{
	StompFrame *frame;			/* owned until the batch ends */
	const char *ack_id;			/* in frame */
	char	   *msg_id;			/* NULL: none at all */
	bool		id_read;		/* msg_id was looked for */
	MemoryContext context;		/* lives as long as the delivery */
	bool		redelivered;	/* by the broker's word, less our give-backs */
	bool		duplicate;
	int64		held_ms;		/* delivered no later than this */
	uint64		bytes;			/* of its body and headers */
	ConsumerOutcome outcome;
} ConsumerDelivery;

/* The subscription as the worker reads it */
typedef struct ConsumerSubscriptionRow
{
	char	   *queue_name;
	Oid			callback;
	char	   *destination;
	Oid			run_as;
} ConsumerSubscriptionRow;

/* in consumer_subscribe.c */
extern char *consumer_settings(void);
extern void consumer_settings_changed(void);
extern int	consumer_queue_headers(StompHeaderPair *pairs, int max);
extern bool consumer_connect_and_subscribe(void);
extern bool consumer_wait_for_receipt(uint64_t receipt, int64 deadline);
extern void consumer_disconnect(void);
extern void consumer_session_lost(void);
extern void consumer_back_off(ConsumerFailure failure, const char *what,
							  const char *detail);

/* in consumer_dlq.c */
extern void consumer_declare_dlq_if_due(void);
extern bool consumer_send_to_dlq(StompFrame *frame, char **why);

/* in consumer_held.c */
extern void consumer_remember_given_back(StompFrame *frame, bool redelivered);
extern bool consumer_held_redelivered(StompFrame *frame);
extern bool consumer_hold_message(StompFrame *frame, void *arg);
extern void consumer_drop_held(void);
extern void consumer_held_waited(void);
extern bool consumer_collect_messages(void);

/* in consumer_batch.c */
extern void consumer_process_held(void);

/* in consumer_callback.c */
extern int	consumer_callback_timeout_ms(void);
extern void consumer_batch_begins(Oid callback);
extern void consumer_handle_message(ConsumerDelivery *d);

/* in consumer_tables.c */
extern bool consumer_load_subscription(ConsumerSubscriptionRow *row);
extern bool consumer_is_own_subscription(const ConsumerSubscriptionRow *row);
extern void consumer_check_run_as(const ConsumerSubscriptionRow *row);
extern bool consumer_insert_received(const char *msg_id, Jsonb *headers,
									 Jsonb *body);
extern void consumer_free_plans(void);

#endif							/* CONSUMER_INTERNAL_H */
