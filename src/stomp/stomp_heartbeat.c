/*-------------------------------------------------------------------------
 *
 * stomp_heartbeat.c
 *	  STOMP heart-beat negotiation and timer arithmetic (pure functions).
 *
 * In CONNECT the client says "heart-beat:cx,cy" (it can send every cx ms,
 * it wants to receive every cy ms); CONNECTED answers "sx,sy".  Per STOMP
 * 1.2, client-to-server beats flow every max(cx, sy) ms unless either is 0,
 * and server-to-client beats every max(sx, cy) ms unless either is 0.
 * RabbitMQ rounds its side to whole seconds (under 1000 ms becomes 1000)
 * and reports the rounded values in CONNECTED, so using the negotiated
 * numbers follows the broker automatically.
 *
 * Times are caller-supplied monotonic milliseconds; nothing here reads a
 * clock, so the unit tests drive time by hand.
 *
 * src/stomp/stomp_heartbeat.c
 *
 *-------------------------------------------------------------------------
 */
#include <stddef.h>

#include "stomp_heartbeat.h"
#include "stomp_number.h"

/* bound on a heart-beat value: about 24 days, far beyond any sane use */
#define STOMP_HEARTBEAT_MAX_MS	((int64_t) 2147483647)

static bool stomp_parse_ms(const char *s, size_t len, int64_t *out);

/*
 * stomp_parse_ms
 *		One or more digits, at most STOMP_HEARTBEAT_MAX_MS.
 */
static bool
stomp_parse_ms(const char *s, size_t len, int64_t *out)
{
	uint64_t	v;

	if (!stomp_parse_decimal(s, len, STOMP_HEARTBEAT_MAX_MS, &v))
		return false;
	*out = (int64_t) v;
	return true;
}

/*
 * stomp_heartbeat_parse
 *		Parse "x,y" (two non-negative integers in milliseconds, blanks
 *		allowed around each), as found in a heart-beat header or in the
 *		outbox.stomp_heartbeats setting.
 */
bool
stomp_heartbeat_parse(const char *spec, int64_t *x_ms, int64_t *y_ms)
{
	const char *comma;
	const char *a;
	const char *b;
	size_t		alen;
	size_t		blen;

	if (spec == NULL)
		return false;
	comma = spec;
	while (*comma && *comma != ',')
		comma++;
	if (*comma != ',')
		return false;

	a = spec;
	alen = (size_t) (comma - spec);
	while (alen > 0 && *a == ' ')
		a++, alen--;
	while (alen > 0 && a[alen - 1] == ' ')
		alen--;
	b = comma + 1;
	blen = 0;
	while (b[blen])
		blen++;
	while (blen > 0 && *b == ' ')
		b++, blen--;
	while (blen > 0 && b[blen - 1] == ' ')
		blen--;
	return stomp_parse_ms(a, alen, x_ms) && stomp_parse_ms(b, blen, y_ms);
}

/*
 * stomp_heartbeat_negotiate
 *		Fill in the negotiated intervals (see the file header); the
 *		last-read/last-write times are left alone.
 */
void
stomp_heartbeat_negotiate(StompHeartbeat *hb,
						  int64_t client_send_ms, int64_t client_recv_ms,
						  int64_t server_send_ms, int64_t server_recv_ms)
{
	if (client_send_ms <= 0 || server_recv_ms <= 0)
		hb->send_every_ms = 0;
	else
		hb->send_every_ms = client_send_ms > server_recv_ms ?
			client_send_ms : server_recv_ms;

	if (client_recv_ms <= 0 || server_send_ms <= 0)
		hb->expect_every_ms = 0;
	else
		hb->expect_every_ms = client_recv_ms > server_send_ms ?
			client_recv_ms : server_send_ms;
}

/*
 * stomp_heartbeat_send_due
 *		When we must next send something (a bare LF if nothing else) to
 *		keep the broker from declaring us dead; -1 if we send no beats.
 */
int64_t
stomp_heartbeat_send_due(const StompHeartbeat *hb)
{
	if (hb->send_every_ms <= 0)
		return -1;
	return hb->last_write_ms + hb->send_every_ms;
}

/*
 * stomp_heartbeat_dead_at
 *		When the broker counts as dead if nothing has been read by then:
 *		STOMP_HEARTBEAT_DEAD_FACTOR incoming intervals after the last read;
 *		-1 if we expect no beats.
 */
int64_t
stomp_heartbeat_dead_at(const StompHeartbeat *hb)
{
	if (hb->expect_every_ms <= 0)
		return -1;
	return hb->last_read_ms + STOMP_HEARTBEAT_DEAD_FACTOR * hb->expect_every_ms;
}
