/*-------------------------------------------------------------------------
 *
 * consumer_delivery.c
 *	  What becomes of a delivery, by how its message ended.
 *
 * Each message runs in a subtransaction of its batch:
 *
 * - the callback returned true or void, or the message was a duplicate
 *   (already in outbox.received for the subscribing role): ACK after the
 *   COMMIT;
 * - the callback returned false or NULL, or raised an error, or the
 *   message has no id (or one with no form in the database): dead-lettered
 *   after the COMMIT; but a serialization failure or a deadlock (SQLSTATE
 *   class 40) of a first delivery is NACKed with requeue, to be tried
 *   again;
 *
 * and after the COMMIT a dead message goes to the DLQ by NACK requeue:false
 * (RabbitMQ routes it by the queue's x-dead-letter-*), or by a SEND of a
 * copy where the queue was not declared by the consumer; but while the DLQ
 * is not declared it is left to the broker (RabbitMQ would drop it, the
 * NACK's as well as the SEND's copy).
 *
 * A COMMIT that fails for the database's own reasons (SQLSTATE classes 08,
 * 40, 53, 57, 58) says nothing about the messages: the consumer backs off
 * and the broker delivers them again.  Any other failure of a COMMIT of
 * several messages is tried again one message per transaction, so that
 * only the culprit is dead-lettered.
 *
 * Error policy: none; pure functions of their arguments.  A SQLSTATE is
 * its five characters (PostgreSQL's unpack_sql_state()).
 *
 * Memory: none.
 *
 * src/decide/consumer_delivery.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "consumer_decide.h"

/*
 * sqlstate_class_is
 *		Whether sqlstate is of the two-character class cls.
 */
static bool
sqlstate_class_is(const char *sqlstate, const char *cls)
{
	return sqlstate != NULL && strncmp(sqlstate, cls, 2) == 0;
}

/*
 * consumer_sqlstate_transient
 *		Errors that say nothing about the message: the database's trouble,
 *		to be retried rather than dead-lettered.
 */
bool
consumer_sqlstate_transient(const char *sqlstate)
{
	static const char *const classes[] = {"40", "53", "58", "08", "57"};
	size_t		i;

	for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (sqlstate_class_is(sqlstate, classes[i]))
			return true;
	return false;
}

/*
 * consumer_delivery_outcome
 *		What becomes of a message whose subtransaction ended as "end" (with
 *		sqlstate for CONSUMER_CALLBACK_FAILED); redelivered is the broker's
 *		header.
 */
ConsumerOutcome
consumer_delivery_outcome(ConsumerCallbackEnd end, const char *sqlstate,
						  bool redelivered)
{
	switch (end)
	{
		case CONSUMER_CALLBACK_KEPT:
		case CONSUMER_CALLBACK_DUPLICATE:
			return CONSUMER_OUTCOME_ACK;
		case CONSUMER_CALLBACK_FAILED:
			/* a serialization failure or deadlock: worth one more try */
			if (sqlstate_class_is(sqlstate, "40") && !redelivered)
				return CONSUMER_OUTCOME_REQUEUE;
			return CONSUMER_OUTCOME_DEAD;
		case CONSUMER_CALLBACK_REFUSED:
		case CONSUMER_CALLBACK_NO_ID:
		case CONSUMER_CALLBACK_ID_UNREADABLE:
		case CONSUMER_CALLBACK_HEADERS_UNREAD:
			return CONSUMER_OUTCOME_DEAD;
	}
	return CONSUMER_OUTCOME_DEAD;
}

/*
 * consumer_delivery_action
 *		What to send to the broker, after the COMMIT, for a message of that
 *		outcome, given whether the DLQ is declared and whether the queue
 *		dead-letters by SEND (consumer_dead_letters_by_send).
 */
ConsumerAction
consumer_delivery_action(ConsumerOutcome outcome, bool dlq_ready,
						 bool dead_letter_by_send)
{
	switch (outcome)
	{
		case CONSUMER_OUTCOME_NONE:
			return CONSUMER_ACTION_LEAVE;
		case CONSUMER_OUTCOME_ACK:
			return CONSUMER_ACTION_ACK;
		case CONSUMER_OUTCOME_REQUEUE:
			return CONSUMER_ACTION_NACK_REQUEUE;
		case CONSUMER_OUTCOME_DEAD:
			if (!dlq_ready)
				return CONSUMER_ACTION_LEAVE;
			return dead_letter_by_send ? CONSUMER_ACTION_SEND_TO_DLQ :
				CONSUMER_ACTION_NACK_DEAD;
	}
	return CONSUMER_ACTION_LEAVE;
}

/*
 * consumer_commit_failure
 *		What a COMMIT of "taken" messages that failed with sqlstate leads
 *		to.
 */
ConsumerCommitFailure
consumer_commit_failure(const char *sqlstate, int taken)
{
	if (consumer_sqlstate_transient(sqlstate))
		return CONSUMER_COMMIT_RAISE;
	return taken > 1 ? CONSUMER_COMMIT_ONE_BY_ONE : CONSUMER_COMMIT_DEAD_LETTER;
}
