/*-------------------------------------------------------------------------
 *
 * message.c
 *		  What every message gets before it enters outbox.published.
 *
 * A message captured from a published table and one inserted by hand get
 * exactly the same treatment, here: the destination and version are
 * validated where they enter (never at send time), the version suffix is
 * applied ('/t' and 'v2' give '/t.v2'), the user's headers are checked, and
 * the generated headers are merged over them:
 *
 *		user headers < outbox.generate_headers() < dop-* headers
 *
 * so that the built-in headers, on which idempotent consumers rely, always
 * win, as in the seed library.
 *
 * src/message.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/regproc.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "outbox.h"

/* what the seed library puts in dop-msg-type: the name of its model */
#define OUTBOX_MESSAGE_TYPE "Published"

/* The function named by outbox.generate_headers, resolved once per name */
static char *generate_headers_name = NULL;
static Oid	generate_headers_oid = InvalidOid;
static FmgrInfo generate_headers_finfo;
static bool generate_headers_callback_registered = false;

static void check_name_text(const char *what, const char *value);
static void check_headers(Jsonb *headers, const char *origin);
static void push_string_member(JsonbParseState **state, const char *key,
							   const char *value);
static Jsonb *builtin_headers(OutboxMessage *message);
static Jsonb *call_generate_headers(Relation rel, OutboxMessage *message);
static Oid	lookup_generate_headers(Oid rowtype);
static Jsonb *jsonb_merge(Jsonb *a, Jsonb *b);
static void generate_headers_invalidate(Datum arg, int cacheid,
										uint32 hashvalue);

/*
 * Refuse a destination or version name that cannot be sent safely: empty,
 * holding control characters (CR and LF above all), or too long.  The
 * destination's limit applies to it with the version suffix.
 */
static void
check_name_text(const char *what, const char *value)
{
	const char *p;

	if (value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox %s must not be empty", what)));

	for (p = value; *p; p++)
	{
		if ((unsigned char) *p < 0x20 || *p == 0x7F)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("outbox %s must not contain line breaks or other control characters",
							what),
					 errdetail("Byte %d of the %s is 0x%02X.",
							   (int) (p - value) + 1, what, (unsigned char) *p)));
	}
}

/*
 * Validate a destination and its optional version as outbox.publish() and
 * outbox.published take them; error out with a clear message if either
 * cannot be sent.
 */
void
outbox_check_destination(const char *destination, const char *version)
{
	size_t		length;

	check_name_text("destination", destination);
	length = strlen(destination);

	if (version != NULL)
	{
		check_name_text("version", version);
		if (strlen(version) > OUTBOX_MAX_VERSION_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("outbox version is too long"),
					 errdetail("The version is %zu bytes long; the limit is %d.",
							   strlen(version), OUTBOX_MAX_VERSION_LEN)));
		length += 1 + strlen(version);
	}

	if (length > OUTBOX_MAX_DESTINATION_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("outbox destination is too long"),
				 errdetail("The destination%s is %zu bytes long; the limit is %d.",
						   version != NULL ? " with its version suffix" : "",
						   length, OUTBOX_MAX_DESTINATION_LEN)));
}

/*
 * Return a header value as the text that goes on the wire: a JSON string as
 * is, a number or boolean as its JSON text.  Anything else was refused by
 * check_headers(), so here it is a can't-happen.
 */
char *
outbox_header_value_text(JsonbValue *value, const char *key)
{
	switch (value->type)
	{
		case jbvString:
			return pnstrdup(value->val.string.val, value->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(value->val.numeric)));
		case jbvBool:
			return pstrdup(value->val.boolean ? "true" : "false");
		default:
			elog(ERROR, "header \"%s\" has a value of unexpected JSON type %d",
				 key, (int) value->type);
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * Refuse headers that cannot be sent: not an object, a value that is null,
 * an array or an object, a name that is empty, holds control characters, or
 * is one the STOMP layer sets itself.  origin says where they came from.
 */
static void
check_headers(Jsonb *headers, const char *origin)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	char	   *key = NULL;

	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox message headers must be a JSON object"),
				 errdetail("The headers %s are not an object.", origin)));

	it = JsonbIteratorInit(&headers->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (token == WJB_KEY)
		{
			int			i;

			key = pnstrdup(v.val.string.val, v.val.string.len);
			if (key[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("outbox message header names must not be empty"),
						 errdetail("The headers %s have an empty name.", origin)));
			for (i = 0; key[i] != '\0'; i++)
			{
				if ((unsigned char) key[i] < 0x20 || key[i] == 0x7F)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("outbox message header names must not contain line breaks or other control characters"),
							 errdetail("The headers %s have such a name.", origin)));
			}
			/* the broker would take ours: it reads the first of repeats */
			if (stomp_send_header_reserved(key))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("outbox message header \"%s\" is reserved", key),
						 errdetail("outbox sets destination, content-length, content-type, receipt and persistent itself, and sends no transaction.")));
		}
		else if (token == WJB_VALUE)
		{
			if (v.type != jbvString && v.type != jbvNumeric &&
				v.type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("outbox message header \"%s\" must be a string, number or boolean",
								key),
						 errdetail("The headers %s give it a JSON %s.", origin,
								   v.type == jbvNull ? "null" : "array or object")));
		}
	}
}

/*
 * Add a string member to an object being built.
 */
