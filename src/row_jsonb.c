/*-------------------------------------------------------------------------
 *
 * row_jsonb.c
 *		  A row as to_jsonb() renders it, from a plan made once.
 *
 * PostgreSQL's to_jsonb(record) decides everything again for every row:
 * it looks up the row type's descriptor, and for every column its type's
 * JSON category and output function (several syscache lookups a column),
 * pushes each member into a parse state, and sorts the object's keys at
 * its end.  The capture trigger renders every row of a configuration with
 * the same columns, so it makes those decisions once, in a plan
 * (outbox_row_jsonb_plan()), and forms the jsonb of each row from it
 * (outbox_row_jsonb()) as one object whose members are already in jsonb's
 * order (shorter keys first, then bytewise), given to JsonbValueToJsonb()
 * directly.  The values are rendered in the row's order of columns, as
 * to_jsonb() renders them: a cast to json may be volatile or fail, and
 * must see the same calls in the same order, the first column's error
 * being the one reported.
 *
 * The result is to_jsonb()'s, byte for byte, since each column follows
 * the rules of PostgreSQL's jsonb_categorize_type() and datum_to_jsonb():
 *
 *	bool				a JSON boolean;
 *	int2, int4, int8	a JSON number (the numeric of the integer, as
 *						numeric_in() makes it from the integer's text);
 *	numeric				a JSON number holding the value as stored, or its
 *						text ("NaN", "Infinity", "-Infinity") as a string;
 *	float4, float8		the output function's text (which follows
 *						extra_float_digits) read as a number, or kept as a
 *						string if it is NaN or an infinity;
 *	date, timestamp, timestamptz
 *						JsonEncodeDateTime() (ISO 8601, the session's
 *						TimeZone; infinities spelled out);
 *	text, varchar, char	the string itself, which is what their output
 *						functions return;
 *	jsonb				its value, unpacked;
 *	json, arrays, composites, and types defined after initdb that have a
 *	cast to json (to_jsonb() checks for a cast only for those)
 *						to_jsonb() of the value itself, unpacked: it renders
 *						nested values and parses json text as it does in a
 *						row;
 *	everything else		the output function's text as a string;
 *	NULL				a JSON null.
 *
 * A domain is rendered as its base type.  A string longer than jsonb can
 * hold is left to to_jsonb(), which reports it.  One thing is not copied
 * but taken as it is: a numeric is put in the object as stored, where
 * to_jsonb() prints it and reads it back; both give the same bytes for
 * every value PostgreSQL has stored since 9.1 (numeric_in() and every
 * numeric operation form the same short or long format), and the same
 * JSON value and text in any case.
 *
 * What a plan depends on, so what must drop it: the row type's columns and
 * types (a relcache invalidation of the table), the output and cast
 * functions (pg_proc), and whether a type defined after initdb has a cast
 * to json (pg_cast).  The plan holds no pointer into the catalogs or the
 * relcache.  capture.c keeps plans in its cache entries, which it drops on
 * all three.
 *
 * Errors: those of the output, cast and to_jsonb() functions, as
 * to_jsonb() would raise them.  elog only for can't-happen.
 *
 * Memory: a plan is allocated in the caller's current memory context (a
 * capture cache entry's), and lives as long as the configuration.  An
 * output function is called through a copy of the plan's FmgrInfo made in
 * the current context, as to_jsonb() looks it up per value: what it caches
 * in fn_extra (range_out() keeps its subtype's output function, record_out()
 * a slot per attribute, again each time the type is altered) is freed with
 * the row instead of piling up in the cache.  A row's jsonb, and what
 * rendering it allocates, are in the current context (the trigger's
 * per-row one).
 *
 * src/row_jsonb.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "outbox.h"

/* How a column's values are rendered */
typedef enum RowJsonbKind
{
	ROW_JSONB_BOOL,
	ROW_JSONB_INTEGER,			/* int2, int4, int8 */
	ROW_JSONB_NUMERIC,
	ROW_JSONB_FLOAT,			/* float4, float8: the output function's text */
	ROW_JSONB_DATETIME,			/* date, timestamp, timestamptz */
	ROW_JSONB_TEXT,				/* text, varchar, char: the string itself */
	ROW_JSONB_JSONB,
	ROW_JSONB_STRING,			/* the output function's text */
	ROW_JSONB_POSTGRES			/* to_jsonb() of the value */
} RowJsonbKind;

