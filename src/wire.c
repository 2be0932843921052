/*-------------------------------------------------------------------------
 *
 * wire.c
 *		  A stored message as the broker is given it.
 *
 * The body goes out as the JSON text of its jsonb, the headers as STOMP
 * header pairs: a JSON string as is, a number or boolean as its JSON text.
 * Every text is converted to UTF-8, the only encoding of STOMP.  The STOMP
 * client escapes them as STOMP 1.2 requires and adds content-type,
 * content-length, persistent:true and the receipt.
 *
 * The dop-* headers are made here, at send time, from the row itself, and
 * win over stored headers of the same name, as django-outbox-pattern's
 * built-in headers do: a row written without them (by hand under
 * session_replication_role = replica, say) or with forged ones still goes
 * out with its own id, destination and type.  Only dop-correlation-id is
 * taken from the stored headers, where the writer's transaction put it.
 *
 * This is the domain's mapping of an outgoing message onto STOMP: message.c
 * measures a new message's frame with it, the publisher and send_event
 * render with it; it calls no other file of outbox, only PostgreSQL's
 * encoding conversion and the STOMP codec (to measure a frame).
 *
 * Errors: a row that cannot be rendered (headers that are not an object
 * of strings, numbers and booleans; text with no UTF-8 form) is not an
 * error here: the reason is returned, and the publisher fails that message
 * alone instead of failing every pass on it.  Running out of memory is an
 * ERROR.
 *
 * Memory: everything is allocated in the current memory context.
 *
 * src/wire.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "outbox.h"

/* the headers made at send time; they win over stored ones */
static const char *const builtin_names[] = {
	"dop-msg-id", "dop-msg-destination", "dop-msg-type",
	"dop-msg-sent-time", "dop-correlation-id"
};

static bool wire_utf8(const char *text, size_t len, char **utf8);
static bool is_builtin(const char *name);
static const char *json_type_name(JsonbValue *value);
static char *header_value_text(JsonbValue *value, const char *key);
static bool add_header(OutboxWireMessage *wire, const char *name,
					   const char *value, char **reason);
static bool add_stored_headers(OutboxWireMessage *wire, Jsonb *headers,
							   char **correlation_id, char **reason);

/*
 * Convert text of the database encoding to UTF-8 into *utf8 (NUL-terminated,
 * possibly text itself); false if it has no UTF-8 form.  In a SQL_ASCII
 * database the bytes are taken as they are if they are valid UTF-8.
 */
static bool
wire_utf8(const char *text, size_t len, char **utf8)
{
	int			encoding = GetDatabaseEncoding();
	Oid			proc;
	Size		buflen;
	unsigned char *buf;

	if (encoding == PG_UTF8)
	{
		*utf8 = (char *) text;
		return true;
	}
	if (encoding == PG_SQL_ASCII)
	{
		*utf8 = (char *) text;
		return pg_verify_mbstr(PG_UTF8, text, (int) len, true);
	}

	proc = FindDefaultConversionProc(encoding, PG_UTF8);
	if (!OidIsValid(proc))
		return false;
	buflen = ((Size) len + 1) * MAX_CONVERSION_GROWTH + 1;
	buf = MemoryContextAllocHuge(CurrentMemoryContext, buflen);
	if (pg_do_encoding_conversion_buf(proc, encoding, PG_UTF8,
									  (unsigned char *) text, (int) len,
									  buf, (int) buflen, true) != (int) len)
		return false;
	*utf8 = (char *) buf;
	return true;
}

/*
 * Whether a header is one of those made at send time.
 */
static bool
is_builtin(const char *name)
{
	int			i;

	for (i = 0; i < lengthof(builtin_names); i++)
	{
		if (strcmp(name, builtin_names[i]) == 0)
			return true;
	}
	return false;
}

/*
 * What a JSON value is, in words, for a reason.
 */
static const char *
json_type_name(JsonbValue *value)
{
	switch (value->type)
	{
		case jbvNull:
			return "null";
		case jbvBinary:
			return JsonContainerIsArray(value->val.binary.data) ?
				"an array" : "an object";
		case jbvArray:
			return "an array";
		case jbvObject:
			return "an object";
		default:
			return "of an unexpected JSON type";
	}
}

/*
 * Return a header value as the text that goes on the wire: a JSON string as
 * is, a number or boolean as its JSON text.  The caller has refused
 * anything else, so here it is a can't-happen.
 */
static char *
header_value_text(JsonbValue *value, const char *key)
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
 * Append one header, both texts converted to UTF-8; false with a reason if
 * either has no UTF-8 form.
 */
static bool
add_header(OutboxWireMessage *wire, const char *name, const char *value,
		   char **reason)
{
	char	   *name8;
	char	   *value8;

	if (!wire_utf8(name, strlen(name), &name8))
	{
		*reason = psprintf("the name of header \"%s\" cannot be converted to UTF-8",
						   name);
		return false;
	}
	if (!wire_utf8(value, strlen(value), &value8))
	{
		*reason = psprintf("the value of header \"%s\" cannot be converted to UTF-8",
						   name);
		return false;
	}
	/* a copy if not converted: the caller's text may not outlive the call */
	wire->headers[wire->nheaders].name = name8 == name ? pstrdup(name) : name8;
	wire->headers[wire->nheaders].value =
		value8 == value ? pstrdup(value) : value8;
	wire->nheaders++;
	return true;
}

