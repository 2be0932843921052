/*-------------------------------------------------------------------------
 *
 * test_main.c
 *	  Entry point of the STOMP client unit-test binary.
 *
 * Runs every test group and ends with the line "N passed, M failed", which
 * is what CI reads; the exit status is non-zero if anything failed.
 *
 * test/stomp/test_main.c
 *
 *-------------------------------------------------------------------------
 */
#include <signal.h>
#include <stdio.h>

#include "test_util.h"

int			test_passed = 0;
int			test_failed = 0;

/*
 * test_check
 *		Record one expectation; print the failed ones with their location.
 */
bool
test_check(bool ok, const char *expr, const char *file, int line)
{
	if (ok)
		test_passed++;
	else
	{
		test_failed++;
		printf("FAIL %s:%d: %s\n", file, line, expr);
		fflush(stdout);
	}
	return ok;
}

/*
 * main
 *		Run all groups and report.
 */
int
main(void)
{
	/* the socketpair tests must see EPIPE, not die of SIGPIPE */
	signal(SIGPIPE, SIG_IGN);

	printf("codec tests\n");
	test_codec();
	printf("decimal number tests\n");
	test_number();
	printf("connection helper tests\n");
	test_conn_pure();
	printf("connection tests (socketpair fake broker)\n");
	test_conn_io();
	printf("retry schedule tests\n");
	test_retry();
	printf("broker ERROR classification tests\n");
	test_refusal();
	printf("consumer decision tests\n");
	test_consumer_decide();

	printf("publisher receipt tests\n");
	test_publisher_receipts();
	printf("publisher session end tests\n");
	test_publisher_session();
	printf("publisher retry schedule tests\n");
	test_publisher_retry();
	printf("publisher lane tests\n");
	test_publisher_lanes();

	printf("%d passed, %d failed\n", test_passed, test_failed);
	return test_failed == 0 ? 0 : 1;
}
