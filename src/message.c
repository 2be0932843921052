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
 * win, as in django-outbox-pattern.  Only what cannot be made again is
 * stored: the user's headers, the outbox.generate_headers function's, and
 * dop-correlation-id (the transaction's outbox.correlation_id, else a fresh
 * UUID, which every resend must carry).  dop-msg-id, dop-msg-destination,
 * dop-msg-type and dop-msg-sent-time are the row's id and destination, a
 * constant and the time of the send: wire.c makes them when the SEND frame
 * is built (and outbox.message_headers() shows them), so that writing a
 * message neither builds nor stores them.  The outbox.generate_headers
 * function still sees all five in the row it is given, as in 1.0.  A row of
 * outbox.published changed by
 * UPDATE in any of its message columns gets the same treatment (but its
 * destination already carries the version suffix), so that what cannot be
 * sent is refused on UPDATE as on INSERT; the publisher fails alone any row
 * that bypassed the triggers (session_replication_role = replica).
 *
 * What every message must be:
 *
 * - its id a version 7 UUID dated no later than a day ahead: retention
 *   walks the primary key up to the id of its cutoff's time, and would
 *   not reach a random id for centuries;
 * - its destination, version and headers sendable (see check_name_text()
 *   and check_headers()), none of them cap-msg-id, which consumers take as
 *   the message's id before dop-msg-id (a writer could otherwise make a
 *   message of its own take effect in place of another's);
 * - its frame, body and headers as the wire carries them (those made at
 *   send time included), no larger than outbox.max_message_size, so that
 *   the broker (RabbitMQ's max_message_size) and the publisher's output
 *   buffer can take it.
 *
 * The functions a user names run as the writer and keep nothing they
 * change: a serializer (capture.c) and the outbox.generate_headers function
 * are called inside a GUC nest level that is rolled back after them, as
 * PostgreSQL does for the functions an index build calls, so that neither
 * can leave a search_path under which outbox's own lookups would find
 * another schema's objects.  outbox.generate_headers must name its schema.
 *
 * This is the domain of a message, below its writers: the outbox row
 * writer (outbox_writer.c), publish() (publication.c), send_event and
 * the privilege checks call it; it calls only the row format (outbox_row.c, to give
 * outbox.generate_headers the message as a row) and the wire mapping
 * (wire.c, to measure the frame), never a writer.
 *
 * Errors: a message that cannot be sent is refused with an ERROR naming
 * what is wrong and what to do instead, where it enters (never at send
 * time); so is an outbox.generate_headers that names no schema or no
 * suitable function.  elog only for can't-happen.
 *
 * Memory: a message and its headers are allocated in the caller's current
 * memory context.  The resolved outbox.generate_headers function lives in
 * a small context of its own under TopMemoryContext, replaced (the old one
 * moved under TopTransactionContext, since it may still be running) when
 * the setting or pg_proc changes.
 *
 * src/message.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/regproc.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"


#include "outbox.h"

/* How far ahead of the clock a message id may be dated */
#define MAX_ID_AHEAD_MS		((int64) 24 * 60 * 60 * 1000)

/*
 * The most a jsonb grows when rendered as text (and a header value when
 * escaped for STOMP), per stored byte: a numeric stored in 14 bytes prints
 * as up to 147455 digits.  A message whose stored size times this fits the
 * limit is not rendered to be measured.
 */
#define JSONB_MAX_TEXT_GROWTH	16384

/*
 * The function named by outbox.generate_headers, resolved once per name.
 * It is published only when complete (see lookup_generate_headers()), and
 * the invalidation callback only moves a counter, whatever the state.
 */
typedef struct GenerateHeaders
{
	char	   *name;			/* the setting it was resolved from */
	uint64		generation;		/* generate_headers_invalidations then */
	MemoryContext context;		/* holds this struct and finfo's extra */
	FmgrInfo	finfo;
} GenerateHeaders;

static GenerateHeaders *generate_headers = NULL;
static uint64 generate_headers_invalidations = 0;
static bool generate_headers_callback_registered = false;

static void check_name_text(const char *what, const char *value);
static void check_version(const char *version);
static void check_id(const pg_uuid_t *id);
static void check_size(OutboxMessage *message, bool kept);
static void check_headers(Jsonb *headers, const char *origin);
static void set_string_pair(JsonbPair *pair, const char *key,
							const char *value);
static const char *correlation_id(char *fresh_id);
static Jsonb *builtin_headers(OutboxMessage *message,
							  const char *correlation);
static void push_headers(JsonbParseState **state, Jsonb *headers);
static Jsonb *stored_headers(Jsonb *user, Jsonb *extra,
							 const char *correlation);
static Jsonb *call_generate_headers(Relation rel, OutboxMessage *message);
static GenerateHeaders *lookup_generate_headers(Oid rowtype);
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
 * Refuse a version that cannot be sent as a destination's suffix.
 */
static void
check_version(const char *version)
{
	check_name_text("version", version);
	if (strlen(version) > OUTBOX_MAX_VERSION_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("outbox version is too long"),
				 errdetail("The version is %zu bytes long; the limit is %d.",
						   strlen(version), OUTBOX_MAX_VERSION_LEN)));
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
		check_version(version);
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
 * Refuse headers that cannot be sent: not an object, a value that is null,
 * an array or an object, a name that is empty, holds control characters, or
 * is one the STOMP layer sets itself, or headers outbox_header_sendable()
 * refuses (a value the broker would refuse; too many, too large).  origin
 * says where they came from.
 */
static void
check_headers(Jsonb *headers, const char *origin)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	char	   *key = NULL;
	OutboxHeaderTally tally = {0};

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
			/* the consumers' first choice of id: nobody's to choose */
			if (strcmp(key, "cap-msg-id") == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("outbox message header \"%s\" is reserved", key),
						 errdetail("Consumers, outbox's and django-outbox-pattern's, take cap-msg-id before dop-msg-id as the id of a message they run once: a message carrying another's id would take effect in its place."),
						 errhint("Every message is sent with its own id as dop-msg-id; give an id of yours another name.")));
		}
		else if (token == WJB_VALUE)
		{
			char	   *text;
			char	   *reason;

			if (v.type != jbvString && v.type != jbvNumeric &&
				v.type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("outbox message header \"%s\" must be a string, number or boolean",
								key),
						 errdetail("The headers %s give it a JSON %s.", origin,
								   v.type == jbvNull ? "null" : "array or object")));
			/* dop-* headers but dop-correlation-id are made at send time */
			if (outbox_wire_header_is_builtin(key, strlen(key)) &&
				strcmp(key, "dop-correlation-id") != 0)
				continue;
			text = outbox_wire_header_value_text(&v, key);
			if (!outbox_header_sendable(&tally, key, text, strlen(text),
										&reason))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("outbox message headers %s cannot be sent", origin),
						 errdetail("%c%s.", pg_toupper((unsigned char) reason[0]),
								   reason + 1)));
		}
	}
}

