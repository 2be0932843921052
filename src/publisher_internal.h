/*-------------------------------------------------------------------------
 *
 * publisher_internal.h
 *		  What the files of the publisher worker share, and nobody else:
 *		  the messages of a pass, how a batch of sends ended, and each
 *		  file's entry points, grouped by file.
 *
 * The arrows point one way: publisher.c (the worker) calls the lanes,
 * retention and the counters; the lanes call the sending and the rows;
 * the sending calls the rows.
 *
 * src/publisher_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PUBLISHER_INTERNAL_H
#define PUBLISHER_INTERNAL_H

#include "storage/itemptr.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "outbox.h"
#include "decide/publisher_receipts.h"
#include "decide/publisher_session.h"

/* longest wait for the receipts of one chunk before the session is dropped */
#define CHUNK_RECEIPT_TIMEOUT_MS	60000

/* One message of a pass; in the pass context */
typedef struct PendingMessage
{
	pg_uuid_t	id;
	ItemPointerData tid;		/* the row version fetched and locked */
	TransactionId xmin;			/* and its xmin */
	char	   *destination;
	Jsonb	   *body;
	Jsonb	   *headers;
	int			retry;
	bool		expired;
	uint64_t	receipt;		/* 0 if not sent */
	bool		confirmed;
	bool		marked;			/* its outcome is written */
	bool		left;			/* its row was not locked again: no outcome
								 * is ever written on it */
} PendingMessage;

/*
 * The messages of one pass transaction, fetched chunk by chunk, and which
 * message each receipt confirms (receipts count up within a session).
 */
typedef struct PassMessages
{
	MemoryContext context;		/* the pass context: all of the below */
	PendingMessage *messages;
	int			n;
	int			allocated;
	int			unmarked_from;	/* every message before it is marked */
	PublisherReceipts receipts; /* slots in the pass context */
	int			outstanding;	/* sent, not yet confirmed */
	bool		fetch_cut;		/* the last fetch stopped at its byte bound */
	int			confirmed;		/* receipts taken in */
	/* the broker's ERROR that ended the session, if one did */
	StompRefusal refusal;
	char		refusal_text[OUTBOX_MAX_REASON_LEN];
	/* the one destination in flight that the ERROR names, or NULL */
	char	   *refused_destination;
	/* why the session was given up while open (a deadline passed), or "" */
	char		stall_text[OUTBOX_MAX_REASON_LEN];
} PassMessages;

/* How a batch of sends ended */
typedef enum SendOutcome
{
	SEND_ALL_CONFIRMED,
	SEND_BROKER_ERROR,			/* the broker sent an ERROR */
	SEND_CONNECTION_LOST		/* closed, timed out, or never connected */
} SendOutcome;

/* The fetches of a pass (publisher_rows.c) */
typedef enum PublisherFetch
{
	PUBLISHER_FETCH_FRESH,		/* uuid[] not, uuid after, int limit, text[] held */
	PUBLISHER_FETCH_RETRYING,	/* int limit, text[] held */
	PUBLISHER_FETCH_SUSPECTS,	/* uuid[] suspects, text[] held */
	PUBLISHER_FETCH_PROBE		/* text destination */
} PublisherFetch;

/* in publisher_lanes.c */
extern bool publisher_isolation_lane(void);
extern bool publisher_pipelined_lane(void);
extern void publisher_lanes_forget(void);

/* in publisher_send.c */
extern OutboxLink publisher_link;
extern void publisher_send_init(OutboxStateMachine *machine);
extern bool publisher_ensure_connected(void);
extern void publisher_disconnect(void);
extern void publisher_note_session_end(SendOutcome outcome, int confirmed);
extern const char *publisher_session_lost_reason(const PassMessages *pass);
extern bool publisher_queue_sends(PassMessages *pass, int from, int64 deadline);
extern SendOutcome publisher_collect_receipts(PassMessages *pass,
											  int max_outstanding,
											  int64 deadline);
extern SendOutcome publisher_session_end_outcome(PassMessages *pass);
extern SendOutcome publisher_send_and_confirm(PassMessages *pass, int from,
											  int64 deadline);
extern PublisherInFlight *publisher_in_flight(PendingMessage *messages, int n);
extern void publisher_carry_in_flight(PassMessages *next, PassMessages *prev);

/* in publisher_rows.c */
extern void publisher_rows_init(void);
extern void publisher_prepare_plans(bool see_pauses);
extern void publisher_free_plans(void);
extern void publisher_begin_pass(PassMessages *pass);
extern int	publisher_fetch(PublisherFetch fetch, Datum *args, PassMessages *pass);
extern int	publisher_relock_in_flight(PassMessages *pass);
extern void publisher_mark_outcome(PassMessages *pass);
extern void publisher_charge_message(PendingMessage *message, const char *error);
extern void publisher_fail_message(PendingMessage *message, const char *reason);

/* in retention.c */
extern void outbox_retention(void);

/* in counters.c */
extern void outbox_save_counters(void);

#endif							/* PUBLISHER_INTERNAL_H */
