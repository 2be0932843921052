/*-------------------------------------------------------------------------
 *
 * publication.c
 *		  outbox.publish() and outbox.unpublish().
 *
 * Everything a configuration names is validated here, where it enters, so
 * that a configuration never breaks users' writes later: the table (an
 * ordinary, permanent table the caller owns), the destination and version
 * (message.c, destination.c), that the caller may publish to the final
 * destination (privileges.c), the columns, and the serializer (exists,
 * takes the table's row type, returns json or jsonb, is not temporary,
 * the caller may execute it).
 *
 * A partitioned table is published through its capture trigger, which
 * PostgreSQL clones onto each partition, present and future (capture.c
 * gives a partition's rows the parent's configurations and row type).  So
 * each partition is checked as the table is (owned by the caller, logged,
 * not foreign), and a table captures by its own configurations or by one
 * ancestor's, never both (publish_config.c says why).
 *
 * outbox.publish_config is written as its owner (the role that created the
 * extension), since table owners do not have privileges on it; the capture
 * trigger is created and dropped as the caller, who owns the table.  Both
 * go through outbox_execute_as(), which pins search_path, and every
 * statement here qualifies its operators: the caller's search_path never
 * reaches them.  Using either function needs a GRANT of EXECUTE.
 *
 * Errors: whatever would make a configuration unsafe or unsendable is
 * refused with an ERROR before anything is written, so that a failed call
 * leaves nothing half-done; fields given with a serializer are ignored
 * with a NOTICE.  elog only for can't-happen (SPI failures).
 *
 * Memory: everything is allocated in the function's current memory
 * context, freed with the statement.
 *
 * src/publication.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_publish);
PG_FUNCTION_INFO_V1(outbox_unpublish);


static Relation open_published_table(Oid relid, const char *function);
static void check_fields(Relation rel, ArrayType *fields);
static Oid	lookup_serializer(Relation rel, const char *name);
static void check_persistence(Relation rel);
static void check_partition_tree(Relation rel);
static void refuse_pending_detach(Relation rel, Oid parentid);
static bool has_capture_trigger(Relation rel, bool refuse_foreign);
static void write_configuration(Relation rel, const char *destination,
								const char *version, ArrayType *fields,
								Oid serializer);

/*
 * Open the table an outbox function was given, locked against concurrent
 * trigger changes, after checking that it can be published by the caller.
 */
static Relation
open_published_table(Oid relid, const char *function)
{
	Relation	rel;
	char		relkind;

	rel = table_open(relid, ShareRowExclusiveLock);
	relkind = rel->rd_rel->relkind;

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errdetail("%s() takes ordinary and partitioned tables only.",
						   function)));
	if (IsCatalogRelation(rel) ||
		RelationGetNamespace(rel) == get_namespace_oid("outbox", false))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot publish table \"%s\"", RelationGetRelationName(rel)),
				 errdetail("System catalogs and the outbox extension's own tables cannot be published.")));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE,
					   RelationGetRelationName(rel));
	return rel;
}

/*
 * Check that every name in fields is a column of rel.
 */
static void
check_fields(Relation rel, ArrayType *fields)
{
	Datum	   *names;
	bool	   *nulls;
	int			nnames;
	int			i;

	if (ARR_NDIM(fields) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("fields must be a one-dimensional array of column names")));
	deconstruct_array(fields, TEXTOID, -1, false, TYPALIGN_INT,
					  &names, &nulls, &nnames);
	if (nnames == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fields must name at least one column"),
				 errhint("Pass NULL to publish all columns.")));
	for (i = 0; i < nnames; i++)
	{
		char	   *name;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("fields must not contain NULL")));
		name = TextDatumGetCString(names[i]);
		if (SPI_fnumber(RelationGetDescr(rel), name) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							name, RelationGetRelationName(rel))));
	}
}

/*
 * Refuse a table whose rows do not last as long as their messages: a TEMP
 * table (its rows are gone at the end of the session, and they belong to
 * one session alone), and an UNLOGGED table, whose rows a crash empties
 * while their messages, in the logged outbox, are still sent.
 */