/* One column of a plan */
typedef struct RowJsonbColumn
{
	JsonbValue	key;			/* the column's name, a jbvString */
	AttrNumber	attnum;			/* in the rows rendered; 0: always NULL */
	int			position;		/* of its member, in jsonb's order of keys */
	RowJsonbKind kind;
	Oid			type;			/* the base type */
	FmgrInfo	output;			/* the output function, if used */
	FmgrInfo	to_jsonb;		/* to_jsonb() of the column's type */
} RowJsonbColumn;

struct OutboxRowJsonbPlan
{
	int			ncolumns;
	RowJsonbColumn *columns;	/* in the row's order */
};

static RowJsonbKind column_kind(Oid base);
static void plan_column(RowJsonbColumn *column, Form_pg_attribute attr,
						AttrNumber attnum);
static int	key_order(const void *a, const void *b);
static void order_keys(OutboxRowJsonbPlan *plan);
static char *output_text(RowJsonbColumn *column, Datum datum);
static void jsonb_as_value(Jsonb *jsonb, JsonbValue *value);
static void postgres_value(RowJsonbColumn *column, Datum datum,
						   JsonbValue *value);
static void number_or_string(char *text, JsonbValue *value);
static void column_value(RowJsonbColumn *column, Datum datum,
						 JsonbValue *value);

/*
 * How to_jsonb() renders values of the base type base: the category
 * PostgreSQL's jsonb_categorize_type() gives it, made finer where the
 * rendering can be done here.  Like PostgreSQL, it looks for a cast to
 * json only for types defined after initdb.
 */
static RowJsonbKind
column_kind(Oid base)
{
	switch (base)
	{
		case BOOLOID:
			return ROW_JSONB_BOOL;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return ROW_JSONB_INTEGER;
		case NUMERICOID:
			return ROW_JSONB_NUMERIC;
		case FLOAT4OID:
		case FLOAT8OID:
			return ROW_JSONB_FLOAT;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return ROW_JSONB_DATETIME;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return ROW_JSONB_TEXT;
		case JSONBOID:
			return ROW_JSONB_JSONB;
		case JSONOID:
			return ROW_JSONB_POSTGRES;
		default:
			break;
	}
	if (OidIsValid(get_element_type(base)) || base == ANYARRAYOID ||
		base == ANYCOMPATIBLEARRAYOID || base == RECORDARRAYOID ||
		type_is_rowtype(base))
		return ROW_JSONB_POSTGRES;
	if (base >= FirstNormalObjectId)
	{
		Oid			castfunc;

		if (find_coercion_pathway(JSONOID, base, COERCION_EXPLICIT,
								  &castfunc) == COERCION_PATH_FUNC &&
			OidIsValid(castfunc))
			return ROW_JSONB_POSTGRES;
	}
	return ROW_JSONB_STRING;
}

/*
 * Plan one column (attr, of the row type rendered), read from attribute
 * attnum of the rows given.
 */
static void
plan_column(RowJsonbColumn *column, Form_pg_attribute attr, AttrNumber attnum)
{
	FuncExpr   *expr;

	column->key.type = jbvString;
	column->key.val.string.val = pstrdup(NameStr(attr->attname));
	column->key.val.string.len = strlen(column->key.val.string.val);
	column->attnum = attnum;
	column->type = getBaseType(attr->atttypid);
	column->kind = column_kind(column->type);

	if (column->kind == ROW_JSONB_NUMERIC ||
		column->kind == ROW_JSONB_FLOAT ||
		column->kind == ROW_JSONB_STRING)
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(column->type, &outfunc, &isvarlena);
		fmgr_info(outfunc, &column->output);
	}

	/*
	 * to_jsonb(anyelement) finds its argument's type in fn_expr: that of
	 * the column, domain included, as in a row.
	 */
	fmgr_info(F_TO_JSONB, &column->to_jsonb);
	expr = makeFuncExpr(F_TO_JSONB, JSONBOID,
						list_make1(makeNullConst(attr->atttypid, -1,
												 InvalidOid)),
						InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	column->to_jsonb.fn_expr = (Node *) expr;
}

