/*-------------------------------------------------------------------------
 *
 * stomp_decode.c
 *	  Incremental STOMP 1.2 frame decoder.
 *
 * Bytes go in with stomp_decoder_feed() in whatever pieces the network
 * delivers; stomp_decoder_next() hands out each complete frame.  The
 * decoder is a small state machine (command line, header lines, body) over
 * one input buffer:
 *
 *	- "pos" marks the start of the unconsumed input; finished lines and
 *	  bodies advance it.  "scan" remembers how far past pos we already
 *	  searched for the next LF (or NUL), so feeding one byte at a time is
 *	  linear, not quadratic.
 *	- Consumed input is compacted away in feed() once it is at least half
 *	  of the buffer, so the memory moved is bounded by the bytes consumed.
 *	- Header lines are unescaped in place in the input buffer (unescaping
 *	  only shrinks) and then copied into the frame.
 *
 * Grammar accepted (STOMP 1.2, with RabbitMQ's behaviour where it differs):
 * any number of EOLs (LF or CRLF: heart-beats, and RabbitMQ's LF after
 * each NUL) between frames; command and header lines end in LF or CRLF; a
 * header line splits at its first colon; header names and values are
 * unescaped (\\ \n \r \c) for every frame except CONNECTED; an unknown
 * escape or a lone trailing backslash is an error; with a content-length
 * header (the first one wins) exactly that many body bytes are read and a
 * NUL must follow, otherwise the body ends at the first NUL.
 *
 * Every error is sticky: once stomp_decoder_next() returned -1, the stream
 * is out of sync and the connection must be dropped.
 *
 * A MESSAGE past the limits on headers (their count, a line's length,
 * their bytes) is not an error: the broker would deliver it again on every
 * connection, and no other message of its queue would get through.  Its
 * headers past a limit are dropped as they come, an over-long line without
 * ever being held whole, but for the first of each header the receiver
 * needs to settle it (ack, message-id, subscription, content-length, ...),
 * and the frame says so (headers_dropped): the receiver dead-letters it.
 * The body's limit stays an error.
 *
 * src/stomp/stomp_decode.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp_frame.h"
#include "stomp_number.h"

static int	stomp_decode_fail(StompDecoder *dec, const char *fmt,...)
			STOMP_PRINTF_FORMAT(2, 3);
static int	stomp_decode_command(StompDecoder *dec);
static int	stomp_decode_header(StompDecoder *dec);
static int	stomp_drop_line(StompDecoder *dec);
static bool stomp_header_kept_past_limits(const StompDecoder *dec,
										  const char *line, size_t line_len);
static int	stomp_decode_body(StompDecoder *dec, StompFrame **frame_out);
static bool stomp_find_line(StompDecoder *dec, size_t *line_len,
							size_t *eol_len);
static bool stomp_unescape(char *s, size_t len, size_t *out_len);
static bool stomp_parse_length(const char *s, size_t len, size_t *out);

/*
 * stomp_decode_fail
 *		Enter the sticky error state with a formatted message; returns -1
 *		so callers can "return stomp_decode_fail(...)".
 */
static int
stomp_decode_fail(StompDecoder *dec, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(dec->errmsg, sizeof(dec->errmsg), fmt, ap);
	va_end(ap);
	dec->state = STOMP_DECODE_ERROR;
	stomp_frame_free(dec->frame);
	dec->frame = NULL;
	return -1;
}

/*
 * stomp_decoder_init
 *		Prepare a decoder; "limits" may be NULL, and any zero field in it
 *		takes the default.
 */
void
stomp_decoder_init(StompDecoder *dec, const StompLimits *limits)
{
	memset(dec, 0, sizeof(StompDecoder));
	if (limits)
		dec->limits = *limits;
	if (dec->limits.max_header_count == 0)
		dec->limits.max_header_count = STOMP_DEFAULT_MAX_HEADER_COUNT;
	if (dec->limits.max_line_len == 0)
		dec->limits.max_line_len = STOMP_DEFAULT_MAX_LINE_LEN;
	if (dec->limits.max_header_bytes == 0)
		dec->limits.max_header_bytes = STOMP_DEFAULT_MAX_HEADER_BYTES;
	if (dec->limits.max_body_len == 0)
		dec->limits.max_body_len = STOMP_DEFAULT_MAX_BODY_LEN;
	stomp_buf_init(&dec->in);
	dec->state = STOMP_DECODE_COMMAND;
}

