/*-------------------------------------------------------------------------
 *
 * event_triggers.c
 *		  Event triggers: DDL cannot break a publication or a subscription.
 *
 * Each event trigger looks only at the objects its command touched, never
 * at every configuration: a publication that is broken already (by a
 * superuser with the event triggers disabled, say) then blocks only DDL on
 * its own table, never another role's.
 *
 * - ddl_command_end (every command): for each relation, type or trigger in
 *   pg_event_trigger_ddl_commands(), the tables it reaches (the relation,
 *   its inheritors, the tables typed by a composite type, a trigger's table)
 *   are checked by outbox_check_publication() (publish_config.c).  That
 *   covers columns dropped or renamed through ALTER TABLE, ALTER TYPE ...
 *   CASCADE and inheritance, SET UNLOGGED, and a capture trigger disabled,
 *   renamed or replaced (CREATE OR REPLACE TRIGGER).  A trigger executing
 *   outbox.capture() under another name is refused on any table.  That the capture
 *   trigger exists is checked only after a command on a trigger: pg_restore
 *   alters a published table (constraints, indexes) before it creates it.
 *
 * - sql_drop (every command): the configurations of dropped tables are
 *   removed (their trigger went with them); so are those of a table whose
 *   capture trigger DROP TRIGGER itself dropped, by a role that may
 *   unpublish: that is unpublishing the table, and pg_restore --clean does
 *   it before it drops the table and the serializer.  A column or capture
 *   trigger of a table that stays dropped any other way (through an
 *   extension it depends on, say) is checked as above; a dropped function
 *   that is a serializer of a table that stays, or the callback of a
 *   subscription, is refused.  Whatever the command: DROP TABLE, SCHEMA,
 *   OWNED, FUNCTION, TRIGGER, TYPE, DOMAIN, COLLATION, EXTENSION ... CASCADE.
 *
 * - ddl_command_start (ALTER TABLE): a table published on its own is
 *   refused as a partition of a published table before PostgreSQL tries to
 *   clone the parent's capture trigger onto it (publish_config.c says why).
 *
 * - ddl_command_start (ALTER FUNCTION, ROUTINE, SCHEMA, EXTENSION): a
 *   serializer or callback is stored by name (stored_function.c), so
 *   renaming it or moving it to another schema, renaming its schema, or
 *   moving the extension it belongs to, is refused before it happens: after
 *   the command, nothing would tell which function the old name meant.
 *
 * The functions run as the role that ran the command; they read outbox's
 * tables as their owner, with schema-qualified names and operators.
 *
 * Errors: a command that would break a publication or a subscription is
 * refused with an ERROR, which aborts the command; unpublishing a table by
 * dropping its capture trigger is reported with a NOTICE.  elog only for
 * can't-happen (SPI failures).
 *
 * Memory: everything is allocated in the event trigger's current memory
 * context, freed with the command.
 *
 * src/event_triggers.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_ddl_command_end);
PG_FUNCTION_INFO_V1(outbox_sql_drop);
PG_FUNCTION_INFO_V1(outbox_ddl_command_start);

/*
 * What a command dropped that outbox must act on, sorted by what it asks:
 * read from pg_event_trigger_dropped_objects() by read_dropped_objects().
 */
typedef struct DroppedObjects
{
	List	   *tables;			/* dropped tables: forget their configurations */
	List	   *check_tables;	/* tables that lost a column: check them */
	List	   *triggered;		/* tables that stay and lost a trigger */
	List	   *unpublished;	/* ... lost their capture trigger, by DROP TRIGGER */
	List	   *functions;		/* dropped functions, schema-qualified names */
} DroppedObjects;

static void check_event_trigger_call(FunctionCallInfo fcinfo,
									 const char *event);
static bool event_trigger_applies(FunctionCallInfo fcinfo, const char *event);
static List *relations_reached(List *relids, Oid relid);
static Oid	read_trigger(Oid trigger_oid, char **stray_name);
static void refuse_stray_capture_trigger(Oid trigger_oid);
static void refuse_if_stored(Oid funcoid, const char *action);
static void refuse_if_schema_holds_stored(Oid nspoid);
static void refuse_function_change(ObjectType objtype, Node *object,
								   const char *action);
