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
 * built-in headers do: a row written without them (every row since 1.1,
 * which stores only what cannot be derived; by hand under
 * session_replication_role = replica, say) or with forged or stale ones
 * (a row stored by 1.0 holds all five) goes out with its own id,
 * destination and type, and the time of the send.  Only dop-correlation-id
 * is taken from the stored headers, where the writer's transaction put it
 * (the message id when there is none), so that every resend carries the
 * same one.  outbox_wire_headers() shows the same headers as jsonb.
 *
 * This is the domain's mapping of an outgoing message onto STOMP: message.c
 * measures a new message's frame with it and leaves the dop-* headers but
 * dop-correlation-id to it, the publisher and send_event render with it,
 * outbox.message_headers() (message_headers.c) shows its headers; it calls
 * no other file of outbox, only PostgreSQL's encoding conversion and the
 * STOMP codec (to measure a frame).
 *
 * The headers of its own a message may carry (outbox_header_sendable())
 * are decided here too: the values of those RabbitMQ reads as message
 * properties and refuses with an ERROR that ends the publisher's session
 * (a message-id; a user-id other than its login; an expiration, priority
 * or timestamp that is not a whole number, or an expiration past ten
 * years; a reply-to holding a "/" that is no destination it parses), a
 * reply-to under /temp-queue/ (RabbitMQ would make a queue of the
 * publisher's own connection), the headers it reads as arguments of the
 * queue a SEND to /queue/ declares, and how many and how large, within
 * what outbox's consumers decode (the STOMP codec's StompLimits) with room
 * for the headers outbox and the broker add.  message.c refuses such
 * headers where a message is written; here they make a stored row that
 * holds them all the same unsendable.
 *
 * Errors: a row that cannot be rendered (headers that are not an object
 * of strings, numbers and booleans under names that can be sent, or that
 * outbox_header_sendable() refuses; text with no UTF-8 form) is not an
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
#include "stomp/stomp_number.h"

/*
 * The headers made at send time, in the order they go on the wire after
 * the stored ones; they win over stored ones.
 */
static const char *const builtin_names[] = {
	"dop-msg-id", "dop-msg-destination", "dop-msg-type",
	"dop-msg-sent-time", "dop-correlation-id"
};

#define BUILTIN_SENT_TIME	3	/* builtin_names[] index of the send time */

/*
 * Headers RabbitMQ reads on a SEND to /queue/ as how to declare the queue
 * (the first SEND of a session to it): its arguments and its durable,
 * auto-delete and exclusive flags.  As message headers they would give a
 * new queue arguments (an x-message-ttl of 0 drops every message), make it
 * exclusive to the publisher's connection or deleted with its last
 * consumer (and the messages with it), or end the session on a queue
 * declared otherwise.
 */
static const char *const queue_declaration[] = {
	"x-dead-letter-exchange", "x-dead-letter-routing-key", "x-expires",
	"x-max-length", "x-max-length-bytes", "x-max-priority", "x-message-ttl",
	"x-queue-type", "durable", "auto-delete", "exclusive"
};

/*
 * Headers RabbitMQ carries as AMQP properties of type shortstr, at most
 * AMQP_SHORTSTR_MAX bytes: STOMP takes a longer one, but handing the
 * message to an AMQP 0-9-1 consumer (or a shovel) then fails and closes
 * its connection, delivery after delivery.  Header names are shortstr in
 * AMQP's field tables too.
 */
static const char *const shortstr_properties[] = {
	"correlation-id", "reply-to", "type", "app-id", "content-encoding",
	"amqp-message-id", "cluster-id"
};

#define AMQP_SHORTSTR_MAX		255

/* RabbitMQ's longest time to live: ten years, in milliseconds */
#define MAX_EXPIRATION_MS		UINT64CONST(315360000000)

/*
 * A header of the largest size, escaped (which at most doubles it), is one
 * line a consumer decodes; all of them, with room to spare for the headers
 * outbox and the broker add, fit a frame's header bytes and count.
 */