/*
 * stomp_decoder_free
 *		Release everything the decoder holds.
 */
void
stomp_decoder_free(StompDecoder *dec)
{
	stomp_frame_free(dec->frame);
	dec->frame = NULL;
	stomp_buf_free(&dec->in);
	dec->pos = 0;
	dec->scan = 0;
}

/*
 * stomp_decoder_reset
 *		Forget all input and any error, keeping the limits (for reuse on a
 *		new connection).
 */
void
stomp_decoder_reset(StompDecoder *dec)
{
	StompLimits limits = dec->limits;

	stomp_decoder_free(dec);
	stomp_decoder_init(dec, &limits);
}

/*
 * stomp_decoder_error
 *		The message describing why the decoder failed ("" if it has not).
 */
const char *
stomp_decoder_error(const StompDecoder *dec)
{
	return dec->errmsg;
}

/*
 * stomp_decoder_buffered
 *		Number of input bytes received but not yet consumed into frames.
 */
size_t
stomp_decoder_buffered(const StompDecoder *dec)
{
	return dec->in.len - dec->pos;
}

/*
 * stomp_decoder_feed
 *		Append received bytes.  Returns false (and enters the error state)
 *		only when out of memory; also false if already in the error state.
 */
bool
stomp_decoder_feed(StompDecoder *dec, const void *data, size_t len)
{
	if (dec->state == STOMP_DECODE_ERROR)
		return false;

	/*
	 * compact: drop consumed bytes once they are half the buffer, and the
	 * memory a huge frame left behind
	 */
	if (dec->pos > 0 && (dec->pos == dec->in.len || dec->pos >= dec->in.len / 2))
	{
		stomp_buf_consume(&dec->in, dec->pos);
		dec->pos = 0;
		stomp_buf_trim(&dec->in);
	}
	if (!stomp_buf_append(&dec->in, data, len))
	{
		(void) stomp_decode_fail(dec, "out of memory buffering %zu received bytes",
								 len);
		return false;
	}
	return true;
}

/*
 * stomp_find_line
 *		Look for the end of the line starting at dec->pos.  On success sets
 *		the line length (without EOL) and the EOL length (1 for LF, 2 for
 *		CRLF) and returns true; otherwise records how far it searched.
 */
static bool
stomp_find_line(StompDecoder *dec, size_t *line_len, size_t *eol_len)
{
	const char *base = dec->in.data + dec->pos;
	size_t		avail = dec->in.len - dec->pos;
	const char *lf;

	if (dec->scan >= avail)
		return false;
	lf = memchr(base + dec->scan, '\n', avail - dec->scan);
	if (lf == NULL)
	{
		dec->scan = avail;
		return false;
	}
	*line_len = (size_t) (lf - base);
	*eol_len = 1;
	if (*line_len > 0 && base[*line_len - 1] == '\r')
	{
		(*line_len)--;
		*eol_len = 2;
	}
	dec->scan = 0;
	return true;
}

/*
 * stomp_unescape
 *		Undo STOMP 1.2 header escaping in place.  Returns false on an
 *		unknown escape or a trailing lone backslash.
 */
static bool
stomp_unescape(char *s, size_t len, size_t *out_len)
{
	size_t		i;
	size_t		o = 0;

	for (i = 0; i < len; i++)
	{
		if (s[i] != '\\')
		{
			s[o++] = s[i];
			continue;
		}
		if (i + 1 >= len)
			return false;
		switch (s[++i])
		{
			case '\\':
				s[o++] = '\\';
				break;
			case 'n':
				s[o++] = '\n';
				break;
			case 'r':
				s[o++] = '\r';
				break;
			case 'c':
				s[o++] = ':';
				break;
			default:
				return false;
		}
	}
	*out_len = o;
	return true;
}