static void refuse_extension_move(Oid extoid);
static void refuse_published_attach(AlterTableStmt *stmt);
static void check_dropped_function(const char *name);
static uint64 forget_configurations(Oid relid);
static void unpublish_dropped_trigger(Oid relid);
static List *select_oids(Oid role, const char *sql, Oid argtype, Datum arg);
static char *queue_called_back_by(const char *name);
static void note_dropped_object(DroppedObjects *dropped, HeapTuple row,
								TupleDesc desc);
static void read_dropped_objects(DroppedObjects *dropped);

/*
 * Refuse a call that is not the event trigger function expects to be.
 */
static void
check_event_trigger_call(FunctionCallInfo fcinfo, const char *event)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo) ||
		strcmp(((EventTriggerData *) fcinfo->context)->event, event) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("this function must be fired as an event trigger on %s",
						event)));
}

/*
 * Check that the function is fired as an event trigger on event, and say
 * whether there is anything for it to keep consistent: not during DROP
 * EXTENSION outbox (the configuration table is gone), nor in a schema of
 * another version than the library's (version.c), which it cannot read.
 */
static bool
event_trigger_applies(FunctionCallInfo fcinfo, const char *event)
{
	check_event_trigger_call(fcinfo, event);
	if (!OidIsValid(outbox_publish_config_relid()))
		return false;
	return outbox_schema_is_current();
}

/*
 * Add to relids the tables a command on relation relid reaches: relid, its
 * inheritors (ALTER TABLE recurses to them), and, for a composite type, the
 * tables typed by it (ALTER TYPE ... CASCADE recurses to them).
 */
static List *
relations_reached(List *relids, Oid relid)
{
	if (get_rel_relkind(relid) == RELKIND_COMPOSITE_TYPE)
		return list_concat_unique_oid(relids,
									  select_oids(GetUserId(),
												  "SELECT oid FROM pg_catalog.pg_class"
												  " WHERE reloftype OPERATOR(pg_catalog.=) $1",
												  OIDOID,
												  ObjectIdGetDatum(get_rel_type_id(relid))));
	return list_concat_unique_oid(relids,
								  find_all_inheritors(relid, NoLock, NULL));
}

/*
 * Run a query of one parameter as role; return the distinct OIDs of its
 * first column.  The caller is connected to SPI.
 */
static List *
select_oids(Oid role, const char *sql, Oid argtype, Datum arg)
{
	List	   *oids = NIL;
	uint64		i;

	outbox_execute_as(role, sql, 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		oids = list_append_unique_oid(oids,
									  DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																	 SPI_tuptable->tupdesc,
																	 1, &isnull)));
	}
	return oids;
}

/*
 * Read trigger trigger_oid: its table (InvalidOid if the trigger is gone)
 * and, if it executes outbox.capture() under another name than the capture
 * trigger's, that name (else NULL).
 */
static Oid
read_trigger(Oid trigger_oid, char **stray_name)
{
	Relation	tgrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			relid = InvalidOid;

	*stray_name = NULL;
	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigger_oid));
	scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_trigger trigger = (Form_pg_trigger) GETSTRUCT(tuple);

		relid = trigger->tgrelid;
		if (trigger->tgfoid == outbox_capture_function_oid() &&
			strcmp(NameStr(trigger->tgname), OUTBOX_CAPTURE_TRIGGER_NAME) != 0)
			*stray_name = pstrdup(NameStr(trigger->tgname));
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return relid;
}

/*
 * Refuse a trigger that executes outbox.capture() under another name than
 * the capture trigger's: on a published table it would publish every row a
 * second time, under another message id.
 */
static void
refuse_stray_capture_trigger(Oid trigger_oid)
{
	char	   *stray_name;
	Oid			relid = read_trigger(trigger_oid, &stray_name);

	if (stray_name != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("trigger \"%s\" of table %s cannot execute outbox.capture()",
						stray_name, outbox_qualified_relname(relid)),
				 errdetail("outbox.capture() runs only as the trigger \"%s\" that outbox.publish() creates; another would publish each row again.",
						   OUTBOX_CAPTURE_TRIGGER_NAME),
				 errhint("Use outbox.publish() to publish the table.")));
}

