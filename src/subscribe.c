/*-------------------------------------------------------------------------
 *
 * subscribe.c
 *		  outbox.subscribe() and outbox.unsubscribe(): the subscriptions
 *		  that consumer workers serve, validated where they enter.
 *
 * A subscription is a row of outbox.subscription: a queue name (unique),
 * the destination its queue is bound to, the callback, and run_as, the
 * role that subscribed.  The callback always runs as run_as, never as
 * anyone else (consumer.c): subscribing needs EXECUTE on the callback, so
 * that a subscription grants no right the role did not have.  A SECURITY
 * DEFINER callback runs with its owner's rights, exactly as when run_as
 * calls it directly; that is the owner's choice, made when granting
 * EXECUTE on it.
 *
 * Everything a worker could only discover later is refused here, with a
 * message that says what to do: a callback that does not exist, does not
 * take outbox.payload, returns something other than boolean or void, is
 * temporary, or that the role may not execute; a destination the broker
 * would not take; a queue name that is empty, too long for its
 * DLQ.<queue>, reserved by RabbitMQ, not the queue a /queue/ destination
 * names, or taken; and a destination, queue or DLQ.<queue> outside the
 * role's subscribing patterns (privileges.c).
 *
 * The rows are written as the owner of outbox.subscription (the roles that
 * subscribe have no rights on it), through outbox_execute_as(): a
 * security-restricted operation with search_path pinned, and every
 * operator below qualified, so that the caller's search_path reaches
 * none of them.  Using either function needs a GRANT of EXECUTE.
 * When the transaction commits, the subscription generation in shared
 * memory is bumped and the database's publisher woken: it starts and stops
 * consumers to match (consumer_launcher.c).
 *
 * src/subscribe.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_subscribe);
PG_FUNCTION_INFO_V1(outbox_unsubscribe);

static bool xact_callback_registered = false;
static bool bump_at_commit = false;

static void subscription_changed_at_commit(void);
static void subscription_xact_callback(XactEvent event, void *arg);
static Oid	lookup_callback(const char *name);
static void check_destination(const char *destination);
static void check_queue_name(const char *queue_name, const char *destination);
static void check_queue_free(Oid owner, const char *queue_name);
static bool database_is_served(void);

/*
 * The oid of the composite type outbox.payload, the callbacks' argument.
 */
Oid
outbox_payload_type(void)
{
	Oid			nsp = get_namespace_oid("outbox", false);
	Oid			typid;

	typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
							CStringGetDatum("payload"), ObjectIdGetDatum(nsp));
	if (!OidIsValid(typid))
		elog(ERROR, "type outbox.payload is missing");
	return typid;
}

/*
 * Check that a function can be a subscription's callback run as role: one
 * argument of type outbox.payload, returns boolean or void, a plain
 * function not in a temporary schema (it would go with its session), and
 * role may execute it.  The consumer checks again before
 * each batch (the function may have been replaced, or the grant revoked).
 */
void
outbox_check_callback(Oid funcoid, Oid role, bool at_subscribe)
{
	HeapTuple	tuple;
	Form_pg_proc proc;
	char	   *name;

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcoid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("callback function with OID %u does not exist", funcoid),
				 errhint("Was it dropped?  outbox.unsubscribe() the queue, then outbox.subscribe() it again.")));
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	name = format_procedure(funcoid);

	if (proc->prokind != PROKIND_FUNCTION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("callback %s is not a plain function", name),
				 errhint("A callback is a function taking outbox.payload and returning boolean or void.")));
	if (proc->pronargs != 1 || proc->proargtypes.values[0] != outbox_payload_type())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("callback %s must take one argument of type outbox.payload", name)));
	if (proc->proretset ||
		(proc->prorettype != BOOLOID && proc->prorettype != VOIDOID))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("callback %s must return boolean or void", name),
				 errdetail("It returns %s%s.", proc->proretset ? "setof " : "",
						   format_type_be(proc->prorettype)),
				 errhint("Return true (or nothing) when the message is processed, false to dead-letter it.")));
	ReleaseSysCache(tuple);
	if (at_subscribe)
		outbox_check_stored_function_lasts(funcoid, "callback");

	if (pg_proc_aclcheck(funcoid, role, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not execute callback %s",
						GetUserNameFromId(role, false), name),
				 at_subscribe ?
				 errhint("The callback runs as the role that subscribes; grant it EXECUTE on the function.") :
				 errhint("Grant EXECUTE on the function to the role, or outbox.unsubscribe() the queue.")));
}

