/*-------------------------------------------------------------------------
 *
 * destination.c
 *		  The destinations RabbitMQ's STOMP plugin can route.
 *
 * The broker takes /queue/<name>, /amq/queue/<name>, /topic/<routing key>
 * and /exchange/<exchange>[/<routing key>], with no other "/"; anything
 * else (a missing leading slash above all, or a "/" inside a routing key)
 * is refused only when the message is sent, with an ERROR frame that ends
 * the connection, as many times as it is retried.  Publishing and subscribing are held to the
 * same rule here, where destinations enter: outbox.publish(), rows written
 * to outbox.published, outbox.send_event() and outbox.subscribe().
 *
 * src/destination.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "outbox.h"


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
 * How a destination stands against the shapes the broker parses: a prefix
 * it routes, then a name that is not empty and does not begin with "/",
 * and no "/" in the name (the broker splits destinations at every "/";
 * a "/" inside a name is written %2F), but the one that ends an
 * exchange's name before its routing key.
 */
typedef enum DestinationShape
{
	DESTINATION_ROUTABLE,
	DESTINATION_NO_PREFIX,		/* no prefix the broker routes, or no name */
	DESTINATION_EXTRA_SLASH		/* a prefix and a name, one "/" too many */
} DestinationShape;

static DestinationShape
destination_shape(const char *destination)
{
	static const char *const prefixes[] = {
		"/queue/", "/amq/queue/", "/topic/", "/exchange/"
	};
	int			i;

	for (i = 0; i < lengthof(prefixes); i++)
	{
		size_t		len = strlen(prefixes[i]);
		const char *name = destination + len;
		const char *slash;

		if (strncmp(destination, prefixes[i], len) != 0)
			continue;
		if (name[0] == '\0' || name[0] == '/')
			return DESTINATION_NO_PREFIX;
		slash = strchr(name, '/');
		if (slash != NULL && strcmp(prefixes[i], "/exchange/") == 0)
			slash = strchr(slash + 1, '/');
		return slash == NULL ? DESTINATION_ROUTABLE : DESTINATION_EXTRA_SLASH;
	}
	return DESTINATION_NO_PREFIX;
}

static bool
is_routable(const char *destination)
{
	return destination_shape(destination) == DESTINATION_ROUTABLE;
}

/*
 * Refuse a destination the broker cannot route; subscribing chooses the
 * wording of the error.  The commonest mistake, a missing leading slash,
 * gets its fix as a hint.
 */
void
outbox_check_destination_routable(const char *destination, bool subscribing)
{
	DestinationShape shape = destination_shape(destination);
	char	   *fixed;

	if (shape == DESTINATION_ROUTABLE)
		return;
	fixed = psprintf("/%s", destination);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 subscribing ?
			 errmsg("cannot subscribe to destination \"%s\"", destination) :
			 errmsg("cannot publish to destination \"%s\"", destination),
			 shape == DESTINATION_EXTRA_SLASH ?
			 errdetail("RabbitMQ splits a destination at every \"/\": a queue name, a routing key or an exchange name cannot hold one.") :
			 errdetail("RabbitMQ routes only /queue/<name>, /amq/queue/<name>, /topic/<routing key> and /exchange/<exchange>[/<routing key>]."),
			 shape == DESTINATION_EXTRA_SLASH ?
			 errhint("Write a \"/\" inside a name as %%2F.") :
			 is_routable(fixed) ?
			 errhint("Did you mean \"%s\"?", fixed) : 0));
}
