/*-------------------------------------------------------------------------
 *
 * destination_state.c
 *		  Destinations the publisher holds apart, or sends by another route.
 *
 * A broker ERROR about a destination as a whole (stomp_refusal.c: a missing
 * exchange, access refused, ...) would refuse every message to it alike;
 * charging them one by one used up their attempts in seconds, with a
 * reconnect each.  Instead the publisher of the database holds the
 * destination apart: none of its messages is fetched (they keep their
 * attempts), every other destination flows, and once the hold's time is
 * up one of its messages is sent alone as a probe: a RECEIPT releases the
 * destination, another refusal holds it again, longer.  The hold is
 * HOLD_BASE_MS, doubled with every refusal in a row, at most
 * outbox.maximum_backoff.
 *
 * A SEND to /queue/q declares q; if q exists with arguments the SEND does
 * not give (declared by a consumer with x-dead-letter-* arguments, ours
 * or django-outbox-pattern's, or with x-queue-type:quorum), RabbitMQ
 * refuses it with "inequivalent arg" and closes the connection.  That
 * refusal proves that q exists, so the destination is rerouted: its
 * messages go to /amq/queue/q, which delivers to the existing queue and
 * declares nothing, whatever its arguments.  Their dop-msg-destination
 * stays /queue/q.  Sending the consumer's arguments instead would need
 * every consumer's exact arguments (django-outbox-pattern's, ours, a
 * quorum type set by an operator), and any difference is refused again.
 * But a SEND to /amq/queue/q of a queue that no longer exists is receipted
 * and dropped: so a reroute lasts REROUTE_MS only, after which /queue/q is
 * tried again (declaring q if it was deleted, or refused again and
 * rerouted again, at the cost of one reconnect, the refused message being
 * sent again uncharged).
 *
 * The entries live in shared memory (OutboxShared->held), so that
 * outbox.status and outbox.destinations show them, and a restarted
 * publisher keeps them; a server restart forgets them (the first refusal
 * makes them again).  Only the publisher of a database writes its
 * entries, under OutboxShared->lock held exclusively; readers hold it
 * shared.  If every entry is taken, a refusal is charged to its message
 * as before.
 *
 * src/destination_state.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_destination_state);

/* the first hold of a destination; doubled per refusal in a row */
#define HOLD_BASE_MS			5000
/* how long /queue/q is sent through /amq/queue/q before it is tried again */
#define REROUTE_MS				(10 * 60 * 1000)

#define DESTINATION_STATE_COLUMNS 8

static OutboxHeldDestination *find_entry(const char *destination);
static OutboxHeldDestination *take_entry(const char *destination);
static void set_reason(OutboxHeldDestination *entry, const char *reason);

/*
 * This database's entry of a destination, or NULL; the caller holds the
 * lock.
 */
static OutboxHeldDestination *
find_entry(const char *destination)
{
	int			i;

	for (i = 0; i < OUTBOX_MAX_HELD_DESTINATIONS; i++)
	{
		OutboxHeldDestination *entry = &outbox_shared->held[i];

		if (entry->state != OUTBOX_HOLD_FREE &&
			entry->database == MyDatabaseId &&
			strcmp(entry->destination, destination) == 0)
			return entry;
	}
	return NULL;
}

/*
 * This database's entry of a destination, taking a free one if it has
 * none (refusals 0); NULL if every entry is taken.  The caller holds the
 * lock exclusively.
 */
static OutboxHeldDestination *
take_entry(const char *destination)
{
	OutboxHeldDestination *entry = find_entry(destination);
	int			i;

	if (entry != NULL)
		return entry;
	for (i = 0; i < OUTBOX_MAX_HELD_DESTINATIONS; i++)
	{
		entry = &outbox_shared->held[i];
		if (entry->state == OUTBOX_HOLD_FREE)
		{
			memset(entry, 0, sizeof(*entry));
			entry->database = MyDatabaseId;
			strlcpy(entry->destination, destination,
					sizeof(entry->destination));
			entry->since = GetCurrentTimestamp();
			return entry;
		}
	}
	return NULL;
}

