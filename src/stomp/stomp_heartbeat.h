/*-------------------------------------------------------------------------
 *
 * stomp_heartbeat.h
 *	  The STOMP client's heart-beat arithmetic: negotiation and the two
 *	  timers (stomp_heartbeat.c).
 *
 * Pure functions of the CONNECT and CONNECTED headers and of times the
 * caller passes in (monotonic milliseconds): no I/O, no clock of its own,
 * no PostgreSQL header.  The session (stomp_conn.c) keeps one
 * StompHeartbeat per connection.
 *
 * src/stomp/stomp_heartbeat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STOMP_HEARTBEAT_H
#define STOMP_HEARTBEAT_H

#include <stdbool.h>
#include <stdint.h>

/* ----------------------------------------------------------------
 * in stomp_heartbeat.c: heart-beat negotiation and timers (pure)
 * ----------------------------------------------------------------
 */

/*
 * The connection is declared dead when nothing at all has been read for
 * this many incoming heart-beat intervals.  2 tolerates one lost or late
 * beat plus scheduling delay; RabbitMQ itself waits about 3 intervals.
 */
#define STOMP_HEARTBEAT_DEAD_FACTOR	2

typedef struct StompHeartbeat
{
	int64_t		send_every_ms;	/* 0 = we send no heart-beats */
	int64_t		expect_every_ms;	/* 0 = we expect none */
	int64_t		last_read_ms;	/* time anything was last read */
	int64_t		last_write_ms;	/* time anything was last written */
} StompHeartbeat;

extern bool stomp_heartbeat_parse(const char *spec, int64_t *x_ms,
								  int64_t *y_ms);
extern void stomp_heartbeat_negotiate(StompHeartbeat *hb,
									  int64_t client_send_ms,
									  int64_t client_recv_ms,
									  int64_t server_send_ms,
									  int64_t server_recv_ms);
extern int64_t stomp_heartbeat_send_due(const StompHeartbeat *hb);
extern int64_t stomp_heartbeat_dead_at(const StompHeartbeat *hb);

#endif							/* STOMP_HEARTBEAT_H */