/*
 * Event trigger on ddl_command_end: check the publications of the tables
 * the command reached.
 */
Datum
outbox_ddl_command_end(PG_FUNCTION_ARGS)
{
	List	   *relids = NIL;
	List	   *touched = NIL;
	List	   *triggers = NIL;
	ListCell   *lc;
	uint64		i;

	if (!event_trigger_applies(fcinfo, "ddl_command_end"))
		PG_RETURN_VOID();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT classid, objid"
					"  FROM pg_catalog.pg_event_trigger_ddl_commands()"
					" WHERE classid IS NOT NULL", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_event_trigger_ddl_commands()");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Oid			classid = DatumGetObjectId(SPI_getbinval(row, desc, 1, &isnull));
		Oid			objid = DatumGetObjectId(SPI_getbinval(row, desc, 2, &isnull));
		Oid			relid = InvalidOid;

		if (classid == RelationRelationId)
			relid = objid;
		else if (classid == TypeRelationId)
			relid = get_typ_typrelid(objid);
		else if (classid == TriggerRelationId)
			triggers = list_append_unique_oid(triggers, objid);
		if (OidIsValid(relid))
			touched = list_append_unique_oid(touched, relid);
	}
	foreach(lc, touched)
	{
		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(lfirst_oid(lc))))
			relids = relations_reached(relids, lfirst_oid(lc));
	}
	foreach(lc, triggers)
	{
		char	   *stray_name;
		Oid			relid = read_trigger(lfirst_oid(lc), &stray_name);

		if (OidIsValid(relid))
			outbox_check_publication(relid, OUTBOX_CHECK_TRIGGER);
	}
	foreach(lc, relids)
		outbox_check_publication(lfirst_oid(lc), OUTBOX_CHECK_DDL);
	foreach(lc, triggers)
		refuse_stray_capture_trigger(lfirst_oid(lc));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Refuse a command on a dropped function that some table still needs as its
 * serializer, or some subscription as its callback.  name is the function's
 * stored name; it is gone from the catalogs already.
 */
static void
check_dropped_function(const char *name)
{
	ListCell   *lc;
	char	   *queue;

	foreach(lc, outbox_tables_serialized_by(name))
	{
		Oid			relid = lfirst_oid(lc);
		Oid			rowtype = get_rel_type_id(relid);

		/* a table dropped by the same command takes its configurations */
		if (OidIsValid(rowtype) &&
			!OidIsValid(outbox_resolve_stored_function(name, rowtype)))
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop the serializer of a publication of table %s",
							outbox_qualified_relname(relid)),
					 errdetail("Function %s serializes the table's rows.", name),
					 errhint("Call outbox.publish() again without this serializer, or outbox.unpublish() the table first.")));
	}

	queue = queue_called_back_by(name);
	if (queue != NULL &&
		!OidIsValid(outbox_resolve_stored_function(name, outbox_payload_type())))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop function %s: it is the callback of the subscription of queue \"%s\"",
						name, queue),
				 errhint("Call outbox.unsubscribe('%s') first.", queue)));
}

/*
 * The queue of a subscription whose callback is stored as name, or NULL.
 */