/*
 * stomp_parse_length
 *		Parse a content-length value: one or more ASCII digits, nothing
 *		else, no overflow.
 */
static bool
stomp_parse_length(const char *s, size_t len, size_t *out)
{
	uint64_t	v;

	if (!stomp_parse_decimal(s, len, SIZE_MAX, &v))
		return false;
	*out = (size_t) v;
	return true;
}

/*
 * stomp_decode_command
 *		Skip EOLs between frames and read the command line.
 *		Returns 1 when the command was read, 0 for more input, -1 on error.
 */
static int
stomp_decode_command(StompDecoder *dec)
{
	size_t		line_len;
	size_t		eol_len;
	size_t		i;
	char	   *line;

	/* heart-beats and the broker's LF after each frame */
	while (dec->pos < dec->in.len)
	{
		char		c = dec->in.data[dec->pos];

		if (c == '\n')
			dec->pos++;
		else if (c == '\r')
		{
			if (dec->pos + 1 >= dec->in.len)
				return 0;
			if (dec->in.data[dec->pos + 1] != '\n')
				return stomp_decode_fail(dec, "invalid STOMP frame: CR not followed by LF before a command");
			dec->pos += 2;
		}
		else
			break;
	}
	if (dec->pos >= dec->in.len)
		return 0;

	if (!stomp_find_line(dec, &line_len, &eol_len))
	{
		/* allow for a CR before the LF that has not arrived yet */
		if (dec->in.len - dec->pos > dec->limits.max_line_len + 1)
			return stomp_decode_fail(dec, "STOMP command line exceeds %zu bytes",
									 dec->limits.max_line_len);
		return 0;
	}
	if (line_len > dec->limits.max_line_len)
		return stomp_decode_fail(dec, "STOMP command line exceeds %zu bytes",
								 dec->limits.max_line_len);
	if (line_len + 1 > dec->limits.max_header_bytes)
		return stomp_decode_fail(dec, "STOMP frame headers exceed %zu bytes",
								 dec->limits.max_header_bytes);
	line = dec->in.data + dec->pos;
	if (line_len == 0)
		return stomp_decode_fail(dec, "invalid STOMP frame: empty command");
	for (i = 0; i < line_len; i++)
	{
		if (line[i] < 'A' || line[i] > 'Z')
		{
			if (line[i] == '\0')
				return stomp_decode_fail(dec, "invalid STOMP frame: NUL byte in command line");
			return stomp_decode_fail(dec, "invalid STOMP frame: command is not upper-case letters");
		}
	}

	/* NUL-terminate the command in place (overwrites the CR or LF) */
	line[line_len] = '\0';
	dec->frame = stomp_frame_new(line);
	if (dec->frame == NULL)
		return stomp_decode_fail(dec, "out of memory decoding a STOMP frame");
	dec->unescape = (strcmp(dec->frame->command, "CONNECTED") != 0);
	dec->may_drop = (strcmp(dec->frame->command, "MESSAGE") == 0);
	dec->dropping_line = false;
	dec->have_length = false;
	dec->content_length = 0;
	dec->header_bytes = line_len + 1;
	dec->pos += line_len + eol_len;
	dec->state = STOMP_DECODE_HEADERS;
	return 1;
}

/*
 * stomp_decode_header
 *		Read one header line, or the blank line that ends the headers.
 *		Returns 1 when a line was consumed, 0 for more input, -1 on error.
 */