/*
 * An upper bound of outbox_wire_frame_size(wire), without building the
 * frame: escaping at most doubles a header, and a header line adds a colon
 * and a line break.  The publisher measures exactly only what this bound
 * does not clear.
 */
uint64
outbox_wire_frame_size_bound(const OutboxWireMessage *wire)
{
	uint64		bound = wire->body_len + OUTBOX_FRAME_OVERHEAD_BYTES;
	size_t		i;

	for (i = 0; i < wire->nheaders; i++)
		bound += 2 * ((uint64) strlen(wire->headers[i].name) +
					  strlen(wire->headers[i].value)) + 2;
	return bound;
}

/*
 * The size in bytes of the SEND frame that will carry wire: its headers
 * escaped as STOMP 1.2 requires, its body, and what the STOMP client adds
 * (OUTBOX_FRAME_OVERHEAD_BYTES at most).
 */
uint64
outbox_wire_frame_size(const OutboxWireMessage *wire)
{
	StompFrame *frame;
	uint64		size;
	size_t		i;

	frame = stomp_frame_new("SEND");
	if (frame == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	for (i = 0; i < wire->nheaders; i++)
	{
		if (!stomp_frame_add_header(frame, wire->headers[i].name,
									wire->headers[i].value))
		{
			stomp_frame_free(frame);
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		}
	}
	size = (uint64) stomp_encoded_length(frame) + wire->body_len +
		OUTBOX_FRAME_OVERHEAD_BYTES;
	stomp_frame_free(frame);
	return size;
}

/*
 * Append to wire the stored headers, but the dop-* ones made at send time;
 * *correlation_id is set to the stored dop-correlation-id, if a non-empty
 * string.  False with a reason if one cannot be sent.
 */
static bool
add_stored_headers(OutboxWireMessage *wire, Jsonb *headers,
				   char **correlation_id, char **reason)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	char	   *key = NULL;

	it = JsonbIteratorInit(&headers->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (token == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (token == WJB_VALUE)
		{
			if (is_builtin(key))
			{
				if (strcmp(key, "dop-correlation-id") == 0 &&
					v.type == jbvString && v.val.string.len > 0)
					*correlation_id = pnstrdup(v.val.string.val,
											   v.val.string.len);
				continue;
			}
			if (v.type != jbvString && v.type != jbvNumeric &&
				v.type != jbvBool)
			{
				*reason = psprintf("header \"%s\" is %s, not a string, a number or a boolean",
								   key, json_type_name(&v));
				return false;
			}
			if (!add_header(wire, key, header_value_text(&v, key),
							reason))
				return false;
		}
	}
	return true;
}

/*
 * Render a stored message (its id, destination, body and headers) for
 * stomp_conn_send().  Returns false, with *reason saying why in a sentence
 * fit for last_error, if it cannot be sent as it is.
 */
bool
outbox_wire_message(const pg_uuid_t *id, const char *destination,
					Jsonb *body, Jsonb *headers, OutboxWireMessage *wire,
					char **reason)
{
	char	   *id_text;
	char	   *correlation_id = NULL;
	char		sent_time[MAXDATELEN + 1];
	char	   *text;

	memset(wire, 0, sizeof(*wire));
	*reason = NULL;

	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
	{
		*reason = pstrdup("its headers are not a JSON object");
		return false;
	}

	wire->headers = palloc(sizeof(StompHeaderPair) *
						   (JB_ROOT_COUNT(headers) + lengthof(builtin_names)));
	if (!add_stored_headers(wire, headers, &correlation_id, reason))
		return false;

	id_text = DatumGetCString(DirectFunctionCall1(uuid_out,
												  UUIDPGetDatum(id)));
	JsonEncodeDateTime(sent_time, TimestampTzGetDatum(GetCurrentTimestamp()),
					   TIMESTAMPTZOID, NULL);
	if (!add_header(wire, "dop-msg-id", id_text, reason) ||
		!add_header(wire, "dop-msg-destination", destination, reason) ||
		!add_header(wire, "dop-msg-type", OUTBOX_MESSAGE_TYPE, reason) ||
		!add_header(wire, "dop-msg-sent-time", sent_time, reason) ||
		!add_header(wire, "dop-correlation-id",
					correlation_id != NULL ? correlation_id : id_text, reason))
		return false;

	if (!wire_utf8(destination, strlen(destination), &wire->destination))
	{
		*reason = pstrdup("its destination cannot be converted to UTF-8");
		return false;
	}

	text = JsonbToCString(NULL, &body->root, VARSIZE(body));
	if (!wire_utf8(text, strlen(text), &wire->body))
	{
		*reason = pstrdup("its body cannot be converted to UTF-8");
		return false;
	}
	wire->body_len = strlen(wire->body);
	return true;
}
