/*-------------------------------------------------------------------------
 *
 * consumer_route.c
 *	  Which route a consumer subscribes by, after a refusal.
 *
 * A consumer subscribes to its destination as given: RabbitMQ's SUBSCRIBE
 * to /queue/X (or /topic/, /exchange/ with x-queue-name) declares the queue
 * with the consumer's dead-letter arguments; /amq/queue/X names a queue
 * that must exist and is never declared.
 *
 * A /queue/X that exists with other arguments (a publisher's plain SEND
 * declared it before anyone subscribed, or an operator did) refuses that
 * SUBSCRIBE as "inequivalent arg".  The refusal proves X exists, so the
 * consumer takes it as /amq/queue/X from then on, at once; it cannot
 * dead-letter there by NACK (the queue may have no x-dead-letter-*), so it
 * SENDs a copy to the DLQ instead.  A /amq/queue/X taken that way and then
 * found gone ("not found") sends the consumer back to /queue/X, which
 * declares it again, after the usual backoff.  Any other refusal keeps the
 * route and backs off.
 *
 * Error policy: none; pure functions of their arguments.
 *
 * Memory: none.
 *
 * src/decide/consumer_route.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "consumer_decide.h"

/*
 * is_queue
 *		Whether destination is a /queue/ destination.
 */
static bool
is_queue(const char *destination)
{
	return strncmp(destination, "/queue/", 7) == 0;
}

/*
 * consumer_choose_route
 *		The route to subscribe by after a SUBSCRIBE on route "current" was
 *		refused as "refusal", and whether to subscribe again at once (only
 *		when a route was found, which can happen once per route).
 */
ConsumerRouteChoice
consumer_choose_route(const char *destination, ConsumerRoute current,
					  StompRefusal refusal)
{
	ConsumerRouteChoice choice;

	choice.route = current;
	choice.changed = false;
	choice.at_once = false;
	if (!is_queue(destination))
		return choice;
	if (current == CONSUMER_ROUTE_AS_GIVEN &&
		refusal == STOMP_REFUSAL_INEQUIVALENT)
	{
		choice.route = CONSUMER_ROUTE_EXISTING_QUEUE;
		choice.changed = true;
		choice.at_once = true;
	}
	else if (current == CONSUMER_ROUTE_EXISTING_QUEUE &&
			 refusal == STOMP_REFUSAL_NOT_FOUND)
	{
		choice.route = CONSUMER_ROUTE_AS_GIVEN;
		choice.changed = true;
	}
	return choice;
}

/*
 * consumer_dead_letters_by_send
 *		Whether a message is dead-lettered by SENDing a copy to the DLQ
 *		(a queue that SUBSCRIBE did not declare, and that may dead-letter
 *		nothing) rather than by NACK.
 */
bool
consumer_dead_letters_by_send(const char *destination, ConsumerRoute route)
{
	return route == CONSUMER_ROUTE_EXISTING_QUEUE ||
		strncmp(destination, "/amq/queue/", 11) == 0;
}