static char *
queue_called_back_by(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;

	args[0] = CStringGetTextDatum(name);
	outbox_execute_as(outbox_table_owner("subscription"),
					  "SELECT queue_name FROM outbox.subscription"
					  " WHERE callback OPERATOR(pg_catalog.=) $1 LIMIT 1",
					  1, argtypes, args, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	return TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Remove every configuration of table relid; return how many there were.
 * The caller is connected to SPI.
 */
static uint64
forget_configurations(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];

	args[0] = ObjectIdGetDatum(relid);
	outbox_write_publish_config("DELETE FROM outbox.publish_config"
								" WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
								1, argtypes, args, NULL, SPI_OK_DELETE);
	return SPI_processed;
}

/*
 * DROP TRIGGER dropped the capture trigger of table relid, which stays:
 * unpublish the table, if the role may call outbox.unpublish() (pg_restore
 * --clean drops the capture trigger first, then the serializer, then the
 * table).  A role that may not is refused, as for any other loss of the
 * trigger.
 */
static void
unpublish_dropped_trigger(Oid relid)
{
	Oid			argtypes[3] = {REGCLASSOID, TEXTOID, TEXTOID};
	Oid			unpublish;
	uint64		removed;

	unpublish = LookupFuncName(list_make2(makeString("outbox"),
										  makeString("unpublish")),
							   3, argtypes, false);
	if (pg_proc_aclcheck(unpublish, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
	{
		outbox_check_publication(relid, OUTBOX_CHECK_TRIGGER);
		return;
	}
	removed = forget_configurations(relid);
	if (removed > 0)
		ereport(NOTICE,
				(errmsg("table %s is no longer published",
						outbox_qualified_relname(relid)),
				 errdetail_plural("Dropping its trigger \"%s\" removed its %llu outbox configuration.",
								  "Dropping its trigger \"%s\" removed its %llu outbox configurations.",
								  removed, OUTBOX_CAPTURE_TRIGGER_NAME,
								  (unsigned long long) removed),
				 errhint("Call outbox.publish() to publish it again.")));
}

/*
 * Sort one row of pg_event_trigger_dropped_objects() (classid, objid,
 * objsubid, address_names, original) into dropped.
 */
static void
note_dropped_object(DroppedObjects *dropped, HeapTuple row, TupleDesc desc)
{
	bool		isnull;
	Oid			classid = DatumGetObjectId(SPI_getbinval(row, desc, 1, &isnull));
	Oid			objid = DatumGetObjectId(SPI_getbinval(row, desc, 2, &isnull));
	int32		objsubid = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
	bool		names_isnull;
	Datum		names_datum = SPI_getbinval(row, desc, 4, &names_isnull);
	bool		original = DatumGetBool(SPI_getbinval(row, desc, 5, &isnull));
	Datum	   *names = NULL;
	int			nnames = 0;

	if (!names_isnull)
		deconstruct_array(DatumGetArrayTypeP(names_datum), TEXTOID, -1,
						  false, TYPALIGN_INT, &names, NULL, &nnames);

	if (classid == RelationRelationId && objsubid == 0)
		dropped->tables = lappend_oid(dropped->tables, objid);
	else if (classid == RelationRelationId)
		dropped->check_tables = list_append_unique_oid(dropped->check_tables,
													   objid);
	else if (classid == TriggerRelationId && nnames == 3)
	{
		/* schema, table, trigger: the table may stay */
		Oid			nspoid = get_namespace_oid(TextDatumGetCString(names[0]), true);
		Oid			relid = InvalidOid;

		if (OidIsValid(nspoid))
			relid = get_relname_relid(TextDatumGetCString(names[1]), nspoid);
		if (!OidIsValid(relid))
			return;
		if (original &&
			strcmp(TextDatumGetCString(names[2]),
				   OUTBOX_CAPTURE_TRIGGER_NAME) == 0)
			dropped->unpublished = list_append_unique_oid(dropped->unpublished,
														  relid);
		else
			dropped->triggered = list_append_unique_oid(dropped->triggered,
														relid);
	}
	else if (classid == ProcedureRelationId && nnames == 2)
		dropped->functions =
			lappend(dropped->functions,
					quote_qualified_identifier(TextDatumGetCString(names[0]),
											   TextDatumGetCString(names[1])));
}

/*
 * Read what the command being run dropped into dropped (zeroed); SPI is
 * connected.
 */
static void
read_dropped_objects(DroppedObjects *dropped)
{
	uint64		i;

	memset(dropped, 0, sizeof(*dropped));
	if (SPI_execute("SELECT classid, objid, objsubid, address_names, original"
					"  FROM pg_catalog.pg_event_trigger_dropped_objects()",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_event_trigger_dropped_objects()");
	for (i = 0; i < SPI_processed; i++)
		note_dropped_object(dropped, SPI_tuptable->vals[i],
							SPI_tuptable->tupdesc);
}

/*
 * Event trigger on sql_drop: forget the configurations of dropped tables
 * and of tables whose capture trigger was dropped, and refuse to drop what
 * a table that stays, or a subscription, needs.
 */
Datum
outbox_sql_drop(PG_FUNCTION_ARGS)
{
	DroppedObjects dropped;
	ListCell   *lc;

	if (!event_trigger_applies(fcinfo, "sql_drop"))
		PG_RETURN_VOID();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	read_dropped_objects(&dropped);

	foreach(lc, dropped.tables)
		forget_configurations(lfirst_oid(lc));
	foreach(lc, dropped.unpublished)
		unpublish_dropped_trigger(lfirst_oid(lc));
	foreach(lc, dropped.triggered)
		outbox_check_publication(lfirst_oid(lc), OUTBOX_CHECK_TRIGGER);
	foreach(lc, dropped.check_tables)
		outbox_check_publication(lfirst_oid(lc), OUTBOX_CHECK_DDL);
	foreach(lc, dropped.functions)
		check_dropped_function((const char *) lfirst(lc));

	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Refuse to rename or move function funcoid if it is stored by name as a
 * serializer or callback.  action says what the command does.
 */
static void
refuse_if_stored(Oid funcoid, const char *action)
{
	HeapTuple	tuple;
	Oid			argtype = InvalidOid;
	char	   *name;
	ListCell   *lc;

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcoid));
	if (!HeapTupleIsValid(tuple))
		return;
	if (((Form_pg_proc) GETSTRUCT(tuple))->pronargs == 1)
		argtype = ((Form_pg_proc) GETSTRUCT(tuple))->proargtypes.values[0];
	ReleaseSysCache(tuple);
	if (!OidIsValid(argtype))
		return;					/* neither a serializer nor a callback */
	name = outbox_stored_function_name(funcoid);

	if (argtype == outbox_payload_type())
	{
		char	   *queue = queue_called_back_by(name);

		if (queue != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot %s function %s: it is the callback of the subscription of queue \"%s\"",
							action, name, queue),
					 errdetail("A subscription finds its callback by its schema-qualified name."),
					 errhint("Call outbox.unsubscribe('%s') first, then outbox.subscribe() again with the new name.",
							 queue)));
		return;
	}

	foreach(lc, outbox_tables_serialized_by(name))
	{
		if (get_rel_type_id(lfirst_oid(lc)) == argtype)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot %s function %s: it is the serializer of table %s",
							action, name, outbox_qualified_relname(lfirst_oid(lc))),
					 errdetail("A publication finds its serializer by its schema-qualified name."),
					 errhint("Call outbox.unpublish() on the table first, then outbox.publish() again with the new name.")));
	}
}