/*
 * Make pair a member of an object with a string value.
 */
static void
set_string_pair(JsonbPair *pair, const char *key, const char *value)
{
	pair->key.type = jbvString;
	pair->key.val.string.val = (char *) key;
	pair->key.val.string.len = strlen(key);
	pair->value.type = jbvString;
	pair->value.val.string.val = (char *) value;
	pair->value.val.string.len = strlen(value);
	pair->order = 0;
}

/*
 * The dop-correlation-id of a new message: the transaction's
 * outbox.correlation_id, else a fresh UUID written into fresh_id
 * (OUTBOX_UUID_TEXT_LEN + 1 bytes).
 */
static const char *
correlation_id(char *fresh_id)
{
	pg_uuid_t	fresh;

	if (outbox_correlation_id != NULL && outbox_correlation_id[0] != '\0')
		return outbox_correlation_id;
	outbox_uuid_v4(&fresh);
	outbox_uuid_text(&fresh, fresh_id);
	return fresh_id;
}

/*
 * The five dop-* headers of a message whose destination is final, as the
 * outbox.generate_headers function is shown them (the wire makes all but
 * dop-correlation-id again when the message is sent).
 *
 * The object is given to JsonbValueToJsonb() with its members already in
 * the order jsonb keeps them (shorter keys first, then bytewise), which
 * spares the parse state and its sort; the keys are distinct.
 */
static Jsonb *
builtin_headers(OutboxMessage *message, const char *correlation)
{
	JsonbValue	object;
	JsonbPair	pairs[5];
	char		sent_time[MAXDATELEN + 1];
	char		id[OUTBOX_UUID_TEXT_LEN + 1];

	JsonEncodeDateTime(sent_time, TimestampTzGetDatum(GetCurrentTimestamp()),
					   TIMESTAMPTZOID, NULL);
	outbox_uuid_text(&message->id, id);

	/* keys of 10, 12, 17, 18 and 19 bytes */
	set_string_pair(&pairs[0], "dop-msg-id", id);
	set_string_pair(&pairs[1], "dop-msg-type", OUTBOX_MESSAGE_TYPE);
	set_string_pair(&pairs[2], "dop-msg-sent-time", sent_time);
	set_string_pair(&pairs[3], "dop-correlation-id", correlation);
	set_string_pair(&pairs[4], "dop-msg-destination", message->destination);

	object.type = jbvObject;
	object.val.object.nPairs = lengthof(pairs);
	object.val.object.pairs = pairs;
	return JsonbValueToJsonb(&object);
}

