/*-------------------------------------------------------------------------
 *
 * test_util.h
 *	  A minimal test harness for the STOMP client unit tests.
 *
 * CHECK() records a pass or a failure (printing where it failed) and never
 * stops the run, so one run reports every broken expectation.  The counters
 * live in the test binary only; the product code has no global state.
 *
 * test/stomp/test_util.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STOMP_TEST_UTIL_H
#define STOMP_TEST_UTIL_H

#include <stdbool.h>

extern int	test_passed;
extern int	test_failed;

extern bool test_check(bool ok, const char *expr, const char *file, int line);

#define CHECK(cond) test_check((cond) ? true : false, #cond, __FILE__, __LINE__)

/* test groups, one per file */
extern void test_codec(void);
extern void test_number(void);
extern void test_conn_pure(void);
extern void test_conn_io(void);
extern void test_retry(void);
extern void test_refusal(void);
extern void test_consumer_decide(void);

/* the publisher's decisions (src/decide/publisher_*.c) */
extern void test_publisher_receipts(void);
extern void test_publisher_session(void);
extern void test_publisher_retry(void);
extern void test_publisher_lanes(void);

#endif							/* STOMP_TEST_UTIL_H */
