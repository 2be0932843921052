/*-------------------------------------------------------------------------
 *
 * stomp_hosts.c
 *		  Parsing broker address lists.
 *
 * A list is "host:port" items separated by commas, blanks around items
 * ignored; an IPv6 address is written in brackets: "[::1]:61613".  The
 * same parser validates outbox.stomp_host_and_ports when it is set and
 * gives the connection layer its failover order.
 *
 * src/stomp/stomp_hosts.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp_hosts.h"

static int	parse_one(const char *item, size_t len, StompHost *host,
					  char *error, size_t error_size);

/*
 * Parse one "host:port" item of len bytes into host; return 0, or -1 with
 * a message in error.
 */
static int
parse_one(const char *item, size_t len, StompHost *host, char *error,
		  size_t error_size)
{
	const char *host_start = item;
	size_t		host_len;
	const char *port_start;
	const char *end = item + len;
	long		port = 0;
	const char *p;

	if (len > 0 && item[0] == '[')
	{
		const char *close = memchr(item, ']', len);

		if (close == NULL || close + 1 >= end || close[1] != ':')
		{
			snprintf(error, error_size,
					 "\"%.*s\" is not of the form [address]:port.", (int) len, item);
			return -1;
		}
		host_start = item + 1;
		host_len = close - host_start;
		port_start = close + 2;
	}
	else
	{
		const char *colon = NULL;

		for (p = item; p < end; p++)
		{
			if (*p == ':')
			{
				if (colon != NULL)
				{
					snprintf(error, error_size,
							 "\"%.*s\" has more than one colon; write an IPv6 address in brackets, as [::1]:61613.",
							 (int) len, item);
					return -1;
				}
				colon = p;
			}
		}
		if (colon == NULL)
		{
			snprintf(error, error_size,
					 "\"%.*s\" has no port; write it as host:port.", (int) len, item);
			return -1;
		}
		host_len = colon - item;
		port_start = colon + 1;
	}

	if (host_len == 0 || host_len > STOMP_MAX_HOST_LEN)
	{
		snprintf(error, error_size,
				 "\"%.*s\" has an empty or too long host.", (int) len, item);
		return -1;
	}
	for (p = host_start; p < host_start + host_len; p++)
	{
		if ((unsigned char) *p <= ' ' || *p == '/' || *p == '[' || *p == ']')
		{
			snprintf(error, error_size,
					 "\"%.*s\" has an invalid character in its host.", (int) len, item);
			return -1;
		}
	}
	if (port_start >= end)
	{
		snprintf(error, error_size, "\"%.*s\" has no port.", (int) len, item);
		return -1;
	}
	for (p = port_start; p < end; p++)
	{
		if (*p < '0' || *p > '9' || port > 65535)
			break;
		port = port * 10 + (*p - '0');
	}
	if (p != end || port < 1 || port > 65535)
	{
		snprintf(error, error_size,
				 "\"%.*s\" has an invalid port; a port is a number from 1 to 65535.",
				 (int) len, item);
		return -1;
	}

	memcpy(host->host, host_start, host_len);
	host->host[host_len] = '\0';
	host->port = (int) port;
	return 0;
}

/*
 * Parse list into at most max_hosts entries of hosts (which may be NULL to
 * validate only); return how many there are, or -1 with a message in error.
 */
int
stomp_host_list_parse(const char *list, StompHost *hosts, int max_hosts,
					  char *error, size_t error_size)
{
	const char *item = list;
	int			count = 0;

	for (;;)
	{
		const char *comma = strchr(item, ',');
		const char *end = comma ? comma : item + strlen(item);
		StompHost	scratch;

		while (item < end && (*item == ' ' || *item == '\t'))
			item++;
		while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end == item)
		{
			snprintf(error, error_size,
					 "The list must hold one or more host:port items separated by commas.");
			return -1;
		}
		if (hosts != NULL && count >= max_hosts)
		{
			snprintf(error, error_size, "The list has more than %d hosts.",
					 max_hosts);
			return -1;
		}
		if (parse_one(item, end - item,
					  hosts != NULL ? &hosts[count] : &scratch,
					  error, error_size) != 0)
			return -1;
		count++;
		if (comma == NULL)
			break;
		item = comma + 1;
	}
	return count;
}

/*
 * Whether list is a valid address list; if not, error says why.
 */
bool
stomp_host_list_validate(const char *list, char *error, size_t error_size)
{
	return stomp_host_list_parse(list, NULL, 0, error, error_size) > 0;
}
