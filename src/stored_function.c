/*-------------------------------------------------------------------------
 *
 * stored_function.c
 *		  Functions named in outbox's tables: by name, never by OID.
 *
 * outbox.publish_config.serializer and outbox.subscription.callback name a
 * user's function.  pg_upgrade does not keep function OIDs (it refuses
 * regprocedure columns for that reason) and pg_dump writes names, so both
 * columns hold text: the function's schema-qualified name, quoted as
 * quote_qualified_identifier() quotes it.  The argument type is implied by
 * the column: a serializer takes the row type of its table, a callback
 * outbox.payload.  Storing no argument type keeps a serializer found when
 * its table is renamed or moved to another schema, which changes the name
 * of the row type but not the type.
 *
 * The name is resolved when it is used.  A command that would make it
 * resolve to nothing (dropping, renaming or moving the function or its
 * schema) is refused by the event triggers (event_triggers.c).  No command drops a
 * temporary function: it goes when its session ends, and no event trigger
 * fires then, so a function in a temporary schema is never stored.
 *
 * src/stored_function.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "outbox.h"

/*
 * The name under which outbox's tables store function funcoid.
 */
char *
outbox_stored_function_name(Oid funcoid)
{
	HeapTuple	tuple;
	Form_pg_proc proc;
	char	   *name;

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcoid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", funcoid);
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	name = quote_qualified_identifier(get_namespace_name(proc->pronamespace),
									  NameStr(proc->proname));
	ReleaseSysCache(tuple);
	return name;
}

/*
 * Resolve a stored name to the function of that name taking one argument
 * of type argtype; InvalidOid if there is none, or if the name is not a
 * schema-qualified name as outbox_stored_function_name() writes it (the
 * search_path of whoever uses it must play no part).
 */
Oid
outbox_resolve_stored_function(const char *name, Oid argtype)
{
	char	   *rawname = pstrdup(name);
	List	   *parts;
	List	   *names = NIL;
	ListCell   *lc;

	if (!SplitIdentifierString(rawname, '.', &parts) ||
		list_length(parts) != 2)
		return InvalidOid;
	foreach(lc, parts)
		names = lappend(names, makeString(pstrdup((char *) lfirst(lc))));
	return LookupFuncName(names, 1, &argtype, true);
}

/*
 * Whether name is exactly what outbox_stored_function_name() writes for
 * function funcoid, so that a name written by hand can be compared as text
 * with what a dropped or renamed function was called.
 */
bool
outbox_stored_function_name_is_canonical(const char *name, Oid funcoid)
{
	return strcmp(name, outbox_stored_function_name(funcoid)) == 0;
}

/*
 * Refuse to store function funcoid as a serializer or callback (what) if
 * it is in a temporary schema: it goes with its session, and no command
 * tells outbox, so its stored name would find nothing from then on.
 */
void
outbox_check_stored_function_lasts(Oid funcoid, const char *what)
{
	if (isAnyTempNamespace(get_func_namespace(funcoid)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot use temporary function \"%s\" as a %s",
						get_func_name(funcoid), what),
				 errdetail("A temporary function goes with its session, and no command tells outbox."),
				 errhint("Create the function in a permanent schema.")));
}
