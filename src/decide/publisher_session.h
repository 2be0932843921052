/*-------------------------------------------------------------------------
 *
 * publisher_session.h
 *	  What the publisher makes of a session that ended with messages
 *	  unconfirmed (publisher_session.c): suspects, a refused destination,
 *	  the attempt charged; pure.
 *
 * src/decide/publisher_session.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PUBLISHER_SESSION_H
#define PUBLISHER_SESSION_H

#include <stdbool.h>

#include "stomp/stomp_conn.h"

/* One message of a pass as a session's end sees it */
typedef struct PublisherInFlight
{
	const char *destination;	/* as stored (before any reroute) */
	bool		sent;			/* it left: it asked for a receipt */
	bool		confirmed;		/* its RECEIPT came */
} PublisherInFlight;

/* What the pipelined lane does after its session ended */
typedef enum PublisherSessionVerdict
{
	PUBLISHER_KEEP_SCHEDULED,	/* no ERROR: the unconfirmed stay scheduled,
								 * uncharged, and are sent again */
	PUBLISHER_REFUSE_DESTINATION,	/* hold or reroute the one destination
									 * named; the rest goes again next pass */
	PUBLISHER_SUSPECTS			/* the unconfirmed become suspects, sent
								 * alone by the isolation lane */
} PublisherSessionVerdict;

/* What the isolation lane does with the message it sent alone */
typedef enum PublisherAloneVerdict
{
	PUBLISHER_ALONE_TAKEN,		/* confirmed: a probe ends its hold */
	PUBLISHER_ALONE_CHARGE,		/* the ERROR is its own: one attempt */
	PUBLISHER_ALONE_REFUSE_DESTINATION, /* the ERROR is its destination's:
										 * hold or reroute it, else charge */
	PUBLISHER_ALONE_NONE		/* nothing is its fault: it never left, or
								 * the connection was lost (it stays a
								 * suspect: publisher_suspects) */
} PublisherAloneVerdict;

extern int	publisher_refused_destination(const StompFrame *error,
										  const PublisherInFlight *messages,
										  int n);
extern int	publisher_suspects(const PublisherInFlight *messages, int n,
							   int *suspects);
extern PublisherSessionVerdict publisher_pipelined_verdict(bool broker_error,
														   StompRefusal refusal,
														   bool names_one_destination);
extern PublisherAloneVerdict publisher_alone_verdict(bool broker_error,
													 StompRefusal refusal,
													 const PublisherInFlight *message);

#endif							/* PUBLISHER_SESSION_H */
