/*-------------------------------------------------------------------------
 *
 * version.c
 *		  Whether the database's outbox schema is the one this library
 *		  was built for.
 *
 * A package upgrade installs the new library and scripts; the server is
 * restarted; and only then does someone run ALTER EXTENSION outbox UPDATE.
 * In between, the library of version OUTBOX_SCHEMA_VERSION (the control
 * file's default_version, given by the Makefile) runs on the schema of an
 * older version: 1.0 stores serializers and callbacks as regprocedure,
 * where 1.1 reads text, and has no run_as in outbox.received.  Reading
 * such a column as the other type is a crash, writing it a lost message.
 *
 * So every C function reachable from SQL that reads or writes outbox's
 * tables calls outbox_require_current_schema() first, and refuses with an
 * error whose hint is ALTER EXTENSION outbox UPDATE: a write to a
 * published table then fails (its transaction rolls back, nothing is
 * lost) instead of capturing into a table it cannot describe.  The
 * workers ask outbox_schema_state() at every pass and wait, saying so in
 * outbox.status and, now and then, in the log.  Left out, on purpose:
 * outbox.uuid_generate_v7() and outbox.worker_status(), which read no
 * table (the status is how an operator sees the wait), and the trigger
 * outbox.publish_config_changed(), which reads only the relid column of
 * 1.0 and 1.1 alike to send invalidations (1.0's DDL check deletes the
 * configurations of a dropped table through it).  The event triggers do
 * nothing on a schema they do not know: refusing would refuse every DDL
 * command, ALTER EXTENSION outbox UPDATE included.
 *
 * ALTER EXTENSION ... UPDATE sets extversion before it runs the script, so
 * the script itself, and the CREATE EXTENSION that runs 1.0 then the
 * update, call the C functions of the version they are building.
 *
 * Cost: a backend that found the schema current remembers it, so that the
 * capture trigger pays one test per row.  What can make it outdated again
 * is DROP EXTENSION (then CREATE EXTENSION outbox VERSION '1.0'), which
 * drops outbox.published: the relcache invalidation of that table, or of
 * all tables, makes the backend look again.  pg_extension sends no
 * invalidation of its own.
 *
 * src/version.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "outbox.h"

#ifndef OUTBOX_SCHEMA_VERSION
#error "OUTBOX_SCHEMA_VERSION must be defined (the Makefile reads it from outbox.control)"
#endif

/* the schema was found current; outbox.published then had this OID */
static bool schema_current = false;
static Oid	schema_current_relid = InvalidOid;
static bool callback_registered = false;

/*
 * Relcache invalidation: forget that the schema was current when
 * outbox.published (or every relation) is invalidated.
 */
static void
version_relcache_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == schema_current_relid)
		schema_current = false;
}

/*
 * The version of the extension installed in this database (palloc'd), or
 * NULL if it is not installed.
 */
static char *
installed_version(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key[1];
	HeapTuple	tuple;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("outbox"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		datum = heap_getattr(tuple, Anum_pg_extension_extversion,
										 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(datum));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/*
 * Whether the extension is missing, of another version than this library,
 * or current; *installed (if given) is set to its version (palloc'd in
 * the current context, SPI's if connected: copy it to keep it past the
 * transaction), or NULL.  Needs a transaction.
 */
OutboxSchemaState
outbox_schema_state(char **installed)
{
	char	   *version = installed_version();

	if (installed != NULL)
		*installed = version;
	if (version == NULL)
		return OUTBOX_SCHEMA_MISSING;
	if (strcmp(version, OUTBOX_SCHEMA_VERSION) != 0)
		return OUTBOX_SCHEMA_OUTDATED;
	return OUTBOX_SCHEMA_CURRENT;
}

/*
 * What to say about a schema of version installed: for errors, the
 * workers' status and their log.
 */
char *
outbox_schema_outdated_message(const char *installed)
{
	return psprintf("extension \"outbox\" is at version %s, but its library is of version %s",
					installed, OUTBOX_SCHEMA_VERSION);
}

/*
 * Whether the schema is current, remembered once it is (see the file
 * header).  Needs a transaction when not remembered.
 */
bool
outbox_schema_is_current(void)
{
	Oid			nspid;

	if (schema_current)
		return true;
	if (outbox_schema_state(NULL) != OUTBOX_SCHEMA_CURRENT)
		return false;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(version_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	nspid = get_namespace_oid("outbox", true);
	schema_current_relid = OidIsValid(nspid) ?
		get_relname_relid("published", nspid) : InvalidOid;
	schema_current = true;
	return true;
}

/*
 * Error out unless the schema is the one this library reads and writes:
 * the top of every C function reachable from SQL that uses outbox's
 * tables.
 */
void
outbox_require_current_schema(void)
{
	char	   *installed;

	if (outbox_schema_is_current())
		return;
	switch (outbox_schema_state(&installed))
	{
		case OUTBOX_SCHEMA_MISSING:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("extension \"outbox\" is not installed in this database"),
					 errhint("Run CREATE EXTENSION outbox.")));
			break;
		case OUTBOX_SCHEMA_OUTDATED:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("%s", outbox_schema_outdated_message(installed)),
					 errdetail("The library does not use a schema of another version: it could lose or misread messages."),
					 errhint("Run ALTER EXTENSION outbox UPDATE.")));
			break;
		case OUTBOX_SCHEMA_CURRENT:
			/* updated since outbox_schema_is_current() looked */
			break;
	}
}
