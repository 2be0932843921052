/*-------------------------------------------------------------------------
 *
 * stomp_encode.c
 *	  STOMP 1.2 frame encoder with header escaping.
 *
 * The encoder validates the whole frame and computes its exact size before
 * writing anything, so a refused frame (or an allocation failure) leaves the
 * output buffer untouched and a frame is never half-queued.  The escaping
 * rules per command, and why CONNECT differs from the spec, are described
 * in stomp_frame.h above stomp_encode_frame().
 *
 * src/stomp/stomp_encode.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "stomp_frame.h"

/* How a frame's header names and values are written. */
typedef enum StompEscapeMode
{
	STOMP_ESCAPE_FULL,			/* \\ \n \r \c */
	STOMP_ESCAPE_BACKSLASH,		/* CONNECT/STOMP: \\ only, CR/LF refused */
	STOMP_ESCAPE_NONE			/* CONNECTED: raw, CR/LF refused */
} StompEscapeMode;

/*
 * The bytes that a header name or value may have to escape or may not
 * hold: every other byte is copied as it is.  Most headers hold none, so
 * the checks and the copy test one table entry a byte.
 */
static const bool stomp_special_byte[256] = {
	['\0'] = true,
	['\n'] = true,
	['\r'] = true,
	[':'] = true,
	['\\'] = true,
};

static StompEscapeMode stomp_escape_mode(const char *command);
static bool stomp_command_valid(const char *command);
static bool stomp_needs_content_length(const StompFrame *frame);
static bool stomp_check_bytes(StompEscapeMode mode, bool is_name,
							  const char *name, size_t name_len,
							  const char *bytes, size_t len,
							  size_t *escaped_len,
							  char *errbuf, size_t errlen);
static bool stomp_header_wire_len(StompEscapeMode mode,
								  const char *name, size_t name_len,
								  const char *value, size_t value_len,
								  size_t *escaped_name_len,
								  size_t *escaped_value_len,
								  char *errbuf, size_t errlen);
static char *stomp_write_escaped(char *dst, StompEscapeMode mode,
								 const char *src, size_t len);
static void stomp_set_error(char *errbuf, size_t errlen, const char *msg,
							const char *name, size_t name_len);
static size_t stomp_u64_digits(uint64_t value);
static bool stomp_frame_wire_size(const StompFrame *frame, size_t *size,
								  char *errbuf, size_t errlen);

/*
 * stomp_escape_mode
 *		Choose the escaping rule for a command (see stomp_frame.h).
 */
static StompEscapeMode
stomp_escape_mode(const char *command)
{
	if (strcmp(command, "CONNECT") == 0 || strcmp(command, "STOMP") == 0)
		return STOMP_ESCAPE_BACKSLASH;
	if (strcmp(command, "CONNECTED") == 0)
		return STOMP_ESCAPE_NONE;
	return STOMP_ESCAPE_FULL;
}

/*
 * stomp_command_valid
 *		A command is one or more upper-case ASCII letters, as every STOMP
 *		command is; anything else would not be understood by a broker.
 */
static bool
stomp_command_valid(const char *command)
{
	const char *p;

	if (command == NULL || command[0] == '\0')
		return false;
	for (p = command; *p; p++)
	{
		if (*p < 'A' || *p > 'Z')
			return false;
	}
	return true;
}

/*
 * stomp_needs_content_length
 *		Whether the encoder writes a content-length header: for every frame
 *		with a body, and always for the frames that carry messages.
 */
static bool
stomp_needs_content_length(const StompFrame *frame)
{
	return frame->body_len > 0 ||
		strcmp(frame->command, "SEND") == 0 ||
		strcmp(frame->command, "MESSAGE") == 0 ||
		strcmp(frame->command, "ERROR") == 0;
}

/*
 * stomp_set_error
 *		Format an error about a header, naming it (sanitized) but never
 *		quoting its value.  "msg" has one %s for the name.
 */
static void
stomp_set_error(char *errbuf, size_t errlen, const char *msg,
				const char *name, size_t name_len)
{
	char		desc[72];

	if (errbuf == NULL || errlen == 0)
		return;
	stomp_describe_name(desc, sizeof(desc), name, name_len);
	snprintf(errbuf, errlen, msg, desc);
}

/*
 * stomp_check_bytes
 *		Validate a header name or value for "mode" and compute its escaped
 *		length.  Returns false with an error message if it cannot be sent.
 */