static void
check_persistence(Relation rel)
{
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot publish temporary table \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail("Its rows last only as long as the session, and its messages would outlive them."),
				 errhint("Publish a permanent table, or insert messages into outbox.published yourself.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot publish unlogged table \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail("A crash empties an unlogged table, but its messages are in the logged outbox and would still be sent: messages of writes that are gone."),
				 errhint("Make it a logged table first: ALTER TABLE %s SET LOGGED.",
						 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													RelationGetRelationName(rel)))));
}

/*
 * Check what publishing rel would capture in its partition tree: not a
 * partition of a published table, and, for a partitioned table, that every
 * partition (locked now, as CREATE TRIGGER will) is a logged, ordinary or
 * partitioned table the caller owns, with no configuration of its own; and,
 * if the trigger is still to be created, that no partition is being
 * detached or has a trigger of its own under the capture trigger's name.
 * Later partitions are checked as they come by the event triggers (event_triggers.c);
 * PostgreSQL lets only the owner of both tables attach one to the other.
 */
static void
check_partition_tree(Relation rel)
{
	Oid			ancestor = outbox_published_ancestor(RelationGetRelid(rel));
	List	   *tree;
	ListCell   *lc;

	if (OidIsValid(ancestor))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot publish table \"%s\": it is a partition of published table %s",
						RelationGetRelationName(rel),
						outbox_qualified_relname(ancestor)),
				 errdetail("Its rows are published by the configurations of %s already.",
						   outbox_qualified_relname(ancestor)),
				 errhint("Call outbox.publish() on %s to add a destination.",
						 outbox_qualified_relname(ancestor))));
	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		return;

	tree = find_all_inheritors(RelationGetRelid(rel), ShareRowExclusiveLock,
							   NULL);
	/* a published table has its trigger, cloned before any detach began */
	if (!outbox_is_published(RelationGetRelid(rel)))
	{
		foreach(lc, tree)
			refuse_pending_detach(rel, lfirst_oid(lc));
	}
	foreach(lc, tree)
	{
		Oid			partid = lfirst_oid(lc);
		Relation	part;

		if (partid == RelationGetRelid(rel))
			continue;
		part = table_open(partid, NoLock);
		if (part->rd_rel->relkind != RELKIND_RELATION &&
			part->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("cannot publish partitioned table \"%s\": its partition \"%s\" is not an ordinary table",
							RelationGetRelationName(rel),
							RelationGetRelationName(part)),
					 errdetail("Rows written to a foreign partition on its own server would publish nothing."),
					 errhint("Detach partition \"%s\" first.",
							 RelationGetRelationName(part))));
		if (!pg_class_ownercheck(partid, GetUserId()))
			aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE,
						   RelationGetRelationName(part));
		check_persistence(part);
		if (outbox_is_published(partid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot publish partitioned table \"%s\": its partition \"%s\" is published on its own",
							RelationGetRelationName(rel),
							RelationGetRelationName(part)),
					 errdetail("A partition captures by the configurations of its published ancestor, or by its own, not both."),
					 errhint("Call outbox.unpublish() on \"%s\" first, and name its destinations in outbox.publish() of \"%s\".",
							 RelationGetRelationName(part),
							 RelationGetRelationName(rel))));
		table_close(part, NoLock);
	}
	if (!outbox_is_published(RelationGetRelid(rel)))
		outbox_refuse_capture_trigger_name(RelationGetRelid(rel),
										   RelationGetRelid(rel));
}

/*
 * Refuse to publish rel, whose capture trigger is still to be created, while
 * a partition of parentid (rel or a partitioned table under it) is being
 * detached by an unfinished DETACH PARTITION ... CONCURRENTLY: PostgreSQL
 * clones no new trigger onto it, yet it is a partition until finalized.
 * The caller holds a lock on parentid that keeps a detach from finishing.
 */
static void
refuse_pending_detach(Relation rel, Oid parentid)
{
	ListCell   *lc;

	if (get_rel_relkind(parentid) != RELKIND_PARTITIONED_TABLE)
		return;
	foreach(lc, find_inheritance_children_extended(parentid, false, NoLock,
												   NULL, NULL))
	{
		Oid			partid = lfirst_oid(lc);

		if (PartitionHasPendingDetach(partid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot publish partitioned table \"%s\": its partition %s is being detached",
							RelationGetRelationName(rel),
							outbox_qualified_relname(partid)),
					 errdetail("A partition being detached gets no clone of a new trigger, and its rows would publish nothing until the detach is finalized."),
					 errhint("Finish the detach with ALTER TABLE %s DETACH PARTITION %s FINALIZE, then call outbox.publish() again.",
							 outbox_qualified_relname(parentid),
							 outbox_qualified_relname(partid))));
	}
}

