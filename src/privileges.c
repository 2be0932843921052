/*-------------------------------------------------------------------------
 *
 * privileges.c
 *		  Who may do what through outbox, and the one way outbox's SQL
 *		  functions act as the extension's owner.
 *
 * The privilege model
 * -------------------
 *
 * The extension's owner is the superuser who ran CREATE EXTENSION; it owns
 * outbox's tables.  Nothing is granted to PUBLIC but USAGE on the schema,
 * outbox.uuid_generate_v7(), SELECT on outbox.status and
 * outbox.worker_status() (which filter what the caller may see), SELECT on
 * outbox.publish_config and on one's own rows of outbox.subscription, and
 * the trigger functions (which check that they are fired as the right
 * trigger on the right table).  Every other right is an ordinary GRANT:
 *
 * - publisher: EXECUTE on outbox.publish() and outbox.unpublish() publishes
 *   tables the role owns, never TEMP or UNLOGGED ones (an UNLOGGED table
 *   loses its rows in a crash while their messages, in the logged outbox,
 *   are sent: a message without its write).  The configuration is written
 *   as the extension's owner; the capture trigger is created as the
 *   caller.  Rows captured later are written whatever the writer's rights
 *   on outbox.published, since the table's owner asked for them.
 *   INSERT on outbox.published writes messages by hand; EXECUTE on
 *   outbox.send_event() sends one directly; EXECUTE on outbox.redrive()
 *   schedules failed messages again, as the owner, but only those the
 *   caller may publish.
 * - subscriber: EXECUTE on outbox.subscribe() and outbox.unsubscribe().  The
 *   subscription is written as the extension's owner, and records the
 *   calling role as run_as; the consumer runs the callback as run_as and
 *   nothing more (consumer.c).  Subscribing needs EXECUTE on the callback;
 *   only a role with the privileges of run_as may unsubscribe.
 * - monitoring: members of pg_monitor see every worker in outbox.status
 *   (never the broker passcode, which is in no worker's status); any other
 *   role sees the consumers it has the privileges of, in its current
 *   database, and that database's publisher without its last error (which
 *   may quote any role's message).
 * - superusers and the extension's owner: everything, and they alone manage
 *   destination patterns with outbox.allow_destination() and
 *   outbox.disallow_destination(), which check this themselves (a GRANT of
 *   EXECUTE on them gives nothing).
 *
 * Destination patterns mirror RabbitMQ's per-user permissions, since the
 * broker sees only the one user outbox connects as.  They are opt-in, per
 * role and privilege ('publish' or 'subscribe'): a role with no pattern for
 * a privilege may use any destination; once it has some, every destination
 * must match one of them, "*" matching any run of characters.  A role's
 * patterns include those of the roles it has the privileges of (as with
 * pg_has_role(..., 'USAGE')): a group's rights reach its members, and so
 * do its limits; a member's own patterns add to the group's.  Publishing
 * patterns are checked against the final (version-suffixed) destination by
 * outbox.publish(), by the BEFORE INSERT trigger of outbox.published (as
 * the inserting role), by outbox.send_event() and by outbox.redrive();
 * subscribing patterns against outbox.subscribe()'s destination, its queue
 * name and its dead-letter queue DLQ.<queue> (a queue name has no "/", a
 * destination begins with one, so one list holds both).  Superusers are
 * never limited.
 *
 * Why no path crosses: every SQL function that acts as the extension's
 * owner does so through outbox_execute_as(), for one statement, in a
 * security-restricted operation (no SET ROLE, no lasting settings, no
 * WITH HOLD cursors), with search_path pinned to pg_catalog, pg_temp, and
 * every statement names its tables, operators and functions with their
 * schema, so no object of the caller's is ever resolved, let alone run, as
 * the owner.  Everything the caller names (tables, serializers, callbacks)
 * is resolved and checked as the caller before the owner acts: ownership
 * of the table, EXECUTE on the serializer or callback, the destination
 * patterns.  What runs the caller's code (serializers, generate_headers,
 * callbacks) runs it as the caller, or as run_as.
 *
 * src/privileges.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_allow_destination);
PG_FUNCTION_INFO_V1(outbox_disallow_destination);

/*
 * The patterns of one role and privilege, as of one command of one
 * transaction: a COPY of many rows into outbox.published reads them once.
 */