/*
 * Keep the broker's reason, cut at a character boundary.
 */
static void
set_reason(OutboxHeldDestination *entry, const char *reason)
{
	int			len = pg_mbcliplen(reason, strlen(reason),
								   sizeof(entry->reason) - 1);

	memcpy(entry->reason, reason, len);
	entry->reason[len] = '\0';
}

/*
 * Hold a destination apart after the broker refused it as a whole (again):
 * none of its messages is sent until the hold's time is up.  Returns false
 * if there is no room to hold it.
 */
bool
outbox_hold_destination(const char *destination, const char *reason)
{
	OutboxHeldDestination *entry;
	int64		delay_ms;

	LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
	entry = take_entry(destination);
	if (entry != NULL)
	{
		if (entry->state != OUTBOX_HOLD_HELD)
		{
			entry->refusals = 0;
			entry->since = GetCurrentTimestamp();
		}
		entry->state = OUTBOX_HOLD_HELD;
		entry->refusals++;
		delay_ms = (int64) HOLD_BASE_MS << Min(entry->refusals - 1, 20);
		delay_ms = Min(delay_ms, (int64) outbox_maximum_backoff * 1000);
		entry->next_retry_at =
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay_ms);
		set_reason(entry, reason);
	}
	LWLockRelease(outbox_shared->lock);
	return entry != NULL;
}

/*
 * Send the messages of /queue/q to /amq/queue/q for a while: q exists with
 * arguments a SEND does not give (see the file header).  Returns false if
 * there is no room to remember it.
 */
bool
outbox_reroute_destination(const char *destination, const char *reason)
{
	OutboxHeldDestination *entry;

	LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
	entry = take_entry(destination);
	if (entry != NULL)
	{
		if (entry->state != OUTBOX_HOLD_REROUTED)
			entry->since = GetCurrentTimestamp();
		entry->state = OUTBOX_HOLD_REROUTED;
		entry->refusals = 0;
		entry->next_retry_at =
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), REROUTE_MS);
		set_reason(entry, reason);
	}
	LWLockRelease(outbox_shared->lock);
	return entry != NULL;
}

/*
 * Whether the messages of a destination go by its other route now; a
 * reroute whose time is up is forgotten here.
 */
bool
outbox_destination_rerouted(const char *destination)
{
	OutboxHeldDestination *entry;
	bool		rerouted = false;
	bool		expired = false;

	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	entry = find_entry(destination);
	if (entry != NULL && entry->state == OUTBOX_HOLD_REROUTED)
	{
		if (GetCurrentTimestamp() < entry->next_retry_at)
			rerouted = true;
		else
			expired = true;
	}
	LWLockRelease(outbox_shared->lock);
	if (expired)
		outbox_release_destination(destination);
	return rerouted;
}

/*
 * The broker took a message of a destination (or none is left to try):
 * it is no longer held apart.
 */
void
outbox_release_destination(const char *destination)
{
	OutboxHeldDestination *entry;

	LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
	entry = find_entry(destination);
	if (entry != NULL)
		entry->state = OUTBOX_HOLD_FREE;
	LWLockRelease(outbox_shared->lock);
}

/*
 * A held destination of this database whose hold's time is up, the one
 * waiting longest (palloc'd), or NULL: the publisher probes it.
 */
char *
outbox_due_held_destination(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz earliest = 0;
	char	   *due = NULL;
	int			i;

	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (i = 0; i < OUTBOX_MAX_HELD_DESTINATIONS; i++)
	{
		OutboxHeldDestination *entry = &outbox_shared->held[i];

		if (entry->state == OUTBOX_HOLD_HELD &&
			entry->database == MyDatabaseId &&
			entry->next_retry_at <= now &&
			(due == NULL || entry->next_retry_at < earliest))
		{
			if (due != NULL)
				pfree(due);
			due = pstrdup(entry->destination);
			earliest = entry->next_retry_at;
		}
	}
	LWLockRelease(outbox_shared->lock);
	return due;
}

