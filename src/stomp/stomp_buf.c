/*-------------------------------------------------------------------------
 *
 * stomp_buf.c
 *	  A growable byte buffer for the STOMP codec and connection layer.
 *
 * Every growth is checked for size overflow and allocation failure; a
 * failed append returns false and leaves the buffer unchanged, so callers
 * can report "out of memory" (or "buffer limit reached") and carry on.
 *
 * src/stomp/stomp_buf.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "stomp_frame.h"

/* Smallest allocation, to avoid many tiny reallocations. */
#define STOMP_BUF_MIN_CAP	256

/*
 * stomp_buf_init
 *		Make "buf" a valid empty buffer without a limit.
 */
void
stomp_buf_init(StompBuf *buf)
{
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
	buf->max = 0;
}

/*
 * stomp_buf_free
 *		Release the buffer's memory; it is left empty and reusable.
 */
void
stomp_buf_free(StompBuf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}

/*
 * stomp_buf_reset
 *		Empty the buffer but keep its memory for reuse.
 */
void
stomp_buf_reset(StompBuf *buf)
{
	buf->len = 0;
	if (buf->data)
		buf->data[0] = '\0';
}

/*
 * stomp_buf_reserve
 *		Make room for "extra" more bytes (plus the NUL slot).
 *
 * Grows geometrically so a sequence of appends is amortized linear.
 * Returns false on overflow, on exceeding buf->max, or when malloc fails.
 */
bool
stomp_buf_reserve(StompBuf *buf, size_t extra)
{
	size_t		need;
	size_t		newcap;
	char	   *newdata;

	if (extra > SIZE_MAX - 1 - buf->len)
		return false;
	if (buf->max != 0 && buf->len + extra > buf->max)
		return false;
	need = buf->len + extra + 1;
	if (need <= buf->cap)
		return true;

	newcap = buf->cap < STOMP_BUF_MIN_CAP ? STOMP_BUF_MIN_CAP : buf->cap;
	while (newcap < need)
	{
		if (newcap > SIZE_MAX / 2)
		{
			newcap = need;
			break;
		}
		newcap *= 2;
	}
	newdata = realloc(buf->data, newcap);
	if (newdata == NULL)
		return false;
	buf->data = newdata;
	buf->cap = newcap;
	return true;
}

/*
 * stomp_buf_append
 *		Append "len" bytes; keeps the contents NUL-terminated.
 */
bool
stomp_buf_append(StompBuf *buf, const void *data, size_t len)
{
	if (!stomp_buf_reserve(buf, len))
		return false;
	if (len > 0)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
	return true;
}

/*
 * stomp_buf_append_str
 *		Append a C string (without its terminator).
 */
bool
stomp_buf_append_str(StompBuf *buf, const char *str)
{
	return stomp_buf_append(buf, str, strlen(str));
}

/*
 * stomp_buf_append_byte
 *		Append one byte.
 */
bool
stomp_buf_append_byte(StompBuf *buf, char c)
{
	return stomp_buf_append(buf, &c, 1);
}

/*
 * stomp_buf_append_u64
 *		Append the decimal representation of "value" (used for
 *		content-length and receipt ids, so no printf is needed).
 */
bool
stomp_buf_append_u64(StompBuf *buf, uint64_t value)
{
	char		tmp[24];
	size_t		n = 0;
	size_t		i;
	char		out[24];

	do
	{
		tmp[n++] = (char) ('0' + value % 10);
		value /= 10;
	} while (value != 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return stomp_buf_append(buf, out, n);
}

/*
 * stomp_buf_trim
 *		Give back what the buffer holds beyond STOMP_BUF_KEEP_CAP when its
 *		contents fit in that.  If the allocator cannot shrink it, the
 *		buffer stays as it was.
 */
void
stomp_buf_trim(StompBuf *buf)
{
	char	   *newdata;

	if (buf->cap <= STOMP_BUF_KEEP_CAP || buf->len + 1 > STOMP_BUF_KEEP_CAP)
		return;
	newdata = realloc(buf->data, STOMP_BUF_KEEP_CAP);
	if (newdata == NULL)
		return;
	buf->data = newdata;
	buf->cap = STOMP_BUF_KEEP_CAP;
}

/*
 * stomp_buf_consume
 *		Drop the first "n" bytes (used by the output queue after a partial
 *		write).  Moves the remainder down; callers that consume little by
 *		little from big buffers should track an offset instead.
 */
void
stomp_buf_consume(StompBuf *buf, size_t n)
{
	if (n >= buf->len)
	{
		stomp_buf_reset(buf);
		return;
	}
	memmove(buf->data, buf->data + n, buf->len - n);
	buf->len -= n;
	buf->data[buf->len] = '\0';
}
