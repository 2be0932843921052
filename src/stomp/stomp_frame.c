/*-------------------------------------------------------------------------
 *
 * stomp_frame.c
 *	  The STOMP frame model: construction, header lookup, destruction.
 *
 * A frame owns its command, its headers (each name and value NUL-terminated
 * with explicit lengths) and its body.  Header order is kept exactly as
 * added or received; lookups return the first header of a given name, as
 * STOMP 1.2 and RabbitMQ do for repeated headers.
 *
 * src/stomp/stomp_frame.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "stomp_frame.h"

/*
 * stomp_frame_new
 *		Allocate an empty frame with the given command; NULL if out of memory.
 */
StompFrame *
stomp_frame_new(const char *command)
{
	StompFrame *frame;
	size_t		len = strlen(command);

	frame = calloc(1, sizeof(StompFrame));
	if (frame == NULL)
		return NULL;
	frame->command = malloc(len + 1);
	if (frame->command == NULL)
	{
		free(frame);
		return NULL;
	}
	memcpy(frame->command, command, len + 1);
	return frame;
}

/*
 * stomp_frame_bytes
 *		The bytes a frame carries: command, header names and values, body.
 *		What bounds on memory held in frames count (the allocations add a
 *		little per header).
 */
size_t
stomp_frame_bytes(const StompFrame *frame)
{
	size_t		bytes = strlen(frame->command) + frame->body_len;
	size_t		i;

	for (i = 0; i < frame->nheaders; i++)
		bytes += frame->headers[i].name_len + frame->headers[i].value_len;
	return bytes;
}

/*
 * stomp_frame_free
 *		Release a frame and everything it owns; NULL is allowed.
 */
void
stomp_frame_free(StompFrame *frame)
{
	size_t		i;

	if (frame == NULL)
		return;
	for (i = 0; i < frame->nheaders; i++)
		free(frame->headers[i].name);	/* value shares the allocation */
	free(frame->headers);
	free(frame->body);
	free(frame->command);
	free(frame);
}

/*
 * stomp_frame_add_header_len
 *		Append a header given as counted byte strings.
 *
 * Name and value are copied into one allocation.  No validation happens
 * here (the encoder validates), so callers can build any frame, including
 * ones the encoder will refuse.  Returns false if out of memory.
 */
bool
stomp_frame_add_header_len(StompFrame *frame,
						   const char *name, size_t name_len,
						   const char *value, size_t value_len)
{
	char	   *mem;
	StompHeader *h;

	if (name_len > SIZE_MAX / 2 - 2 || value_len > SIZE_MAX / 2 - 2)
		return false;
	if (frame->nheaders == frame->headers_cap)
	{
		size_t		newcap = frame->headers_cap ? frame->headers_cap * 2 : 8;
		StompHeader *newh;

		if (newcap > SIZE_MAX / sizeof(StompHeader))
			return false;
		newh = realloc(frame->headers, newcap * sizeof(StompHeader));
		if (newh == NULL)
			return false;
		frame->headers = newh;
		frame->headers_cap = newcap;
	}
	mem = malloc(name_len + value_len + 2);
	if (mem == NULL)
		return false;
	if (name_len > 0)
		memcpy(mem, name, name_len);
	mem[name_len] = '\0';
	if (value_len > 0)
		memcpy(mem + name_len + 1, value, value_len);
	mem[name_len + 1 + value_len] = '\0';

	h = &frame->headers[frame->nheaders++];
	h->name = mem;
	h->name_len = name_len;
	h->value = mem + name_len + 1;
	h->value_len = value_len;
	return true;
}

/*
 * stomp_frame_add_header
 *		Append a header given as C strings.
 */
bool
stomp_frame_add_header(StompFrame *frame, const char *name, const char *value)
{
	return stomp_frame_add_header_len(frame, name, strlen(name),
									  value, strlen(value));
}

/*
 * stomp_frame_set_body
 *		Replace the body with a copy of "len" bytes (NUL-terminated copy).
 */
bool
stomp_frame_set_body(StompFrame *frame, const void *body, size_t len)
{
	char	   *copy = NULL;

	if (len > 0)
	{
		if (len == SIZE_MAX)
			return false;
		copy = malloc(len + 1);
		if (copy == NULL)
			return false;
		memcpy(copy, body, len);
		copy[len] = '\0';
	}
	free(frame->body);
	frame->body = copy;
	frame->body_len = len;
	return true;
}

/*
 * stomp_frame_find_header
 *		Return the first header called "name", or NULL.
 */
const StompHeader *
stomp_frame_find_header(const StompFrame *frame, const char *name)
{
	size_t		i;
	size_t		len = strlen(name);

	for (i = 0; i < frame->nheaders; i++)
	{
		const StompHeader *h = &frame->headers[i];

		if (h->name_len == len && memcmp(h->name, name, len) == 0)
			return h;
	}
	return NULL;
}

/*
 * stomp_frame_get_header
 *		Return the value of the first header called "name", or NULL.
 */
const char *
stomp_frame_get_header(const StompFrame *frame, const char *name)
{
	const StompHeader *h = stomp_frame_find_header(frame, name);

	return h ? h->value : NULL;
}

/*
 * stomp_frame_remove_header
 *		Remove every header called "name", keeping the order of the rest.
 *		Returns how many were removed.
 */
size_t
stomp_frame_remove_header(StompFrame *frame, const char *name)
{
	size_t		len = strlen(name);
	size_t		i;
	size_t		j = 0;
	size_t		removed = 0;

	for (i = 0; i < frame->nheaders; i++)
	{
		StompHeader *h = &frame->headers[i];

		if (h->name_len == len && memcmp(h->name, name, len) == 0)
		{
			free(h->name);
			removed++;
			continue;
		}
		frame->headers[j++] = *h;
	}
	frame->nheaders = j;
	return removed;
}

/*
 * stomp_describe_name
 *		Copy a header name into "dst" for use in an error message: at most
 *		64 bytes, non-printable bytes shown as '?', truncation marked "...".
 *
 * Error messages end up in the server log and in client messages, which
 * must stay valid text whatever bytes a header name holds.
 */
void
stomp_describe_name(char *dst, size_t dstlen, const char *name, size_t len)
{
	size_t		i;
	size_t		n = 0;
	size_t		limit = 64;

	if (dstlen == 0)
		return;
	if (limit > dstlen - 1)
		limit = dstlen - 1;
	for (i = 0; i < len && n < limit; i++)
	{
		unsigned char c = (unsigned char) name[i];

		dst[n++] = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
	}
	if (i < len && n >= 3)
	{
		dst[n - 3] = '.';
		dst[n - 2] = '.';
		dst[n - 1] = '.';
	}
	dst[n] = '\0';
}