/*
 * Push the members of checked headers into the object being built, but
 * the dop-* ones: those are the message's own, never a writer's.
 */
static void
push_headers(JsonbParseState **state, Jsonb *headers)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	bool		builtin = false;

	it = JsonbIteratorInit(&headers->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (token == WJB_KEY)
		{
			builtin = outbox_wire_header_is_builtin(v.val.string.val,
													v.val.string.len);
			if (!builtin)
				pushJsonbValue(state, WJB_KEY, &v);
		}
		else if (token == WJB_VALUE && !builtin)
			pushJsonbValue(state, WJB_VALUE, &v);
	}
}

/*
 * The headers stored with a message: the user's (checked, or NULL), those
 * of the outbox.generate_headers function (checked, or NULL) winning over
 * them, and its dop-correlation-id; no other dop-* header, since wire.c
 * makes them from the row.  A message with no headers of its own (every
 * captured row) gets its one member without a parse state.
 */
static Jsonb *
stored_headers(Jsonb *user, Jsonb *extra, const char *correlation)
{
	JsonbParseState *state = NULL;
	JsonbValue	object;
	JsonbPair	pair;

	set_string_pair(&pair, "dop-correlation-id", correlation);
	if (user == NULL && extra == NULL)
	{
		object.type = jbvObject;
		object.val.object.nPairs = 1;
		object.val.object.pairs = &pair;
		return JsonbValueToJsonb(&object);
	}

	/* of repeated keys, jsonb keeps the last pushed */
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	if (user != NULL)
		push_headers(&state, user);
	if (extra != NULL)
		push_headers(&state, extra);
	pushJsonbValue(&state, WJB_KEY, &pair.key);
	pushJsonbValue(&state, WJB_VALUE, &pair.value);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/*
 * Forget the resolved outbox.generate_headers function when pg_proc
 * changes.  Only a counter moves, so that this is safe whatever state the
 * lookup is in when the invalidation arrives.
 */
static void
generate_headers_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	generate_headers_invalidations++;
}

/*
 * Resolve outbox.generate_headers to a function taking the outbox.published
 * row type and returning jsonb, or error out saying what is wrong with it.
 *
 * The name must be schema-qualified: resolved in the writer's search_path,
 * it would be whichever function the writer (or a serializer that changed
 * the search_path) put first.  The result is built in the current memory
 * context and kept only once complete, so that an error half-way leaves the
 * previous one untouched; that previous one may still be running up the
 * stack, so it lives until the end of the transaction.
 */
static GenerateHeaders *
lookup_generate_headers(Oid rowtype)
{
	GenerateHeaders *resolved;
	MemoryContext context;
	List	   *names;
	char	   *schemaname;
	char	   *funcname;
	Oid			funcoid;
	uint64		generation;

	if (generate_headers != NULL &&
		generate_headers->generation == generate_headers_invalidations &&
		strcmp(generate_headers->name, outbox_generate_headers) == 0)
		return generate_headers;

	if (!generate_headers_callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, generate_headers_invalidate,
									  (Datum) 0);
		generate_headers_callback_registered = true;
	}
	/* an invalidation from here on makes the result good for this call only */
	generation = generate_headers_invalidations;

	names = stringToQualifiedNameList(outbox_generate_headers);
	DeconstructQualifiedName(names, &schemaname, &funcname);
	if (schemaname == NULL || strncmp(schemaname, "pg_temp", 7) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox.generate_headers must name the schema of its function"),
				 errdetail("\"%s\" would be looked up in each writer's own schemas.",
						   outbox_generate_headers),
				 errhint("Set outbox.generate_headers to a schema-qualified name such as 'public.%s'.",
						 funcname)));

	funcoid = LookupFuncName(names, 1, &rowtype, true);
	if (!OidIsValid(funcoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s(outbox.published) named by outbox.generate_headers does not exist",
						outbox_generate_headers),
				 errhint("Create it, or change outbox.generate_headers.")));
	if (get_func_prokind(funcoid) != PROKIND_FUNCTION ||
		get_func_retset(funcoid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s named by outbox.generate_headers is not a plain function",
						format_procedure(funcoid)),
				 errdetail("It must return one jsonb per message: not a set, nor be an aggregate, a window function or a procedure."),
				 errhint("Change outbox.generate_headers to a function returning jsonb.")));
	if (get_func_rettype(funcoid) != JSONBOID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("function %s named by outbox.generate_headers must return jsonb",
						format_procedure(funcoid))));

	context = AllocSetContextCreate(CurrentMemoryContext,
									"outbox generate_headers",
									ALLOCSET_SMALL_SIZES);
	resolved = MemoryContextAllocZero(context, sizeof(GenerateHeaders));
	resolved->context = context;
	resolved->name = MemoryContextStrdup(context, outbox_generate_headers);
	resolved->generation = generation;
	fmgr_info_cxt(funcoid, &resolved->finfo, context);

	if (generate_headers != NULL)
		MemoryContextSetParent(generate_headers->context, TopTransactionContext);
	MemoryContextSetParent(context, TopMemoryContext);
	generate_headers = resolved;
	return resolved;
}

