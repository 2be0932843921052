/*-------------------------------------------------------------------------
 *
 * capture.c
 *		  The trigger of published tables, and its per-backend cache.
 *
 * outbox.publish() puts the trigger outbox_capture (AFTER INSERT OR UPDATE,
 * FOR EACH ROW) on a table.  For each row it writes one outbox.published
 * row per configuration of the table, in the same transaction, with the
 * body django-outbox-pattern gives it:
 *
 * - all columns: to_jsonb() of the row, PostgreSQL's own rendering of
 *   every type (numeric stays exact, timestamps ISO 8601), formed by a
 *   plan made with the configuration (row_jsonb.c), byte for byte what
 *   to_jsonb() gives, without its lookups per row and column;
 * - fields: the same rendering of a row made of the primary key column(s)
 *   and the named columns;
 * - serializer: what the user's function returns for the row.
 *
 * A configuration may ask for django-outbox-pattern's rendering of the row
 * instead of to_jsonb()'s (rendering.c); a serializer's body is its own.
 *
 * Per-row work parses no SQL.  The configurations of a table are read from
 * outbox.publish_config once and kept in a backend-local hash table, with
 * the columns resolved to attribute numbers, the body's plan made and the
 * serializer looked up.  An entry is dropped on a relcache invalidation of
 * its table: ALTER TABLE sends one, and so does every change of
 * outbox.publish_config (its trigger outbox_publish_config_changed
 * invalidates the table concerned).  A change of any function drops every
 * entry, since a serializer, or an output or cast function a plan calls,
 * may be redefined; and so does a change of any cast, since a plan knows
 * which types have one to json.
 *
 * A partition captures by its own configurations and by those of every
 * ancestor (outbox.publish() of a partitioned table puts the trigger on it,
 * and PostgreSQL clones it onto every partition, present and future): an
 * ancestor's configuration gets the row converted to the ancestor's row
 * type, by column name, so its body, fields and serializer are the
 * ancestor's whatever the partition's column order or dropped columns.  The
 * entry of a partition remembers its ancestors, and an invalidation of any
 * of them drops it too; ATTACH and DETACH invalidate the partition itself.
 * A partition whose DETACH ... CONCURRENTLY is not finalized keeps its
 * clone of the trigger, and its parent's configurations with it.
 *
 * The configurations are read with the latest snapshot, as the catalogs
 * are: a transaction that started before publish() committed sees the
 * trigger, and captures by the configuration that came with it.
 *
 * What may arrive at any time: the invalidation callbacks run whenever a
 * lock is taken, loading included, so they only clear flags, tolerate a
 * cache not yet built, and the cache is published only once built.  A
 * serializer may write to a published table itself and so reload the entry
 * being used up the stack: each call keeps its own pointer to the
 * configuration array, whose memory a reload leaves until the end of the
 * transaction while any capture runs, and frees at once otherwise.
 *
 * Anyone may create a trigger with outbox.capture() on a table of their
 * own: it refuses to run but as the AFTER INSERT OR UPDATE FOR EACH ROW
 * trigger "outbox_capture" that outbox.publish() creates, on a table that
 * has a configuration.  outbox's own query runs with search_path pinned to
 * pg_catalog, pg_temp and qualifies its operators; a serializer runs as the
 * writer, and what settings it changes are rolled back after it
 * (outbox_call_user_function()).
 *
 * Errors: a row that cannot be captured fails the writer's statement with
 * an ERROR, never a silent loss: a serializer that is missing, cannot take
 * the row, or returns NULL, a published column that is gone, or a message
 * that message.c refuses.  Misuse of the trigger functions is refused the
 * same way; elog only for can't-happen (SPI failures).
 *
 * Memory: the cache lives in CacheMemoryContext, each table's entry in a
 * context of its own, freed when the entry is reloaded (or moved under
 * TopTransactionContext while a capture up the stack still uses it), and
 * removed with it at the next row captured after its invalidation (a
 * dropped table's entry is never used again).  A row's body and message
 * are allocated in the trigger's per-row context.
 *
 * src/capture.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tupconvert.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/regproc.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_capture);
PG_FUNCTION_INFO_V1(outbox_publish_config_changed);

/* One configuration of a published table, ready for per-row use */
typedef struct CaptureConfig
{
	char	   *destination;	/* final: checked, with the version suffix */
	char	   *version;		/* NULL if none */
	/* an ancestor's configuration: its name, row type and the conversion */
	char	   *source_name;	/* NULL: the trigger's own table */
	TupleDesc	source_desc;
	TupleConversionMap *map;	/* NULL if the layouts are the same */
	/* fields mode: primary key and named columns, else natts == 0 */
	int			natts;
	AttrNumber *attnums;
	TupleDesc	projection;		/* blessed record type of those columns */
	/* how the row (or those columns) is rendered, if no serializer */
	OutboxRendering rendering;
	OutboxRowJsonbPlan *body_plan;	/* PostgreSQL's rendering (row_jsonb.c) */
	/* serializer mode */
	bool		has_serializer;
	FmgrInfo	serializer;
	bool		serializer_returns_json;	/* else jsonb */
} CaptureConfig;

