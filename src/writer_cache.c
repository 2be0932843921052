/*-------------------------------------------------------------------------
 *
 * writer_cache.c
 *		  What the writer of outbox.published keeps across transactions.
 *
 * The writer (outbox_writer.c) opens outbox.published and its indexes
 * afresh in every transaction that writes to it, but two things it needs
 * cost more to make than to keep, and depend only on the catalogs:
 *
 * - the row format of outbox.published (outbox_row.c), kept for the
 *   table's OID and number of attributes;
 *
 * - the compiled predicate (ExprState) of each partial index of it, which
 *   the executor would otherwise plan and compile once per transaction
 *   (ExecInsertIndexTuples -> ExecPrepareQual), kept by index OID and
 *   given to a writer only if equal() to the predicate the writer's
 *   IndexInfo holds, which ExecOpenIndices() took from the relcache of this
 *   transaction, and compiled for the current user (compiling checks the
 *   user's right to call each function of it).  An index added, dropped or
 *   recreated by a user or a DBA, partial, on expressions or not, is
 *   therefore always written with its own current predicate.  A predicate
 *   whose compiled form keeps state in the memory of the query that
 *   evaluates it (a whole-row reference, a row type conversion) is not
 *   kept: the executor compiles it for each writer.
 *
 * Invalidation: a relcache invalidation of outbox.published, of an index
 * whose predicate is kept, or of everything, and any change of pg_proc or
 * pg_type (a predicate may call, and inline, a function), make what is
 * kept stale.  The callbacks only mark: a predicate may be in the middle of
 * an evaluation when they run (a function it calls may accept invalidation
 * messages), and a writer of this transaction may still point at it.  A
 * stale predicate is never handed out again, and is freed when no writer
 * points at it: when the next writer is built (the previous one is
 * released first) or at the end of the transaction.  A writer opened while
 * another is writing a row (user code in an index's expression or
 * predicate) or is being built (user code folded into an index's
 * predicate or a domain's check) is not given anything from here by
 * outbox_writer.c: the other may be in the middle of evaluating what it
 * was given, or hold it half-built.  Something built while an
 * invalidation arrived is used by the writer that asked for it, built as it
 * is from that writer's relcache entries, but is born stale.
 *
 * Errors: none of its own; an error while compiling a predicate leaves
 * nothing behind that outlives the transaction.
 *
 * Memory: each kept predicate has a context of its own, built under the
 * caller's (transaction) context and moved under CacheMemoryContext only
 * once complete; the row format's column map is in CacheMemoryContext,
 * freed when replaced, and copied into the caller's context for each
 * writer.
 *
 * src/writer_cache.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "outbox.h"

/* a compiled predicate of a partial index of outbox.published */
typedef struct CachedPredicate
{
	struct CachedPredicate *next;
	MemoryContext context;		/* holds the entry and its ExprState */
	Oid			indexoid;
	Oid			userid;			/* whose right to call its functions it checked */
	bool		stale;			/* never handed out again; freed unused */
	List	   *predicate;		/* as the relcache gave it (implicit AND) */
	ExprState  *state;
} CachedPredicate;

static CachedPredicate *predicates = NULL;

/* the row format of outbox.published, when format_valid */
static bool format_valid = false;
static Oid	format_relid = InvalidOid;
static int	format_natts = 0;
static OutboxRowColumn *format_columns = NULL;	/* in CacheMemoryContext */
static Datum format_scheduled = (Datum) 0;

/* the table the predicates kept are of; InvalidOid before the first */
static Oid	predicates_relid = InvalidOid;

/* bumped by every invalidation: a build it overlaps is born stale */
static uint64 generation = 0;

static void writer_cache_invalidate_all(void);
static void writer_cache_relcache_callback(Datum arg, Oid relid);
static void writer_cache_syscache_callback(Datum arg, int cacheid,
										   uint32 hashvalue);
static void free_stale_predicates(void);
static void writer_cache_xact_callback(XactEvent event, void *arg);
static void writer_cache_register(void);
static bool predicate_keeps_query_state(Node *node, void *context);
static ExprState *cached_predicate(Oid indexoid, List *predicate);

/*
 * Mark everything kept stale.
 */
static void
writer_cache_invalidate_all(void)
{
	CachedPredicate *p;

	generation++;
	format_valid = false;
	for (p = predicates; p != NULL; p = p->next)
		p->stale = true;
}

/*
 * outbox.published, one of its kept indexes, or everything changed: mark
 * what depends on it stale.  Looks only at OIDs and flags.
 */
static void
writer_cache_relcache_callback(Datum arg, Oid relid)
{
	CachedPredicate *p;

	if (relid == InvalidOid || relid == format_relid ||
		relid == predicates_relid)
	{
		writer_cache_invalidate_all();
		return;
	}
	for (p = predicates; p != NULL; p = p->next)
	{
		if (p->indexoid == relid)
		{
			generation++;
			p->stale = true;
		}
	}
}

/*
 * A function or a type changed: a predicate may call (or have inlined) the
 * one, and the row format holds a value of the other.
 */
static void
writer_cache_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	writer_cache_invalidate_all();
}

/*
 * Free the stale predicates.  Called where no writer points at them: at
 * the end of a transaction, and when a writer is built while no row is
 * being written, which is only after the previous one was released.
 */
static void
free_stale_predicates(void)
{
	CachedPredicate **link = &predicates;

	while (*link != NULL)
	{
		CachedPredicate *p = *link;

		if (p->stale)
		{
			*link = p->next;
			MemoryContextDelete(p->context);
		}
		else
			link = &p->next;
	}
}

/*
 * At the end of a transaction no writer is left: free the stale
 * predicates.
 */
static void
writer_cache_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
		free_stale_predicates();
}

