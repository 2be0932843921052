/*-------------------------------------------------------------------------
 *
 * stomp_frame.h
 *	  STOMP 1.2 frame model, growable byte buffer, encoder and incremental
 *	  decoder.
 *
 * This is the codec half of outbox's STOMP client.  It is a pure function
 * of bytes: it includes no PostgreSQL header and no socket header, keeps no
 * global mutable state, and reports every failure (including out of memory)
 * as a return value plus an error string, never by aborting.  The same
 * object files are linked into the backend and into the standalone unit
 * test and fuzz binaries under test/stomp/.
 *
 * Error strings never contain header values (a CONNECT passcode is a header
 * value); at most a sanitized, truncated header name.
 *
 * src/stomp/stomp_frame.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STOMP_FRAME_H
#define STOMP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* printf-format checking where the compiler supports it */
#if defined(__GNUC__) || defined(__clang__)
#define STOMP_PRINTF_FORMAT(f, a) __attribute__((format(printf, f, a)))
#else
#define STOMP_PRINTF_FORMAT(f, a)
#endif

/* Size of every error-message buffer in the STOMP client. */
#define STOMP_ERRMSG_SIZE	1024

/* ----------------------------------------------------------------
 * in stomp_buf.c: a growable byte buffer
 * ----------------------------------------------------------------
 */

/*
 * A growable byte buffer.  "data" always has room for a trailing NUL that
 * is not counted in "len", so the contents can be used as a C string when
 * they contain no NUL.  "max" (0 = unlimited) bounds "len"; appending past
 * it fails like an allocation failure does, leaving the buffer unchanged.
 * A zeroed StompBuf is a valid empty buffer.
 */
/*
 * What a buffer keeps allocated once its contents fit again
 * (stomp_buf_trim()): one huge frame passing through a connection that
 * lives for months does not hold its size for good.
 */
#define STOMP_BUF_KEEP_CAP	(1024 * 1024)

typedef struct StompBuf
{
	char	   *data;			/* NULL until the first append */
	size_t		len;			/* bytes in use */
	size_t		cap;			/* bytes allocated (including NUL slot) */
	size_t		max;			/* limit on len, 0 = none */
} StompBuf;

extern void stomp_buf_init(StompBuf *buf);
extern void stomp_buf_free(StompBuf *buf);
extern void stomp_buf_reset(StompBuf *buf);
extern bool stomp_buf_reserve(StompBuf *buf, size_t extra);
extern bool stomp_buf_append(StompBuf *buf, const void *data, size_t len);
extern bool stomp_buf_append_str(StompBuf *buf, const char *str);
extern bool stomp_buf_append_byte(StompBuf *buf, char c);
extern bool stomp_buf_append_u64(StompBuf *buf, uint64_t value);
extern void stomp_buf_consume(StompBuf *buf, size_t n);
extern void stomp_buf_trim(StompBuf *buf);

/* ----------------------------------------------------------------
 * in stomp_frame.c: the frame model
 * ----------------------------------------------------------------
 */

/*
 * One header, as it is meant (decoded/unescaped).  name and value are each
 * NUL-terminated; the lengths exclude the terminator.  Decoded headers can
 * never contain NUL; the encoder refuses NUL.
 */
typedef struct StompHeader
{
	char	   *name;
	size_t		name_len;
	char	   *value;
	size_t		value_len;
} StompHeader;

/*
 * A frame: command, headers in wire order (repeats kept; lookups return the
 * first), body bytes.  body is NUL-terminated for convenience (the NUL is
 * not counted in body_len) but may itself contain NULs.  A frame owns all
 * of its memory; free it with stomp_frame_free().
 */
typedef struct StompFrame
{
	char	   *command;		/* e.g. "SEND"; NUL-terminated */
	StompHeader *headers;
	size_t		nheaders;
	size_t		headers_cap;
	char	   *body;			/* NULL when body_len == 0 */
	size_t		body_len;
	bool		headers_dropped;	/* decoded MESSAGE: headers beyond the
									 * decoder's limits were not kept */
} StompFrame;

extern StompFrame *stomp_frame_new(const char *command);
extern void stomp_frame_free(StompFrame *frame);
extern size_t stomp_frame_bytes(const StompFrame *frame);
extern bool stomp_frame_add_header(StompFrame *frame, const char *name,
								   const char *value);
extern bool stomp_frame_add_header_len(StompFrame *frame,
									   const char *name, size_t name_len,
									   const char *value, size_t value_len);
extern bool stomp_frame_set_body(StompFrame *frame, const void *body,
								 size_t len);
extern const char *stomp_frame_get_header(const StompFrame *frame,
										  const char *name);
extern const StompHeader *stomp_frame_find_header(const StompFrame *frame,
												  const char *name);