/* The configurations of one table */
typedef struct CaptureEntry
{
	Oid			relid;			/* hash key */
	bool		valid;
	MemoryContext context;		/* holds the configurations */
	int			nconfigs;
	CaptureConfig *configs;
	/* the partition ancestors whose invalidation drops this entry too */
	int			nancestors;
	Oid		   *ancestors;
} CaptureEntry;

static HTAB *capture_cache = NULL;

/* whether any entry ever had ancestors: until then, invalidations look up one */
static bool capture_cache_has_partitions = false;

/* whether an entry was invalidated since capture_cache_sweep() last ran */
static bool capture_cache_sweep_due = false;

/*
 * How many outbox_capture() calls are running in this backend, each holding
 * a pointer to the configurations it captures by.
 */
static int	captures_running = 0;

static bool callbacks_registered = false;

static void capture_cache_init(void);
static void capture_cache_sweep(void);
static void capture_relcache_callback(Datum arg, Oid relid);
static void capture_syscache_callback(Datum arg, int cacheid,
									  uint32 hashvalue);
static CaptureEntry *capture_entry(Relation rel);
static void check_capture_trigger(FunctionCallInfo fcinfo);
static void set_ancestors(CaptureEntry *entry, Relation rel);
static void load_configs(CaptureEntry *entry, Relation rel);
static void final_destination(CaptureConfig *config);
static void load_config(CaptureConfig *config, Relation rel, HeapTuple row,
						TupleDesc desc, List **opened);
static Relation config_source(CaptureConfig *config, Relation rel,
							  Oid relid, List **opened);
static void resolve_fields(CaptureConfig *config, Relation rel,
						   ArrayType *fields);
static Jsonb *build_body(CaptureConfig *config, Relation rel,
						 HeapTuple tuple);

/*
 * Set up the cache and its invalidation callbacks, once per backend.  The
 * callbacks are marked registered only when all are, and the cache itself
 * comes last, so that an error half-way is retried at the next row.
 */
static void
capture_cache_init(void)
{
	HASHCTL		ctl;

	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(capture_relcache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, capture_syscache_callback,
									  (Datum) 0);
		CacheRegisterSyscacheCallback(CASTSOURCETARGET,
									  capture_syscache_callback, (Datum) 0);
		callbacks_registered = true;
	}

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(CaptureEntry);
	ctl.hcxt = CacheMemoryContext;
	capture_cache = hash_create("outbox capture cache", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * Mark the entry of relid and those of its partitions, or every entry, as
 * needing a reload; nothing to do before the cache exists.
 */
static void
capture_relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	CaptureEntry *entry;

	if (capture_cache == NULL)
		return;

	if (OidIsValid(relid) && !capture_cache_has_partitions)
	{
		entry = hash_search(capture_cache, &relid, HASH_FIND, NULL);
		if (entry != NULL)
		{
			entry->valid = false;
			capture_cache_sweep_due = true;
		}
		return;
	}

	hash_seq_init(&status, capture_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		int			i;

		if (!OidIsValid(relid) || entry->relid == relid)
			entry->valid = false;
		for (i = 0; i < entry->nancestors; i++)
		{
			if (entry->ancestors[i] == relid)
				entry->valid = false;
		}
		if (!entry->valid)
			capture_cache_sweep_due = true;
	}
}

