/*-------------------------------------------------------------------------
 *
 * rendering.c
 *		  How a row becomes a message body: PostgreSQL's rendering or
 *		  django-outbox-pattern's.
 *
 * By default a body is to_jsonb() of the row: numeric stays an exact JSON
 * number, timestamps are ISO 8601 with microseconds and the session's UTC
 * offset.  A publication may ask instead for the body django-outbox-pattern
 * sends (outbox.publish(..., rendering => 'django')), so that a consumer
 * written against that producer keeps working when a service moves over.
 * django-outbox-pattern makes a body with Django's JSON serializer
 * (serialize("json", [obj])), which passes numbers, dates and Decimals to
 * DjangoJSONEncoder and turns other values into strings with the field's
 * value_to_string().  With USE_TZ, Django reads timestamptz in UTC.  So:
 *
 *	numeric		str(Decimal): a JSON string, "10.50", "1E-7", "NaN";
 *	timestamptz	in UTC, isoformat() cut (not rounded) to milliseconds,
 *				"+00:00" written "Z": "2024-03-05T14:07:08.123Z", and
 *				"2024-03-05T14:07:08Z" when it has no fraction;
 *	timestamp	the same without an offset;
 *	time		isoformat() cut to milliseconds: "14:07:08.500";
 *	interval	what DurationField.value_to_string() gives, Django's
 *				duration_string() of the timedelta psycopg reads (a month
 *				is 30 days, a year 365): "1 02:03:04.000005",
 *				"-1 23:00:00";
 *	float		a JSON number as Python's repr() writes the float psycopg
 *				reads, once stored as jsonb: "2.0" stays 2.0 (a float, not
 *				the int 2), 1e15 is 1000000000000000.0;
 *	bytea		BinaryField.value_to_string(): base64, "AP8Q";
 *	date, uuid and every other type: as PostgreSQL renders them, which is
 *				what Django gives too (json and jsonb keep their own text).
 *
 * Django refuses to render a time with a time zone; a timetz is rendered as
 * a time followed by the offset as Python's isoformat() writes it
 * ("14:07:08.123+05:30").  A value Python's datetime cannot hold (infinity,
 * a year before 1 or after 9999, an interval over 999999999 days) keeps
 * PostgreSQL's rendering.  Arrays and composite values are rendered
 * element by element by the same rules (Django's serializer turns an
 * ArrayField into a string of JSON, a quirk not reproduced).
 *
 * The body must not depend on the writing session's settings: what is
 * rendered as PostgreSQL renders it is rendered under TimeZone UTC (as
 * Django reads), DateStyle ISO, IntervalStyle postgres, extra_float_digits
 * 1 and bytea_output hex, whatever the session set.
 *
 * A publication's rendering is set with outbox.set_rendering() and kept in
 * outbox.publish_config; the capture trigger reads it with the rest of the
 * configuration (capture.c).
 *
 * Errors: an unknown rendering name, and outbox.set_rendering() on a
 * table one does not own or that is not published to that destination,
 * are refused with an ERROR; a value outside Django's range is not an
 * error (it keeps PostgreSQL's rendering).  elog only for can't-happen.
 *
 * Memory: a body is built in the caller's current memory context (the
 * capture trigger's per-row context).  The settings pinned for it are
 * set in a GUC nest level of their own, undone before returning, or by the
 * (sub)transaction's abort on error.
 *
 * src/rendering.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/shortest_dec.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_set_rendering);

/* The largest timedelta Python holds, in days */
#define PYTHON_MAX_DAYS		INT64CONST(999999999)

static char *clock_text(int64 usecs, int *fraction);
static char *django_decimal(Numeric value);
static char *django_datetime(Timestamp value, bool with_zone);
static char *django_time(TimeADT value, const int *zone);
static char *django_interval(Interval *value);
static char *django_bytea(bytea *value);
static Numeric django_float(double value, const char *shortest);
static char *django_text(Datum value, Oid typid);
static void push_django(JsonbParseState **state, JsonbIteratorToken token,
						Datum value, bool isnull, Oid typid);
static void push_django_array(JsonbParseState **state,
							  JsonbIteratorToken token, ArrayType *array);
static void push_django_array_dim(JsonbParseState **state,
								  JsonbIteratorToken token, int dim,
								  int ndims, const int *dims, Datum *values,
								  bool *nulls, int *index, Oid elemtype);