static int
stomp_decode_header(StompDecoder *dec)
{
	size_t		line_len;
	size_t		eol_len;
	char	   *line;
	char	   *colon;
	size_t		name_len;
	size_t		value_len;
	const char *cmd = dec->frame->command;

	if (dec->dropping_line)
		return stomp_drop_line(dec);
	if (!stomp_find_line(dec, &line_len, &eol_len))
	{
		size_t		avail = dec->in.len - dec->pos;

		if (avail > dec->limits.max_line_len + 1)
		{
			if (!dec->may_drop)
				return stomp_decode_fail(dec, "STOMP %s frame has a header line over %zu bytes",
										 cmd, dec->limits.max_line_len);
			dec->frame->headers_dropped = true;
			dec->dropping_line = true;
			return stomp_drop_line(dec);
		}
		if (!dec->may_drop &&
			avail > dec->limits.max_header_bytes + 1 - dec->header_bytes)
			return stomp_decode_fail(dec, "STOMP %s frame headers exceed %zu bytes",
									 cmd, dec->limits.max_header_bytes);
		return 0;
	}
	line = dec->in.data + dec->pos;

	if (line_len == 0)
	{
		const StompHeader *h;

		/* end of headers */
		dec->pos += eol_len;
		h = stomp_frame_find_header(dec->frame, "content-length");
		if (h != NULL)
		{
			if (!stomp_parse_length(h->value, h->value_len, &dec->content_length))
				return stomp_decode_fail(dec, "STOMP %s frame has an invalid content-length header",
										 cmd);
			if (dec->content_length > dec->limits.max_body_len)
				return stomp_decode_fail(dec, "STOMP %s frame body of %zu bytes exceeds the limit of %zu bytes",
										 cmd, dec->content_length,
										 dec->limits.max_body_len);
			dec->have_length = true;
		}
		dec->state = STOMP_DECODE_BODY;
		return 1;
	}

	if (line_len > dec->limits.max_line_len ||
		dec->header_bytes > dec->limits.max_header_bytes ||
		line_len + 1 > dec->limits.max_header_bytes - dec->header_bytes ||
		dec->frame->nheaders >= dec->limits.max_header_count)
	{
		if (!dec->may_drop)
		{
			if (line_len > dec->limits.max_line_len)
				return stomp_decode_fail(dec, "STOMP %s frame has a header line over %zu bytes",
										 cmd, dec->limits.max_line_len);
			if (dec->frame->nheaders >= dec->limits.max_header_count)
				return stomp_decode_fail(dec, "STOMP %s frame has more than %zu headers",
										 cmd, dec->limits.max_header_count);
			return stomp_decode_fail(dec, "STOMP %s frame headers exceed %zu bytes",
									 cmd, dec->limits.max_header_bytes);
		}
		dec->frame->headers_dropped = true;
		if (line_len > dec->limits.max_line_len ||
			!stomp_header_kept_past_limits(dec, line, line_len))
		{
			dec->pos += line_len + eol_len;
			return 1;
		}
	}
	if (memchr(line, '\0', line_len) != NULL)
		return stomp_decode_fail(dec, "STOMP %s frame has a NUL byte in a header line", cmd);
	if (memchr(line, '\r', line_len) != NULL)
		return stomp_decode_fail(dec, "STOMP %s frame has a bare CR in a header line", cmd);
	colon = memchr(line, ':', line_len);
	if (colon == NULL)
		return stomp_decode_fail(dec, "STOMP %s frame has a header line without a colon", cmd);
	name_len = (size_t) (colon - line);
	value_len = line_len - name_len - 1;
	if (name_len == 0)
		return stomp_decode_fail(dec, "STOMP %s frame has a header with an empty name", cmd);
	if (dec->unescape)
	{
		if (!stomp_unescape(line, name_len, &name_len) ||
			!stomp_unescape(colon + 1, value_len, &value_len))
			return stomp_decode_fail(dec, "STOMP %s frame has an invalid escape sequence in a header",
									 cmd);
	}
	if (!stomp_frame_add_header_len(dec->frame, line, name_len,
									colon + 1, value_len))
		return stomp_decode_fail(dec, "out of memory decoding a STOMP frame");
	dec->header_bytes += line_len + 1;
	dec->pos += line_len + eol_len;
	return 1;
}

/*
 * stomp_drop_line
 *		Discard the header line being dropped, as it arrives, up to and
 *		with its LF.  Returns 1 when it ended, 0 for more input.
 */
static int
stomp_drop_line(StompDecoder *dec)
{
	const char *base = dec->in.data + dec->pos;
	size_t		avail = dec->in.len - dec->pos;
	const char *lf = memchr(base, '\n', avail);

	dec->scan = 0;
	if (lf == NULL)
	{
		/* a CR that ends the line may be the last byte: it goes too */
		dec->pos = dec->in.len;
		return 0;
	}
	dec->pos += (size_t) (lf - base) + 1;
	dec->dropping_line = false;
	return 1;
}

