/*-------------------------------------------------------------------------
 *
 * test_number.c
 *	  Unit tests of src/stomp/stomp_number.c: whole numbers in decimal, at
 *	  and around each bound, and what is not one.
 *
 * test/stomp/test_number.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <string.h>

#include "stomp_number.h"
#include "test_util.h"

/* Whether text is a number of at most max, and then whether it is want */
static int
parses_as(const char *text, uint64_t max, uint64_t want)
{
	uint64_t	v = 12345;

	return stomp_parse_decimal(text, strlen(text), max, &v) && v == want;
}

/* Whether text is refused, its output left as it was */
static int
refused(const char *text, uint64_t max)
{
	uint64_t	v = 12345;

	return !stomp_parse_decimal(text, strlen(text), max, &v) && v == 12345;
}

/*
 * test_number
 *		Every rule of stomp_parse_decimal().
 */
void
test_number(void)
{
	CHECK(parses_as("0", 0, 0));
	CHECK(parses_as("000", 0, 0));
	CHECK(parses_as("42", 100, 42));
	CHECK(parses_as("255", 255, 255));
	CHECK(refused("256", 255));
	/* a digit above a bound under ten */
	CHECK(parses_as("5", 5, 5));
	CHECK(refused("9", 5));
	CHECK(refused("1", 0));
	CHECK(refused("10", 9));
	CHECK(parses_as("65535", 65535, 65535));
	CHECK(refused("65536", 65535));
	CHECK(refused("99999999999", 65535));
	/* the largest values, and one past them, without overflow */
	CHECK(parses_as("18446744073709551615", UINT64_MAX, UINT64_MAX));
	CHECK(refused("18446744073709551616", UINT64_MAX));
	CHECK(refused("18446744073709551620", UINT64_MAX));
	CHECK(refused("99999999999999999999", UINT64_MAX));
	CHECK(parses_as("9223372036854775807", INT64_MAX, INT64_MAX));
	CHECK(refused("9223372036854775808", INT64_MAX));
	/* digits alone: no sign, blank, point, exponent or empty text */
	CHECK(refused("", UINT64_MAX));
	CHECK(refused("-1", UINT64_MAX));
	CHECK(refused("+1", UINT64_MAX));
	CHECK(refused(" 1", UINT64_MAX));
	CHECK(refused("1 ", UINT64_MAX));
	CHECK(refused("1.5", UINT64_MAX));
	CHECK(refused("1e3", UINT64_MAX));
	CHECK(refused("0x10", UINT64_MAX));
	/* the length is what counts, not a NUL */
	CHECK(stomp_parse_decimal("12ab", 2, 100, NULL));
	CHECK(!stomp_parse_decimal("12\0" "3", 4, 1000, NULL));
	CHECK(!stomp_parse_decimal("7", 0, 100, NULL));
}