/*
 * Resolve a serializer, given as a function name or a full signature, to a
 * function of one argument of rel's row type returning json or jsonb, in
 * a permanent schema: a temporary function goes with its session, no
 * event trigger sees it go, and the table's writes would fail after.
 */
static Oid
lookup_serializer(Relation rel, const char *name)
{
	Oid			rowtype = rel->rd_rel->reltype;
	Oid			funcoid;

	if (strchr(name, '(') != NULL)
		funcoid = DatumGetObjectId(DirectFunctionCall1(regprocedurein,
													   CStringGetDatum(name)));
	else
	{
		List	   *names = stringToQualifiedNameList(name);

		funcoid = LookupFuncName(names, 1, &rowtype, true);
		if (!OidIsValid(funcoid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("serializer function %s(%s) does not exist",
							name, format_type_be(rowtype)),
					 errhint("A serializer takes one argument of the table's row type and returns json or jsonb.")));
	}

	(void) outbox_check_serializer(rel, funcoid);

	if (pg_proc_aclcheck(funcoid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION,
					   format_procedure(funcoid));
	outbox_check_stored_function_lasts(funcoid, "serializer");
	return funcoid;
}

/*
 * Whether rel has a capture trigger of its own (not a clone of its parent's),
 * as of this command (not read-only: the check must see what the function
 * itself just changed).  A trigger of that name that does not execute
 * outbox.capture() is the user's own: it is not the capture trigger, and
 * with refuse_foreign it is an error.
 */
static bool
has_capture_trigger(Relation rel, bool refuse_foreign)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2];
	bool		isnull;

	args[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	args[1] = CStringGetTextDatum(OUTBOX_CAPTURE_TRIGGER_NAME);
	outbox_execute_as(GetUserId(),
					  "SELECT tgfoid FROM pg_catalog.pg_trigger"
					  " WHERE tgrelid OPERATOR(pg_catalog.=) $1"
					  "   AND tgname OPERATOR(pg_catalog.=) $2"
					  "   AND tgparentid OPERATOR(pg_catalog.=) 0",
					  2, argtypes, args, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	if (DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull)) ==
		outbox_capture_function_oid())
		return true;
	if (refuse_foreign)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table \"%s\" already has a trigger named \"%s\"",
						RelationGetRelationName(rel), OUTBOX_CAPTURE_TRIGGER_NAME),
				 errdetail("outbox publishes a table through a trigger of that name that executes outbox.capture()."),
				 errhint("Rename that trigger, then call outbox.publish() again.")));
	return false;
}

/*
 * Write the checked configuration (rel, destination, version, fields or
 * serializer) into outbox.publish_config, replacing the one of the same
 * table, destination and version, and give rel its capture trigger if it
 * has none yet.
 */
