/*-------------------------------------------------------------------------
 *
 * publish_config.c
 *		  Keeping outbox.publish_config true to the catalogs.
 *
 * A configuration promises that every row written to its table becomes a
 * message.  It keeps that promise only while the table is an ordinary,
 * logged table with the capture trigger outbox_capture (outbox.capture(),
 * AFTER INSERT OR UPDATE FOR EACH ROW, enabled, no WHEN or column list),
 * the columns of its fields exist and its serializer can be found by its
 * stored name (stored_function.c).  outbox_check_publication() checks all
 * of it for one table; the event triggers (event_triggers.c) call it for the tables a
 * DDL command touched, and the guard below for rows written by hand.  The
 * event triggers read the configurations as of now, not as of their
 * transaction's snapshot (read_configs_now()).
 *
 * The guard, a BEFORE trigger on outbox.publish_config, lets through what
 * outbox itself writes: outbox_write_publish_config() raises a backend-local
 * flag for the one statement it runs, and that statement runs no user code
 * (no user trigger, default or function can be on the table or in the
 * statement), so nothing else can write under the flag.  Anything else:
 *
 * - UPDATE and TRUNCATE are refused: outbox.publish() and unpublish() do
 *   what they would, keeping the capture trigger in step.
 * - DELETE is refused, unless the row's table is gone: then the row
 *   describes nothing and may go.
 * - INSERT is let in when the row is consistent, since pg_restore loads the
 *   table this way (with COPY, its triggers enabled, as the extension's data
 *   is restored like any table's).  pg_restore creates the capture triggers
 *   of user tables only after all data, in its post-data section, so a row
 *   whose table has no trigger named outbox_capture yet is let in with a
 *   NOTICE (pg_restore shows warnings only); a trigger of that name that is
 *   not outbox's capture trigger makes the row inconsistent.  Between the
 *   two steps the table captures nothing, exactly as before the dump.
 *
 * A partitioned table is published like any table; PostgreSQL clones its
 * capture trigger onto every partition, and a partition is checked as if
 * it were published itself (logged, not foreign, the trigger enabled).  A
 * table captures by its own configurations or by those of one ancestor,
 * never both: a partition published on its own would lose its trigger,
 * the parent's clone, when detached or when the parent is unpublished.
 * The guard holds a row written by hand to that too.
 *
 * The guard and the event triggers fire in replica sessions too
 * (ENABLE ALWAYS): session_replication_role = replica is how a superuser
 * writes rows without messages, not how to break a configuration.
 *
 * Errors: what would break a configuration is refused with an ERROR that
 * names the table and what to do instead; a row restored before its
 * capture trigger gets a NOTICE.  elog only for can't-happen.
 *
 * Memory: everything is allocated in the caller's current memory context
 * (a statement's or a trigger's); nothing is cached here.
 *
 * src/publish_config.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_publish_config_guard);

/* the events of the capture trigger: AFTER INSERT OR UPDATE FOR EACH ROW */
#define CAPTURE_TRIGGER_TYPE \
	(TRIGGER_TYPE_ROW | TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE)

/* how many outbox_write_publish_config() calls are under way */
static int	config_writes = 0;

/* A row of outbox.publish_config */
typedef struct ConfigRow
{
	Oid			relid;
	char	   *destination;
	char	   *version;		/* NULL if none */
	ArrayType  *fields;			/* NULL if none */
	char	   *serializer;		/* NULL if none */
} ConfigRow;

static void check_table(Oid relid, Form_pg_class relform,
						OutboxConfigCheck check);
static HeapTuple capture_trigger_tuple(Oid relid);
static void check_trigger(Oid relid, const char *relname,
						  OutboxConfigCheck check);
static bool has_own_capture_trigger(Oid relid);
static void check_config(Form_pg_class relform, ConfigRow *config,
						 OutboxConfigCheck check);
static void check_fields(Oid relid, const char *relname, ArrayType *fields,
						 const char *destination, OutboxConfigCheck check);
static void check_serializer(Form_pg_class relform, const char *serializer,
							 OutboxConfigCheck check);
static Datum get_column(HeapTuple tuple, TupleDesc desc, const char *name,
						bool *isnull);
static bool read_config(HeapTuple tuple, TupleDesc desc, ConfigRow *config);
static void check_inserted_row(HeapTuple tuple, TupleDesc desc);