/*
 * A function changed: a serializer, or a function a body plan calls, may
 * have been redefined.  Or a cast changed: a body plan knows which types
 * have a cast to json (row_jsonb.c).
 */
static void
capture_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	capture_relcache_callback(arg, InvalidOid);
}

/*
 * Remove the entries invalidated since the last sweep, with their memory:
 * an entry is invalidated when its table is dropped, and a backend that
 * lives for months would otherwise keep one for every table it ever
 * captured from (a daily partition rotated out, say).  An entry still in
 * use reloads at its next row anyway.  Nothing is removed while a capture
 * runs, since it holds a pointer into its entry's configurations.
 */
static void
capture_cache_sweep(void)
{
	HASH_SEQ_STATUS status;
	CaptureEntry *entry;

	if (!capture_cache_sweep_due || captures_running > 0)
		return;
	capture_cache_sweep_due = false;
	hash_seq_init(&status, capture_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->valid)
			continue;
		if (entry->context != NULL)
			MemoryContextDelete(entry->context);
		(void) hash_search(capture_cache, &entry->relid, HASH_REMOVE, NULL);
	}
}

/*
 * Return the valid cache entry of a published table, loading it if needed.
 */
static CaptureEntry *
capture_entry(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	CaptureEntry *entry;
	bool		found;

	if (capture_cache == NULL)
		capture_cache_init();
	capture_cache_sweep();

	entry = hash_search(capture_cache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		entry->valid = false;
		entry->context = NULL;
		entry->nancestors = 0;
	}
	if (!entry->valid)
	{
		/*
		 * The old configurations may still be in use further up the stack
		 * (a serializer that writes to the same table): free them at the end
		 * of the transaction rather than now; but at once if no capture is
		 * running, since every change of a function brings us here.
		 */
		entry->nancestors = 0;
		if (entry->context != NULL && captures_running > 0)
			MemoryContextSetParent(entry->context, TopTransactionContext);
		else if (entry->context != NULL)
			MemoryContextDelete(entry->context);
		entry->context = NULL;	/* if creating the next one fails */
		entry->context = AllocSetContextCreate(CacheMemoryContext,
											   "outbox capture entry",
											   ALLOCSET_SMALL_SIZES);
		entry->nconfigs = 0;
		entry->configs = NULL;

		/*
		 * Set valid first: an invalidation that arrives while we read the
		 * configurations clears it again, and the next row reloads.
		 */
		entry->valid = true;
		PG_TRY();
		{
			set_ancestors(entry, rel);
			load_configs(entry, rel);
		}
		PG_CATCH();
		{
			entry->valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	return entry;
}

/*
 * Remember the partition ancestors of rel in entry, before anything is read
 * by them: from then on an invalidation of one of them drops the entry.
 * The array is complete before the count says so.
 */
static void
set_ancestors(CaptureEntry *entry, Relation rel)
{
	List	   *ancestors;
	Oid		   *array;
	ListCell   *lc;
	int			n = 0;

	if (!rel->rd_rel->relispartition)
		return;
	ancestors = outbox_partition_ancestors(RelationGetRelid(rel));
	array = MemoryContextAlloc(entry->context,
							   sizeof(Oid) * Max(list_length(ancestors), 1));
	foreach(lc, ancestors)
		array[n++] = lfirst_oid(lc);
	entry->ancestors = array;
	capture_cache_has_partitions = true;
	entry->nancestors = n;
}

/*
 * The relation whose row type config captures by: rel itself if relid is
 * rel's, else the ancestor relid, opened (and added to *opened) with the
 * conversion of rel's rows to its row type kept in config.  Runs in the
 * entry's memory context.
 */
static Relation
config_source(CaptureConfig *config, Relation rel, Oid relid, List **opened)
{
	Relation	source;

	if (relid == RelationGetRelid(rel))
		return rel;
	source = table_open(relid, AccessShareLock);
	*opened = lappend(*opened, source);
	config->source_name = pstrdup(RelationGetRelationName(source));
	config->source_desc = CreateTupleDescCopy(RelationGetDescr(source));
	config->map = convert_tuples_by_name(CreateTupleDescCopy(RelationGetDescr(rel)),
										 config->source_desc);
	return source;
}

/*
 * Give config the final destination of its messages, once for all its
 * rows: checked, with the version suffix ('/t' and 'v2' give '/t.v2').
 * A destination that cannot be sent (a row of outbox.publish_config changed
 * by hand) fails every captured row as it would if checked per row.
 */
static void
final_destination(CaptureConfig *config)
{
	OutboxMessage message;

	memset(&message, 0, sizeof(message));
	message.destination = config->destination;
	message.version = config->version;
	outbox_final_destination(&message);
	config->destination = message.destination;
}

/*
 * Fill config from one row of outbox.publish_config (desc): destination,
 * version, rendering, and the serializer or fields resolved against the
 * table whose configuration it is (rel or an ancestor, opened into
 * *opened).  Runs in the entry's memory context.
 */
static void
load_config(CaptureConfig *config, Relation rel, HeapTuple row,
			TupleDesc desc, List **opened)
{
	Relation	source;
	Datum		value;
	bool		isnull;

	source = config_source(config, rel,
						   DatumGetObjectId(SPI_getbinval(row, desc, 5, &isnull)),
						   opened);
	config->destination = TextDatumGetCString(SPI_getbinval(row, desc, 1, &isnull));
	value = SPI_getbinval(row, desc, 2, &isnull);
	config->version = isnull ? NULL : TextDatumGetCString(value);
	final_destination(config);
	value = SPI_getbinval(row, desc, 6, &isnull);
	config->rendering = isnull ? OUTBOX_RENDERING_POSTGRES :
		outbox_rendering_from_name(TextDatumGetCString(value));

	value = SPI_getbinval(row, desc, 4, &isnull);
	if (!isnull)
	{
		char	   *name = TextDatumGetCString(value);
		Oid			serializer;

		/* stored by name (stored_function.c), so that pg_upgrade keeps it */
		serializer = outbox_resolve_stored_function(name,
													source->rd_rel->reltype);
		if (!OidIsValid(serializer))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("serializer %s of table \"%s\" does not exist",
							name, RelationGetRelationName(source)),
					 errhint("Call outbox.publish() again with an existing serializer, or outbox.unpublish() the table.")));
		config->serializer_returns_json =
			(outbox_check_serializer(source, serializer) == JSONOID);
		fmgr_info_cxt(serializer, &config->serializer, CurrentMemoryContext);
		config->has_serializer = true;
	}
	else
	{
		value = SPI_getbinval(row, desc, 3, &isnull);
		if (!isnull)
			resolve_fields(config, source, DatumGetArrayTypeP(value));
		if (config->rendering == OUTBOX_RENDERING_POSTGRES)
			config->body_plan =
				outbox_row_jsonb_plan(RelationGetDescr(source),
									  config->attnums, config->natts,
									  config->map ? config->map->attrMap : NULL);
	}
}