/*
 * Call a function a user named (a serializer, outbox.generate_headers) as
 * the writer, and roll back whatever settings it changed, SET LOCAL or
 * not: nothing it sets (a search_path above all) outlives it.  An error
 * unwinds the settings with the (sub)transaction.
 */
Datum
outbox_call_user_function(FunctionCallInfo fcinfo)
{
	int			save_nestlevel = NewGUCNestLevel();
	Datum		result;

	result = FunctionCallInvoke(fcinfo);
	AtEOXact_GUC(false, save_nestlevel);
	return result;
}

/*
 * Call the outbox.generate_headers function with the message as an
 * outbox.published row; return its headers, checked, or NULL if it gave none.
 */
static Jsonb *
call_generate_headers(Relation rel, OutboxMessage *message)
{
	GenerateHeaders *function;
	HeapTuple	row;
	Datum		result;
	LOCAL_FCINFO(fcinfo, 1);

	function = lookup_generate_headers(RelationGetDescr(rel)->tdtypeid);

	row = outbox_form_published_tuple(rel, message);
	InitFunctionCallInfoData(*fcinfo, &function->finfo, 1,
							 InvalidOid, NULL, NULL);
	fcinfo->args[0].value = heap_copy_tuple_as_datum(row, RelationGetDescr(rel));
	fcinfo->args[0].isnull = false;
	result = outbox_call_user_function(fcinfo);
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
 * Refuse an id that the publisher's scans would not reach in order: not a
 * version 7 UUID of RFC 9562's variant, or dated more than a day ahead of
 * the clock (retention would keep it until then).
 */
static void
check_id(const pg_uuid_t *id)
{
	int64		id_ms;
	int64		now_ms;

	if (!outbox_uuid_v7_unix_ms(id, &id_ms))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox message id %s is not a version 7 UUID",
						DatumGetCString(DirectFunctionCall1(uuid_out,
															UUIDPGetDatum(id)))),
				 errdetail("The publisher and its retention find messages in the order of their time-ordered ids."),
				 errhint("Omit the id: outbox.uuid_generate_v7() gives one.")));

	now_ms = GetCurrentTimestamp() / 1000 +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
	if (id_ms > now_ms + MAX_ID_AHEAD_MS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox message id %s is dated in the future",
						DatumGetCString(DirectFunctionCall1(uuid_out,
															UUIDPGetDatum(id)))),
				 errdetail("Its time is more than a day ahead of the clock."),
				 errhint("Omit the id: outbox.uuid_generate_v7() gives one.")));
}

/*
 * Refuse a completed message whose STOMP frame would be larger than
 * outbox.max_message_size: the body as JSON text, the headers escaped as
 * STOMP 1.2 requires (the stored ones and those wire.c makes at send time,
 * dop-msg-sent-time counted at its longest), and what the STOMP client
 * adds.  A message small enough when stored is
 * not rendered to be measured (JSONB_MAX_TEXT_GROWTH, and the bound of the
 * headers made at send time).  A kept message (outbox_check_kept_message())
 * is refused only if it could not have been accepted when it was written,
 * whatever its send time was then, so that a restore never fails on a
 * message outbox accepted under the same limit.
 */