/*
 * The OID of outbox.publish_config; InvalidOid while the extension is not
 * (or no longer) there, as during DROP EXTENSION.
 */
Oid
outbox_publish_config_relid(void)
{
	Oid			namespace = get_namespace_oid("outbox", true);

	if (!OidIsValid(namespace))
		return InvalidOid;
	return get_relname_relid("publish_config", namespace);
}

/*
 * The OID of outbox.capture(), the function of every capture trigger.
 */
Oid
outbox_capture_function_oid(void)
{
	List	   *names = list_make2(makeString("outbox"), makeString("capture"));

	return LookupFuncName(names, 0, NULL, false);
}

/*
 * The schema-qualified name of relation relid, for messages.
 */
char *
outbox_qualified_relname(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * Run one statement that writes outbox.publish_config, as the table's owner,
 * with the guard's flag raised for it alone.  The caller is connected to
 * SPI; the statement must call no user code.
 */
void
outbox_write_publish_config(const char *sql, int nargs, Oid *argtypes,
							Datum *args, const char *nulls, int expected)
{
	Oid			owner = outbox_table_owner("publish_config");

	config_writes++;
	PG_TRY();
	{
		outbox_execute_as(owner, sql, nargs, argtypes, args, nulls, expected);
	}
	PG_FINALLY();
	{
		config_writes--;
	}
	PG_END_TRY();
}

/*
 * Check the table-wide part of a publication: what the table is, and its
 * capture trigger.
 */
static void
check_table(Oid relid, Form_pg_class relform, OutboxConfigCheck check)
{
	const char *relname = NameStr(relform->relname);

	if (relform->relkind == RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("foreign table \"%s\" cannot be a partition of a table published by outbox",
						relname),
				 errdetail("Rows written to it on its own server would publish nothing."),
				 errhint("Call outbox.unpublish() on the partitioned table first.")));
	if (check == OUTBOX_CHECK_INSERT)
	{
		if (relform->relkind != RELKIND_RELATION &&
			relform->relkind != RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is not a table that outbox can publish",
							relname),
					 errdetail("outbox publishes ordinary and partitioned tables only.")));
		if (IsCatalogRelationOid(relid) ||
			relform->relnamespace == get_namespace_oid("outbox", false))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot publish table \"%s\"", relname),
					 errdetail("System catalogs and the outbox extension's own tables cannot be published.")));
		if (relform->relpersistence == RELPERSISTENCE_TEMP)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot publish temporary table \"%s\"", relname),
					 errdetail("A temporary table goes with its session, and no command tells outbox.")));
	}
	if (relform->relpersistence == RELPERSISTENCE_UNLOGGED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 check == OUTBOX_CHECK_INSERT ?
				 errmsg("cannot publish unlogged table \"%s\"", relname) :
				 errmsg("table \"%s\" is published by outbox and cannot be unlogged",
						relname),
				 errdetail("After a crash an unlogged table loses its rows, but their messages stay in outbox.published."),
				 check == OUTBOX_CHECK_INSERT ?
				 errhint("ALTER TABLE ... SET LOGGED makes it a table outbox can publish.") :
				 errhint("Call outbox.unpublish() on the table first.")));

	check_trigger(relid, relname, check);
}

/*
 * A copy of the pg_trigger row of table relid's trigger named as the
 * capture trigger, as of this command; NULL if it has none.
 */
static HeapTuple
capture_trigger_tuple(Oid relid)
{
	Relation	tgrel;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tuple;

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&keys[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(OUTBOX_CAPTURE_TRIGGER_NAME));
	scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true, NULL, 2,
							  keys);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		tuple = heap_copytuple(tuple);
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return tuple;
}

/*
 * Check that the capture trigger of a published table is outbox's and fires
 * for every row written.  A missing trigger is refused after a command on
 * the trigger (DROP TRIGGER itself unpublishes the table first, in event_triggers.c,
 * when the role may unpublish), let in with a NOTICE on INSERT
 * and silently after other DDL: pg_restore loads the data and then, in its
 * post-data section, adds the table's constraints and indexes before it
 * creates the trigger.
 */
