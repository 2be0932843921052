/*-------------------------------------------------------------------------
 *
 * stomp_failover.c
 *	  Broker host lists and reconnect backoff: pure functions for the
 *	  caller's reconnect loop.
 *
 * A host list is "h1:p1,h2:p2,[::1]:p3": comma-separated, blanks around
 * entries ignored, IPv6 literals in brackets, the port optional (61613).
 * The parser is strict and its messages name the offending entry, so the
 * backend can use it as the check hook of outbox.stomp_host_and_ports.
 *
 * Backoff takes the random value from the caller, so tests are
 * deterministic and the backend picks its own random source.
 *
 * src/stomp/stomp_failover.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp_failover.h"
#include "stomp_number.h"

/* one host list entry cut into its host and optional port */
typedef struct StompEntryParts
{
	const char *host;
	size_t		host_len;
	const char *port;			/* NULL: none given */
	size_t		port_len;
	bool		ipv6;			/* the host was in brackets */
} StompEntryParts;

static bool stomp_split_bracketed(const char *entry, size_t len,
								  const char *desc, StompEntryParts *parts,
								  char *errbuf, size_t errlen);
static bool stomp_split_plain(const char *entry, size_t len,
							  const char *desc, StompEntryParts *parts,
							  char *errbuf, size_t errlen);
static bool stomp_check_host(const StompEntryParts *parts, const char *desc,
							 char *errbuf, size_t errlen);
static bool stomp_parse_entry(const char *entry, size_t len,
							  StompHostPort *out, char *errbuf, size_t errlen);
static bool stomp_parse_port(const char *s, size_t len, int *port);
static bool stomp_host_char_ok(char c, bool ipv6);

/*
 * stomp_host_char_ok
 *		Characters allowed in a host name or IPv4 literal, or (ipv6) in
 *		a bracketed IPv6 literal including a %zone suffix.
 */
static bool
stomp_host_char_ok(char c, bool ipv6)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')
		return true;
	return ipv6 && (c == ':' || c == '%');
}

/*
 * stomp_parse_port
 *		One to five digits, 1..65535.
 */
static bool
stomp_parse_port(const char *s, size_t len, int *port)
{
	uint64_t	v;

	if (len > 5 || !stomp_parse_decimal(s, len, 65535, &v) || v < 1)
		return false;
	*port = (int) v;
	return true;
}

/*
 * stomp_split_bracketed
 *		Split "[v6][:port]" into its host (inside the brackets) and port
 *		(NULL if none); the host must look like an IPv6 address.  "desc"
 *		is the entry as it may be quoted in a message.
 */
static bool
stomp_split_bracketed(const char *entry, size_t len, const char *desc,
					  StompEntryParts *parts, char *errbuf, size_t errlen)
{
	const char *close = memchr(entry, ']', len);

	if (close == NULL)
	{
		snprintf(errbuf, errlen, "missing \"]\" in host list entry \"%s\"", desc);
		return false;
	}
	parts->ipv6 = true;
	parts->host = entry + 1;
	parts->host_len = (size_t) (close - parts->host);
	if (close + 1 < entry + len)
	{
		if (close[1] != ':')
		{
			snprintf(errbuf, errlen, "expected \":port\" after \"]\" in host list entry \"%s\"", desc);
			return false;
		}
		parts->port = close + 2;
		parts->port_len = (size_t) (entry + len - parts->port);
	}
	if (memchr(parts->host, ':', parts->host_len) == NULL)
	{
		snprintf(errbuf, errlen, "\"%s\" is not an IPv6 address in brackets", desc);
		return false;
	}
	return true;
}

/*
 * stomp_split_plain
 *		Split "host[:port]" at its colon; a second colon is refused, since
 *		it is an IPv6 address that needs brackets.
 */
static bool
stomp_split_plain(const char *entry, size_t len, const char *desc,
				  StompEntryParts *parts, char *errbuf, size_t errlen)
{
	const char *colon = memchr(entry, ':', len);

	parts->host = entry;
	parts->host_len = len;
	if (colon != NULL)
	{
		if (memchr(colon + 1, ':', (size_t) (entry + len - colon - 1)) != NULL)
		{
			snprintf(errbuf, errlen,
					 "host list entry \"%s\" has more than one colon (write IPv6 addresses as [addr]:port)",
					 desc);
			return false;
		}
		parts->host_len = (size_t) (colon - entry);
		parts->port = colon + 1;
		parts->port_len = (size_t) (entry + len - parts->port);
	}
	return true;
}

/*
 * stomp_check_host
 *		Refuse an empty host, one longer than STOMP_MAX_HOST_LEN, or one
 *		with a character not allowed in it.
 */
static bool
stomp_check_host(const StompEntryParts *parts, const char *desc,
				 char *errbuf, size_t errlen)
{
	size_t		i;

	if (parts->host_len == 0)
	{
		snprintf(errbuf, errlen, "host list entry \"%s\" has an empty host", desc);
		return false;
	}
	if (parts->host_len > STOMP_MAX_HOST_LEN)
	{
		snprintf(errbuf, errlen, "host name in host list entry \"%s\" is longer than %d bytes",
				 desc, STOMP_MAX_HOST_LEN);
		return false;
	}
	for (i = 0; i < parts->host_len; i++)
	{
		if (!stomp_host_char_ok(parts->host[i], parts->ipv6))
		{
			snprintf(errbuf, errlen, "invalid character in host of host list entry \"%s\"", desc);
			return false;
		}
	}
	return true;
}