/*
 * Read the configurations of rel, and those of its partition ancestors,
 * from outbox.publish_config into entry.
 */
static void
load_configs(CaptureEntry *entry, Relation rel)
{
	Oid			argtypes[1] = {OIDARRAYOID};
	Datum		args[1];
	Datum	   *relids;
	SPIPlanPtr	plan;
	List	   *opened = NIL;
	ListCell   *lc;
	uint64		i;
	int			save_nestlevel;
	int			ret;

	relids = palloc(sizeof(Datum) * (entry->nancestors + 1));
	relids[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	for (i = 0; i < entry->nancestors; i++)
		relids[i + 1] = ObjectIdGetDatum(entry->ancestors[i]);
	args[0] = PointerGetDatum(construct_array(relids, entry->nancestors + 1,
											  OIDOID, sizeof(Oid), true,
											  TYPALIGN_INT));

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));

	/* the writer's search_path must not choose what this query calls */
	save_nestlevel = outbox_push_search_path(OUTBOX_SAFE_SEARCH_PATH);
	plan = SPI_prepare("SELECT destination, version, fields, serializer,"
					   "       relid::pg_catalog.oid, rendering"
					   "  FROM outbox.publish_config"
					   " WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)"
					   " ORDER BY destination, version NULLS FIRST",
					   1, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare the query of outbox.publish_config: %s",
			 SPI_result_code_string(SPI_result));
	ret = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(),
							   InvalidSnapshot, true, false, 0);
	AtEOXact_GUC(true, save_nestlevel);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read outbox.publish_config: %s",
			 SPI_result_code_string(ret));

	entry->configs = MemoryContextAllocZero(entry->context,
											sizeof(CaptureConfig) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		MemoryContext oldcontext = MemoryContextSwitchTo(entry->context);

		load_config(&entry->configs[i], rel, SPI_tuptable->vals[i],
					SPI_tuptable->tupdesc, &opened);
		MemoryContextSwitchTo(oldcontext);
		entry->nconfigs++;
	}

	/* the locks stay until the end of the transaction */
	foreach(lc, opened)
		table_close((Relation) lfirst(lc), NoLock);
	SPI_finish();
}