static JsonbValue *push_django_record(JsonbParseState **state,
									  HeapTupleHeader td);
static void push_postgres(JsonbParseState **state, JsonbIteratorToken token,
						  Datum value, Oid typid);

/*
 * The rendering named name, or an error saying which exist.
 */
OutboxRendering
outbox_rendering_from_name(const char *name)
{
	if (strcmp(name, OUTBOX_RENDERING_POSTGRES_NAME) == 0)
		return OUTBOX_RENDERING_POSTGRES;
	if (strcmp(name, OUTBOX_RENDERING_DJANGO_NAME) == 0)
		return OUTBOX_RENDERING_DJANGO;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown outbox rendering \"%s\"", name),
			 errhint("Use '%s' (PostgreSQL's JSON rendering, the default) or '%s' (django-outbox-pattern's).",
					 OUTBOX_RENDERING_POSTGRES_NAME,
					 OUTBOX_RENDERING_DJANGO_NAME)));
	return OUTBOX_RENDERING_POSTGRES;	/* keep compiler quiet */
}

/*
 * str() of the Python Decimal that psycopg reads from numeric text: the
 * digits as stored, in scientific notation when the exponent is below -6
 * (Python's to_sci_string()).
 */
static char *
django_decimal(Numeric value)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out,
														   NumericGetDatum(value)));
	StringInfoData out;
	const char *p = text;
	char	   *digits;
	int			ndigits = 0;
	int			exponent = 0;
	bool		negative = false;
	bool		fraction = false;
	int			leftdigits;
	int			dotplace;
	int			i;

	/* NaN, Infinity, -Infinity print alike */
	if (numeric_is_nan(value) || numeric_is_inf(value))
		return text;

	if (*p == '-')
	{
		negative = true;
		p++;
	}
	/* the coefficient without leading zeros, and its exponent */
	digits = palloc(strlen(p) + 1);
	for (; *p; p++)
	{
		if (*p == '.')
		{
			fraction = true;
			continue;
		}
		if (fraction)
			exponent--;
		if (ndigits == 0 && *p == '0')
			continue;
		digits[ndigits++] = *p;
	}
	if (ndigits == 0)
		digits[ndigits++] = '0';
	digits[ndigits] = '\0';

	leftdigits = exponent + ndigits;
	dotplace = (exponent <= 0 && leftdigits > -6) ? leftdigits : 1;

	initStringInfo(&out);
	if (negative)
		appendStringInfoChar(&out, '-');
	if (dotplace <= 0)
	{
		appendStringInfoString(&out, "0.");
		for (i = 0; i < -dotplace; i++)
			appendStringInfoChar(&out, '0');
		appendStringInfoString(&out, digits);
	}
	else if (dotplace >= ndigits)
	{
		appendStringInfoString(&out, digits);
		for (i = ndigits; i < dotplace; i++)
			appendStringInfoChar(&out, '0');
	}
	else
	{
		appendBinaryStringInfo(&out, digits, dotplace);
		appendStringInfoChar(&out, '.');
		appendStringInfoString(&out, digits + dotplace);
	}
	if (leftdigits != dotplace)
		appendStringInfo(&out, "E%+d", leftdigits - dotplace);
	return out.data;
}

/*
 * DjangoJSONEncoder's datetime: isoformat() with the microseconds cut to
 * milliseconds; in UTC with "Z" for a timestamptz.  NULL if Python cannot
 * hold it.
 */
static char *
django_datetime(Timestamp value, bool with_zone)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char	   *out;

	if (TIMESTAMP_NOT_FINITE(value) ||
		timestamp2tm(value, NULL, &tm, &fsec, NULL, NULL) != 0 ||
		tm.tm_year < 1 || tm.tm_year > 9999)
		return NULL;

	out = psprintf("%04d-%02d-%02dT%02d:%02d:%02d",
				   tm.tm_year, tm.tm_mon, tm.tm_mday,
				   tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (fsec != 0)
		out = psprintf("%s.%03d", out, (int) (fsec / 1000));
	if (with_zone)
		out = psprintf("%sZ", out);
	return out;
}

/*
 * "HH:MM:SS" of a time of day in microseconds (24:00:00 at most); the
 * microseconds within the second go to *fraction.
 */