typedef struct PatternCache
{
	bool		valid;
	LocalTransactionId lxid;
	CommandId	cid;
	Oid			role;
	char		privilege[16];
	List	   *patterns;		/* of char *, in context */
	MemoryContext context;
} PatternCache;

static PatternCache pattern_cache;

static const char *check_privilege_name(text *privilege);
static void check_may_manage_patterns(const char *function);
static List *role_patterns(Oid role, const char *privilege);
static bool pattern_matches(const char *pattern, const char *s);

/*
 * Return the owner of the outbox table relname (the role that created the
 * extension), as whom the extension's functions write their tables.
 */
Oid
outbox_table_owner(const char *relname)
{
	Oid			relid;
	HeapTuple	tuple;
	Oid			owner;

	relid = get_relname_relid(relname, get_namespace_oid("outbox", false));
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation outbox.%s", relname);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Run one SQL statement through SPI as role, in a security-restricted
 * operation with search_path = pg_catalog, pg_temp; error out unless it
 * returns the expected SPI code.  The caller is connected to SPI and
 * qualifies every table, operator and function in sql.
 *
 * The pinned path is what makes running as another role safe: the
 * caller's own search_path could put its operators before pg_catalog's.
 * An error unwinds both the user id and the setting with the
 * (sub)transaction.
 */
void
outbox_execute_as(Oid role, const char *sql, int nargs, Oid *argtypes,
				  Datum *args, const char *nulls, int expected)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	int			ret;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(role, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = outbox_push_search_path(OUTBOX_SAFE_SEARCH_PATH);

	ret = SPI_execute_with_args(sql, nargs, argtypes, args, nulls, false, 0);

	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	if (ret != expected)
		elog(ERROR, "could not run \"%s\": %s", sql,
			 SPI_result_code_string(ret));
}

/*
 * Start a GUC nest level in which search_path is path, and return it; the
 * caller ends it with AtEOXact_GUC(), or an error unwinds it with the
 * (sub)transaction.  Statements run as another role use it with
 * OUTBOX_SAFE_SEARCH_PATH, so that nothing of the caller's is resolved.
 */
int
outbox_push_search_path(const char *path)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * Check a privilege name given to a function: 'publish' or 'subscribe'.
 */
static const char *
check_privilege_name(text *privilege)
{
	char	   *name = text_to_cstring(privilege);

	if (strcmp(name, "publish") != 0 && strcmp(name, "subscribe") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized outbox privilege \"%s\"", name),
				 errhint("The privileges limited by destination patterns are \"publish\" and \"subscribe\".")));
	return name;
}

/*
 * Refuse to manage destination patterns unless the caller is a superuser
 * or has the privileges of the extension's owner.  The functions check it
 * themselves: EXECUTE on them must not be enough.
 */
static void
check_may_manage_patterns(const char *function)
{
	Oid			owner = outbox_table_owner("destination_grant");

	if (!superuser() && !has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", function),
				 errdetail("Only superusers and role \"%s\", which owns the outbox extension, may manage destination patterns.",
						   GetUserNameFromId(owner, false))));
}

/*
 * The patterns of role for privilege, read as the extension's owner, or
 * NIL if it has none: its own and those of every role it has the
 * privileges of.  A right granted to a group role reaches its members, so
 * must the group's limits, else a member without patterns of its own
 * would use the group's right without them.  Cached for the rest of the
 * current command.
 */