static void
check_trigger(Oid relid, const char *relname, OutboxConfigCheck check)
{
	HeapTuple	tuple = capture_trigger_tuple(relid);

	if (!HeapTupleIsValid(tuple))
	{
		if (check == OUTBOX_CHECK_DDL)
			;					/* pg_restore has not created it yet */
		else if (check == OUTBOX_CHECK_INSERT)
			ereport(NOTICE,
					(errmsg("table \"%s\" has no capture trigger yet", relname),
					 errdetail("Rows written to it publish nothing until its trigger \"%s\" is created, as pg_restore does after loading the data.",
							   OUTBOX_CAPTURE_TRIGGER_NAME),
					 errhint("Call outbox.publish() with the same arguments to create it.")));
		else
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("table %s is published by outbox and needs its trigger \"%s\"",
							outbox_qualified_relname(relid),
							OUTBOX_CAPTURE_TRIGGER_NAME),
					 errhint("Use outbox.unpublish() to stop publishing the table.")));
	}
	else
	{
		Form_pg_trigger trigger = (Form_pg_trigger) GETSTRUCT(tuple);

		if (trigger->tgfoid != outbox_capture_function_oid() ||
			trigger->tgtype != CAPTURE_TRIGGER_TYPE ||
			trigger->tgattr.dim1 != 0 ||
			!heap_attisnull(tuple, Anum_pg_trigger_tgqual, NULL))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 check == OUTBOX_CHECK_INSERT ?
					 errmsg("trigger \"%s\" of table \"%s\" is not outbox's capture trigger",
							OUTBOX_CAPTURE_TRIGGER_NAME, relname) :
					 errmsg("trigger \"%s\" of published table \"%s\" must stay outbox's capture trigger",
							OUTBOX_CAPTURE_TRIGGER_NAME, relname),
					 errdetail("outbox publishes a table through a trigger of that name that executes outbox.capture() AFTER INSERT OR UPDATE FOR EACH ROW, with no WHEN condition or column list."),
					 check == OUTBOX_CHECK_INSERT ?
					 errhint("Rename that trigger, then call outbox.publish().") :
					 errhint("Call outbox.unpublish() to stop publishing the table first.")));
		if (trigger->tgenabled != TRIGGER_FIRES_ON_ORIGIN &&
			trigger->tgenabled != TRIGGER_FIRES_ALWAYS)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot disable trigger \"%s\" of published table \"%s\"",
							OUTBOX_CAPTURE_TRIGGER_NAME, relname),
					 errdetail("Rows written while it is disabled would publish no message."),
					 errhint("Call outbox.unpublish() to stop publishing the table; to write rows without messages, a superuser can SET session_replication_role = replica.")));
	}
}

/*
 * Check that the columns of a fields configuration exist.
 */
static void
check_fields(Oid relid, const char *relname, ArrayType *fields,
			 const char *destination, OutboxConfigCheck check)
{
	Datum	   *names;
	bool	   *nulls;
	int			nnames;
	int			i;

	if (ARR_NDIM(fields) != 1 || ARR_HASNULL(fields))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fields must be a one-dimensional array of column names without NULLs")));
	deconstruct_array(fields, TEXTOID, -1, false, TYPALIGN_INT,
					  &names, &nulls, &nnames);
	for (i = 0; i < nnames; i++)
	{
		char	   *name = TextDatumGetCString(names[i]);
		HeapTuple	tuple = SearchSysCacheAttName(relid, name);
		bool		found = false;

		if (HeapTupleIsValid(tuple))
		{
			found = ((Form_pg_attribute) GETSTRUCT(tuple))->attnum > 0;
			ReleaseSysCache(tuple);
		}
		if (found)
			continue;
		if (check == OUTBOX_CHECK_INSERT)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							name, relname)));
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("column \"%s\" of table %s is published by outbox",
						name, outbox_qualified_relname(relid)),
				 errdetail("outbox.publish() was given this column in the fields of destination \"%s\".",
						   destination),
				 errhint("Call outbox.publish() again without this column, or outbox.unpublish() the table first.")));
	}
}

/*
 * Check that a stored serializer name resolves to a function that can
 * serialize rows of the table (on INSERT: and is written as outbox writes
 * it, so that DDL finds it by name).
 */