static char *
clock_text(int64 usecs, int *fraction)
{
	int			hour = usecs / USECS_PER_HOUR;
	int			minute = (usecs / USECS_PER_MINUTE) % MINS_PER_HOUR;
	int			second = (usecs / USECS_PER_SEC) % SECS_PER_MINUTE;

	*fraction = usecs % USECS_PER_SEC;
	return psprintf("%02d:%02d:%02d", hour, minute, second);
}

/*
 * DjangoJSONEncoder's time: isoformat() cut to milliseconds; with zone
 * (seconds west of UTC, as timetz keeps it), the offset as Python writes
 * it, "+HH:MM" and ":SS" if any.
 */
static char *
django_time(TimeADT value, const int *zone)
{
	int			fraction;
	char	   *out = clock_text(value, &fraction);

	if (fraction != 0)
		out = psprintf("%s.%03d", out, fraction / 1000);
	if (zone != NULL)
	{
		int			offset = -*zone;
		int			magnitude = Abs(offset);

		out = psprintf("%s%c%02d:%02d", out, offset < 0 ? '-' : '+',
					   magnitude / SECS_PER_HOUR,
					   (magnitude / SECS_PER_MINUTE) % MINS_PER_HOUR);
		if (magnitude % SECS_PER_MINUTE != 0)
			out = psprintf("%s:%02d", out, magnitude % SECS_PER_MINUTE);
	}
	return out;
}

/*
 * Django's duration_string() of the timedelta psycopg reads from an
 * interval: months count 30 days and years 365; the timedelta keeps its
 * days signed and its time of day positive.  NULL if Python cannot hold
 * it.
 */
static char *
django_interval(Interval *value)
{
	int			months = Abs(value->month);
	int64		days;
	int64		usecs;
	int			fraction;
	char	   *out;

	days = (int64) (months / MONTHS_PER_YEAR) * 365 +
		(int64) (months % MONTHS_PER_YEAR) * 30;
	if (value->month < 0)
		days = -days;
	days += value->day;

	/* timedelta's normal form: the time within [0, one day) */
	days += value->time / USECS_PER_DAY;
	usecs = value->time % USECS_PER_DAY;
	if (usecs < 0)
	{
		usecs += USECS_PER_DAY;
		days--;
	}
	if (days > PYTHON_MAX_DAYS || days < -PYTHON_MAX_DAYS)
		return NULL;

	out = clock_text(usecs, &fraction);
	if (days != 0)
		out = psprintf(INT64_FORMAT " %s", days, out);
	if (fraction != 0)
		out = psprintf("%s.%06d", out, fraction);
	return out;
}

/*
 * BinaryField.value_to_string(): the bytes in base64, without line breaks.
 */
static char *
django_bytea(bytea *value)
{
	int			len = VARSIZE_ANY_EXHDR(value);
	int			outlen = pg_b64_enc_len(len);
	char	   *out = palloc(outlen + 1);

	outlen = pg_b64_encode(VARDATA_ANY(value), len, out, outlen);
	if (outlen < 0)
		elog(ERROR, "could not encode bytea in base64");
	out[outlen] = '\0';
	return out;
}

/*
 * The JSON number of a float as django-outbox-pattern stores it: Python's
 * repr() of the float psycopg reads from shortest, the float's shortest
 * exact text, read back by PostgreSQL's jsonb.  repr() writes fixed
 * notation with at least one decimal for 1e-4 <= |value| < 1e16 and
 * scientific notation (which jsonb stores as the plain number) otherwise.
 * NULL for NaN and infinities, which JSON cannot hold.
 */
static Numeric
django_float(double value, const char *shortest)
{
	Datum		number;

	if (isnan(value) || isinf(value))
		return NULL;
	number = DirectFunctionCall3(numeric_in, CStringGetDatum(shortest),
								 ObjectIdGetDatum(InvalidOid),
								 Int32GetDatum(-1));
	if ((value == 0 || (fabs(value) >= 1e-4 && fabs(value) < 1e16)) &&
		DatumGetInt32(DirectFunctionCall1(numeric_scale, number)) == 0)
		number = DirectFunctionCall2(numeric_round, number, Int32GetDatum(1));
	return DatumGetNumeric(number);
}

/*
 * The text django-outbox-pattern gives a scalar of type typid (a base
 * type), or NULL if it renders it as PostgreSQL does.
 */
