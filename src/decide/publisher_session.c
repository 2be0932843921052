/*-------------------------------------------------------------------------
 *
 * publisher_session.c
 *	  What the publisher makes of a session that ended with messages
 *	  unconfirmed: pure functions of the messages in flight and of the
 *	  broker's ERROR, unit-tested without PostgreSQL or a broker
 *	  (test/stomp/test_publisher_session.c).
 *
 * RabbitMQ's ERROR frames carry no receipt-id and close the connection, so
 * an ERROR in the middle of a pipelined window does not say which message
 * caused it.  What it refuses is read from the frame (stomp_refusal.c):
 *
 * - A refusal of a destination as a whole (a missing exchange, access
 *   refused, a queue that exists with other arguments) that names exactly
 *   one destination among the messages still unconfirmed: that
 *   destination is held apart or rerouted, its messages uncharged, and
 *   the rest goes again in the next pass, pipelined.
 * - Any other ERROR: every message sent and not confirmed becomes a
 *   suspect; the isolation lane sends them one at a time, so that the
 *   next ERROR has a single culprit.
 * - A message alone on the wire: an ERROR about it charges it one attempt;
 *   an ERROR about a destination holds or reroutes that destination.
 * - A connection lost (closed, timed out, never connected) is nobody's
 *   fault: nothing is charged, the unconfirmed stay scheduled and are sent
 *   again (at least once); one alone stays a suspect.
 *
 * Error policy: none; every input gives an answer.
 * Memory: none allocated; the caller gives the arrays.
 *
 * src/decide/publisher_session.c
 *
 *-------------------------------------------------------------------------
 */
#include <stddef.h>
#include <string.h>

#include "publisher_session.h"

/*
 * unconfirmed
 *		Whether a message left and its RECEIPT did not come.
 */
static bool
unconfirmed(const PublisherInFlight *message)
{
	return message->sent && !message->confirmed;
}

/*
 * publisher_refused_destination
 *		The index of a message still unconfirmed whose destination is the
 *		only one among them that the ERROR names, or -1 if it names none or
 *		two (a destination whose name quotes another's fits as well:
 *		stomp_refusal_names), in which case only the isolation lane can
 *		tell.
 */
int
publisher_refused_destination(const StompFrame *error,
							  const PublisherInFlight *messages, int n)
{
	int			found = -1;
	int			i;

	for (i = 0; i < n; i++)
	{
		const PublisherInFlight *m = &messages[i];

		if (!unconfirmed(m) || m->destination == NULL ||
			!stomp_refusal_names(error, m->destination))
			continue;
		if (found < 0)
			found = i;
		else if (strcmp(messages[found].destination, m->destination) != 0)
			return -1;
	}
	return found;
}

/*
 * publisher_suspects
 *		The indexes (into suspects, room for n) of the messages sent and
 *		not confirmed, in order; returns how many.
 */
int
publisher_suspects(const PublisherInFlight *messages, int n, int *suspects)
{
	int			kept = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (unconfirmed(&messages[i]))
			suspects[kept++] = i;
	}
	return kept;
}

/*
 * publisher_pipelined_verdict
 *		What follows the end of a pipelined session: broker_error if the
 *		broker sent an ERROR (refusal being what it refuses), and whether
 *		it names exactly one destination in flight
 *		(publisher_refused_destination).
 */
PublisherSessionVerdict
publisher_pipelined_verdict(bool broker_error, StompRefusal refusal,
							bool names_one_destination)
{
	if (!broker_error)
		return PUBLISHER_KEEP_SCHEDULED;
	if (refusal != STOMP_REFUSAL_OTHER && names_one_destination)
		return PUBLISHER_REFUSE_DESTINATION;
	return PUBLISHER_SUSPECTS;
}

/*
 * publisher_alone_verdict
 *		What follows the end of a session in which message was alone on the
 *		wire: broker_error if it ended with an ERROR, refusal being what
 *		that refuses.  A message confirmed is taken, whatever came after.
 */
PublisherAloneVerdict
publisher_alone_verdict(bool broker_error, StompRefusal refusal,
						const PublisherInFlight *message)
{
	if (message->sent && message->confirmed)
		return PUBLISHER_ALONE_TAKEN;
	if (!broker_error || !message->sent)
		return PUBLISHER_ALONE_NONE;
	if (refusal == STOMP_REFUSAL_OTHER)
		return PUBLISHER_ALONE_CHARGE;
	return PUBLISHER_ALONE_REFUSE_DESTINATION;
}