static List *
role_patterns(Oid role, const char *privilege)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2];
	MemoryContext oldcontext;
	uint64		i;

	if (pattern_cache.valid && pattern_cache.lxid == MyProc->lxid &&
		pattern_cache.cid == GetCurrentCommandId(false) &&
		pattern_cache.role == role &&
		strcmp(pattern_cache.privilege, privilege) == 0)
		return pattern_cache.patterns;

	/* not valid until filled: an error below leaves it invalid */
	pattern_cache.valid = false;
	if (pattern_cache.context == NULL)
		pattern_cache.context = AllocSetContextCreate(TopMemoryContext,
													  "outbox destination patterns",
													  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(pattern_cache.context);
	pattern_cache.patterns = NIL;

	args[0] = ObjectIdGetDatum(role);
	args[1] = CStringGetTextDatum(privilege);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	outbox_execute_as(outbox_table_owner("destination_grant"),
					  "SELECT pattern FROM outbox.destination_grant"
					  " WHERE pg_catalog.pg_has_role($1, role::pg_catalog.oid,"
					  "                              'USAGE')"
					  "   AND privilege OPERATOR(pg_catalog.=) $2",
					  2, argtypes, args, NULL, SPI_OK_SELECT);
	oldcontext = MemoryContextSwitchTo(pattern_cache.context);
	for (i = 0; i < SPI_processed; i++)
		pattern_cache.patterns = lappend(pattern_cache.patterns,
										 SPI_getvalue(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 1));
	MemoryContextSwitchTo(oldcontext);
	SPI_finish();

	pattern_cache.lxid = MyProc->lxid;
	pattern_cache.cid = GetCurrentCommandId(false);
	pattern_cache.role = role;
	strlcpy(pattern_cache.privilege, privilege, sizeof(pattern_cache.privilege));
	pattern_cache.valid = true;
	return pattern_cache.patterns;
}

/*
 * Whether s matches pattern, in which "*" matches any run of characters
 * (none included) and every other character itself.  Backtracks only to
 * the last "*", so it takes at most length(pattern) * length(s) steps.
 */
static bool
pattern_matches(const char *pattern, const char *s)
{
	const char *star = NULL;	/* the last "*" seen in pattern */
	const char *resume = NULL;	/* where in s that "*" matched up to */

	while (*s != '\0')
	{
		if (*pattern == '*')
		{
			star = pattern++;
			resume = s;
		}
		else if (*pattern == *s)
		{
			pattern++;
			s++;
		}
		else if (star != NULL)
		{
			pattern = star + 1;
			s = ++resume;
		}
		else
			return false;
	}
	while (*pattern == '*')
		pattern++;
	return *pattern == '\0';
}

/*
 * Whether role may use destination (or, for 'subscribe', a queue name)
 * for privilege: a superuser always, a role without patterns for the
 * privilege (of its own or of a role it has the privileges of) always, any
 * other role if one of those patterns matches.
 */
bool
outbox_destination_allowed(Oid role, const char *privilege,
						   const char *destination)
{
	ListCell   *lc;

	if (superuser_arg(role))
		return true;
	if (role_patterns(role, privilege) == NIL)
		return true;
	foreach(lc, role_patterns(role, privilege))
	{
		if (pattern_matches((const char *) lfirst(lc), destination))
			return true;
	}
	return false;
}

/*
 * Error out unless role may use destination for privilege ('publish' or
 * 'subscribe'); see outbox_destination_allowed().
 */
void
outbox_check_destination_allowed(Oid role, const char *privilege,
								 const char *destination)
{
	char	   *rolename;

	if (outbox_destination_allowed(role, privilege, destination))
		return;
	rolename = GetUserNameFromId(role, false);
	if (strcmp(privilege, "publish") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role %s may not publish to destination \"%s\"",
						rolename, destination),
				 errdetail("The role may publish only to destinations that match its patterns, and none does."),
				 errhint("A superuser may allow it with outbox.allow_destination('%s', 'publish', pattern).",
						 rolename)));
	else if (destination[0] == '/')
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role %s may not subscribe to destination \"%s\"",
						rolename, destination),
				 errdetail("The role may subscribe only to destinations and queues that match its patterns, and none does."),
				 errhint("A superuser may allow it with outbox.allow_destination('%s', 'subscribe', pattern).",
						 rolename)));
	else
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role %s may not consume queue \"%s\"",
						rolename, destination),
				 errdetail("The role may subscribe only to destinations and queues that match its patterns, and none does; a consumer of queue Q also reads DLQ.Q."),
				 errhint("A superuser may allow it with outbox.allow_destination('%s', 'subscribe', pattern).",
						 rolename)));
}