static char *
django_text(Datum value, Oid typid)
{
	switch (typid)
	{
		case NUMERICOID:
			return django_decimal(DatumGetNumeric(value));
		case TIMESTAMPTZOID:
			return django_datetime(DatumGetTimestampTz(value), true);
		case TIMESTAMPOID:
			return django_datetime(DatumGetTimestamp(value), false);
		case TIMEOID:
			return django_time(DatumGetTimeADT(value), NULL);
		case TIMETZOID:
			{
				TimeTzADT  *time = DatumGetTimeTzADTP(value);

				return django_time(time->time, &time->zone);
			}
		case INTERVALOID:
			return django_interval(DatumGetIntervalP(value));
		case BYTEAOID:
			return django_bytea(DatumGetByteaPP(value));
		default:
			return NULL;
	}
}

/*
 * Push a value rendered by PostgreSQL's to_jsonb(), which tells the type
 * of its argument from its expression.
 */
static void
push_postgres(JsonbParseState **state, JsonbIteratorToken token, Datum value,
			  Oid typid)
{
	FmgrInfo	finfo;
	Jsonb	   *jsonb;
	JsonbValue	v;

	fmgr_info(F_TO_JSONB, &finfo);
	finfo.fn_expr = (Node *) makeFuncExpr(F_TO_JSONB, JSONBOID,
										   list_make1(makeNullConst(typid, -1, InvalidOid)),
										   InvalidOid, InvalidOid,
										   COERCE_EXPLICIT_CALL);
	jsonb = DatumGetJsonbP(FunctionCall1(&finfo, value));

	v.type = jbvBinary;
	v.val.binary.data = &jsonb->root;
	v.val.binary.len = VARSIZE(jsonb) - VARHDRSZ;
	pushJsonbValue(state, token, &v);
}

/*
 * Push one value (a member's value or an array element, token) rendered as
 * django-outbox-pattern renders it.
 */
static void
push_django(JsonbParseState **state, JsonbIteratorToken token, Datum value,
			bool isnull, Oid typid)
{
	Oid			base = getBaseType(typid);
	JsonbValue	v;
	char	   *text;

	if (isnull)
	{
		v.type = jbvNull;
		pushJsonbValue(state, token, &v);
		return;
	}
	if (OidIsValid(get_element_type(base)))
	{
		push_django_array(state, token, DatumGetArrayTypeP(value));
		return;
	}
	if (type_is_rowtype(base))
	{
		(void) push_django_record(state, DatumGetHeapTupleHeader(value));
		return;
	}

	if (base == FLOAT8OID || base == FLOAT4OID)
	{
		char		shortest[32];
		double		number;

		if (base == FLOAT8OID)
		{
			number = DatumGetFloat8(value);
			double_to_shortest_decimal_buf(number, shortest);
		}
		else
		{
			float_to_shortest_decimal_buf(DatumGetFloat4(value), shortest);
			number = strtod(shortest, NULL);
		}
		v.val.numeric = django_float(number, shortest);
		if (v.val.numeric != NULL)
		{
			v.type = jbvNumeric;
			pushJsonbValue(state, token, &v);
			return;
		}
	}

	text = django_text(value, base);
	if (text == NULL)
	{
		push_postgres(state, token, value, typid);
		return;
	}
	v.type = jbvString;
	v.val.string.val = text;
	v.val.string.len = strlen(text);
	pushJsonbValue(state, token, &v);
}

/*
 * Push the elements of one dimension of an array (and those below it) as
 * JSON arrays, as PostgreSQL's array_to_json() nests them.
 */
static void
push_django_array_dim(JsonbParseState **state, JsonbIteratorToken token,
					  int dim, int ndims, const int *dims, Datum *values,
					  bool *nulls, int *index, Oid elemtype)
{
	int			i;

	pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < dims[dim]; i++)
	{
		if (dim + 1 == ndims)
		{
			push_django(state, WJB_ELEM, values[*index], nulls[*index],
						elemtype);
			(*index)++;
		}
		else
			push_django_array_dim(state, WJB_ELEM, dim + 1, ndims, dims,
								  values, nulls, index, elemtype);
	}
	pushJsonbValue(state, WJB_END_ARRAY, NULL);
}

/*
 * Push an array, element by element.
 */