static bool
stomp_check_bytes(StompEscapeMode mode, bool is_name,
				  const char *name, size_t name_len,
				  const char *bytes, size_t len, size_t *escaped_len,
				  char *errbuf, size_t errlen)
{
	size_t		i;
	size_t		extra = 0;

	for (i = 0; i < len; i++)
	{
		if (!stomp_special_byte[(unsigned char) bytes[i]])
			continue;
		switch (bytes[i])
		{
			case '\0':
				stomp_set_error(errbuf, errlen,
								is_name ? "header name \"%s\" contains a NUL byte" :
								"value of header \"%s\" contains a NUL byte",
								name, name_len);
				return false;
			case '\n':
			case '\r':
				if (mode != STOMP_ESCAPE_FULL)
				{
					stomp_set_error(errbuf, errlen,
									is_name ? "CONNECT header name \"%s\" contains CR or LF" :
									"value of CONNECT header \"%s\" contains CR or LF",
									name, name_len);
					return false;
				}
				extra++;
				break;
			case ':':
				if (mode == STOMP_ESCAPE_FULL)
					extra++;
				else if (is_name)
				{
					stomp_set_error(errbuf, errlen,
									"CONNECT header name \"%s\" contains a colon",
									name, name_len);
					return false;
				}
				break;
			case '\\':
				if (mode != STOMP_ESCAPE_NONE)
					extra++;
				break;
			default:
				break;
		}
	}
	*escaped_len = len + extra;
	return true;
}

/*
 * stomp_header_wire_len
 *		Validate one header for "mode" and compute the escaped lengths of
 *		its name and value, each read once.  Returns false with an error
 *		message if it cannot be sent.
 */
static bool
stomp_header_wire_len(StompEscapeMode mode,
					  const char *name, size_t name_len,
					  const char *value, size_t value_len,
					  size_t *escaped_name_len, size_t *escaped_value_len,
					  char *errbuf, size_t errlen)
{
	if (name_len == 0)
	{
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "header name is empty");
		return false;
	}
	if (name_len == strlen("content-length") &&
		memcmp(name, "content-length", name_len) == 0)
	{
		if (errbuf && errlen)
			snprintf(errbuf, errlen,
					 "header \"content-length\" is set by the STOMP encoder and cannot be given");
		return false;
	}
	return stomp_check_bytes(mode, true, name, name_len, name, name_len,
							 escaped_name_len, errbuf, errlen) &&
		stomp_check_bytes(mode, false, name, name_len, value, value_len,
						  escaped_value_len, errbuf, errlen);
}

/*
 * stomp_check_header
 *		Validate one header as the encoder would for frames of "command".
 */
bool
stomp_check_header(const char *command,
				   const char *name, size_t name_len,
				   const char *value, size_t value_len,
				   char *errbuf, size_t errlen)
{
	size_t		nlen;
	size_t		vlen;

	return stomp_header_wire_len(stomp_escape_mode(command),
								 name, name_len, value, value_len,
								 &nlen, &vlen, errbuf, errlen);
}

/*
 * stomp_write_escaped
 *		Copy "src" to "dst" escaping it for "mode"; returns the end of the
 *		written bytes.  The bytes were validated by stomp_check_bytes().
 */
static char *
stomp_write_escaped(char *dst, StompEscapeMode mode, const char *src,
					size_t len)
{
	size_t		i;

	if (mode == STOMP_ESCAPE_NONE)
	{
		if (len > 0)
			memcpy(dst, src, len);
		return dst + len;
	}
	for (i = 0; i < len; i++)
	{
		char		c = src[i];

		if (!stomp_special_byte[(unsigned char) c])
			*dst++ = c;
		else if (c == '\\')
		{
			*dst++ = '\\';
			*dst++ = '\\';
		}
		else if (mode == STOMP_ESCAPE_FULL && c == '\n')
		{
			*dst++ = '\\';
			*dst++ = 'n';
		}
		else if (mode == STOMP_ESCAPE_FULL && c == '\r')
		{
			*dst++ = '\\';
			*dst++ = 'r';
		}
		else if (mode == STOMP_ESCAPE_FULL && c == ':')
		{
			*dst++ = '\\';
			*dst++ = 'c';
		}
		else
			*dst++ = c;
	}
	return dst;
}

/*
 * stomp_u64_digits
 *		Number of decimal digits of "value".
 */
static size_t
stomp_u64_digits(uint64_t value)
{
	size_t		n = 1;

	while (value >= 10)
	{
		value /= 10;
		n++;
	}
	return n;
}