/*
 * The queue name a destination gets by default, as in django-outbox-pattern:
 * its last path segment ("/topic/orders.v1" gives "orders.v1").
 */
char *
outbox_default_queue_name(const char *destination)
{
	const char *slash = strrchr(destination, '/');

	return pstrdup(slash ? slash + 1 : destination);
}

/*
 * Refuse a destination the broker would not subscribe to: it must be
 * sendable (outbox_check_destination: not empty, no control characters,
 * at most 255 bytes), and of a kind a consumer can bind a durable queue
 * to: /queue/N, /amq/queue/N, /topic/K or /exchange/X[/K].
 */
static void
check_destination(const char *destination)
{
	outbox_check_destination(destination, NULL);
	outbox_check_destination_routable(destination, true);
}

/*
 * Refuse a queue name the broker or the consumer cannot use.  Names are
 * kept to letters, digits and . _ - : so that "/queue/DLQ.<name>" needs no
 * escaping and reads the same in every tool.
 */
static void
check_queue_name(const char *queue_name, const char *destination)
{
	const char *p;
	const char *named = outbox_destination_queue(destination);

	if (queue_name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox queue name must not be empty")));
	if (strlen(queue_name) > OUTBOX_MAX_QUEUE_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("outbox queue name is too long"),
				 errdetail("The queue name is %zu bytes long; the limit is %d, so that its dead-letter queue DLQ.<name> fits RabbitMQ's 255.",
						   strlen(queue_name), OUTBOX_MAX_QUEUE_NAME_LEN)));
	for (p = queue_name; *p; p++)
	{
		if (!(isalnum((unsigned char) *p) || *p == '.' || *p == '_' ||
			  *p == '-' || *p == ':') || IS_HIGHBIT_SET(*p))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid outbox queue name \"%s\"", queue_name),
					 errdetail("Character %d is not allowed; a queue name holds ASCII letters, digits, \".\", \"_\", \"-\" and \":\".",
							   (int) (p - queue_name) + 1),
					 named == NULL ?
					 errhint("The default queue name is the destination's last segment; give queue_name for a destination such as \"/topic/orders.*\".") : 0));
	}
	if (strncmp(queue_name, "amq.", 4) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid outbox queue name \"%s\"", queue_name),
				 errdetail("RabbitMQ reserves names that begin with \"amq.\".")));
	if (named != NULL && strcmp(named, queue_name) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue name \"%s\" does not match destination \"%s\"",
						queue_name, destination),
				 errdetail("A subscription to %s consumes queue \"%s\".",
						   destination, named),
				 errhint("Leave queue_name out, or subscribe to a /topic/ or /exchange/ destination to name the queue.")));
}

/*
 * Refuse a queue that a subscription consumes already: its own queue, or
 * its dead-letter queue DLQ.<queue>, which its consumer reads too.  So
 * neither "DLQ.orders" once "orders" is subscribed (a second consumer
 * would take the first's dead letters, whoever subscribed it), nor
 * "orders" once "DLQ.orders" is.  Subscribing locks outbox.subscription
 * against concurrent subscriptions until the transaction ends, as no
 * constraint can hold this.  The caller is connected to SPI.
 */