/*
 * Register the callbacks, once per backend.
 */
static void
writer_cache_register(void)
{
	static bool registered = false;

	if (registered)
		return;
	CacheRegisterRelcacheCallback(writer_cache_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, writer_cache_syscache_callback,
								  (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, writer_cache_syscache_callback,
								  (Datum) 0);
	RegisterXactCallback(writer_cache_xact_callback, NULL);
	registered = true;
}

/*
 * Fill format for rows of outbox.published (rel), as
 * outbox_row_format_init() would, from what is kept if it is still good.
 * The column map is allocated in the current memory context.
 */
void
outbox_writer_cache_format(Relation rel, OutboxRowFormat *format)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Size		size = sizeof(OutboxRowColumn) * desc->natts;
	uint64		start = generation;

	writer_cache_register();
	if (format_valid && format_relid == RelationGetRelid(rel) &&
		format_natts == desc->natts)
	{
		format->desc = desc;
		format->scheduled = format_scheduled;
		format->columns = palloc(size);
		memcpy(format->columns, format_columns, size);
		return;
	}

	/* used by this writer in any case, kept only if nothing changed */
	outbox_row_format_init(format, desc);
	format_valid = false;
	if (format_columns != NULL)
		pfree(format_columns);
	format_columns = MemoryContextAlloc(CacheMemoryContext, size);
	memcpy(format_columns, format->columns, size);
	format_scheduled = format->scheduled;
	format_natts = desc->natts;
	format_relid = RelationGetRelid(rel);
	format_valid = (generation == start);
}

/*
 * Whether a predicate (node) holds something whose compiled form may keep
 * what it makes at its first evaluation in the memory of the query that
 * evaluates it (ecxt_per_query_memory, the writer's EState, gone with the
 * writer), and use it at the next: a whole-row Var keeps the row type it
 * copied there, a ConvertRowtypeExpr its conversion map.  Only node types
 * known to keep nothing there are allowed; any other (a future one
 * included) makes the predicate one to compile per writer, as the executor
 * does.
 */
static bool
predicate_keeps_query_state(Node *node, void *context)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
			if (((Var *) node)->varattno <= 0)
				return true;
			break;
		case T_List:
		case T_Const:
		case T_FuncExpr:
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
		case T_ScalarArrayOpExpr:
		case T_BoolExpr:
		case T_RelabelType:
		case T_CoerceViaIO:
		case T_CollateExpr:
		case T_CaseExpr:
		case T_CaseWhen:
		case T_CaseTestExpr:
		case T_ArrayExpr:
		case T_CoalesceExpr:
		case T_MinMaxExpr:
		case T_NullTest:
		case T_BooleanTest:
		case T_CoerceToDomain:
		case T_CoerceToDomainValue:
			break;
		default:
			return true;
	}
	return expression_tree_walker(node, predicate_keeps_query_state, context);
}

/*
 * The compiled predicate of index indexoid, whose predicate (implicit AND
 * list) is the one given: the kept one if it is equal and was compiled for
 * the current user (compiling checks the user's right to call each
 * function, as the executor does for every query), else one compiled now
 * and kept in its place.  NULL if it is not to be kept at all.
 */
static ExprState *
cached_predicate(Oid indexoid, List *predicate)
{
	CachedPredicate *p;
	MemoryContext context;
	MemoryContext oldcontext;
	uint64		start = generation;
	Oid			userid = GetUserId();

	for (p = predicates; p != NULL; p = p->next)
	{
		if (p->stale || p->indexoid != indexoid)
			continue;
		if (p->userid == userid && equal(p->predicate, predicate))
			return p->state;
		/* replaced below; no other writer is in use (see the callers) */
		p->stale = true;
	}
	if (predicate_keeps_query_state((Node *) predicate, NULL))
		return NULL;

	/*
	 * Built under the caller's context, so that an error leaves nothing
	 * behind the transaction; as ExecPrepareQual() does, without an EState.
	 */
	context = AllocSetContextCreate(CurrentMemoryContext,
									"outbox index predicate",
									ALLOCSET_SMALL_SIZES);
	oldcontext = MemoryContextSwitchTo(context);
	p = palloc0(sizeof(CachedPredicate));
	p->context = context;
	p->indexoid = indexoid;
	p->userid = userid;
	p->predicate = copyObject(predicate);
	p->state = ExecInitQual((List *) expression_planner((Expr *) p->predicate),
							NULL);
	MemoryContextSwitchTo(oldcontext);

	MemoryContextSetParent(context, CacheMemoryContext);
	p->stale = (generation != start);
	p->next = predicates;
	predicates = p;
	return p->state;
}

/*
 * Give each partial index of a ResultRelInfo of outbox.published, opened
 * by ExecOpenIndices(), its compiled predicate from what is kept, so that
 * ExecInsertIndexTuples() does not compile it again.
 */
void
outbox_writer_cache_predicates(ResultRelInfo *resultRelInfo)
{
	int			i;

	writer_cache_register();
	if (predicates_relid != RelationGetRelid(resultRelInfo->ri_RelationDesc))
	{
		writer_cache_invalidate_all();
		predicates_relid = RelationGetRelid(resultRelInfo->ri_RelationDesc);
	}
	free_stale_predicates();
	for (i = 0; i < resultRelInfo->ri_NumIndices; i++)
	{
		IndexInfo  *info = resultRelInfo->ri_IndexRelationInfo[i];
		Relation	index = resultRelInfo->ri_IndexRelationDescs[i];

		if (info->ii_Predicate == NIL || info->ii_PredicateState != NULL)
			continue;
		info->ii_PredicateState = cached_predicate(RelationGetRelid(index),
												   info->ii_Predicate);
	}
}