static void
push_django_array(JsonbParseState **state, JsonbIteratorToken token,
				  ArrayType *array)
{
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *values;
	bool	   *nulls;
	int			nitems;
	int			index = 0;

	if (ARR_NDIM(array) <= 0)
	{
		pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
		pushJsonbValue(state, WJB_END_ARRAY, NULL);
		return;
	}
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign,
					  &values, &nulls, &nitems);
	push_django_array_dim(state, token, 0, ARR_NDIM(array), ARR_DIMS(array),
						  values, nulls, &index, elemtype);
}

/*
 * Push a composite value as an object of its columns; return what
 * pushJsonbValue() returns at the end of the object (the whole value, at
 * the top level).
 */
static JsonbValue *
push_django_record(JsonbParseState **state, HeapTupleHeader td)
{
	TupleDesc	desc;
	HeapTupleData tuple;
	Datum	   *values;
	bool	   *nulls;
	JsonbValue *result;
	int			i;

	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(td),
								  HeapTupleHeaderGetTypMod(td));
	tuple.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = td;
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(&tuple, desc, values, nulls);

	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		JsonbValue	key;

		if (attr->attisdropped)
			continue;
		key.type = jbvString;
		key.val.string.val = pstrdup(NameStr(attr->attname));
		key.val.string.len = strlen(key.val.string.val);
		pushJsonbValue(state, WJB_KEY, &key);
		push_django(state, WJB_VALUE, values[i], nulls[i], attr->atttypid);
	}
	result = pushJsonbValue(state, WJB_END_OBJECT, NULL);
	ReleaseTupleDesc(desc);
	return result;
}

/*
 * The body of a row (a composite datum) as django-outbox-pattern renders
 * it.  The settings that change how PostgreSQL renders a value are pinned
 * for the rendering, so that the body does not depend on the session that
 * wrote the row.
 */
Jsonb *
outbox_render_django(Datum row)
{
	static const char *const pinned[][2] = {
		{"TimeZone", "UTC"},
		{"DateStyle", "ISO"},
		{"IntervalStyle", "postgres"},
		{"extra_float_digits", "1"},
		{"bytea_output", "hex"},
	};
	JsonbParseState *state = NULL;
	Jsonb	   *body;
	int			level = NewGUCNestLevel();
	int			i;

	for (i = 0; i < lengthof(pinned); i++)
		(void) set_config_option(pinned[i][0], pinned[i][1], PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
								 false);
	body = JsonbValueToJsonb(push_django_record(&state,
												DatumGetHeapTupleHeader(row)));
	AtEOXact_GUC(true, level);
	return body;
}

/*
 * SQL: outbox.set_rendering(table, destination, rendering, version).  Sets
 * how the bodies of the publication (table, destination, version) are
 * rendered; only the table's owner may, as only it may publish the table.
 */
Datum
outbox_set_rendering(PG_FUNCTION_ARGS)
{
	Oid			argtypes[4] = {OIDOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Oid			relid;
	char	   *relname;
	char	   *rendering;

	outbox_require_current_schema();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table, destination and rendering must not be NULL")));
	relid = PG_GETARG_OID(0);
	rendering = text_to_cstring(PG_GETARG_TEXT_PP(2));
	(void) outbox_rendering_from_name(rendering);

	relname = get_rel_name(relid);
	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)),
					   relname);

	args[0] = ObjectIdGetDatum(relid);
	args[1] = PG_GETARG_DATUM(1);
	args[2] = CStringGetTextDatum(rendering);
	args[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[3] = PG_ARGISNULL(3) ? 'n' : ' ';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	outbox_write_publish_config("UPDATE outbox.publish_config"
								"   SET rendering = $3"
								" WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
								"   AND destination OPERATOR(pg_catalog.=) $2"
								"   AND (version OPERATOR(pg_catalog.=) $4"
								"        OR (version IS NULL AND $4 IS NULL))",
								4, argtypes, args, nulls, SPI_OK_UPDATE);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" is not published to destination \"%s\"%s",
						relname, text_to_cstring(PG_GETARG_TEXT_PP(1)),
						PG_ARGISNULL(3) ? " without a version" :
						psprintf(" with version \"%s\"",
								 text_to_cstring(PG_GETARG_TEXT_PP(3)))),
				 errhint("Call outbox.publish() first.")));
	SPI_finish();
	PG_RETURN_VOID();
}