static void
check_queue_free(Oid owner, const char *queue_name)
{
	Oid			argtypes[1] = {TEXTARRAYOID};
	Datum		names[3];
	int			nnames = 0;
	Datum		args[1];
	uint64		i;

	names[nnames++] = CStringGetTextDatum(queue_name);
	names[nnames++] = CStringGetTextDatum(psprintf("DLQ.%s", queue_name));
	if (strncmp(queue_name, "DLQ.", 4) == 0)
		names[nnames++] = CStringGetTextDatum(queue_name + 4);
	args[0] = PointerGetDatum(construct_array(names, nnames, TEXTOID, -1,
											  false, TYPALIGN_INT));

	outbox_execute_as(owner, "LOCK TABLE outbox.subscription"
					  " IN SHARE ROW EXCLUSIVE MODE",
					  0, NULL, NULL, NULL, SPI_OK_UTILITY);
	outbox_execute_as(owner, "SELECT queue_name FROM outbox.subscription"
					  " WHERE queue_name OPERATOR(pg_catalog.=) ANY ($1)",
					  1, argtypes, args, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *taken = SPI_getvalue(SPI_tuptable->vals[i],
										 SPI_tuptable->tupdesc, 1);

		if (strcmp(taken, queue_name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("queue \"%s\" is subscribed already", queue_name),
					 errhint("Each queue has one subscription; outbox.unsubscribe('%s') first, or give another queue_name.",
							 queue_name)));
	}
	if (SPI_processed > 0)
	{
		char	   *taken = SPI_getvalue(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1);

		if (strlen(taken) > strlen(queue_name))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("queue \"%s\" cannot be subscribed: its dead-letter queue \"%s\" is",
							queue_name, taken),
					 errdetail("A consumer reads its queue's dead-letter queue as well, and a queue has one consumer."),
					 errhint("Give another queue_name.")));
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("queue \"%s\" is the dead-letter queue of subscribed queue \"%s\"",
						queue_name, taken),
				 errdetail("The consumer of \"%s\" reads it, and a queue has one consumer.",
						   taken),
				 errhint("Give another queue_name.")));
	}
}

/*
 * Resolve a callback given by name ("f", "s.f") or with its argument types
 * ("s.f(outbox.payload)").
 */
static Oid
lookup_callback(const char *name)
{
	Oid			argtype = outbox_payload_type();
	Oid			funcoid;

	if (strchr(name, '(') != NULL)
		return DatumGetObjectId(DirectFunctionCall1(regprocedurein,
													CStringGetDatum(name)));

	funcoid = LookupFuncName(stringToQualifiedNameList(name), 1, &argtype, true);
	if (!OidIsValid(funcoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("callback function %s(outbox.payload) does not exist", name),
				 errhint("A callback takes one argument of type outbox.payload and returns boolean or void.")));
	return funcoid;
}

/*
 * Whether a consumer can run in this database: it must be listed in
 * outbox.database_name, where a publisher runs and launches consumers.
 */
static bool
database_is_served(void)
{
	char	   *rawnames = pstrdup(outbox_database_name);
	char	   *dbname = get_database_name(MyDatabaseId);
	List	   *names;
	ListCell   *lc;
	bool		found = false;

	if (dbname != NULL && SplitGUCList(rawnames, ',', &names))
	{
		foreach(lc, names)
		{
			if (strcmp((char *) lfirst(lc), dbname) == 0)
				found = true;
		}
	}
	return found;
}

/*
 * At commit, bump the subscription generation and wake the publisher, so
 * that it starts or stops consumers.
 */
static void
subscription_changed_at_commit(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(subscription_xact_callback, NULL);
		xact_callback_registered = true;
	}
	bump_at_commit = true;
}

/*
 * The transaction callback behind subscription_changed_at_commit().  The
 * bump comes before the wake-up, so the publisher cannot miss it.
 */