/*
 * SQL: outbox.allow_destination(role regrole, privilege text, pattern
 * text) returns boolean: whether the pattern was new.  The role's first
 * pattern for a privilege limits it to its patterns.
 */
Datum
outbox_allow_destination(PG_FUNCTION_ARGS)
{
	Oid			argtypes[3] = {OIDOID, TEXTOID, TEXTOID};
	Datum		args[3];
	const char *privilege;
	char	   *pattern;
	uint64		added;

	outbox_require_current_schema();
	check_may_manage_patterns("outbox.allow_destination");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("role, privilege and pattern must not be NULL")));
	privilege = check_privilege_name(PG_GETARG_TEXT_PP(1));
	pattern = text_to_cstring(PG_GETARG_TEXT_PP(2));
	/* a pattern is held to the rules of what it matches */
	outbox_check_destination(pattern, NULL);
	if (!SearchSysCacheExists1(AUTHOID, PG_GETARG_DATUM(0)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", PG_GETARG_OID(0))));

	args[0] = PG_GETARG_DATUM(0);
	args[1] = CStringGetTextDatum(privilege);
	args[2] = CStringGetTextDatum(pattern);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	outbox_execute_as(outbox_table_owner("destination_grant"),
					  "INSERT INTO outbox.destination_grant (role, privilege, pattern)"
					  " VALUES ($1::pg_catalog.regrole, $2, $3)"
					  " ON CONFLICT DO NOTHING",
					  3, argtypes, args, NULL, SPI_OK_INSERT);
	added = SPI_processed;
	SPI_finish();
	pattern_cache.valid = false;
	PG_RETURN_BOOL(added > 0);
}

/*
 * SQL: outbox.disallow_destination(role regrole, privilege text, pattern
 * text default null) returns how many patterns were removed (NULL: all of
 * the role's for the privilege).  Removing the last one lifts the limit,
 * which a WARNING says.
 */
Datum
outbox_disallow_destination(PG_FUNCTION_ARGS)
{
	Oid			argtypes[3] = {OIDOID, TEXTOID, TEXTOID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	const char *privilege;
	uint64		removed;
	char	   *rolename;

	outbox_require_current_schema();
	check_may_manage_patterns("outbox.disallow_destination");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("role and privilege must not be NULL")));
	privilege = check_privilege_name(PG_GETARG_TEXT_PP(1));
	rolename = GetUserNameFromId(PG_GETARG_OID(0), true);

	args[0] = PG_GETARG_DATUM(0);
	args[1] = CStringGetTextDatum(privilege);
	args[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	outbox_execute_as(outbox_table_owner("destination_grant"),
					  "DELETE FROM outbox.destination_grant"
					  " WHERE role::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
					  "   AND privilege OPERATOR(pg_catalog.=) $2"
					  "   AND ($3 IS NULL OR pattern OPERATOR(pg_catalog.=) $3)",
					  3, argtypes, args, nulls, SPI_OK_DELETE);
	removed = SPI_processed;
	SPI_finish();

	pattern_cache.valid = false;
	/* a superuser has the privileges of every role, but no limit */
	if (removed > 0 && (superuser_arg(PG_GETARG_OID(0)) ||
						role_patterns(PG_GETARG_OID(0), privilege) == NIL))
		ereport(WARNING,
				(errmsg("role %s may now %s to any destination",
						rolename ? rolename : "?", privilege),
				 errdetail("A role without destination patterns is not limited to any."),
				 errhint("To keep it from using outbox, REVOKE EXECUTE on the functions granted to it.")));
	PG_RETURN_INT64((int64) removed);
}