static void
check_serializer(Form_pg_class relform, const char *serializer,
				 OutboxConfigCheck check)
{
	Oid			funcoid = outbox_resolve_stored_function(serializer,
														 relform->reltype);
	HeapTuple	tuple;
	Form_pg_proc proc;
	bool		usable;

	if (!OidIsValid(funcoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("serializer function %s(%s) does not exist",
						serializer, format_type_be_qualified(relform->reltype)),
				 check == OUTBOX_CHECK_INSERT ?
				 errhint("A serializer is stored by its schema-qualified name; it takes one argument of the table's row type.") :
				 errhint("Call outbox.publish() again with a serializer that exists, or outbox.unpublish() the table.")));
	if (check != OUTBOX_CHECK_INSERT)
		return;

	if (!outbox_stored_function_name_is_canonical(serializer, funcoid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("serializer must be stored as %s, not as %s",
						outbox_stored_function_name(funcoid), serializer)));
	outbox_check_stored_function_lasts(funcoid, "serializer");
	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcoid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", funcoid);
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	usable = proc->prokind == PROKIND_FUNCTION && !proc->proretset &&
		(proc->prorettype == JSONOID || proc->prorettype == JSONBOID);
	ReleaseSysCache(tuple);
	if (!usable)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("function %s cannot serialize rows of table \"%s\"",
						format_procedure(funcoid), NameStr(relform->relname)),
				 errdetail("A serializer is a plain function returning one json or jsonb value.")));
}

/*
 * Check one configuration of a table (destination and version, fields,
 * serializer) against the catalogs.
 */
static void
check_config(Form_pg_class relform, ConfigRow *config, OutboxConfigCheck check)
{
	if (check == OUTBOX_CHECK_INSERT)
		outbox_check_destination(config->destination, config->version);
	if (config->fields != NULL)
		check_fields(config->relid, NameStr(relform->relname), config->fields,
					 config->destination, check);
	if (config->serializer != NULL)
		check_serializer(relform, config->serializer, check);
}

/*
 * The configurations (ConfigRow *) whose column attname equals value, by
 * eqproc under collation.  They are read with a snapshot taken now, after
 * the command's own changes, not with the transaction's: a DDL command in
 * a REPEATABLE READ transaction must see what outbox.publish() committed
 * since the transaction began.
 */
static List *
read_configs_now(const char *attname, RegProcedure eqproc, Oid collation,
				 Datum value)
{
	Relation	rel;
	ScanKeyData key;
	Snapshot	snapshot;
	SysScanDesc scan;
	HeapTuple	tuple;
	List	   *configs = NIL;

	rel = table_open(outbox_publish_config_relid(), AccessShareLock);
	ScanKeyEntryInitialize(&key, 0,
						   get_attnum(RelationGetRelid(rel), attname),
						   BTEqualStrategyNumber, InvalidOid, collation,
						   eqproc, value);
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(rel, InvalidOid, false, snapshot, 1, &key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		ConfigRow  *config = palloc(sizeof(ConfigRow));

		if (read_config(heap_copytuple(tuple), RelationGetDescr(rel), config))
			configs = lappend(configs, config);
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return configs;
}

/*
 * The tables (OIDs, each once) with a configuration whose serializer is
 * stored as name, as of now (see read_configs_now()).
 */
List *
outbox_tables_serialized_by(const char *name)
{
	List	   *relids = NIL;
	ListCell   *lc;

	foreach(lc, read_configs_now("serializer", F_TEXTEQ, C_COLLATION_OID,
								 CStringGetTextDatum(name)))
		relids = list_append_unique_oid(relids,
										((ConfigRow *) lfirst(lc))->relid);
	return relids;
}

/*
 * Whether table relid has configurations of its own, as of now.
 */
bool
outbox_is_published(Oid relid)
{
	return read_configs_now("relid", F_OIDEQ, InvalidOid,
							ObjectIdGetDatum(relid)) != NIL;
}

/*
 * The partition ancestors of table relid, its parent first.  Unlike
 * get_partition_ancestors(), a parent that relid (or an ancestor) is being
 * detached from by DETACH PARTITION ... CONCURRENTLY is one still: until
 * the detach is finalized, the partition keeps its clone of the parent's
 * capture trigger, and its rows are the parent's to publish.
 */
List *
outbox_partition_ancestors(Oid relid)
{
	List	   *ancestors = NIL;
	Relation	inhrel = table_open(InheritsRelationId, AccessShareLock);

	while (get_rel_relispartition(relid))
	{
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tuple;

		ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(relid));
		scan = systable_beginscan(inhrel, InheritsRelidSeqnoIndexId, true,
								  NULL, 1, &key);
		tuple = systable_getnext(scan);
		relid = HeapTupleIsValid(tuple) ?
			((Form_pg_inherits) GETSTRUCT(tuple))->inhparent : InvalidOid;
		systable_endscan(scan);
		if (!OidIsValid(relid))
			break;				/* detached since the syscache said so */
		ancestors = lappend_oid(ancestors, relid);
	}
	table_close(inhrel, AccessShareLock);
	return ancestors;
}

