/*-------------------------------------------------------------------------
 *
 * stomp_number.c
 *	  Whole numbers written in decimal: a content-length, a receipt id, a
 *	  heart-beat interval, a port, and the header values outbox checks
 *	  before a broker reads them as numbers.
 *
 * One rule for all of them: ASCII digits alone, at least one, no sign nor
 * blank (a caller that allows blanks around a number trims them first),
 * and no value above the caller's bound, tested before it could overflow.
 *
 * Error policy: none; a text that is not such a number is refused.
 * Memory: none allocated.
 *
 * src/stomp/stomp_number.c
 *
 *-------------------------------------------------------------------------
 */
#include "stomp_number.h"

/*
 * stomp_parse_decimal
 *		Whether text (len bytes, not NUL-terminated) is a whole number of
 *		at most max; if so and value is not NULL, *value is that number.
 */
bool
stomp_parse_decimal(const char *text, size_t len, uint64_t max,
					uint64_t *value)
{
	uint64_t	v = 0;
	size_t		i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
	{
		unsigned	digit;

		if (text[i] < '0' || text[i] > '9')
			return false;
		digit = (unsigned) (text[i] - '0');
		if (digit > max || v > (max - digit) / 10)
			return false;
		v = v * 10 + digit;
	}
	if (value != NULL)
		*value = v;
	return true;
}