/*
 * Refuse to rename or move (action) the object of a command, if it is a
 * function stored by name.
 */
static void
refuse_function_change(ObjectType objtype, Node *object, const char *action)
{
	if (objtype == OBJECT_FUNCTION || objtype == OBJECT_ROUTINE)
		refuse_if_stored(LookupFuncWithArgs(objtype,
											castNode(ObjectWithArgs, object),
											true),
						 action);
}

/*
 * Refuse to rename schema nspoid if it holds a serializer or a callback.
 */
static void
refuse_if_schema_holds_stored(Oid nspoid)
{
	char	   *nspname = get_namespace_name(nspoid);
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			i;
	static const char *const queries[2][2] = {
		{"publish_config",
			"SELECT serializer FROM outbox.publish_config"
			" WHERE pg_catalog.starts_with(serializer, $1) LIMIT 1"},
		{"subscription",
			"SELECT callback FROM outbox.subscription"
			" WHERE pg_catalog.starts_with(callback, $1) LIMIT 1"},
	};

	if (nspname == NULL)
		return;
	/* stored names are quoted as quote_qualified_identifier() quotes */
	args[0] = CStringGetTextDatum(psprintf("%s.", quote_identifier(nspname)));
	for (i = 0; i < 2; i++)
	{
		outbox_execute_as(outbox_table_owner(queries[i][0]), queries[i][1],
						  1, argtypes, args, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
		{
			bool		isnull;
			char	   *name = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
																 SPI_tuptable->tupdesc,
																 1, &isnull));

			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot rename schema \"%s\": it holds %s %s",
							nspname, i == 0 ? "serializer" : "callback", name),
					 errdetail("outbox finds serializers and callbacks by their schema-qualified names."),
					 i == 0 ?
					 errhint("Call outbox.unpublish() on the tables it serializes first.") :
					 errhint("Call outbox.unsubscribe() on the queues it consumes first.")));
		}
	}
}