/*
 * The nearest partition ancestor of table relid that has configurations of
 * its own, as of now; InvalidOid if none (or relid is no partition).
 */
Oid
outbox_published_ancestor(Oid relid)
{
	ListCell   *lc;

	foreach(lc, outbox_partition_ancestors(relid))
	{
		if (outbox_is_published(lfirst_oid(lc)))
			return lfirst_oid(lc);
	}
	return InvalidOid;
}

/*
 * Refuse table relid, published on its own, as a partition of ancestor,
 * published too.
 */
void
outbox_refuse_published_partition(Oid relid, Oid ancestor)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("table %s is published by outbox on its own and cannot be a partition of published table %s",
					outbox_qualified_relname(relid),
					outbox_qualified_relname(ancestor)),
			 errdetail("A partition captures by the configurations of its published ancestor; its own would lose their trigger when it is detached."),
			 errhint("Call outbox.unpublish() on one of the two first; outbox.publish() of the partitioned table may name more destinations.")));
}

/*
 * Refuse relid and every table under it in its partition tree that is
 * published on its own (but ancestor itself) as partitions of ancestor,
 * published too.
 */
void
outbox_refuse_published_partitions(Oid relid, Oid ancestor)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		if (lfirst_oid(lc) != ancestor && outbox_is_published(lfirst_oid(lc)))
			outbox_refuse_published_partition(lfirst_oid(lc), ancestor);
	}
}

/*
 * Whether table relid has a trigger named as the capture trigger that is
 * its own, not a clone of its parent's.
 */
static bool
has_own_capture_trigger(Oid relid)
{
	HeapTuple	tuple = capture_trigger_tuple(relid);

	return HeapTupleIsValid(tuple) &&
		!OidIsValid(((Form_pg_trigger) GETSTRUCT(tuple))->tgparentid);
}

/*
 * Refuse relid and every table under it in its partition tree (but
 * ancestor itself) that has a trigger of its own named as the capture
 * trigger, as partitions of ancestor, published or being published:
 * PostgreSQL gives each partition a clone of the parent's capture trigger
 * under that name.
 */
void
outbox_refuse_capture_trigger_name(Oid relid, Oid ancestor)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		Oid			partid = lfirst_oid(lc);

		if (partid != ancestor && has_own_capture_trigger(partid))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("table %s has a trigger \"%s\" of its own and cannot be a partition of published table %s",
							outbox_qualified_relname(partid),
							OUTBOX_CAPTURE_TRIGGER_NAME,
							outbox_qualified_relname(ancestor)),
					 errdetail("Every partition of a published table gets a clone of the parent's capture trigger, under that name."),
					 errhint("Rename or drop trigger \"%s\" of %s first.",
							 OUTBOX_CAPTURE_TRIGGER_NAME,
							 outbox_qualified_relname(partid))));
	}
}

/*
 * Check every configuration of table relid, and those of its partition
 * ancestors that it captures by, after a DDL command touched it (check:
 * OUTBOX_CHECK_DDL) or its capture trigger (OUTBOX_CHECK_TRIGGER); error
 * out, saying what to do instead, if one no longer holds.  A table without
 * configurations passes, and so does one that is gone (sql_drop removes its
 * configurations).
 */
void
outbox_check_publication(Oid relid, OutboxConfigCheck check)
{
	HeapTuple	reltuple;
	Form_pg_class relform;
	List	   *configs;
	Oid			ancestor;
	ListCell   *lc;

	reltuple = SearchSysCacheCopy1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(reltuple))
		return;
	relform = (Form_pg_class) GETSTRUCT(reltuple);

	configs = read_configs_now("relid", F_OIDEQ, InvalidOid,
							   ObjectIdGetDatum(relid));
	ancestor = outbox_published_ancestor(relid);
	if (configs != NIL && OidIsValid(ancestor))
		outbox_refuse_published_partition(relid, ancestor);
	if (configs != NIL || OidIsValid(ancestor))
		check_table(relid, relform, check);
	foreach(lc, configs)
		check_config(relform, (ConfigRow *) lfirst(lc), check);

	heap_freetuple(reltuple);
}