/*
 * qsort() comparator of pointers to plan columns: the order of jsonb's
 * object keys, shorter first, then bytewise (lengthCompareJsonbStringValue()).
 */
static int
key_order(const void *a, const void *b)
{
	const JsonbValue *ka = &(*(RowJsonbColumn *const *) a)->key;
	const JsonbValue *kb = &(*(RowJsonbColumn *const *) b)->key;

	if (ka->val.string.len != kb->val.string.len)
		return ka->val.string.len > kb->val.string.len ? 1 : -1;
	return memcmp(ka->val.string.val, kb->val.string.val,
				  ka->val.string.len);
}

/*
 * Plan the rendering of rows of the row type desc as to_jsonb() renders
 * them: all its columns but dropped ones, or (natts > 0) the natts columns
 * attnums of desc, as a row of those columns.  The rows given later may be
 * of another layout (a partition's, desc being an ancestor's): map, if not
 * NULL, gives for each attribute of desc the attribute of theirs
 * (build_attrmap_by_name(theirs, desc)).  The plan is allocated in the
 * current memory context.
 */
OutboxRowJsonbPlan *
outbox_row_jsonb_plan(TupleDesc desc, const AttrNumber *attnums, int natts,
					  const AttrMap *map)
{
	OutboxRowJsonbPlan *plan = palloc0(sizeof(OutboxRowJsonbPlan));
	int			ncolumns = natts > 0 ? natts : desc->natts;
	int			i;

	plan->columns = palloc0(sizeof(RowJsonbColumn) * Max(ncolumns, 1));
	for (i = 0; i < ncolumns; i++)
	{
		AttrNumber	attnum = natts > 0 ? attnums[i] : i + 1;
		Form_pg_attribute attr = TupleDescAttr(desc, attnum - 1);

		if (attr->attisdropped)
			continue;
		if (map != NULL)
			attnum = map->attnums[attnum - 1];
		plan_column(&plan->columns[plan->ncolumns++], attr, attnum);
	}

	order_keys(plan);
	return plan;
}

/*
 * Give each column of plan the position of its member in the object, in
 * jsonb's order of keys; the columns themselves stay in the row's order,
 * the order they are rendered in.
 */
static void
order_keys(OutboxRowJsonbPlan *plan)
{
	RowJsonbColumn **sorted = palloc(sizeof(RowJsonbColumn *) *
									 Max(plan->ncolumns, 1));
	int			i;

	for (i = 0; i < plan->ncolumns; i++)
		sorted[i] = &plan->columns[i];
	/* a row type's column names are distinct: the order is total */
	qsort(sorted, plan->ncolumns, sizeof(RowJsonbColumn *), key_order);
	for (i = 0; i < plan->ncolumns; i++)
		sorted[i]->position = i;
	pfree(sorted);
}

/*
 * The JsonbValue of a jsonb, for a member of an object being formed: its
 * scalar, or its container unpacked into a tree, as to_jsonb() pushes a
 * jsonb into the row it renders.
 */
static void
jsonb_as_value(Jsonb *jsonb, JsonbValue *value)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbIteratorToken token;
	JsonbValue	v;
	JsonbValue *result = NULL;

	if (JsonbExtractScalar(&jsonb->root, value))
		return;
	it = JsonbIteratorInit(&jsonb->root);
	while ((token = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
		result = pushJsonbValue(&state, token,
								token < WJB_BEGIN_ARRAY ? &v : NULL);
	if (result == NULL)
		elog(ERROR, "could not unpack a jsonb value");
	*value = *result;
}

/*
 * The value of a column rendered by to_jsonb() itself.
 */
static void
postgres_value(RowJsonbColumn *column, Datum datum, JsonbValue *value)
{
	jsonb_as_value(DatumGetJsonbP(FunctionCall1(&column->to_jsonb, datum)),
				   value);
}

/*
 * The text of a column's value by its output function, called through a
 * copy of the plan's FmgrInfo made in the current memory context, so that
 * what the function caches lasts no longer than the row (as with
 * to_jsonb(), which looks the function up for each value).
 */
static char *
output_text(RowJsonbColumn *column, Datum datum)
{
	FmgrInfo	output;

	fmgr_info_copy(&output, &column->output, CurrentMemoryContext);
	return OutputFunctionCall(&output, datum);
}

/*
 * The JSON value to_jsonb() makes of a number's text: a number, unless the
 * text is not one (NaN and the infinities, which hold an 'n' or 'N').
 */
static void
number_or_string(char *text, JsonbValue *value)
{
	if (strchr(text, 'N') != NULL || strchr(text, 'n') != NULL)
	{
		value->type = jbvString;
		value->val.string.val = text;
		value->val.string.len = strlen(text);
		return;
	}
	value->type = jbvNumeric;
	value->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
															 CStringGetDatum(text),
															 ObjectIdGetDatum(InvalidOid),
															 Int32GetDatum(-1)));
}