static void
check_size(OutboxMessage *message, bool kept)
{
	uint64		stored = VARSIZE(message->body) + VARSIZE(message->headers);
	OutboxWireMessage wire;
	uint64		size;
	char	   *reason;

	/* the headers made at send time are not stored: count them too */
	if (stored * JSONB_MAX_TEXT_GROWTH + OUTBOX_FRAME_OVERHEAD_BYTES +
		outbox_wire_builtin_headers_bound() <= (uint64) outbox_max_message_size)
		return;

	/* measure the frame as the publisher will send it */
	if (!outbox_wire_message(&message->id, message->destination,
							 message->body, message->headers, &wire, &reason))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox message to \"%s\" cannot be sent",
						message->destination),
				 errdetail("%s.", reason)));
	/*
	 * ... with the longest dop-msg-sent-time it may be sent with; a kept
	 * message without one, since it was measured with the one it had then
	 */
	size = outbox_wire_frame_size(&wire) + outbox_wire_sent_time_slack(&wire);
	if (kept)
		size -= OUTBOX_SENT_TIME_MAX_ESCAPED;

	if (size > (uint64) outbox_max_message_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("outbox message to \"%s\" is too large to send",
						message->destination),
				 errdetail("Its STOMP frame would be " UINT64_FORMAT " bytes (a body of %zu bytes); the limit, outbox.max_message_size, is %d bytes.",
						   size, wire.body_len, outbox_max_message_size),
				 errhint("Send a reference to the data rather than the data, or raise outbox.max_message_size, keeping it below the broker's own limit (RabbitMQ's max_message_size).")));
}

/*
 * Whether outbox_finish_message() runs user code now: the
 * outbox.generate_headers function, if one is set.  Without it, finishing
 * a message calls nothing that could close or change the relation it is
 * given, nor accept invalidations.
 */
bool
outbox_finishing_runs_user_code(void)
{
	return outbox_generate_headers != NULL && outbox_generate_headers[0] != '\0';
}

/*
 * What every message gets, whichever way it came, once its destination is
 * final (outbox_final_destination(), outbox_check_stored_destination()): a
 * checked id, its expiry counted from now, the time it is written (not
 * from the start of its transaction, which may be long), the checked
 * headers to store (stored_headers()), and the size check.  The
 * outbox.generate_headers function runs here, shown the message with the
 * user's headers and the five dop-* ones: a caller that refuses
 * destinations (a writer's patterns) does so before.  rel is
 * outbox.published.
 */
void
outbox_finish_message(OutboxMessage *message, Relation rel)
{
	char		fresh_id[OUTBOX_UUID_TEXT_LEN + 1];
	const char *correlation;
	Jsonb	   *user = message->headers;
	Jsonb	   *extra = NULL;

	check_id(&message->id);

	if (message->expires_at_isnull)
	{
		message->expires_at = GetCurrentTimestamp() + OUTBOX_DEFAULT_EXPIRY_USECS;
		message->expires_at_isnull = false;
	}

	if (user != NULL)
		check_headers(user, "given to the message");
	correlation = correlation_id(fresh_id);

	if (outbox_finishing_runs_user_code())
	{
		Jsonb	   *builtin = builtin_headers(message, correlation);

		/* the function sees the message with the headers so far */
		message->headers = user != NULL ? jsonb_merge(user, builtin) : builtin;
		extra = call_generate_headers(rel, message);
	}

	/* ... and cannot replace the built-in ones */
	message->headers = stored_headers(user, extra, correlation);
	check_size(message, false);
}

/*
 * Give a new message its final destination: validated, with the version
 * suffix applied ('/t' and 'v2' give '/t.v2').
 */
void
outbox_final_destination(OutboxMessage *message)
{
	outbox_check_destination(message->destination, message->version);
	if (message->version != NULL)
		message->destination = psprintf("%s.%s", message->destination,
										 message->version);
}

/*
 * Check the destination of a row of outbox.published changed by UPDATE:
 * it carries the version suffix already, so both are checked and nothing
 * is appended.
 */
void
outbox_check_stored_destination(OutboxMessage *message)
{
	if (message->version != NULL)
		check_version(message->version);
	outbox_check_destination(message->destination, NULL);
}

/*
 * Check a completed message that is kept as it is written back (a row
 * pg_restore restores): nothing is made again for it, but its headers
 * must pass check_headers() and its frame the size limit, as for any
 * other message.  A row outbox completed under the same settings passes
 * both; the writer warns of one that does not (outbox_writer.c).
 */
void
outbox_check_kept_message(OutboxMessage *message)
{
	check_headers(message->headers, "of the message written back");
	check_size(message, true);
}
