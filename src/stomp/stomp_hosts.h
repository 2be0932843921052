/*-------------------------------------------------------------------------
 *
 * stomp_hosts.h
 *		  Broker address lists: "host:port,host:port,[v6addr]:port".
 *
 * src/stomp/stomp_hosts.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STOMP_HOSTS_H
#define STOMP_HOSTS_H

#include <stdbool.h>
#include <stddef.h>

/* Longest host name accepted, as DNS allows */
#define STOMP_MAX_HOST_LEN 253

typedef struct StompHost
{
	char		host[STOMP_MAX_HOST_LEN + 1];	/* without IPv6 brackets */
	int			port;
} StompHost;

extern int	stomp_host_list_parse(const char *list, StompHost *hosts,
								  int max_hosts, char *error,
								  size_t error_size);
extern bool stomp_host_list_validate(const char *list, char *error,
									 size_t error_size);

#endif							/* STOMP_HOSTS_H */
