/*-------------------------------------------------------------------------
 *
 * stomp_failover.h
 *	  The STOMP client's failover layer: which broker to try next and
 *	  how long to wait first (stomp_failover.c, stomp_retry.c).
 *
 * Pure functions: a host list parsed from "host:port,host:port", the
 * backoff curves, and a consumer's retry schedules; the caller's reconnect
 * loop passes in the time and the random numbers, so tests drive both.
 * They open nothing: the session (stomp_conn.h) connects to the host the
 * caller picks here.  No PostgreSQL header; errors go to errbuf.
 *
 * src/stomp/stomp_failover.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STOMP_FAILOVER_H
#define STOMP_FAILOVER_H

#include "stomp_transport.h"	/* STOMP_MAX_HOST_LEN */

/* ----------------------------------------------------------------
 * in stomp_failover.c: host lists and reconnect backoff (pure)
 * ----------------------------------------------------------------
 */

#define STOMP_DEFAULT_PORT		61613

typedef struct StompHostPort
{
	char		host[STOMP_MAX_HOST_LEN + 1];	/* IPv6 without brackets */
	int			port;
} StompHostPort;

typedef struct StompHostList
{
	size_t		count;
	StompHostPort *hosts;
} StompHostList;

extern bool stomp_host_list_parse(const char *spec, StompHostList *list,
								  char *errbuf, size_t errlen);
extern void stomp_host_list_free(StompHostList *list);
extern const StompHostPort *stomp_host_list_next(const StompHostList *list,
												 size_t *cursor);
extern int64_t stomp_backoff_full_jitter(unsigned int attempt, int64_t base_ms,
										 int64_t cap_ms, uint64_t rnd);
extern int64_t stomp_backoff_decorrelated(int64_t prev_ms, int64_t base_ms,
										  int64_t cap_ms, uint64_t rnd);

/* ----------------------------------------------------------------
 * in stomp_retry.c: a consumer's retry schedules (pure)
 * ----------------------------------------------------------------
 */

/* first delay of both schedules, doubling */
#define STOMP_RETRY_BASE_MS			1000
/* the longest wait after a refused declaration */
#define STOMP_DECLARE_RETRY_CAP_MS	15000

typedef enum StompFailure
{
	STOMP_FAILURE_CONNECT,		/* no login: exponential, up to the cap */
	STOMP_FAILURE_DECLARE		/* a broker refused a declaration: short */
} StompFailure;

typedef struct StompRetry
{
	unsigned int connect_failures;	/* in a row, since the last login */
	unsigned int declare_failures;	/* in a row, since the last subscription */
} StompRetry;

extern void stomp_retry_reset(StompRetry *retry);
extern void stomp_retry_connected(StompRetry *retry);
extern void stomp_retry_subscribed(StompRetry *retry);
extern int64_t stomp_retry_failed(StompRetry *retry, StompFailure kind,
								  int64_t now_ms, int64_t max_backoff_ms,
								  uint64_t rnd);
extern unsigned int stomp_session_losses(unsigned int losses, bool lost,
										 unsigned int confirmed);

#endif							/* STOMP_FAILOVER_H */