/*
 * Check that funcoid can serialize rows of rel: a function of exactly one
 * argument of rel's row type, returning one json or jsonb value, which it
 * returns.  outbox.publish() checks it, and so does every load of the
 * capture cache, since a configuration may have been written another way
 * (a restore, a superuser's DML) and calling a function with arguments or
 * a result of other types would crash the backend.
 */
Oid
outbox_check_serializer(Relation rel, Oid funcoid)
{
	Oid			rowtype = rel->rd_rel->reltype;
	HeapTuple	proctup;
	Form_pg_proc procform;
	bool		fits;
	Oid			rettype;

	proctup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcoid));
	if (!HeapTupleIsValid(proctup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("serializer function %u of table \"%s\" does not exist",
						funcoid, RelationGetRelationName(rel)),
				 errhint("Call outbox.publish() again with an existing serializer.")));
	procform = (Form_pg_proc) GETSTRUCT(proctup);
	rettype = procform->prorettype;
	fits = procform->prokind == PROKIND_FUNCTION && !procform->proretset &&
		procform->pronargs == 1 && procform->proargtypes.values[0] == rowtype;
	ReleaseSysCache(proctup);

	if (!fits)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("function %s cannot serialize rows of table \"%s\"",
						format_procedure(funcoid), RelationGetRelationName(rel)),
				 errdetail("A serializer takes exactly one argument of type %s and returns one value.",
						   format_type_be(rowtype))));
	if (rettype != JSONOID && rettype != JSONBOID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("serializer %s must return json or jsonb",
						format_procedure(funcoid)),
				 errdetail("It returns %s.", format_type_be(rettype))));
	return rettype;
}

/*
 * Resolve the columns of a fields configuration: the primary key columns in
 * column order, then the named ones, each once.  Runs in the entry's memory
 * context.
 */