/*
 * stomp_parse_entry
 *		Parse one trimmed, non-empty "host[:port]" or "[v6][:port]".
 */
static bool
stomp_parse_entry(const char *entry, size_t len, StompHostPort *out,
				  char *errbuf, size_t errlen)
{
	char		desc[72];
	StompEntryParts parts = {0};
	bool		ok;

	stomp_describe_name(desc, sizeof(desc), entry, len);
	if (entry[0] == '[')
		ok = stomp_split_bracketed(entry, len, desc, &parts, errbuf, errlen);
	else
		ok = stomp_split_plain(entry, len, desc, &parts, errbuf, errlen);
	if (!ok || !stomp_check_host(&parts, desc, errbuf, errlen))
		return false;

	out->port = STOMP_DEFAULT_PORT;
	if (parts.port != NULL &&
		!stomp_parse_port(parts.port, parts.port_len, &out->port))
	{
		snprintf(errbuf, errlen, "invalid port in host list entry \"%s\" (must be 1 to 65535)", desc);
		return false;
	}
	memcpy(out->host, parts.host, parts.host_len);
	out->host[parts.host_len] = '\0';
	return true;
}

/*
 * stomp_host_list_parse
 *		Parse "spec" into "list" (which the caller frees with
 *		stomp_host_list_free()).  On error returns false with a message and
 *		leaves "list" empty.
 */
bool
stomp_host_list_parse(const char *spec, StompHostList *list,
					  char *errbuf, size_t errlen)
{
	const char *p;
	size_t		n = 1;
	size_t		idx = 0;
	char		dummy[1];

	list->count = 0;
	list->hosts = NULL;
	if (errbuf == NULL || errlen == 0)
	{
		errbuf = dummy;
		errlen = sizeof(dummy);
	}
	if (spec == NULL)
		spec = "";
	for (p = spec; *p; p++)
		if (*p == ',')
			n++;
	list->hosts = calloc(n, sizeof(StompHostPort));
	if (list->hosts == NULL)
	{
		snprintf(errbuf, errlen, "out of memory parsing the host list");
		return false;
	}

	p = spec;
	for (;;)
	{
		const char *end = strchr(p, ',');
		const char *start = p;
		size_t		len;

		if (end == NULL)
			end = p + strlen(p);
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		len = (size_t) (end - start);
		while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
			len--;
		if (len == 0)
		{
			if (n == 1)
				snprintf(errbuf, errlen, "host list is empty");
			else
				snprintf(errbuf, errlen, "host list entry %zu is empty", idx + 1);
			stomp_host_list_free(list);
			return false;
		}
		if (!stomp_parse_entry(start, len, &list->hosts[idx], errbuf, errlen))
		{
			stomp_host_list_free(list);
			return false;
		}
		idx++;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	list->count = idx;
	return true;
}

/*
 * stomp_host_list_free
 *		Release a parsed host list; it is left empty.
 */
void
stomp_host_list_free(StompHostList *list)
{
	free(list->hosts);
	list->hosts = NULL;
	list->count = 0;
}

/*
 * stomp_host_list_next
 *		Return the host at *cursor and advance the cursor with wrap-around,
 *		so a reconnect loop tries every host in order.  NULL for an empty
 *		list.
 */
const StompHostPort *
stomp_host_list_next(const StompHostList *list, size_t *cursor)
{
	const StompHostPort *hp;

	if (list->count == 0)
		return NULL;
	if (*cursor >= list->count)
		*cursor = 0;
	hp = &list->hosts[*cursor];
	*cursor = (*cursor + 1) % list->count;
	return hp;
}

/*
 * stomp_backoff_full_jitter
 *		Delay before reconnect attempt number "attempt" (0-based): uniform
 *		in [0, min(cap, base * 2^attempt)], drawn from "rnd".
 *
 * "Full jitter" spreads reconnecting clients evenly, so a broker restart
 * is not followed by synchronized reconnect storms.
 */
int64_t
stomp_backoff_full_jitter(unsigned int attempt, int64_t base_ms,
						  int64_t cap_ms, uint64_t rnd)
{
	int64_t		ceiling = base_ms;
	unsigned int i;

	if (base_ms <= 0 || cap_ms <= 0)
		return 0;
	if (ceiling > cap_ms)
		ceiling = cap_ms;
	for (i = 0; i < attempt && ceiling < cap_ms; i++)
		ceiling = (ceiling > cap_ms / 2) ? cap_ms : ceiling * 2;
	return (int64_t) (rnd % ((uint64_t) ceiling + 1));
}

/*
 * stomp_backoff_decorrelated
 *		"Decorrelated jitter": the next delay is uniform in
 *		[base, 3 * previous delay], capped at cap.  Pass prev_ms = 0 for the
 *		first attempt.  Grows like exponential backoff but keeps clients
 *		apart even when they started together.
 */
int64_t
stomp_backoff_decorrelated(int64_t prev_ms, int64_t base_ms, int64_t cap_ms,
						   uint64_t rnd)
{
	int64_t		upper;
	int64_t		delay;

	if (base_ms <= 0 || cap_ms <= 0)
		return 0;
	if (base_ms > cap_ms)
		return cap_ms;
	if (prev_ms < base_ms)
		prev_ms = base_ms;
	upper = (prev_ms > cap_ms / 3) ? cap_ms : prev_ms * 3;
	if (upper < base_ms)
		upper = base_ms;
	delay = base_ms + (int64_t) (rnd % ((uint64_t) (upper - base_ms) + 1));
	return delay > cap_ms ? cap_ms : delay;
}