extern size_t stomp_frame_remove_header(StompFrame *frame, const char *name);
extern void stomp_describe_name(char *dst, size_t dstlen,
								const char *name, size_t len);

/* ----------------------------------------------------------------
 * in stomp_encode.c: the encoder
 * ----------------------------------------------------------------
 */

/*
 * How header names and values are escaped, chosen by command:
 *
 * - every frame except CONNECT, STOMP and CONNECTED: full STOMP 1.2
 *	 escaping (\\ \n \r \c); any byte but NUL is representable.
 * - CONNECT and STOMP: only backslash is escaped (RabbitMQ unescapes CONNECT
 *	 headers although the spec says not to; colons after the first are taken
 *	 literally).  CR, LF and NUL are refused, and so is a colon in a name.
 * - CONNECTED: nothing is escaped; CR, LF, NUL and colon-in-name refused.
 *
 * Empty header names are refused for all frames.  The encoder owns the
 * content-length header: a frame that carries a content-length header is
 * refused, and the encoder writes one itself for every frame that has a
 * body and for every SEND, MESSAGE and ERROR frame even when the body is
 * empty.  (RabbitMQ silently truncates a SEND body at its first NUL when
 * content-length is missing, and receipts it anyway.)
 *
 * Returns true on success.  On failure returns false, leaves "out" exactly
 * as it was and writes a message into errbuf (errlen bytes, may be 0).
 */
extern bool stomp_encode_frame(StompBuf *out, const StompFrame *frame,
							   char *errbuf, size_t errlen);
extern size_t stomp_encoded_length(const StompFrame *frame);

/*
 * Checks one header as the encoder would for the given command, without
 * encoding anything: lets callers validate user-supplied headers where
 * they enter the system rather than at send time.
 */
extern bool stomp_check_header(const char *command,
							   const char *name, size_t name_len,
							   const char *value, size_t value_len,
							   char *errbuf, size_t errlen);

/* ----------------------------------------------------------------
 * in stomp_decode.c: the incremental decoder
 * ----------------------------------------------------------------
 */

/* Decoder limits; 0 in any field means "use the default". */
typedef struct StompLimits
{
	size_t		max_header_count;	/* headers per frame */
	size_t		max_line_len;	/* one command or header line, without EOL */
	size_t		max_header_bytes;	/* all command + header lines of a frame */
	size_t		max_body_len;	/* body bytes of a frame */
} StompLimits;

#define STOMP_DEFAULT_MAX_HEADER_COUNT	1000
#define STOMP_DEFAULT_MAX_LINE_LEN		(64 * 1024)
#define STOMP_DEFAULT_MAX_HEADER_BYTES	(1024 * 1024)
/* RabbitMQ's default max_message_size */
#define STOMP_DEFAULT_MAX_BODY_LEN		((size_t) 128 * 1024 * 1024)

typedef enum StompDecodeState
{
	STOMP_DECODE_COMMAND,		/* between frames / reading the command */
	STOMP_DECODE_HEADERS,		/* reading header lines */
	STOMP_DECODE_BODY,			/* reading the body */
	STOMP_DECODE_ERROR			/* sticky */
} StompDecodeState;

/*
 * The decoder.  Treat as opaque; it is declared here only so callers can
 * embed it.  Initialize with stomp_decoder_init(), release with
 * stomp_decoder_free().
 */
typedef struct StompDecoder
{
	StompLimits limits;
	StompDecodeState state;
	StompBuf	in;				/* received bytes; [pos, in.len) unconsumed */
	size_t		pos;			/* start of unconsumed data */
	size_t		scan;			/* bytes after pos already searched */
	StompFrame *frame;			/* frame being assembled */
	bool		unescape;		/* unescape this frame's headers */
	bool		may_drop;		/* a MESSAGE: drop headers past the limits */
	bool		dropping_line;	/* inside a dropped line, up to its LF */
	bool		have_length;	/* content-length seen */
	size_t		content_length;
	size_t		header_bytes;	/* command + header bytes so far */
	char		errmsg[STOMP_ERRMSG_SIZE];
} StompDecoder;

extern void stomp_decoder_init(StompDecoder *dec, const StompLimits *limits);
extern void stomp_decoder_free(StompDecoder *dec);
extern void stomp_decoder_reset(StompDecoder *dec);
extern bool stomp_decoder_feed(StompDecoder *dec, const void *data, size_t len);
extern int	stomp_decoder_next(StompDecoder *dec, StompFrame **frame_out);
extern const char *stomp_decoder_error(const StompDecoder *dec);
extern size_t stomp_decoder_buffered(const StompDecoder *dec);

#endif							/* STOMP_FRAME_H */