/*
 * stomp_frame_wire_size
 *		Validate "frame" and compute the exact size of its wire form.
 *		Returns false with a message if it cannot be encoded.
 */
static bool
stomp_frame_wire_size(const StompFrame *frame, size_t *size,
					  char *errbuf, size_t errlen)
{
	StompEscapeMode mode;
	size_t		total;
	size_t		i;

	if (!stomp_command_valid(frame->command))
	{
		if (errbuf && errlen)
			snprintf(errbuf, errlen,
					 "invalid STOMP command (must be upper-case letters)");
		return false;
	}
	mode = stomp_escape_mode(frame->command);
	total = strlen(frame->command) + 1;
	for (i = 0; i < frame->nheaders; i++)
	{
		const StompHeader *h = &frame->headers[i];
		size_t		nlen;
		size_t		vlen;

		if (!stomp_header_wire_len(mode, h->name, h->name_len,
								   h->value, h->value_len, &nlen, &vlen,
								   errbuf, errlen))
			return false;
		/* each part is at most twice a length that fits in memory */
		if (nlen > SIZE_MAX / 4 || vlen > SIZE_MAX / 4 ||
			total > SIZE_MAX / 2 - nlen - vlen - 2)
			goto too_big;
		total += nlen + 1 + vlen + 1;
	}
	if (stomp_needs_content_length(frame))
		total += strlen("content-length:") + stomp_u64_digits(frame->body_len) + 1;
	if (frame->body_len > SIZE_MAX / 2 - total - 2)
		goto too_big;
	total += 1 + frame->body_len + 1;
	*size = total;
	return true;

too_big:
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "STOMP frame too large to encode");
	return false;
}

/*
 * stomp_encoded_length
 *		Exact number of bytes stomp_encode_frame() would append for
 *		"frame", or 0 if it would refuse the frame.  Lets a caller check an
 *		output limit before encoding.
 */
size_t
stomp_encoded_length(const StompFrame *frame)
{
	size_t		size;

	if (!stomp_frame_wire_size(frame, &size, NULL, 0))
		return 0;
	return size;
}

/*
 * stomp_encode_frame
 *		Append the wire form of "frame" to "out".
 *
 * Two passes: the first validates and sizes every part, the second writes
 * into space reserved once, so a refused frame leaves "out" unchanged.
 */
bool
stomp_encode_frame(StompBuf *out, const StompFrame *frame,
				   char *errbuf, size_t errlen)
{
	StompEscapeMode mode;
	size_t		total;
	size_t		i;
	char	   *p;
	char	   *start;

	if (!stomp_frame_wire_size(frame, &total, errbuf, errlen))
		return false;
	mode = stomp_escape_mode(frame->command);

	if (!stomp_buf_reserve(out, total))
	{
		if (errbuf && errlen)
		{
			if (out->max != 0 && (total > out->max || out->len > out->max - total))
				snprintf(errbuf, errlen,
						 "STOMP output buffer limit of %zu bytes reached", out->max);
			else
				snprintf(errbuf, errlen, "out of memory encoding a STOMP frame");
		}
		return false;
	}

	start = p = out->data + out->len;
	i = strlen(frame->command);
	memcpy(p, frame->command, i);
	p += i;
	*p++ = '\n';
	for (i = 0; i < frame->nheaders; i++)
	{
		const StompHeader *h = &frame->headers[i];

		p = stomp_write_escaped(p, mode, h->name, h->name_len);
		*p++ = ':';
		p = stomp_write_escaped(p, mode, h->value, h->value_len);
		*p++ = '\n';
	}
	if (stomp_needs_content_length(frame))
	{
		char		digits[24];
		size_t		nd = stomp_u64_digits(frame->body_len);
		uint64_t	v = frame->body_len;
		size_t		k;

		for (k = nd; k > 0; k--)
		{
			digits[k - 1] = (char) ('0' + v % 10);
			v /= 10;
		}
		memcpy(p, "content-length:", strlen("content-length:"));
		p += strlen("content-length:");
		memcpy(p, digits, nd);
		p += nd;
		*p++ = '\n';
	}
	*p++ = '\n';
	if (frame->body_len > 0)
	{
		memcpy(p, frame->body, frame->body_len);
		p += frame->body_len;
	}
	*p++ = '\0';
	out->len += (size_t) (p - start);
	out->data[out->len] = '\0';
	return true;
}