static void
resolve_fields(CaptureConfig *config, Relation rel, ArrayType *fields)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Bitmapset  *pkey = RelationGetIndexAttrBitmap(rel,
												  INDEX_ATTR_BITMAP_PRIMARY_KEY);
	Datum	   *names;
	int			nnames;
	int			i;
	int			member = -1;

	deconstruct_array(fields, TEXTOID, -1, false, TYPALIGN_INT,
					  &names, NULL, &nnames);
	config->attnums = palloc(sizeof(AttrNumber) * (bms_num_members(pkey) + nnames));
	config->natts = 0;

	while ((member = bms_next_member(pkey, member)) >= 0)
		config->attnums[config->natts++] = member + FirstLowInvalidHeapAttributeNumber;

	for (i = 0; i < nnames; i++)
	{
		char	   *name = TextDatumGetCString(names[i]);
		AttrNumber	attnum = SPI_fnumber(desc, name);
		int			j;
		bool		seen = false;

		if (attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" published by outbox does not exist in table \"%s\"",
							name, RelationGetRelationName(rel)),
					 errhint("Call outbox.publish() again with the table's current columns.")));
		for (j = 0; j < config->natts; j++)
			seen |= (config->attnums[j] == attnum);
		if (!seen)
			config->attnums[config->natts++] = attnum;
	}

	config->projection = CreateTemplateTupleDesc(config->natts);
	for (i = 0; i < config->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, config->attnums[i] - 1);

		TupleDescInitEntry(config->projection, (AttrNumber) (i + 1),
						   NameStr(attr->attname), attr->atttypid,
						   attr->atttypmod, attr->attndims);
		TupleDescInitEntryCollation(config->projection, (AttrNumber) (i + 1),
									attr->attcollation);
	}
	config->projection = BlessTupleDesc(config->projection);
	bms_free(pkey);
}

/*
 * The body of the message of one configuration for one row of rel, in the
 * row type of the configuration's table (rel's or an ancestor's).
 * PostgreSQL's rendering is formed by plan, from rel's row as it is; the
 * others are given the row in the configuration's row type.
 */
static Jsonb *
build_body(CaptureConfig *config, Relation rel, HeapTuple tuple)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const char *relname = RelationGetRelationName(rel);
	Datum		row;

	if (config->body_plan != NULL)
		return outbox_row_jsonb(config->body_plan, tuple, desc);

	if (config->source_desc != NULL)
	{
		desc = config->source_desc;
		relname = config->source_name;
		if (config->map != NULL)
			tuple = execute_attr_map_tuple(tuple, config->map);
	}

	if (config->has_serializer)
	{
		LOCAL_FCINFO(fcinfo, 1);
		Datum		result;

		InitFunctionCallInfoData(*fcinfo, &config->serializer, 1,
								 InvalidOid, NULL, NULL);
		fcinfo->args[0].value = heap_copy_tuple_as_datum(tuple, desc);
		fcinfo->args[0].isnull = false;
		result = outbox_call_user_function(fcinfo);
		if (fcinfo->isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("serializer %s returned NULL for a row of table \"%s\"",
							format_procedure(config->serializer.fn_oid),
							relname),
					 errhint("A serializer must return the message body as a JSON value.")));
		if (config->serializer_returns_json)
			result = DirectFunctionCall1(jsonb_in,
										 CStringGetDatum(TextDatumGetCString(result)));
		return DatumGetJsonbP(result);
	}

	if (config->natts > 0)
	{
		Datum	   *values = palloc(sizeof(Datum) * config->natts);
		bool	   *nulls = palloc(sizeof(bool) * config->natts);
		int			i;

		for (i = 0; i < config->natts; i++)
			values[i] = heap_getattr(tuple, config->attnums[i], desc, &nulls[i]);
		row = HeapTupleGetDatum(heap_form_tuple(config->projection, values,
												nulls));
	}
	else
		row = heap_copy_tuple_as_datum(tuple, desc);

	Assert(config->rendering == OUTBOX_RENDERING_DJANGO);
	return outbox_render_django(row);
}

/*
 * Refuse to run outbox.capture() but as the trigger outbox.publish()
 * creates: AFTER INSERT OR UPDATE FOR EACH ROW, named outbox_capture, not
 * deferred (it would capture after unpublish()).  A second trigger with it
 * would send every row twice.
 */
static void
check_capture_trigger(FunctionCallInfo fcinfo)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		  TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox.capture() must be fired AFTER INSERT OR UPDATE FOR EACH ROW"),
				 errhint("Use outbox.publish() to publish a table.")));
	if (strcmp(trigdata->tg_trigger->tgname, OUTBOX_CAPTURE_TRIGGER_NAME) != 0 ||
		OidIsValid(trigdata->tg_trigger->tgconstraint))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox.capture() must be fired by the trigger \"%s\" that outbox.publish() creates, not by trigger \"%s\" on table \"%s\"",
						OUTBOX_CAPTURE_TRIGGER_NAME,
						trigdata->tg_trigger->tgname,
						RelationGetRelationName(trigdata->tg_relation)),
				 errhint("Drop trigger \"%s\"; use outbox.publish() to publish a table.",
						 trigdata->tg_trigger->tgname)));
}

