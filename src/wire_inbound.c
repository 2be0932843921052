/*-------------------------------------------------------------------------
 *
 * wire_inbound.c
 *		  A message coming in from the broker, as a consumer's callback sees
 *		  it.
 *
 * The mapping of a received STOMP frame to the domain: its body as jsonb
 * (JSON if it parses, else one JSON string), its headers as a jsonb object
 * of strings (of a repeated header, the first wins, as at the broker), and
 * its id for idempotency, as django-outbox-pattern's consumer reads it
 * (cap-msg-id, else dop-msg-id, else message-id).  STOMP is UTF-8; every
 * text is made valid UTF-8 (invalid bytes and NUL become U+FFFD) and then
 * converted to the database encoding; an id that was not valid UTF-8
 * also carries its bytes in hex, so that two ids never become one.
 * wire.c is the other direction.
 *
 * Error policy: a body that is not JSON errors out of
 * outbox_inbound_body(), and a text with no form in the database encoding
 * errors out of any of them: the consumer runs them in a subtransaction,
 * so that the error fails that message alone.
 *
 * Memory: everything is allocated in the current memory context; the frame
 * is only read.
 *
 * src/wire_inbound.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "outbox.h"

/*
 * Bytes from the broker as text of the database: invalid UTF-8 and NUL
 * bytes become U+FFFD, then the text is converted to the database
 * encoding.
 */
char *
outbox_inbound_text(const char *bytes, size_t len)
{
	StringInfoData buf;

	if (!pg_verify_mbstr(PG_UTF8, bytes, (int) len, true))
	{
		initStringInfo(&buf);
		while (len > 0)
		{
			int			l = pg_utf_mblen((const unsigned char *) bytes);

			if (*bytes != '\0' && (size_t) l <= len &&
				pg_utf8_islegal((const unsigned char *) bytes, l))
			{
				appendBinaryStringInfo(&buf, bytes, l);
				bytes += l;
				len -= l;
			}
			else
			{
				appendBinaryStringInfo(&buf, "\xEF\xBF\xBD", 3);
				bytes++;
				len--;
			}
		}
		bytes = buf.data;
		len = buf.len;
	}
	else
		bytes = pnstrdup(bytes, len);
	return pg_any_to_server(bytes, (int) len, PG_UTF8);
}

/*
 * The body as jsonb: parsed as JSON, or (as_string) as one JSON string.
 * Parsing errors out on a body that is not JSON; the caller then tries
 * again with as_string.
 */
Jsonb *
outbox_inbound_body(StompFrame *frame, bool as_string)
{
	char	   *text = outbox_inbound_text(frame->body ? frame->body : "", frame->body_len);
	JsonbValue	value;

	if (!as_string)
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	value.type = jbvString;
	value.val.string.val = text;
	value.val.string.len = strlen(text);
	return JsonbValueToJsonb(&value);
}

/*
 * The headers as a jsonb object of strings; of a repeated header, the
 * first wins (as at the broker).
 */
Jsonb *
outbox_inbound_headers(StompFrame *frame)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;
	size_t		i;

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	/* backwards: jsonb keeps the last of equal keys */
	for (i = frame->nheaders; i > 0; i--)
	{
		StompHeader *h = &frame->headers[i - 1];
		JsonbValue	key;
		JsonbValue	value;

		key.type = jbvString;
		key.val.string.val = outbox_inbound_text(h->name, h->name_len);
		key.val.string.len = strlen(key.val.string.val);
		value.type = jbvString;
		value.val.string.val = outbox_inbound_text(h->value, h->value_len);
		value.val.string.len = strlen(value.val.string.val);
		(void) pushJsonbValue(&state, WJB_KEY, &key);
		(void) pushJsonbValue(&state, WJB_VALUE, &value);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}

/*
 * An id as text of the database: as outbox_inbound_text() makes it, and,
 * if its bytes were not valid UTF-8 (or held a NUL), followed by all of
 * them in hex.  Replacing invalid bytes alone would make different ids
 * one ("a\xff" and "a\xfe" both "a" U+FFFD): the second message would be
 * skipped as a duplicate of the first, and lost.
 */
static char *
inbound_id_text(const char *bytes, size_t len)
{
	StringInfoData buf;
	size_t		i;

	if (pg_verify_mbstr(PG_UTF8, bytes, (int) len, true))
		return outbox_inbound_text(bytes, len);
	initStringInfo(&buf);
	appendStringInfo(&buf, "%s (bytes ", outbox_inbound_text(bytes, len));
	for (i = 0; i < len; i++)
		appendStringInfo(&buf, "%02x", (unsigned char) bytes[i]);
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * The message's id for idempotency: cap-msg-id, else dop-msg-id, else
 * message-id (empty ones do not count, as in django-outbox-pattern); NULL
 * if none.  Two different ids stay different (inbound_id_text).
 */
char *
outbox_inbound_message_id(StompFrame *frame)
{
	static const char *const names[] = {"cap-msg-id", "dop-msg-id", "message-id"};
	int			i;

	for (i = 0; i < lengthof(names); i++)
	{
		const StompHeader *h = stomp_frame_find_header(frame, names[i]);

		if (h != NULL && h->value_len > 0)
			return inbound_id_text(h->value, h->value_len);
	}
	return NULL;
}
