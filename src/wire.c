/*-------------------------------------------------------------------------
 *
 * wire.c
 *		  A message as the broker is given it.
 *
 * The body goes out as the JSON text of its jsonb, the headers as STOMP
 * header pairs: a JSON string as is, a number or boolean as its JSON text.
 * The STOMP client escapes them as STOMP 1.2 requires and adds
 * content-type, content-length, persistent:true and the receipt.
 *
 * src/wire.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "outbox.h"

/*
 * Render a message's body and headers for stomp_conn_send(); everything is
 * allocated in the current memory context.
 */
void
outbox_wire_message(Jsonb *body, Jsonb *headers, OutboxWireMessage *wire)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	char	   *key = NULL;
	size_t		allocated;

	wire->body = JsonbToCString(NULL, &body->root, VARSIZE(body));
	wire->body_len = strlen(wire->body);

	wire->nheaders = 0;
	allocated = JB_ROOT_COUNT(headers);
	wire->headers = palloc(sizeof(StompHeaderPair) * Max(allocated, 1));

	it = JsonbIteratorInit(&headers->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (token == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (token == WJB_VALUE)
		{
			Assert(wire->nheaders < allocated);
			wire->headers[wire->nheaders].name = key;
			wire->headers[wire->nheaders].value =
				outbox_header_value_text(&v, key);
			wire->nheaders++;
		}
	}
}