/*
 * stomp_header_kept_past_limits
 *		Whether a header line (raw, not unescaped) of a MESSAGE past the
 *		limits is kept all the same: the first of each header the receiver
 *		needs to settle the message, none of whose names holds a character
 *		that is escaped.  At most one each, so that what is kept stays
 *		bounded.
 */
static bool
stomp_header_kept_past_limits(const StompDecoder *dec, const char *line,
							  size_t line_len)
{
	static const char *const needed[] = {
		"ack", "message-id", "subscription", "content-length",
		"destination", "redelivered", "cap-msg-id", "dop-msg-id"
	};
	const char *colon = memchr(line, ':', line_len);
	size_t		name_len;
	size_t		i;

	if (colon == NULL)
		return false;
	name_len = (size_t) (colon - line);
	for (i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
	{
		if (strlen(needed[i]) == name_len &&
			memcmp(line, needed[i], name_len) == 0)
			return stomp_frame_find_header(dec->frame, needed[i]) == NULL;
	}
	return false;
}

/*
 * stomp_decode_body
 *		Read the body and its NUL terminator.  Returns 1 with the finished
 *		frame in *frame_out, 0 for more input, -1 on error.
 */
static int
stomp_decode_body(StompDecoder *dec, StompFrame **frame_out)
{
	size_t		avail = dec->in.len - dec->pos;
	const char *base = dec->in.data + dec->pos;
	size_t		body_len;

	if (dec->have_length)
	{
		if (avail <= dec->content_length)
			return 0;
		if (base[dec->content_length] != '\0')
			return stomp_decode_fail(dec, "STOMP %s frame body of content-length %zu is not followed by a NUL byte",
									 dec->frame->command, dec->content_length);
		body_len = dec->content_length;
	}
	else
	{
		const char *nul = NULL;

		if (dec->scan < avail)
			nul = memchr(base + dec->scan, '\0', avail - dec->scan);
		if (nul == NULL)
		{
			dec->scan = avail;
			if (avail > dec->limits.max_body_len)
				return stomp_decode_fail(dec, "STOMP %s frame body exceeds the limit of %zu bytes",
										 dec->frame->command,
										 dec->limits.max_body_len);
			return 0;
		}
		body_len = (size_t) (nul - base);
		if (body_len > dec->limits.max_body_len)
			return stomp_decode_fail(dec, "STOMP %s frame body exceeds the limit of %zu bytes",
									 dec->frame->command,
									 dec->limits.max_body_len);
	}
	if (!stomp_frame_set_body(dec->frame, base, body_len))
		return stomp_decode_fail(dec, "out of memory decoding a STOMP frame body of %zu bytes",
								 body_len);
	dec->pos += body_len + 1;
	dec->scan = 0;
	dec->state = STOMP_DECODE_COMMAND;
	*frame_out = dec->frame;
	dec->frame = NULL;
	return 1;
}

/*
 * stomp_decoder_next
 *		Return the next complete frame, if the input holds one.
 *
 * Returns 1 and sets *frame_out (the caller owns it and frees it with
 * stomp_frame_free()); 0 when more input is needed; -1 on a decoding
 * error (see stomp_decoder_error()), and -1 forever after.
 */
int
stomp_decoder_next(StompDecoder *dec, StompFrame **frame_out)
{
	*frame_out = NULL;
	for (;;)
	{
		int			rc;

		switch (dec->state)
		{
			case STOMP_DECODE_COMMAND:
				rc = stomp_decode_command(dec);
				break;
			case STOMP_DECODE_HEADERS:
				rc = stomp_decode_header(dec);
				break;
			case STOMP_DECODE_BODY:
				rc = stomp_decode_body(dec, frame_out);
				if (rc == 1)
					return 1;
				break;
			case STOMP_DECODE_ERROR:
			default:
				return -1;
		}
		if (rc <= 0)
			return rc;
	}
}
