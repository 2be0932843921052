/*-------------------------------------------------------------------------
 *
 * destination.c
 *		  The destinations RabbitMQ's STOMP plugin can route.
 *
 * The broker takes /queue/<name>, /amq/queue/<name>, /topic/<routing key>
 * and /exchange/<exchange>[/<routing key>]; anything else (a missing
 * leading slash above all) is refused only when the message is sent, as
 * many times as it is retried.  Publishing and subscribing are held to the
 * same rule here, where destinations enter: outbox.publish(), rows written
 * to outbox.published, outbox.send_event() and outbox.subscribe().
 *
 * src/destination.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "outbox.h"

static bool is_routable(const char *destination);

/*
 * For a destination that names its queue (/queue/N, /amq/queue/N), N;
 * otherwise NULL.
 */
const char *
outbox_destination_queue(const char *destination)
{
	if (strncmp(destination, "/queue/", 7) == 0)
		return destination + 7;
	if (strncmp(destination, "/amq/queue/", 11) == 0)
		return destination + 11;
	return NULL;
}

/*
 * Whether destination begins with a prefix the broker routes, followed by
 * a name that does not begin with "/".
 */
static bool
is_routable(const char *destination)
{
	static const char *const prefixes[] = {
		"/queue/", "/amq/queue/", "/topic/", "/exchange/"
	};
	int			i;

	for (i = 0; i < lengthof(prefixes); i++)
	{
		size_t		len = strlen(prefixes[i]);

		if (strncmp(destination, prefixes[i], len) == 0 &&
			destination[len] != '\0' && destination[len] != '/')
			return true;
	}
	return false;
}

/*
 * Refuse a destination the broker cannot route; subscribing chooses the
 * wording of the error.  The commonest mistake, a missing leading slash,
 * gets its fix as a hint.
 */
void
outbox_check_destination_routable(const char *destination, bool subscribing)
{
	char	   *fixed;

	if (is_routable(destination))
		return;
	fixed = psprintf("/%s", destination);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 subscribing ?
			 errmsg("cannot subscribe to destination \"%s\"", destination) :
			 errmsg("cannot publish to destination \"%s\"", destination),
			 errdetail("RabbitMQ routes only /queue/<name>, /amq/queue/<name>, /topic/<routing key> and /exchange/<exchange>[/<routing key>]."),
			 is_routable(fixed) ?
			 errhint("Did you mean \"%s\"?", fixed) : 0));
}