StaticAssertDecl(2 * OUTBOX_MAX_HEADER_BYTES + 1 <= STOMP_DEFAULT_MAX_LINE_LEN,
				 "a header of the largest size must be one line a consumer decodes");
StaticAssertDecl(2 * (OUTBOX_MAX_HEADERS_BYTES + OUTBOX_MAX_HEADERS) <=
				 STOMP_DEFAULT_MAX_HEADER_BYTES - 64 * 1024,
				 "the headers of the largest size must fit a frame a consumer decodes");
StaticAssertDecl(OUTBOX_MAX_HEADERS <= STOMP_DEFAULT_MAX_HEADER_COUNT / 2,
				 "the most headers must fit a frame a consumer decodes");

/*
 * Called for each stored header that goes out, with its value's text;
 * false with a reason stops.
 */
typedef bool (*StoredHeaderFn) (const char *key, JsonbValue *value,
								const char *text, void *arg, char **reason);

static bool wire_utf8(const char *text, size_t len, char **utf8);
static bool header_name_sendable(const char *name, size_t len,
								 char **reason);
static const char *json_type_name(JsonbValue *value);
static bool destination_sendable(const char *destination, char **reason);
static bool reply_to_sendable(const char *value);
static bool is_shortstr_property(const char *name);
static bool value_refused(const char *name, const char *value, size_t len,
						  char **reason);
static bool add_header(OutboxWireMessage *wire, const char *name,
					   const char *value, char **reason);
static bool each_stored_header(Jsonb *headers, StoredHeaderFn fn, void *arg,
							   char **correlation_id, char **reason);
static bool wire_stored_header(const char *key, JsonbValue *value,
							   const char *text, void *arg,
							   char **reason);
static bool push_stored_header(const char *key, JsonbValue *value,
							   const char *text, void *arg,
							   char **reason);
static void builtin_values(const pg_uuid_t *id, const char *destination,
						   const char *correlation_id, char *sent_time,
						   const char **values);
static void push_string_pair(JsonbParseState **state, const char *key,
							 const char *value);

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
 * Whether a header name (len bytes, not necessarily NUL-terminated) is one
 * of those made at send time: message.c stores none of them but
 * dop-correlation-id, which cannot be made again.
 */
bool
outbox_wire_header_is_builtin(const char *name, size_t len)
{
	int			i;

	for (i = 0; i < lengthof(builtin_names); i++)
	{
		if (strlen(builtin_names[i]) == len &&
			memcmp(name, builtin_names[i], len) == 0)
			return true;
	}
	return false;
}

/*
 * The most the headers made at send time add to a SEND frame: each name
 * and value escaped (which at most doubles them; the destination converted
 * to UTF-8 first), with a colon and a line break.  message.c counts them
 * in a new message's size without building them.
 */
uint64
outbox_wire_builtin_headers_bound(void)
{
	uint64		bound = 0;
	int			i;

	for (i = 0; i < lengthof(builtin_names); i++)
		bound += 2 * strlen(builtin_names[i]) + 2;
	/* the id twice (the correlation id falls back to it), the type */
	bound += 2 * (2 * OUTBOX_UUID_TEXT_LEN + strlen(OUTBOX_MESSAGE_TYPE));
	bound += 2 * ((uint64) MAX_CONVERSION_GROWTH * OUTBOX_MAX_DESTINATION_LEN);
	bound += 2 * MAXDATELEN;
	/* a stored correlation id is counted with the stored headers */
	return bound;
}

/*
 * Whether a stored header name (len bytes) can go on the wire, as
 * message.c's check_headers() requires where a message enters: not empty,
 * no NUL or other control character, not one the STOMP client sets
 * itself.  False with a reason if not.
 */