/*
 * Trigger AFTER INSERT OR UPDATE FOR EACH ROW of published tables.
 *
 * The configurations are taken out of the cache entry first: a serializer
 * may write to a published table and so reload the entry.
 */
Datum
outbox_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	CaptureEntry *entry;
	CaptureConfig *configs;
	int			nconfigs;
	int			i;

	outbox_require_current_schema();
	check_capture_trigger(fcinfo);

	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;

	entry = capture_entry(trigdata->tg_relation);
	nconfigs = entry->nconfigs;
	configs = entry->configs;
	if (nconfigs == 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("table \"%s\" is not published by outbox",
						RelationGetRelationName(trigdata->tg_relation)),
				 errdetail("Its trigger \"%s\" runs outbox.capture(), but outbox.publish_config has no configuration for it.",
						   trigdata->tg_trigger->tgname),
				 errhint("Use outbox.publish() to publish the table, or drop the trigger.")));

	captures_running++;
	PG_TRY();
	{
		for (i = 0; i < nconfigs; i++)
		{
			CaptureConfig *config = &configs[i];
			OutboxMessage message;

			memset(&message, 0, sizeof(message));
			outbox_uuid_v7(&message.id);
			message.destination = config->destination;
			message.version = config->version;
			message.body = build_body(config, trigdata->tg_relation, tuple);
			/* written now, and expiring a day from now, however old the transaction */
			message.added = GetCurrentTimestamp();
			message.expires_at = message.added + OUTBOX_DEFAULT_EXPIRY_USECS;
			message.expires_at_isnull = false;
			outbox_insert_published(&message);
		}
	}
	PG_FINALLY();
	{
		captures_running--;
	}
	PG_END_TRY();

	return PointerGetDatum(NULL);
}

/*
 * Trigger AFTER INSERT OR UPDATE OR DELETE (row) and AFTER TRUNCATE
 * (statement) on outbox.publish_config: make every backend reload the
 * configurations of the tables concerned at its next command.  It refuses
 * any other table or event: on a table of anyone's, per statement, it
 * would invalidate every backend's caches at every statement.
 */
Datum
outbox_publish_config_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tuples[2];
	int			relid_attnum;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		(TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ?
		 TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event) :
		 !TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox.publish_config_changed() must be fired AFTER INSERT, UPDATE or DELETE FOR EACH ROW, or AFTER TRUNCATE"),
				 errhint("It is the trigger of outbox.publish_config; do not use it elsewhere.")));
	if (RelationGetRelid(trigdata->tg_relation) != outbox_table_relid("publish_config"))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox.publish_config_changed() must be fired on outbox.publish_config, not on table \"%s\"",
						RelationGetRelationName(trigdata->tg_relation)),
				 errhint("It is the trigger of outbox.publish_config; do not use it elsewhere.")));

	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		CacheInvalidateRelcacheAll();
		return PointerGetDatum(NULL);
	}

	desc = RelationGetDescr(trigdata->tg_relation);
	relid_attnum = SPI_fnumber(desc, "relid");
	if (relid_attnum <= 0)
		elog(ERROR, "outbox.publish_config has no column \"relid\"");
	tuples[0] = trigdata->tg_trigtuple;
	tuples[1] = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : NULL;
	for (i = 0; i < 2; i++)
	{
		bool		isnull;
		Datum		relid;

		if (tuples[i] == NULL)
			continue;
		relid = heap_getattr(tuples[i], relid_attnum, desc, &isnull);

		/* a dropped table's backends were told by the DROP itself */
		if (!isnull && SearchSysCacheExists1(RELOID, relid))
			CacheInvalidateRelcacheByRelid(DatumGetObjectId(relid));
	}
	return PointerGetDatum(NULL);
}
