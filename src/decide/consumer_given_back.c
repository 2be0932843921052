/*-------------------------------------------------------------------------
 *
 * consumer_given_back.c
 *	  The messages a consumer gave back to the broker unrun, remembered so
 *	  that their coming back is not counted as an attempt.
 *
 * A consumer gives messages back to the broker (NACK with requeue) without
 * running them: those that would be held past the hold bound
 * (consumer_batch_end.c), and those beyond the room of the held list.
 * RabbitMQ delivers them again with "redelivered:true", which is what the
 * consumer counts attempts by: a serialization failure of a first delivery
 * is retried, of a redelivery dead-lettered.  So the producer's id of each
 * message given back is remembered with the redelivered flag it had; when
 * a message comes back redelivered and its id is remembered, it takes that
 * flag again and the id is forgotten.  Only producer ids (cap-msg-id,
 * dop-msg-id) are remembered: RabbitMQ's message-id changes on every
 * delivery.  The memory is a ring of CONSUMER_GIVEN_BACK_MAX ids, more than
 * the consumer ever holds, of CONSUMER_GIVEN_BACK_ID_MAX bytes at most (so
 * that a producer's huge ids cannot make it large): the oldest are
 * forgotten first, and a message that comes back after that (or to another
 * consumer, or after a restart) counts as redelivered, as it would have
 * without this memory.
 *
 * Error policy: none; out of memory, an id is not remembered (returns
 * false), which only counts its return as a redelivery.
 *
 * Memory: the ids are malloc'd copies, freed when recalled or overwritten.
 *
 * src/decide/consumer_given_back.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "consumer_decide.h"

/*
 * consumer_given_back_remember
 *		Remember that the message of producer id id (id_len bytes) was given
 *		back unrun, and whether it had been delivered as redelivered.
 *		Returns false if it could not be remembered.
 */
bool
consumer_given_back_remember(ConsumerGivenBack *given, const char *id,
							 size_t id_len, bool redelivered)
{
	char	   *copy;
	int			slot = given->next;

	if (id == NULL || id_len > CONSUMER_GIVEN_BACK_ID_MAX)
		return false;
	copy = malloc(id_len + 1);
	if (copy == NULL)
		return false;
	memcpy(copy, id, id_len);
	copy[id_len] = '\0';
	free(given->ids[slot]);
	given->ids[slot] = copy;
	given->id_lens[slot] = id_len;
	given->redelivered[slot] = redelivered;
	given->next = (slot + 1) % CONSUMER_GIVEN_BACK_MAX;
	return true;
}

/*
 * consumer_given_back_recall
 *		Whether the message of producer id id was given back unrun; if so,
 *		sets *redelivered to the flag it had then and forgets it (the most
 *		recent if it was given back more than once).
 */
bool
consumer_given_back_recall(ConsumerGivenBack *given, const char *id,
						   size_t id_len, bool *redelivered)
{
	int			i;

	if (id == NULL)
		return false;
	/* newest first: the last give-back is the one coming back */
	for (i = 1; i <= CONSUMER_GIVEN_BACK_MAX; i++)
	{
		int			slot = (given->next - i + CONSUMER_GIVEN_BACK_MAX) %
			CONSUMER_GIVEN_BACK_MAX;

		if (given->ids[slot] != NULL && given->id_lens[slot] == id_len &&
			memcmp(given->ids[slot], id, id_len) == 0)
		{
			*redelivered = given->redelivered[slot];
			free(given->ids[slot]);
			given->ids[slot] = NULL;
			return true;
		}
	}
	return false;
}