static void
subscription_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (bump_at_commit && outbox_shared != NULL)
			{
				pg_atomic_fetch_add_u64(&outbox_shared->subscription_generation, 1);
				outbox_wake_publisher();
			}
			bump_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			bump_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * SQL: outbox.subscribe(callback text, destination text, queue_name text
 * default null) returns void.
 */
Datum
outbox_subscribe(PG_FUNCTION_ARGS)
{
	char	   *callback;
	char	   *destination;
	char	   *queue_name;
	Oid			funcoid;
	Oid			role = GetUserId();
	Oid			owner;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, OIDOID};
	Datum		args[4];

	outbox_require_current_schema();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("callback must not be NULL")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("destination must not be NULL")));
	callback = text_to_cstring(PG_GETARG_TEXT_PP(0));
	destination = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (callback[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("callback must not be empty")));
	funcoid = lookup_callback(callback);
	outbox_check_callback(funcoid, role, true);

	check_destination(destination);
	queue_name = PG_ARGISNULL(2) ? outbox_default_queue_name(destination) :
		text_to_cstring(PG_GETARG_TEXT_PP(2));
	check_queue_name(queue_name, destination);
	outbox_check_destination_allowed(role, "subscribe", destination);
	outbox_check_destination_allowed(role, "subscribe", queue_name);
	outbox_check_destination_allowed(role, "subscribe",
									 psprintf("DLQ.%s", queue_name));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = CStringGetTextDatum(queue_name);
	args[1] = CStringGetTextDatum(outbox_stored_function_name(funcoid));
	args[2] = CStringGetTextDatum(destination);
	args[3] = ObjectIdGetDatum(role);

	owner = outbox_table_owner("subscription");
	check_queue_free(owner, queue_name);
	outbox_execute_as(owner, "INSERT INTO outbox.subscription"
					  " (queue_name, callback, destination, run_as)"
					  " VALUES ($1, $2, $3, $4)",
					  4, argtypes, args, NULL, SPI_OK_INSERT);
	SPI_finish();

	if (outbox_shared == NULL)
		ereport(WARNING,
				(errmsg("no consumer will run: outbox is not in shared_preload_libraries")));
	else if (!database_is_served())
		ereport(WARNING,
				(errmsg("no consumer will run in database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errdetail("Consumers run only in the databases of outbox.database_name.")));

	subscription_changed_at_commit();
	PG_RETURN_VOID();
}

/*
 * SQL: outbox.unsubscribe(queue_name text) returns boolean: whether there
 * was such a subscription.  Its consumer stops once the transaction
 * commits.  Only a member of the subscription's role may remove it.
 */
Datum
outbox_unsubscribe(PG_FUNCTION_ARGS)
{
	char	   *queue_name;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	Oid			owner;
	Oid			run_as = InvalidOid;
	bool		found;

	outbox_require_current_schema();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queue_name must not be NULL")));
	queue_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (queue_name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox queue name must not be empty")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = CStringGetTextDatum(queue_name);
	owner = outbox_table_owner("subscription");
	outbox_execute_as(owner, "SELECT run_as::pg_catalog.oid FROM outbox.subscription"
					  " WHERE queue_name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
					  1, argtypes, args, NULL, SPI_OK_SELECT);
	found = (SPI_processed > 0);
	if (found)
	{
		bool		isnull;

		run_as = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1,
												&isnull));
	}

	if (found && !has_privs_of_role(GetUserId(), run_as))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to unsubscribe queue \"%s\"", queue_name),
				 errdetail("Only a member of role \"%s\", which subscribed it, may.",
						   GetUserNameFromId(run_as, true) ?
						   GetUserNameFromId(run_as, true) : "?")));

	if (found)
	{
		outbox_execute_as(owner, "DELETE FROM outbox.subscription"
						  " WHERE queue_name OPERATOR(pg_catalog.=) $1",
						  1, argtypes, args, NULL, SPI_OK_DELETE);
		subscription_changed_at_commit();
	}
	SPI_finish();
	PG_RETURN_BOOL(found);
}
