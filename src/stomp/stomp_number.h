/*-------------------------------------------------------------------------
 *
 * stomp_number.h
 *	  Whole numbers written in decimal, as STOMP headers, broker addresses
 *	  and outbox's settings carry them (stomp_number.c).
 *
 * No PostgreSQL header: the codec, the session and the extension's own
 * checks all use it.
 *
 * src/stomp/stomp_number.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STOMP_NUMBER_H
#define STOMP_NUMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern bool stomp_parse_decimal(const char *text, size_t len, uint64_t max,
								uint64_t *value);

#endif							/* STOMP_NUMBER_H */
