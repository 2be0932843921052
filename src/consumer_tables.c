/*-------------------------------------------------------------------------
 *
 * consumer_tables.c
 *		  The consumer worker's own statements on the outbox tables: reading
 *		  its subscription, recording a message as received.
 *
 * They run as the owner of the outbox tables (the role that created the
 * extension), in a security-restricted operation, with search_path pinned
 * to pg_catalog, pg_temp for the statement (and for the session, from the
 * start: consumer.c); every object and operator they name is
 * schema-qualified.  No setting, object or operator of the subscriber's
 * can reach them, although they run inside the subscriber's transaction.
 *
 * Error policy: errors propagate to the caller's transaction; a
 * subscription of another version than the library's, or gone, is not an
 * error: consumer_load_subscription() says it is not there.  The role or
 * callback gone, or no longer executable: consumer_check_run_as() raises
 * ERRCODE_UNDEFINED_OBJECT, ERRCODE_UNDEFINED_FUNCTION or
 * ERRCODE_INSUFFICIENT_PRIVILEGE, which consumer.c tells apart.
 *
 * Memory: the saved plans live until consumer_free_plans() (the main
 * loop's error catch: they may name what is gone); what is read is
 * allocated in the current (transaction's) context.
 *
 * src/consumer_tables.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "consumer_internal.h"

/* The user id and GUC level to go back to after the worker's own SQL */
typedef struct OwnerScope
{
	Oid			save_userid;
	int			save_sec_context;
	int			guc_level;
} OwnerScope;

/* of the outbox tables; set per transaction by consumer_load_subscription */
static Oid	tables_owner;

/* saved plans */
static SPIPlanPtr insert_received_plan = NULL;
static SPIPlanPtr load_subscription_plan = NULL;

/*
 * Become the owner of the outbox tables for one of the worker's own
 * statements: a security-restricted operation, with search_path pinned to
 * OUTBOX_SAFE_SEARCH_PATH whatever the callbacks or the session did.  An
 * error before leave_owner() is undone by the (sub)transaction's abort.
 */
static void
enter_owner(OwnerScope *scope)
{
	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(tables_owner, scope->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	scope->guc_level = outbox_push_search_path(OUTBOX_SAFE_SEARCH_PATH);
}

/*
 * Back from enter_owner(): the settings and the user id as they were.
 */
static void
leave_owner(OwnerScope *scope)
{
	AtEOXact_GUC(true, scope->guc_level);
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

/*
 * Run one of the worker's saved plans as the owner of the outbox tables
 * (enter_owner); returns SPI's result code.
 */
static int
execute_as_owner(SPIPlanPtr plan, Datum *args, bool read_only, long count)
{
	OwnerScope	scope;
	int			ret;

	enter_owner(&scope);
	ret = SPI_execute_plan(plan, args, NULL, read_only, count);
	leave_owner(&scope);
	return ret;
}

/*
 * Prepare the worker's statements, once per worker, as the owner of the
 * outbox tables and under the pinned search_path (a plan is parsed again
 * if the search_path it was made under changes).
 */
static void
prepare_plans(void)
{
	Oid			insert_args[4] = {REGROLEOID, TEXTOID, JSONBOID, JSONBOID};
	Oid			load_args[1] = {INT8OID};
	OwnerScope	scope;

	if (insert_received_plan != NULL)
		return;
	enter_owner(&scope);
	insert_received_plan =
		outbox_keep_plan("INSERT INTO outbox.received"
						 "            (run_as, msg_id, headers, body)"
						 " VALUES ($1, $2, $3, $4)"
						 " ON CONFLICT (run_as, msg_id) DO NOTHING",
						 4, insert_args);
	load_subscription_plan =
		outbox_keep_plan("SELECT queue_name, callback,"
						 "       destination, run_as::pg_catalog.oid"
						 "  FROM outbox.subscription"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 1, load_args);
	leave_owner(&scope);
}

/*
 * Forget the saved plans, to prepare them again (they may name what is
 * gone, the extension dropped and created again).
 */
void
consumer_free_plans(void)
{
	if (insert_received_plan != NULL)
		SPI_freeplan(insert_received_plan);
	if (load_subscription_plan != NULL)
		SPI_freeplan(load_subscription_plan);
	insert_received_plan = NULL;
	load_subscription_plan = NULL;
}

/*
 * Read this worker's subscription in the current transaction
 * (outbox_xact_begin); false if it is gone, or the extension is (or is
 * of another version than the library: version.c).  Also learns who owns
 * the outbox tables, for the worker's other statements of the transaction.
 */
bool
consumer_load_subscription(ConsumerSubscriptionRow *row)
{
	Datum		args[1];
	HeapTuple	tuple;
	TupleDesc	desc;
	bool		isnull;

	/* of another version: the launcher starts it again after the update */
	if (outbox_schema_state(NULL) != OUTBOX_SCHEMA_CURRENT)
		return false;
	tables_owner = outbox_table_owner("received");
	prepare_plans();
	args[0] = Int64GetDatum(MyConsumer.subscription_id);
	if (execute_as_owner(load_subscription_plan, args, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read outbox.subscription");
	if (SPI_processed == 0)
		return false;
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	row->queue_name = TextDatumGetCString(SPI_getbinval(tuple, desc, 1, &isnull));
	/* stored by name (stored_function.c): InvalidOid if it finds nothing */
	row->callback = outbox_resolve_stored_function(TextDatumGetCString(SPI_getbinval(tuple, desc, 2, &isnull)),
												   outbox_payload_type());
	row->destination = TextDatumGetCString(SPI_getbinval(tuple, desc, 3, &isnull));
	row->run_as = DatumGetObjectId(SPI_getbinval(tuple, desc, 4, &isnull));
	return true;
}

/*
 * Whether the row read is still the subscription this worker was started
 * for: not replaced, and its role not changed by hand (a new consumer must
 * start then).
 */
bool
consumer_is_own_subscription(const ConsumerSubscriptionRow *row)
{
	return strcmp(row->destination, MyConsumer.destination) == 0 &&
		row->run_as == MyConsumer.run_as;
}

/*
 * Error out unless the subscription's role exists and may execute its
 * callback (both can change at any time: DROP ROLE, REVOKE).
 */
void
consumer_check_run_as(const ConsumerSubscriptionRow *row)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(row->run_as)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role of the subscription of queue \"%s\" does not exist",
						MyConsumer.queue_name),
				 errhint("outbox.unsubscribe() the queue and subscribe it again as an existing role.")));
	outbox_check_callback(row->callback, row->run_as, false);
}

/*
 * Record the message as received by the subscribing role, unless it was
 * already (by a subscription of that role, or by a concurrent consumer of
 * it, whose commit the INSERT waited for); returns whether it was new.
 */
bool
consumer_insert_received(const char *msg_id, Jsonb *headers, Jsonb *body)
{
	Datum		args[4];

	args[0] = ObjectIdGetDatum(MyConsumer.run_as);
	args[1] = CStringGetTextDatum(msg_id);
	args[2] = JsonbPGetDatum(headers);
	args[3] = JsonbPGetDatum(body);
	if (execute_as_owner(insert_received_plan, args, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into outbox.received");
	return SPI_processed > 0;
}