static void
write_configuration(Relation rel, const char *destination,
					const char *version, ArrayType *fields, Oid serializer)
{
	Oid			argtypes[5] = {OIDOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	args[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	args[1] = CStringGetTextDatum(destination);
	args[2] = version ? CStringGetTextDatum(version) : (Datum) 0;
	nulls[2] = version ? ' ' : 'n';
	args[3] = fields ? PointerGetDatum(fields) : (Datum) 0;
	nulls[3] = fields ? ' ' : 'n';
	args[4] = OidIsValid(serializer) ?
		CStringGetTextDatum(outbox_stored_function_name(serializer)) : (Datum) 0;
	nulls[4] = OidIsValid(serializer) ? ' ' : 'n';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	outbox_write_publish_config("INSERT INTO outbox.publish_config"
			   " (relid, destination, version, fields, serializer)"
			   " VALUES ($1, $2, $3, $4, $5)"
			   " ON CONFLICT ON CONSTRAINT publish_config_key"
			   " DO UPDATE SET fields = EXCLUDED.fields,"
			   "               serializer = EXCLUDED.serializer",
			   5, argtypes, args, nulls, SPI_OK_INSERT);

	if (!has_capture_trigger(rel, true))
	{
		char	   *sql;

		sql = psprintf("CREATE TRIGGER " OUTBOX_CAPTURE_TRIGGER_NAME
					   " AFTER INSERT OR UPDATE ON %s"
					   " FOR EACH ROW EXECUTE FUNCTION outbox.capture()",
					   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												  RelationGetRelationName(rel)));
		outbox_execute_as(GetUserId(), sql, 0, NULL, NULL, NULL, SPI_OK_UTILITY);
	}

	SPI_finish();
}

/*
 * SQL: outbox.publish(table, destination, version, fields, serializer).
 * Creates or replaces the configuration of (table, destination, version)
 * and puts the capture trigger on the table if it is not there yet.
 */
Datum
outbox_publish(PG_FUNCTION_ARGS)
{
	Relation	rel;
	Oid			relid;
	char	   *destination;
	char	   *version = NULL;
	char	   *final_destination;
	ArrayType  *fields = NULL;
	Oid			serializer = InvalidOid;

	outbox_require_current_schema();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table must not be NULL")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("destination must not be NULL")));
	relid = PG_GETARG_OID(0);
	destination = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(2))
		version = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		fields = PG_GETARG_ARRAYTYPE_P(3);

	rel = open_published_table(relid, "outbox.publish");
	check_persistence(rel);
	check_partition_tree(rel);
	outbox_check_destination(destination, version);
	final_destination = version ? psprintf("%s.%s", destination, version) :
		destination;
	outbox_check_destination_routable(final_destination, false);
	outbox_check_destination_allowed(GetUserId(), "publish", final_destination);

	if (!PG_ARGISNULL(4))
	{
		serializer = lookup_serializer(rel,
									   text_to_cstring(PG_GETARG_TEXT_PP(4)));
		if (fields != NULL)
		{
			ereport(NOTICE,
					(errmsg("fields are ignored when a serializer is given"),
					 errdetail("The serializer alone makes the message body.")));
			fields = NULL;
		}
	}
	if (fields != NULL)
		check_fields(rel, fields);

	write_configuration(rel, destination, version, fields, serializer);
	table_close(rel, NoLock);
	PG_RETURN_VOID();
}

/*
 * SQL: outbox.unpublish(table, destination, version).  Removes the table's
 * configurations (all of them, those of one destination, or one version)
 * and the capture trigger with the last one; returns how many were removed.
 */
Datum
outbox_unpublish(PG_FUNCTION_ARGS)
{
	Relation	rel;
	Oid			relid;
	Oid			argtypes[3] = {OIDOID, TEXTOID, TEXTOID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	uint64		removed;

	outbox_require_current_schema();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table must not be NULL")));
	if (PG_ARGISNULL(1) && !PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a version needs its destination")));
	relid = PG_GETARG_OID(0);
	rel = open_published_table(relid, "outbox.unpublish");

	args[0] = ObjectIdGetDatum(relid);
	args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	args[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	outbox_write_publish_config("DELETE FROM outbox.publish_config"
			   " WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
			   "   AND ($2 IS NULL OR destination OPERATOR(pg_catalog.=) $2)"
			   "   AND ($3 IS NULL OR version OPERATOR(pg_catalog.=) $3)",
			   3, argtypes, args, nulls, SPI_OK_DELETE);
	removed = SPI_processed;

	if (removed == 0)
	{
		Oid			ancestor = outbox_published_ancestor(relid);

		ereport(NOTICE,
				(errmsg("table \"%s\" has no matching outbox publication",
						RelationGetRelationName(rel)),
				 OidIsValid(ancestor) ?
				 errdetail("Its rows are published by the configurations of %s, its ancestor.",
						   outbox_qualified_relname(ancestor)) : 0));
	}

	outbox_execute_as(outbox_table_owner("publish_config"),
					  "SELECT 1 FROM outbox.publish_config"
					  " WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
					  1, argtypes, args, nulls, SPI_OK_SELECT);

	if (SPI_processed == 0 && has_capture_trigger(rel, false))
	{
		char	   *sql;

		sql = psprintf("DROP TRIGGER " OUTBOX_CAPTURE_TRIGGER_NAME " ON %s",
					   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												  RelationGetRelationName(rel)));
		outbox_execute_as(GetUserId(), sql, 0, NULL, NULL, NULL, SPI_OK_UTILITY);
	}

	SPI_finish();
	table_close(rel, NoLock);
	PG_RETURN_INT32((int32) removed);
}