/*
 * The destinations of this database held apart, as a text[] (empty if
 * none), for the publisher's fetches to leave out.
 */
Datum
outbox_held_destinations(void)
{
	Datum	   *names = palloc(sizeof(Datum) * OUTBOX_MAX_HELD_DESTINATIONS);
	int			n = 0;
	int			i;

	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (i = 0; i < OUTBOX_MAX_HELD_DESTINATIONS; i++)
	{
		OutboxHeldDestination *entry = &outbox_shared->held[i];

		if (entry->state == OUTBOX_HOLD_HELD &&
			entry->database == MyDatabaseId)
			names[n++] = CStringGetTextDatum(entry->destination);
	}
	LWLockRelease(outbox_shared->lock);
	return PointerGetDatum(construct_array(names, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/*
 * How many destinations of a database are held apart (not rerouted).
 */
int
outbox_held_destination_count(Oid database)
{
	int			n = 0;
	int			i;

	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (i = 0; i < OUTBOX_MAX_HELD_DESTINATIONS; i++)
	{
		if (outbox_shared->held[i].state == OUTBOX_HOLD_HELD &&
			outbox_shared->held[i].database == database)
			n++;
	}
	LWLockRelease(outbox_shared->lock);
	return n;
}

/*
 * Forget this database's entries: the outbox that named them is gone
 * (DROP EXTENSION).
 */
void
outbox_forget_destinations(void)
{
	int			i;

	LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < OUTBOX_MAX_HELD_DESTINATIONS; i++)
	{
		if (outbox_shared->held[i].database == MyDatabaseId)
			outbox_shared->held[i].state = OUTBOX_HOLD_FREE;
	}
	LWLockRelease(outbox_shared->lock);
}

/*
 * SQL: outbox.destination_state() returns setof record: every database's
 * held and rerouted destinations, with the broker's reason.  Destination
 * names and reasons may be another role's business: rows for superusers
 * and members of pg_monitor only, none for anyone else.
 */
Datum
outbox_destination_state(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	OutboxHeldDestination *copies;
	int			n = 0;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (outbox_shared == NULL ||
		!(superuser() || has_privs_of_role(GetUserId(), ROLE_PG_MONITOR)))
		PG_RETURN_VOID();

	copies = palloc(sizeof(OutboxHeldDestination) * OUTBOX_MAX_HELD_DESTINATIONS);
	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (i = 0; i < OUTBOX_MAX_HELD_DESTINATIONS; i++)
	{
		if (outbox_shared->held[i].state != OUTBOX_HOLD_FREE)
			copies[n++] = outbox_shared->held[i];
	}
	LWLockRelease(outbox_shared->lock);

	for (i = 0; i < n; i++)
	{
		OutboxHeldDestination *entry = &copies[i];
		Datum		values[DESTINATION_STATE_COLUMNS];
		bool		nulls[DESTINATION_STATE_COLUMNS];
		char	   *dbname = get_database_name(entry->database);
		bool		held = (entry->state == OUTBOX_HOLD_HELD);

		/* a database dropped since */
		if (dbname == NULL)
			continue;
		memset(nulls, 0, sizeof(nulls));
		values[0] = DirectFunctionCall1(namein, CStringGetDatum(dbname));
		values[1] = CStringGetTextDatum(entry->destination);
		values[2] = CStringGetTextDatum(held ? "held" : "rerouted");
		if (held)
			nulls[3] = true;
		else
			values[3] = CStringGetTextDatum(psprintf("/amq/queue/%s",
													 entry->destination + strlen("/queue/")));
		values[4] = CStringGetTextDatum(entry->reason);
		values[5] = Int32GetDatum(entry->refusals);
		values[6] = TimestampTzGetDatum(entry->since);
		values[7] = TimestampTzGetDatum(entry->next_retry_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values,
							 nulls);
	}
	PG_RETURN_VOID();
}