static void
push_string_member(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue	k;
	JsonbValue	v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	pushJsonbValue(state, WJB_KEY, &k);
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * The dop-* headers of a message whose destination is final.
 */
static Jsonb *
builtin_headers(OutboxMessage *message)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;
	char		sent_time[MAXDATELEN + 1];
	const char *correlation_id;

	JsonEncodeDateTime(sent_time, TimestampTzGetDatum(GetCurrentTimestamp()),
					   TIMESTAMPTZOID, NULL);

	if (outbox_correlation_id != NULL && outbox_correlation_id[0] != '\0')
		correlation_id = outbox_correlation_id;
	else
	{
		pg_uuid_t	fresh;

		outbox_uuid_v4(&fresh);
		correlation_id = DatumGetCString(DirectFunctionCall1(uuid_out,
															 UUIDPGetDatum(&fresh)));
	}

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_string_member(&state, "dop-msg-id",
					   DatumGetCString(DirectFunctionCall1(uuid_out,
														   UUIDPGetDatum(&message->id))));
	push_string_member(&state, "dop-msg-destination", message->destination);
	push_string_member(&state, "dop-msg-type", OUTBOX_MESSAGE_TYPE);
	push_string_member(&state, "dop-msg-sent-time", sent_time);
	push_string_member(&state, "dop-correlation-id", correlation_id);
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);

	return JsonbValueToJsonb(result);
}

/*
 * Forget the resolved outbox.generate_headers function when pg_proc changes.
 */
static void
generate_headers_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	generate_headers_oid = InvalidOid;
}

/*
 * Resolve outbox.generate_headers to a function taking the outbox.published
 * row type and returning jsonb, or error out saying what is wrong with it.
 */
static Oid
lookup_generate_headers(Oid rowtype)
{
	List	   *names;
	Oid			funcoid;

	if (generate_headers_name != NULL &&
		strcmp(generate_headers_name, outbox_generate_headers) == 0 &&
		OidIsValid(generate_headers_oid))
		return generate_headers_oid;

	if (!generate_headers_callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, generate_headers_invalidate,
									  (Datum) 0);
		generate_headers_callback_registered = true;
	}

	names = stringToQualifiedNameList(outbox_generate_headers);
	funcoid = LookupFuncName(names, 1, &rowtype, true);
	if (!OidIsValid(funcoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s(outbox.published) named by outbox.generate_headers does not exist",
						outbox_generate_headers),
				 errhint("Create it, or change outbox.generate_headers.")));
	if (get_func_rettype(funcoid) != JSONBOID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("function %s named by outbox.generate_headers must return jsonb",
						format_procedure(funcoid))));

	if (generate_headers_name != NULL)
		pfree(generate_headers_name);
	generate_headers_name = MemoryContextStrdup(TopMemoryContext,
												outbox_generate_headers);
	fmgr_info_cxt(funcoid, &generate_headers_finfo, TopMemoryContext);
	generate_headers_oid = funcoid;
	return funcoid;
}

/*
 * Call the outbox.generate_headers function with the message as an
 * outbox.published row; return its headers, checked, or NULL if it gave none.
 */
static Jsonb *
call_generate_headers(Relation rel, OutboxMessage *message)
{
	HeapTuple	row;
	Datum		result;
	LOCAL_FCINFO(fcinfo, 1);

	lookup_generate_headers(RelationGetDescr(rel)->tdtypeid);

	row = outbox_form_published_tuple(rel, message);
	InitFunctionCallInfoData(*fcinfo, &generate_headers_finfo, 1,
							 InvalidOid, NULL, NULL);
	fcinfo->args[0].value = heap_copy_tuple_as_datum(row, RelationGetDescr(rel));
	fcinfo->args[0].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	if (fcinfo->isnull)
		return NULL;

	check_headers(DatumGetJsonbP(result),
				  "returned by the outbox.generate_headers function");
	return DatumGetJsonbP(result);
}

/*
 * Return the object a with the members of b added, b winning.
 */
static Jsonb *
jsonb_merge(Jsonb *a, Jsonb *b)
{
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
											  JsonbPGetDatum(a),
											  JsonbPGetDatum(b)));
}

/*
 * Give a message its final form: validated destination with the version
 * suffix, expiry, and the merged headers.  rel is outbox.published.
 */
void
outbox_complete_message(OutboxMessage *message, Relation rel)
{
	Jsonb	   *builtin;
	Jsonb	   *headers;

	outbox_check_destination(message->destination, message->version);
	if (message->version != NULL)
		message->destination = psprintf("%s.%s", message->destination,
										 message->version);

	if (message->expires_at_isnull)
	{
		message->expires_at = message->added + OUTBOX_DEFAULT_EXPIRY_USECS;
		message->expires_at_isnull = false;
	}

	if (message->headers != NULL)
		check_headers(message->headers, "given to the message");

	builtin = builtin_headers(message);
	headers = builtin;
	if (message->headers != NULL)
		headers = jsonb_merge(message->headers, builtin);

	if (outbox_generate_headers != NULL && outbox_generate_headers[0] != '\0')
	{
		Jsonb	   *extra;

		/* the function sees the message with the headers so far */
		message->headers = headers;
		extra = call_generate_headers(rel, message);
		/* ... and cannot replace the built-in ones */
		if (extra != NULL)
			headers = jsonb_merge(jsonb_merge(headers, extra), builtin);
	}

	message->headers = headers;
}