/*
 * Refuse to move extension extoid to another schema if one of its functions
 * is a serializer or a callback.
 */
static void
refuse_extension_move(Oid extoid)
{
	Relation	deprel;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tuple;
	List	   *members = NIL;
	ListCell   *lc;

	if (!OidIsValid(extoid))
		return;
	deprel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&keys[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(ExtensionRelationId));
	ScanKeyInit(&keys[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(extoid));
	scan = systable_beginscan(deprel, DependReferenceIndexId, true, NULL, 2,
							  keys);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tuple);

		if (dep->classid == ProcedureRelationId &&
			dep->deptype == DEPENDENCY_EXTENSION)
			members = lappend_oid(members, dep->objid);
	}
	systable_endscan(scan);
	table_close(deprel, AccessShareLock);

	foreach(lc, members)
		refuse_if_stored(lfirst_oid(lc), "move");
}

/*
 * Refuse ALTER TABLE ... ATTACH PARTITION of a table that is published on
 * its own, or has a partition that is, or has a trigger of its own named
 * as the capture trigger, to a table that is published or is a partition
 * of a published one.
 */
static void
refuse_published_attach(AlterTableStmt *stmt)
{
	ListCell   *lc;
	Oid			parent;
	Oid			ancestor;

	if (stmt->objtype != OBJECT_TABLE)
		return;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		Oid			attached;

		if (cmd->subtype != AT_AttachPartition)
			continue;
		parent = RangeVarGetRelid(stmt->relation, NoLock, true);
		attached = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name,
									NoLock, true);
		if (!OidIsValid(parent) || !OidIsValid(attached))
			continue;			/* PostgreSQL says what is missing */
		ancestor = outbox_is_published(parent) ? parent :
			outbox_published_ancestor(parent);
		if (!OidIsValid(ancestor))
			continue;
		outbox_refuse_published_partitions(attached, ancestor);
		outbox_refuse_capture_trigger_name(attached, ancestor);
	}
}

/*
 * Event trigger on ddl_command_start, for ALTER TABLE (attaching a
 * partition), ALTER FUNCTION, ALTER ROUTINE, ALTER SCHEMA and ALTER
 * EXTENSION: refuse what would make two publications of one partition,
 * and renames and moves that would leave a stored serializer or callback
 * name resolving to nothing.
 */
Datum
outbox_ddl_command_start(PG_FUNCTION_ARGS)
{
	Node	   *parsetree;

	if (!event_trigger_applies(fcinfo, "ddl_command_start"))
		PG_RETURN_VOID();
	parsetree = ((EventTriggerData *) fcinfo->context)->parsetree;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (IsA(parsetree, AlterTableStmt))
		refuse_published_attach((AlterTableStmt *) parsetree);
	else if (IsA(parsetree, RenameStmt))
	{
		RenameStmt *stmt = (RenameStmt *) parsetree;

		if (stmt->renameType == OBJECT_SCHEMA)
			refuse_if_schema_holds_stored(get_namespace_oid(stmt->subname, true));
		else
			refuse_function_change(stmt->renameType, stmt->object, "rename");
	}
	else if (IsA(parsetree, AlterObjectSchemaStmt))
	{
		AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) parsetree;

		if (stmt->objectType == OBJECT_EXTENSION)
			refuse_extension_move(get_extension_oid(strVal(stmt->object), true));
		else
			refuse_function_change(stmt->objectType, stmt->object, "move");
	}
	SPI_finish();
	PG_RETURN_VOID();
}