/*
 * The value of the named column of a row of outbox.publish_config.
 */
static Datum
get_column(HeapTuple tuple, TupleDesc desc, const char *name, bool *isnull)
{
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		elog(ERROR, "outbox.publish_config has no column \"%s\"", name);
	return heap_getattr(tuple, attnum, desc, isnull);
}

/*
 * Read a row of outbox.publish_config (or of a query that selects its
 * columns by their names); false if its relid or destination is NULL.
 */
static bool
read_config(HeapTuple tuple, TupleDesc desc, ConfigRow *config)
{
	Datum		value;
	bool		isnull;

	memset(config, 0, sizeof(ConfigRow));
	value = get_column(tuple, desc, "relid", &isnull);
	if (isnull)
		return false;
	config->relid = DatumGetObjectId(value);
	value = get_column(tuple, desc, "destination", &isnull);
	if (isnull)
		return false;
	config->destination = TextDatumGetCString(value);
	value = get_column(tuple, desc, "version", &isnull);
	if (!isnull)
		config->version = TextDatumGetCString(value);
	value = get_column(tuple, desc, "fields", &isnull);
	if (!isnull)
		config->fields = DatumGetArrayTypeP(value);
	value = get_column(tuple, desc, "serializer", &isnull);
	if (!isnull)
		config->serializer = TextDatumGetCString(value);
	return true;
}

/*
 * Let a row inserted by hand into outbox.publish_config in only if it is
 * consistent; the NOT NULL, unique and CHECK constraints do the rest.
 */
static void
check_inserted_row(HeapTuple tuple, TupleDesc desc)
{
	ConfigRow	config;
	HeapTuple	reltuple;
	Oid			ancestor;

	if (!read_config(tuple, desc, &config))
		return;
	reltuple = SearchSysCache1(RELOID, ObjectIdGetDatum(config.relid));
	if (!HeapTupleIsValid(reltuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", config.relid)));
	/* a table captures by its own configurations or one ancestor's */
	ancestor = outbox_published_ancestor(config.relid);
	if (OidIsValid(ancestor))
		outbox_refuse_published_partition(config.relid, ancestor);
	outbox_refuse_published_partitions(config.relid, config.relid);
	check_table(config.relid, (Form_pg_class) GETSTRUCT(reltuple),
				OUTBOX_CHECK_INSERT);
	check_config((Form_pg_class) GETSTRUCT(reltuple), &config,
				 OUTBOX_CHECK_INSERT);
	ReleaseSysCache(reltuple);
}

/*
 * Trigger BEFORE INSERT OR UPDATE OR DELETE (row) and BEFORE TRUNCATE
 * (statement) on outbox.publish_config: see the file header.
 */
Datum
outbox_publish_config_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerEvent event;
	HeapTuple	tuple;
	bool		isnull;
	Datum		relid;

	outbox_require_current_schema();
	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		RelationGetRelid(trigdata->tg_relation) != outbox_publish_config_relid())
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox.publish_config_guard() must be fired BEFORE a change of outbox.publish_config")));
	event = trigdata->tg_event;
	tuple = trigdata->tg_trigtuple;
	if (TRIGGER_FIRED_BY_UPDATE(event))
		tuple = trigdata->tg_newtuple;

	if (config_writes > 0)
		return PointerGetDatum(tuple);

	if (TRIGGER_FIRED_BY_TRUNCATE(event) || TRIGGER_FIRED_BY_UPDATE(event))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s outbox.publish_config",
						TRIGGER_FIRED_BY_UPDATE(event) ? "update" : "truncate"),
				 errdetail("outbox.publish() and outbox.unpublish() change the configurations and the capture triggers together."),
				 errhint("Call outbox.publish() again to change a configuration, or outbox.unpublish() to remove it.")));

	if (TRIGGER_FIRED_BY_DELETE(event))
	{
		relid = get_column(tuple, RelationGetDescr(trigdata->tg_relation),
						   "relid", &isnull);
		if (!isnull && SearchSysCacheExists1(RELOID, relid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot delete from outbox.publish_config"),
					 errdetail("outbox.unpublish() removes a configuration and the capture trigger together."),
					 errhint("Call outbox.unpublish() to stop publishing a table.")));
		return PointerGetDatum(tuple);
	}

	check_inserted_row(tuple, RelationGetDescr(trigdata->tg_relation));
	return PointerGetDatum(tuple);
}