/*
 * The JSON value of a column's non-NULL value datum, as to_jsonb() renders
 * it in a row.
 */
static void
column_value(RowJsonbColumn *column, Datum datum, JsonbValue *value)
{
	switch (column->kind)
	{
		case ROW_JSONB_BOOL:
			value->type = jbvBool;
			value->val.boolean = DatumGetBool(datum);
			return;
		case ROW_JSONB_INTEGER:
			value->type = jbvNumeric;
			value->val.numeric = int64_to_numeric(column->type == INT2OID ?
												  DatumGetInt16(datum) :
												  column->type == INT4OID ?
												  DatumGetInt32(datum) :
												  DatumGetInt64(datum));
			return;
		case ROW_JSONB_NUMERIC:
			{
				Numeric		number = DatumGetNumeric(datum);

				if (numeric_is_nan(number) || numeric_is_inf(number))
					number_or_string(output_text(column, datum), value);
				else
				{
					value->type = jbvNumeric;
					value->val.numeric = number;
				}
				return;
			}
		case ROW_JSONB_FLOAT:
			number_or_string(output_text(column, datum), value);
			return;
		case ROW_JSONB_DATETIME:
			value->type = jbvString;
			value->val.string.val = JsonEncodeDateTime(NULL, datum,
													   column->type, NULL);
			value->val.string.len = strlen(value->val.string.val);
			return;
		case ROW_JSONB_TEXT:
			{
				text	   *string = DatumGetTextPP(datum);

				if (VARSIZE_ANY_EXHDR(string) > JENTRY_OFFLENMASK)
					break;
				value->type = jbvString;
				value->val.string.val = VARDATA_ANY(string);
				value->val.string.len = VARSIZE_ANY_EXHDR(string);
				return;
			}
		case ROW_JSONB_JSONB:
			jsonb_as_value(DatumGetJsonbP(datum), value);
			return;
		case ROW_JSONB_STRING:
			{
				char	   *string = output_text(column, datum);
				size_t		len = strlen(string);

				if (len > JENTRY_OFFLENMASK)
					break;
				value->type = jbvString;
				value->val.string.val = string;
				value->val.string.len = len;
				return;
			}
		case ROW_JSONB_POSTGRES:
			break;
	}

	/* what is not done above, and what to_jsonb() refuses */
	postgres_value(column, datum, value);
}

/*
 * The jsonb of a row (tuple, described by desc) as to_jsonb() renders it,
 * by plan.
 */
Jsonb *
outbox_row_jsonb(const OutboxRowJsonbPlan *plan, HeapTuple tuple,
				 TupleDesc desc)
{
	Datum	   *values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	JsonbPair  *pairs = palloc(sizeof(JsonbPair) * Max(plan->ncolumns, 1));
	JsonbValue	object;
	int			i;

	heap_deform_tuple(tuple, desc, values, nulls);
	for (i = 0; i < plan->ncolumns; i++)
	{
		RowJsonbColumn *column = &plan->columns[i];
		JsonbPair  *pair = &pairs[column->position];
		AttrNumber	attnum = column->attnum;

		pair->key = column->key;
		pair->order = column->position;
		if (attnum <= 0 || attnum > desc->natts || nulls[attnum - 1])
			pair->value.type = jbvNull;
		else
			column_value(column, values[attnum - 1], &pair->value);
	}

	object.type = jbvObject;
	object.val.object.nPairs = plan->ncolumns;
	object.val.object.pairs = pairs;
	return JsonbValueToJsonb(&object);
}