static bool
header_name_sendable(const char *name, size_t len, char **reason)
{
	size_t		i;

	if (len == 0)
	{
		*reason = pstrdup("a header has an empty name");
		return false;
	}
	for (i = 0; i < len; i++)
	{
		if ((unsigned char) name[i] < 0x20 || name[i] == 0x7F)
		{
			*reason = pstrdup("a header name holds a line break or another control character");
			return false;
		}
	}
	if (stomp_send_header_reserved(name))
	{
		*reason = psprintf("header \"%s\" is set by the STOMP client itself",
						   name);
		return false;
	}
	return true;
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
char *
outbox_wire_header_value_text(JsonbValue *value, const char *key)
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
 * Whether a stored destination can be sent, as message.c requires where a
 * message enters (outbox_check_destination()): not empty, no control
 * character, at most OUTBOX_MAX_DESTINATION_LEN bytes (it goes out twice,
 * as destination and dop-msg-destination).  False with a reason if not.
 */
static bool
destination_sendable(const char *destination, char **reason)
{
	const char *p;

	if (destination[0] == '\0')
	{
		*reason = pstrdup("its destination is empty");
		return false;
	}
	for (p = destination; *p != '\0'; p++)
	{
		if ((unsigned char) *p < 0x20 || *p == 0x7F)
		{
			*reason = pstrdup("its destination holds a line break or another control character");
			return false;
		}
	}
	if (p - destination > OUTBOX_MAX_DESTINATION_LEN)
	{
		*reason = psprintf("its destination is %zu bytes long; the limit is %d",
						   (size_t) (p - destination), OUTBOX_MAX_DESTINATION_LEN);
		return false;
	}
	return true;
}

/*
 * Whether RabbitMQ takes value as a reply-to: a name without "/", or a
 * destination it parses, /queue/N, /amq/queue/N, /topic/K, /reply-queue/N
 * or /exchange/X[/K], each part non-empty and without "/" (it refuses any
 * other value holding a "/").  Not /temp-queue/N, which it takes, but for
 * which it makes a queue of the sending connection, the publisher's.
 */
static bool
reply_to_sendable(const char *value)
{
	static const char *const one_part[] = {
		"/queue/", "/amq/queue/", "/topic/", "/reply-queue/"
	};
	const char *rest;
	int			i;

	if (strchr(value, '/') == NULL)
		return true;
	for (i = 0; i < lengthof(one_part); i++)
	{
		if (strncmp(value, one_part[i], strlen(one_part[i])) == 0)
		{
			rest = value + strlen(one_part[i]);
			return rest[0] != '\0' && strchr(rest, '/') == NULL;
		}
	}
	if (strncmp(value, "/exchange/", strlen("/exchange/")) != 0)
		return false;
	rest = value + strlen("/exchange/");
	if (rest[0] == '\0' || rest[0] == '/')
		return false;
	rest = strchr(rest, '/');
	return rest == NULL || (rest[1] != '\0' && strchr(rest + 1, '/') == NULL);
}

/*
 * Whether RabbitMQ carries header name as an AMQP short-string property.
 */
static bool
is_shortstr_property(const char *name)
{
	int			i;

	for (i = 0; i < lengthof(shortstr_properties); i++)
	{
		if (strcmp(name, shortstr_properties[i]) == 0)
			return true;
	}
	return false;
}

/*
 * Whether the broker refuses this value of header name, or acts on it
 * beyond the message; *reason says why if so.
 */
static bool
value_refused(const char *name, const char *value, size_t len, char **reason)
{
	int			i;

	for (i = 0; i < lengthof(queue_declaration); i++)
	{
		if (strcmp(name, queue_declaration[i]) == 0)
		{
			*reason = psprintf("header \"%s\" is read by RabbitMQ as how to declare the queue a SEND to /queue/ names; give queues their arguments where they are declared, or by a policy",
							   name);
			return true;
		}
	}
	if (strcmp(name, "message-id") == 0)
		*reason = pstrdup("header \"message-id\" is refused by RabbitMQ on SEND: the broker sets it itself");
	else if (strcmp(name, "user-id") == 0)
		*reason = pstrdup("header \"user-id\" is not sent: RabbitMQ takes it only if it names the user the publisher logs in as, and its refusal closes the connection");
	else if (strcmp(name, "reply-to") == 0 && !reply_to_sendable(value))
		*reason = pstrdup("header \"reply-to\" must be a name without \"/\" or one of /queue/N, /amq/queue/N, /topic/K, /reply-queue/N, /exchange/X and /exchange/X/K, each part non-empty and without \"/\": RabbitMQ refuses other destinations, and makes a queue of the publisher's own connection for /temp-queue/");
	else if (strcmp(name, "expiration") == 0 &&
			 !stomp_parse_decimal(value, len, MAX_EXPIRATION_MS, NULL))
		*reason = psprintf("header \"expiration\" must be a whole number of milliseconds from 0 to " UINT64_FORMAT " (ten years, RabbitMQ's longest time to live)",
						   MAX_EXPIRATION_MS);
	else if (strcmp(name, "priority") == 0 &&
			 !stomp_parse_decimal(value, len, 255, NULL))
		*reason = pstrdup("header \"priority\" must be a whole number from 0 to 255");
	else if (strcmp(name, "timestamp") == 0 &&
			 !stomp_parse_decimal(value, len, PG_INT64_MAX, NULL))
		*reason = pstrdup("header \"timestamp\" must be a whole number of seconds from 0 to 9223372036854775807");
	else
		return false;
	return true;
}

/*
 * Whether a message may carry this header (name and value as stored, in
 * the server's encoding, value as the text sent) after those counted in
 * tally so far, which it joins; false with *reason, fit for last_error, if
 * not.  Names outbox refuses for other reasons (empty, control
 * characters, set by the STOMP client) are the callers' to check first.
 */
bool
outbox_header_sendable(OutboxHeaderTally *tally, const char *name,
					   const char *value, size_t value_len, char **reason)
{
	char	   *name8;
	char	   *value8;
	uint64		bytes;

	if (value_refused(name, value, value_len, reason))
		return false;

	/* the stored dop-correlation-id is outbox's, not counted */
	if (!outbox_wire_header_is_builtin(name, strlen(name)) &&
		++tally->count > OUTBOX_MAX_HEADERS)
	{
		*reason = psprintf("the message has more than %d headers of its own",
						   OUTBOX_MAX_HEADERS);
		return false;
	}
	if (!wire_utf8(name, strlen(name), &name8) ||
		!wire_utf8(value, value_len, &value8))
	{
		*reason = psprintf("header \"%.*s\" cannot be converted to UTF-8",
						   pg_mbcliplen(name, strlen(name), 64), name);
		return false;
	}
	bytes = (uint64) strlen(name8) + strlen(value8);
	if (strlen(name8) > AMQP_SHORTSTR_MAX)
	{
		*reason = psprintf("header name \"%.*s...\" is %zu bytes long in UTF-8; RabbitMQ carries header names as AMQP short strings, of at most %d bytes, which an AMQP consumer could not be given",
						   pg_mbcliplen(name, strlen(name), 64), name,
						   strlen(name8), AMQP_SHORTSTR_MAX);
		return false;
	}
	if (is_shortstr_property(name) && strlen(value8) > AMQP_SHORTSTR_MAX)
	{
		*reason = psprintf("header \"%s\" is %zu bytes long in UTF-8; RabbitMQ carries it as an AMQP short string, of at most %d bytes, which an AMQP consumer could not be given",
						   name, strlen(value8), AMQP_SHORTSTR_MAX);
		return false;
	}
	if (name8 != name)
		pfree(name8);
	if (value8 != value)
		pfree(value8);
	if (bytes > OUTBOX_MAX_HEADER_BYTES)
	{
		*reason = psprintf("header \"%.*s%s\" is " UINT64_FORMAT " bytes long in UTF-8, name and value; the limit is %d",
						   pg_mbcliplen(name, strlen(name), 64), name,
						   strlen(name) > 64 ? "..." : "", bytes,
						   OUTBOX_MAX_HEADER_BYTES);
		return false;
	}
	tally->bytes += bytes;
	if (tally->bytes > OUTBOX_MAX_HEADERS_BYTES)
	{
		*reason = psprintf("the message's headers are more than %d bytes long in UTF-8, names and values",
						   OUTBOX_MAX_HEADERS_BYTES);
		return false;
	}
	return true;
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
 * How many bytes the SEND frame of wire, made now, may grow when it is
 * made again at send time: its dop-msg-sent-time may be longer then (see
 * OUTBOX_SENT_TIME_MAX_ESCAPED).  message.c adds it to a new message's measured
 * size, so that a message accepted when written is never too large when
 * sent.
 */
uint64
outbox_wire_sent_time_slack(const OutboxWireMessage *wire)
{
	size_t		i;

	for (i = wire->nheaders; i > 0; i--)
	{
		const char *name = wire->headers[i - 1].name;
		const char *value = wire->headers[i - 1].value;
		uint64		escaped;
		const char *p;

		if (strcmp(name, builtin_names[BUILTIN_SENT_TIME]) != 0)
			continue;
		escaped = strlen(value);
		for (p = value; *p; p++)
			escaped += (*p == ':' || *p == '\\' || *p == '\r' || *p == '\n');
		return escaped < OUTBOX_SENT_TIME_MAX_ESCAPED ?
			OUTBOX_SENT_TIME_MAX_ESCAPED - escaped : 0;
	}
	return OUTBOX_SENT_TIME_MAX_ESCAPED;
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
 * Call fn for each stored header but the dop-* ones made at send time;
 * *correlation_id is set to the stored dop-correlation-id, if a non-empty
 * string.  fn is given each header's value as the text sent.  False
 * with a reason if the headers cannot be sent: not an object, a name
 * header_name_sendable() refuses, a value that is not a string, a number
 * or a boolean, or headers outbox_header_sendable() refuses.
 */
static bool
each_stored_header(Jsonb *headers, StoredHeaderFn fn, void *arg,
				   char **correlation_id, char **reason)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	char	   *key = NULL;
	char	   *text;
	bool		builtin = false;
	OutboxHeaderTally tally = {0};

	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
	{
		*reason = pstrdup("its headers are not a JSON object");
		return false;
	}

	it = JsonbIteratorInit(&headers->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (token == WJB_KEY)
		{
			builtin = outbox_wire_header_is_builtin(v.val.string.val,
												   v.val.string.len);
			key = pnstrdup(v.val.string.val, v.val.string.len);
			if (!builtin && !header_name_sendable(key, v.val.string.len,
												  reason))
				return false;
		}
		else if (token == WJB_VALUE)
		{
			if (builtin)
			{
				/* the one stored dop-* header that goes out: counted */
				if (strcmp(key, "dop-correlation-id") == 0 &&
					v.type == jbvString && v.val.string.len > 0)
				{
					*correlation_id = pnstrdup(v.val.string.val,
											   v.val.string.len);
					if (!outbox_header_sendable(&tally, key, *correlation_id,
												v.val.string.len, reason))
						return false;
				}
				continue;
			}
			if (v.type != jbvString && v.type != jbvNumeric &&
				v.type != jbvBool)
			{
				*reason = psprintf("header \"%s\" is %s, not a string, a number or a boolean",
								   key, json_type_name(&v));
				return false;
			}
			text = outbox_wire_header_value_text(&v, key);
			if (!outbox_header_sendable(&tally, key, text, strlen(text),
										reason) ||
				!fn(key, &v, text, arg, reason))
				return false;
		}
	}
	return true;
}

/*
 * StoredHeaderFn of the wire: append the header to the OutboxWireMessage
 * arg, as its text.
 */
static bool
wire_stored_header(const char *key, JsonbValue *value, const char *text,
				   void *arg, char **reason)
{
	return add_header((OutboxWireMessage *) arg, key, text, reason);
}

/*
 * StoredHeaderFn of outbox_wire_headers(): push the header, its JSON value
 * as stored, into the JsonbParseState arg.
 */
static bool
push_stored_header(const char *key, JsonbValue *value, const char *text,
				   void *arg, char **reason)
{
	JsonbParseState **state = (JsonbParseState **) arg;
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
	pushJsonbValue(state, WJB_VALUE, value);
	return true;
}

/*
 * The values of the headers made at send time, in the order of
 * builtin_names[]: the id, the destination, the type, the time of the send
 * (into sent_time, MAXDATELEN + 1 bytes; NULL leaves it out) and the stored
 * correlation id, else the id.
 */
static void
builtin_values(const pg_uuid_t *id, const char *destination,
			   const char *correlation_id, char *sent_time,
			   const char **values)
{
	char	   *id_text = DatumGetCString(DirectFunctionCall1(uuid_out,
															  UUIDPGetDatum(id)));

	values[0] = id_text;
	values[1] = destination;
	values[2] = OUTBOX_MESSAGE_TYPE;
	values[BUILTIN_SENT_TIME] = NULL;
	if (sent_time != NULL)
	{
		JsonEncodeDateTime(sent_time,
						   TimestampTzGetDatum(GetCurrentTimestamp()),
						   TIMESTAMPTZOID, NULL);
		values[BUILTIN_SENT_TIME] = sent_time;
	}
	values[4] = correlation_id != NULL ? correlation_id : id_text;
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
	char	   *correlation_id = NULL;
	char		sent_time[MAXDATELEN + 1];
	const char *values[lengthof(builtin_names)];
	char	   *text;
	int			i;

	memset(wire, 0, sizeof(*wire));
	*reason = NULL;

	if (!destination_sendable(destination, reason))
		return false;
	if (JB_ROOT_IS_OBJECT(headers) && !JB_ROOT_IS_SCALAR(headers))
		wire->headers = palloc(sizeof(StompHeaderPair) *
							   (JB_ROOT_COUNT(headers) + lengthof(builtin_names)));
	if (!each_stored_header(headers, wire_stored_header, wire,
							&correlation_id, reason))
		return false;

	builtin_values(id, destination, correlation_id, sent_time, values);
	for (i = 0; i < lengthof(builtin_names); i++)
	{
		if (!add_header(wire, builtin_names[i], values[i], reason))
			return false;
	}

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

/*
 * Push a member with a string value into the object being built.
 */
static void
push_string_pair(JsonbParseState **state, const char *key, const char *value)
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
 * The headers a stored message is sent with, as a jsonb object: the stored
 * ones (a number or boolean as its JSON value) and those made at send time,
 * winning, but dop-msg-sent-time, which is the time of each send.  NULL,
 * with *reason, if the message cannot be sent for its headers: the
 * publisher fails it.  Texts are not converted to UTF-8 here.
 */
Jsonb *
outbox_wire_headers(const pg_uuid_t *id, const char *destination,
					Jsonb *headers, char **reason)
{
	JsonbParseState *state = NULL;
	char	   *correlation_id = NULL;
	const char *values[lengthof(builtin_names)];
	int			i;

	*reason = NULL;
	if (!destination_sendable(destination, reason))
		return NULL;
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	if (!each_stored_header(headers, push_stored_header, &state,
							&correlation_id, reason))
		return NULL;

	builtin_values(id, destination, correlation_id, NULL, values);
	for (i = 0; i < lengthof(builtin_names); i++)
	{
		if (values[i] != NULL)
			push_string_pair(&state, builtin_names[i], values[i]);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}
