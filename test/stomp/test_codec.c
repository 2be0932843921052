/*-------------------------------------------------------------------------
 *
 * test_codec.c
 *	  Unit tests of the STOMP frame codec: bytes in, frames out, and back.
 *
 * No sockets: every test feeds byte strings to the decoder or inspects the
 * encoder's output.  The decoder is checked against every split of a
 * reference stream (two and three pieces), byte-at-a-time and random
 * splits, so the incremental state machine is exercised at every boundary.
 *
 * test/stomp/test_codec.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stomp_frame.h"
#include "test_util.h"

#define MAX_FRAMES 64

/* the frames decoded from one stream */
typedef struct FrameList
{
	StompFrame *frames[MAX_FRAMES];
	int			n;
	int			rc;				/* last stomp_decoder_next() result */
	char		err[STOMP_ERRMSG_SIZE];
} FrameList;

static void list_free(FrameList *l);
static void drain(StompDecoder *dec, FrameList *l);
static void decode_pieces(const char *data, size_t len, const size_t *cuts,
						  int ncuts, FrameList *l, const StompLimits *limits);
static bool frames_equal(const StompFrame *a, const StompFrame *b);
static bool lists_equal(const FrameList *a, const FrameList *b);
static bool header_is(const StompFrame *f, size_t i, const char *name,
					  const char *value);
static bool decode_fails(const char *data, size_t len,
						 const StompLimits *limits, const char *expect);
static bool decode_fails_bytewise(const char *data, size_t len,
								  const StompLimits *limits, const char *expect);
static void test_encode_send(void);
static void test_encode_refusals(void);
static void test_encode_connect(void);
static void test_escape_round_trip(void);
static void test_reference_stream(void);
static void test_splits(void);
static void test_malformed(void);
static void test_limits(void);
static void test_message_past_limits(void);
static void test_sticky_error(void);
static void test_linear_and_compact(void);
static void test_frame_helpers(void);

/*
 * The reference stream: heart-beats (LF and CRLF), CONNECTED with a raw
 * backslash (not unescaped), a CRLF MESSAGE with escapes and NULs in a
 * content-length body, RECEIPTs, a MESSAGE with repeated headers and no
 * content-length, an ERROR with an empty body.
 */
static const char ref_stream[] =
"\n\r\n"
"CONNECTED\nversion:1.2\nheart-beat:10000,10000\nserver:RabbitMQ/3.10.8\nodd:a\\cb\n\n\0"
"\n"
"MESSAGE\r\nsubscription:0\r\nmessage-id:T_0@@s@@1\r\ndestination:/topic/x\r\n"
"id\\cwith\\nnl:v\\\\al\\r\r\nempty:\r\ncontent-length:5\r\n\r\nab\0" "cd\0\n"
"RECEIPT\nreceipt-id:77\n\n\0\n\n"
"MESSAGE\ndestination:/queue/a\ndestination:/queue/b\nx:a:b:c\n\nhello world\0"
"ERROR\nmessage:boom\ncontent-type:text/plain\ncontent-length:0\n\n\0"
"\r\n\n"
"RECEIPT\nreceipt-id:78\n\n\0";

#define REF_LEN (sizeof(ref_stream) - 1)
#define REF_FRAMES 6

/*
 * list_free
 *		Free every decoded frame of a list.
 */
static void
list_free(FrameList *l)
{
	int			i;

	for (i = 0; i < l->n; i++)
		stomp_frame_free(l->frames[i]);
	l->n = 0;
}

/*
 * drain
 *		Take every complete frame out of the decoder into the list.
 */
static void
drain(StompDecoder *dec, FrameList *l)
{
	StompFrame *f;

	while ((l->rc = stomp_decoder_next(dec, &f)) == 1)
	{
		if (l->n < MAX_FRAMES)
			l->frames[l->n++] = f;
		else
			stomp_frame_free(f);
	}
	if (l->rc < 0)
		snprintf(l->err, sizeof(l->err), "%s", stomp_decoder_error(dec));
}

/*
 * decode_pieces
 *		Decode "data" fed in pieces cut at the given offsets, draining
 *		after each piece.
 */
static void
decode_pieces(const char *data, size_t len, const size_t *cuts, int ncuts,
			  FrameList *l, const StompLimits *limits)
{
	StompDecoder dec;
	size_t		prev = 0;
	int			i;

	memset(l, 0, sizeof(FrameList));
	stomp_decoder_init(&dec, limits);
	for (i = 0; i <= ncuts; i++)
	{
		size_t		end = (i < ncuts) ? cuts[i] : len;

		stomp_decoder_feed(&dec, data + prev, end - prev);
		drain(&dec, l);
		if (l->rc < 0)
			break;
		prev = end;
	}
	stomp_decoder_free(&dec);
}

/*
 * frames_equal
 *		Same command, same headers in the same order, same body.
 */
static bool
frames_equal(const StompFrame *a, const StompFrame *b)
{
	size_t		i;

	if (strcmp(a->command, b->command) != 0 || a->nheaders != b->nheaders ||
		a->body_len != b->body_len)
		return false;
	if (a->body_len > 0 && memcmp(a->body, b->body, a->body_len) != 0)
		return false;
	for (i = 0; i < a->nheaders; i++)
	{
		const StompHeader *x = &a->headers[i];
		const StompHeader *y = &b->headers[i];

		if (x->name_len != y->name_len || x->value_len != y->value_len ||
			memcmp(x->name, y->name, x->name_len) != 0 ||
			memcmp(x->value, y->value, x->value_len) != 0)
			return false;
	}
	return true;
}

/*
 * lists_equal
 *		Two decodes produced the same frames and the same final result.
 */
static bool
lists_equal(const FrameList *a, const FrameList *b)
{
	int			i;

	if (a->n != b->n || a->rc != b->rc)
		return false;
	for (i = 0; i < a->n; i++)
		if (!frames_equal(a->frames[i], b->frames[i]))
			return false;
	return true;
}

/*
 * header_is
 *		Header number i of f has exactly this name and value.
 */
static bool
header_is(const StompFrame *f, size_t i, const char *name, const char *value)
{
	if (i >= f->nheaders)
		return false;
	return strcmp(f->headers[i].name, name) == 0 &&
		strlen(name) == f->headers[i].name_len &&
		strcmp(f->headers[i].value, value) == 0 &&
		strlen(value) == f->headers[i].value_len;
}

/*
 * decode_fails
 *		Decoding "data" in one piece ends in an error whose message
 *		contains "expect".
 */
static bool
decode_fails(const char *data, size_t len, const StompLimits *limits,
			 const char *expect)
{
	FrameList	l;
	bool		ok;

	decode_pieces(data, len, NULL, 0, &l, limits);
	ok = (l.rc == -1 && strstr(l.err, expect) != NULL);
	if (!ok)
		printf("  expected error containing \"%s\", got rc=%d \"%s\"\n",
			   expect, l.rc, l.err);
	list_free(&l);
	return ok;
}

/*
 * decode_fails_bytewise
 *		As decode_fails(), feeding one byte at a time.
 */
static bool
decode_fails_bytewise(const char *data, size_t len, const StompLimits *limits,
					  const char *expect)
{
	FrameList	l;
	bool		ok;
	size_t	   *cuts = malloc(sizeof(size_t) * (len + 1));
	size_t		i;

	for (i = 0; i < len; i++)
		cuts[i] = i;
	decode_pieces(data, len, cuts, (int) len, &l, limits);
	free(cuts);
	ok = (l.rc == -1 && strstr(l.err, expect) != NULL);
	if (!ok)
		printf("  expected error containing \"%s\" (bytewise), got rc=%d \"%s\"\n",
			   expect, l.rc, l.err);
	list_free(&l);
	return ok;
}

/*
 * test_encode_send
 *		A SEND is encoded exactly, escaped, with content-length always.
 */
static void
test_encode_send(void)
{
	StompBuf	out;
	StompFrame *f;
	char		err[STOMP_ERRMSG_SIZE];
	static const char expect[] =
		"SEND\ndestination:/queue/a\\cb\nk\\\\\\n:v\\r\\c\ncontent-length:5\n\nhi\0yo\0";

	stomp_buf_init(&out);
	f = stomp_frame_new("SEND");
	CHECK(f != NULL);
	CHECK(stomp_frame_add_header(f, "destination", "/queue/a:b"));
	CHECK(stomp_frame_add_header(f, "k\\\n", "v\r:"));
	CHECK(stomp_frame_set_body(f, "hi\0yo", 5));
	CHECK(stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(out.len == sizeof(expect) - 1);
	CHECK(memcmp(out.data, expect, sizeof(expect) - 1) == 0);
	stomp_frame_free(f);

	/* an empty SEND still carries content-length:0 */
	stomp_buf_reset(&out);
	f = stomp_frame_new("SEND");
	CHECK(stomp_frame_add_header(f, "destination", "/q"));
	CHECK(stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(out.len == sizeof("SEND\ndestination:/q\ncontent-length:0\n\n"));
	CHECK(memcmp(out.data, "SEND\ndestination:/q\ncontent-length:0\n\n\0", out.len) == 0);
	stomp_frame_free(f);

	/* any frame with a body gets content-length; one without does not */
	stomp_buf_reset(&out);
	f = stomp_frame_new("SUBSCRIBE");
	CHECK(stomp_frame_add_header(f, "id", "1"));
	CHECK(stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(strstr(out.data, "content-length") == NULL);
	CHECK(stomp_frame_set_body(f, "x", 1));
	stomp_buf_reset(&out);
	CHECK(stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(strstr(out.data, "content-length:1\n") != NULL);
	stomp_frame_free(f);

	/* appends after existing content */
	stomp_buf_reset(&out);
	CHECK(stomp_buf_append_str(&out, "\n"));
	f = stomp_frame_new("DISCONNECT");
	CHECK(stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(out.len == strlen("\nDISCONNECT\n\n") + 1);
	stomp_frame_free(f);
	stomp_buf_free(&out);
}

/*
 * test_encode_refusals
 *		What cannot be represented is refused, and the buffer is untouched.
 */
static void
test_encode_refusals(void)
{
	StompBuf	out;
	StompFrame *f;
	char		err[STOMP_ERRMSG_SIZE];

	stomp_buf_init(&out);
	CHECK(stomp_buf_append_str(&out, "keep"));

	/* caller-supplied content-length */
	f = stomp_frame_new("SEND");
	CHECK(stomp_frame_add_header(f, "content-length", "3"));
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(strstr(err, "content-length") != NULL);
	CHECK(out.len == 4 && strcmp(out.data, "keep") == 0);
	stomp_frame_free(f);

	/* NUL in a value, NUL in a name, empty name */
	f = stomp_frame_new("SEND");
	CHECK(stomp_frame_add_header(f, "a", "1"));
	CHECK(stomp_frame_add_header_len(f, "k", 1, "se\0cret", 7));
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(strstr(err, "NUL") != NULL && strstr(err, "\"k\"") != NULL);
	CHECK(strstr(err, "cret") == NULL);
	CHECK(out.len == 4);
	stomp_frame_free(f);

	f = stomp_frame_new("SEND");
	CHECK(stomp_frame_add_header_len(f, "k\0x", 3, "v", 1));
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(strstr(err, "NUL") != NULL && strstr(err, "k?x") != NULL);
	stomp_frame_free(f);

	f = stomp_frame_new("SEND");
	CHECK(stomp_frame_add_header(f, "", "v"));
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(strstr(err, "empty") != NULL);
	stomp_frame_free(f);

	/* bad commands */
	f = stomp_frame_new("send");
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	stomp_frame_free(f);
	f = stomp_frame_new("");
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	stomp_frame_free(f);
	f = stomp_frame_new("SEND\nX");
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	stomp_frame_free(f);

	/* buffer limit: refused cleanly with a clear message */
	out.max = 10;
	f = stomp_frame_new("SEND");
	CHECK(stomp_frame_add_header(f, "destination", "/queue/long"));
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(strstr(err, "limit") != NULL);
	CHECK(out.len == 4);
	stomp_frame_free(f);

	/* a NULL/zero error buffer is allowed */
	f = stomp_frame_new("SEND");
	CHECK(stomp_frame_add_header(f, "", "v"));
	CHECK(!stomp_encode_frame(&out, f, NULL, 0));
	stomp_frame_free(f);

	/* stomp_check_header agrees with the encoder */
	CHECK(stomp_check_header("SEND", "a", 1, "b\nc", 3, err, sizeof(err)));
	CHECK(!stomp_check_header("CONNECT", "a", 1, "b\nc", 3, err, sizeof(err)));
	CHECK(!stomp_check_header("SEND", "content-length", 14, "1", 1, err, sizeof(err)));
	stomp_buf_free(&out);
}

/*
 * test_encode_connect
 *		CONNECT: backslash escaped (RabbitMQ unescapes it), colons in values
 *		literal, CR/LF/NUL and colon-in-name refused, the value (passcode)
 *		never in the error message.
 */
static void
test_encode_connect(void)
{
	StompBuf	out;
	StompFrame *f;
	char		err[STOMP_ERRMSG_SIZE];
	static const char expect[] =
		"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:gue\\\\st:x\n\n\0";

	stomp_buf_init(&out);
	f = stomp_frame_new("CONNECT");
	CHECK(stomp_frame_add_header(f, "accept-version", "1.2"));
	CHECK(stomp_frame_add_header(f, "host", "/"));
	CHECK(stomp_frame_add_header(f, "login", "guest"));
	CHECK(stomp_frame_add_header(f, "passcode", "gue\\st:x"));
	CHECK(stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(out.len == sizeof(expect) - 1 && memcmp(out.data, expect, out.len) == 0);
	stomp_frame_free(f);

	{
		static const char *bad[] = {"sec\nret", "sec\rret", "secret\n"};
		int			i;

		for (i = 0; i < 3; i++)
		{
			stomp_buf_reset(&out);
			f = stomp_frame_new("CONNECT");
			CHECK(stomp_frame_add_header(f, "passcode", bad[i]));
			CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
			CHECK(strstr(err, "CR or LF") != NULL);
			CHECK(strstr(err, "sec") == NULL && strstr(err, "ret") == NULL);
			CHECK(out.len == 0);
			stomp_frame_free(f);
		}
	}
	f = stomp_frame_new("CONNECT");
	CHECK(stomp_frame_add_header_len(f, "passcode", 8, "sec\0ret", 7));
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(strstr(err, "NUL") != NULL && strstr(err, "sec") == NULL);
	stomp_frame_free(f);

	f = stomp_frame_new("STOMP");
	CHECK(stomp_frame_add_header(f, "pass\ncode", "x"));
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	stomp_frame_free(f);

	f = stomp_frame_new("CONNECT");
	CHECK(stomp_frame_add_header(f, "a:b", "x"));
	CHECK(!stomp_encode_frame(&out, f, err, sizeof(err)));
	CHECK(strstr(err, "colon") != NULL);
	stomp_frame_free(f);
	stomp_buf_free(&out);
}

/*
 * test_escape_round_trip
 *		Every awkward byte in names and values survives encode + decode,
 *		for full-escaping frames and for CONNECT.
 */
static void
test_escape_round_trip(void)
{
	static const char *cmds[] = {"SEND", "MESSAGE", "SUBSCRIBE", "CONNECT", "CONNECTED"};
	int			c;

	for (c = 0; c < 5; c++)
	{
		StompBuf	out;
		StompFrame *f;
		FrameList	l;
		char		err[STOMP_ERRMSG_SIZE];
		bool		connect_like = (c >= 3);
		char		allbytes[255];
		int			i;

		for (i = 0; i < 255; i++)
			allbytes[i] = (char) (i + 1);

		stomp_buf_init(&out);
		f = stomp_frame_new(cmds[c]);
		if (connect_like)
		{
			CHECK(stomp_frame_add_header(f, c == 3 ? "pass\\code" : "passcode", "a\\b:c::\\\\"));
			CHECK(stomp_frame_add_header(f, "e", ""));
			CHECK(stomp_frame_add_header(f, "v", "ab\\"));
		}
		else
		{
			CHECK(stomp_frame_add_header(f, "a:b\\c\nd\re", "\\:\n\r\\n\\c"));
			CHECK(stomp_frame_add_header(f, "dup", "1"));
			CHECK(stomp_frame_add_header(f, "dup", "2"));
			CHECK(stomp_frame_add_header_len(f, "all", 3, allbytes, 255));
			CHECK(stomp_frame_add_header(f, "\\", "\\"));
			CHECK(stomp_frame_set_body(f, "\0\0x\0", 4));
		}
		CHECK(stomp_encode_frame(&out, f, err, sizeof(err)));
		decode_pieces(out.data, out.len, NULL, 0, &l, NULL);
		CHECK(l.rc == 0 && l.n == 1);
		if (l.n == 1)
		{
			/* the decoder reports content-length; strip it to compare */
			stomp_frame_remove_header(l.frames[0], "content-length");
			CHECK(frames_equal(l.frames[0], f));
		}
		list_free(&l);
		stomp_frame_free(f);
		stomp_buf_free(&out);
	}
}

/*
 * test_reference_stream
 *		The reference stream decodes in one piece to exactly what it says.
 */
static void
test_reference_stream(void)
{
	FrameList	l;
	StompFrame *f;

	decode_pieces(ref_stream, REF_LEN, NULL, 0, &l, NULL);
	CHECK(l.rc == 0);
	CHECK(l.n == REF_FRAMES);
	if (l.n != REF_FRAMES)
	{
		printf("  decoded %d frames, error \"%s\"\n", l.n, l.err);
		list_free(&l);
		return;
	}

	f = l.frames[0];
	CHECK(strcmp(f->command, "CONNECTED") == 0);
	CHECK(header_is(f, 0, "version", "1.2"));
	CHECK(header_is(f, 1, "heart-beat", "10000,10000"));
	CHECK(header_is(f, 3, "odd", "a\\cb"));	/* CONNECTED: not unescaped */
	CHECK(f->body_len == 0);

	f = l.frames[1];
	CHECK(strcmp(f->command, "MESSAGE") == 0);
	CHECK(f->nheaders == 6);
	CHECK(header_is(f, 3, "id:with\nnl", "v\\al\r"));
	CHECK(header_is(f, 4, "empty", ""));
	CHECK(f->body_len == 5 && memcmp(f->body, "ab\0cd", 5) == 0);
	CHECK(f->body[5] == '\0');
	CHECK(strcmp(stomp_frame_get_header(f, "content-length"), "5") == 0);

	f = l.frames[2];
	CHECK(strcmp(f->command, "RECEIPT") == 0);
	CHECK(strcmp(stomp_frame_get_header(f, "receipt-id"), "77") == 0);
	CHECK(f->body_len == 0 && f->body == NULL);

	f = l.frames[3];
	CHECK(strcmp(f->command, "MESSAGE") == 0);
	CHECK(f->nheaders == 3);
	CHECK(strcmp(stomp_frame_get_header(f, "destination"), "/queue/a") == 0);
	CHECK(header_is(f, 1, "destination", "/queue/b"));
	CHECK(header_is(f, 2, "x", "a:b:c"));
	CHECK(f->body_len == 11 && strcmp(f->body, "hello world") == 0);

	f = l.frames[4];
	CHECK(strcmp(f->command, "ERROR") == 0);
	CHECK(strcmp(stomp_frame_get_header(f, "message"), "boom") == 0);
	CHECK(f->body_len == 0);

	f = l.frames[5];
	CHECK(strcmp(stomp_frame_get_header(f, "receipt-id"), "78") == 0);
	list_free(&l);
}

/*
 * test_splits
 *		Every 2- and 3-piece split, byte-at-a-time and random splits of the
 *		reference stream decode to the same frames as the whole stream.
 */
static void
test_splits(void)
{
	FrameList	whole;
	FrameList	l;
	size_t		cuts[REF_LEN + 1];
	size_t		i;
	size_t		j;
	int			bad2 = 0;
	int			bad3 = 0;
	int			badr = 0;
	unsigned int seed = 12345;
	int			round;

	decode_pieces(ref_stream, REF_LEN, NULL, 0, &whole, NULL);

	for (i = 0; i <= REF_LEN; i++)
	{
		cuts[0] = i;
		decode_pieces(ref_stream, REF_LEN, cuts, 1, &l, NULL);
		if (!lists_equal(&whole, &l))
		{
			if (bad2++ == 0)
				printf("  2-piece split at %zu differs\n", i);
		}
		list_free(&l);
	}
	CHECK(bad2 == 0);

	for (i = 0; i <= REF_LEN; i++)
	{
		for (j = i; j <= REF_LEN; j++)
		{
			cuts[0] = i;
			cuts[1] = j;
			decode_pieces(ref_stream, REF_LEN, cuts, 2, &l, NULL);
			if (!lists_equal(&whole, &l))
				bad3++;
			list_free(&l);
		}
	}
	CHECK(bad3 == 0);

	for (i = 0; i < REF_LEN; i++)
		cuts[i] = i;
	decode_pieces(ref_stream, REF_LEN, cuts, (int) REF_LEN, &l, NULL);
	CHECK(lists_equal(&whole, &l));
	list_free(&l);

	for (round = 0; round < 2000; round++)
	{
		int			n = 0;
		size_t		at = 0;

		for (;;)
		{
			seed = seed * 1103515245u + 12345u;
			at += (seed >> 16) % 40;
			if (at >= REF_LEN)
				break;
			cuts[n++] = at;
		}
		decode_pieces(ref_stream, REF_LEN, cuts, n, &l, NULL);
		if (!lists_equal(&whole, &l))
			badr++;
		list_free(&l);
	}
	CHECK(badr == 0);
	list_free(&whole);
}

/*
 * test_malformed
 *		Each malformed input ends in a clear error, in one piece and byte
 *		by byte.
 */
static void
test_malformed(void)
{
	static const struct
	{
		const char *data;
		size_t		len;
		const char *expect;
	}			cases[] =
	{
#define C(s, e) {s, sizeof(s) - 1, e}
		C("SEND\nnocolon\n\n\0", "without a colon"),
		C("SEND\n:value\n\n\0", "empty name"),
		C("SEND\ncontent-length:abc\n\nx\0", "invalid content-length"),
		C("SEND\ncontent-length:-1\n\nx\0", "invalid content-length"),
		C("SEND\ncontent-length:\n\nx\0", "invalid content-length"),
		C("SEND\ncontent-length:1 \n\nx\0", "invalid content-length"),
		C("SEND\ncontent-length: 1\n\nx\0", "invalid content-length"),
		C("SEND\ncontent-length:+1\n\nx\0", "invalid content-length"),
		C("SEND\ncontent-length:99999999999999999999999999\n\nx\0", "invalid content-length"),
		C("SEND\ncontent-length:18446744073709551615\n\nx\0", "exceeds the limit"),
		C("SEND\ncontent-length:2\n\nabc\0", "not followed by a NUL"),
		C("SEND\ncontent-length:0\n\nx\0", "not followed by a NUL"),
		C("send\n\n\0", "not upper-case"),
		C("SE ND\n\n\0", "not upper-case"),
		C("\0\n\n\0", "NUL byte in command"),
		C("\rSEND\n\n\0", "CR not followed by LF"),
		C("SEND\r\r\n\n\0", "not upper-case"),
		C("SEND\na:b\rc\n\n\0", "bare CR"),
		C("SEND\na:b\r\r\n\n\0", "bare CR"),
		C("SEND\na:b\0c\n\n\0", "NUL byte in a header"),
		C("SEND\na:b\\q\n\n\0", "invalid escape"),
		C("SEND\na\\t:b\n\n\0", "invalid escape"),
		C("SEND\na:b\\\n\n\0", "invalid escape"),
		C("MESSAGE\nid:x\\\n\n\0", "invalid escape"),
		C("CONNECT\npasscode:a\\q\n\n\0", "invalid escape"),
		C("RECEIPT\nreceipt-id:1\n\n\0junk:\n\n\0", "not upper-case"),
#undef C
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		if (!CHECK(decode_fails(cases[i].data, cases[i].len, NULL, cases[i].expect)))
			printf("  case %zu\n", i);
		if (!CHECK(decode_fails_bytewise(cases[i].data, cases[i].len, NULL, cases[i].expect)))
			printf("  case %zu\n", i);
	}

	/* CONNECTED keeps backslashes raw, so \q is not an error there */
	{
		FrameList	l;
		static const char d[] = "CONNECTED\nserver:a\\q\\\n\n\0";

		decode_pieces(d, sizeof(d) - 1, NULL, 0, &l, NULL);
		CHECK(l.rc == 0 && l.n == 1 && header_is(l.frames[0], 0, "server", "a\\q\\"));
		list_free(&l);
	}

	/* a repeated content-length: the first wins, a bad second is ignored */
	{
		FrameList	l;
		static const char d[] = "MESSAGE\ncontent-length:3\ncontent-length:x\n\na\0b\0";

		decode_pieces(d, sizeof(d) - 1, NULL, 0, &l, NULL);
		CHECK(l.rc == 0 && l.n == 1 && l.frames[0]->body_len == 3);
		list_free(&l);
	}

	/* an incomplete frame is not an error, just not a frame yet */
	{
		FrameList	l;
		static const char d[] = "MESSAGE\ncontent-length:3\n\nab";

		decode_pieces(d, sizeof(d) - 1, NULL, 0, &l, NULL);
		CHECK(l.rc == 0 && l.n == 0);
		list_free(&l);
	}
}

/*
 * test_limits
 *		Every limit is enforced with a message that names it, whether the
 *		offending data arrives at once or byte by byte; frames just inside
 *		the limits pass.
 */
static void
test_limits(void)
{
	StompLimits lim;
	FrameList	l;
	char	   *big;
	size_t		n;

	memset(&lim, 0, sizeof(lim));
	lim.max_header_count = 2;
	CHECK(decode_fails("SEND\na:1\nb:2\nc:3\n\n\0", 19, &lim, "more than 2 headers"));
	decode_pieces("SEND\na:1\nb:2\n\n\0", 15, NULL, 0, &l, &lim);
	CHECK(l.rc == 0 && l.n == 1);
	list_free(&l);

	memset(&lim, 0, sizeof(lim));
	lim.max_line_len = 8;
	CHECK(decode_fails("SEND\nabc:12345\n\n\0", 17, &lim, "header line over 8 bytes"));
	CHECK(decode_fails_bytewise("SEND\nabc:12345\n\n\0", 17, &lim, "header line over 8 bytes"));
	/* no LF at all: caught without waiting for the end of the line */
	CHECK(decode_fails("SEND\nabc:123456789012", 21, &lim, "header line over 8 bytes"));
	CHECK(decode_fails("SUBSCRIBE\n\n\0", 12, &lim, "command line exceeds 8"));
	CHECK(decode_fails("SUBSCRIBEXXXXXXXX", 17, &lim, "command line exceeds 8"));
	decode_pieces("SEND\r\nabc:1234\r\n\r\n\0", 19, NULL, 0, &l, &lim);
	CHECK(l.rc == 0 && l.n == 1);	/* 8 bytes + CRLF is within the limit */
	list_free(&l);

	memset(&lim, 0, sizeof(lim));
	lim.max_header_bytes = 16;	/* "SEND\n" + "a:123\n" = 11 */
	decode_pieces("SEND\na:123\nb:1\n\n\0", 17, NULL, 0, &l, &lim);
	CHECK(l.rc == 0 && l.n == 1);	/* 15 bytes */
	list_free(&l);
	CHECK(decode_fails("SEND\na:123\nb:123\n\n\0", 19, &lim, "headers exceed 16 bytes"));
	CHECK(decode_fails_bytewise("SEND\na:123\nb:123456\n\n\0", 22, &lim, "headers exceed 16 bytes"));
	CHECK(decode_fails("SEND\na:123\nb:1234567890", 23, &lim, "headers exceed 16 bytes"));
	CHECK(decode_fails("SUBSCRIBEXXXXXXXXXXXX\n\n\0", 24, &lim, "exceed 16 bytes"));

	memset(&lim, 0, sizeof(lim));
	lim.max_body_len = 4;
	decode_pieces("SEND\n\nabcd\0SEND\ncontent-length:4\n\nab\0d\0", 40, NULL, 0, &l, &lim);
	CHECK(l.rc == 0 && l.n == 2);
	list_free(&l);
	CHECK(decode_fails("SEND\ncontent-length:5\n\n", 24, &lim, "body of 5 bytes exceeds the limit of 4"));
	CHECK(decode_fails("SEND\n\nabcde\0", 12, &lim, "exceeds the limit of 4"));
	CHECK(decode_fails_bytewise("SEND\n\nabcdefgh", 14, &lim, "exceeds the limit of 4"));

	/* the defaults are generous enough for a 1 MiB body */
	n = 1024 * 1024;
	big = malloc(n + 64);
	memcpy(big, "SEND\n\n", 6);
	memset(big + 6, 'x', n);
	big[6 + n] = '\0';
	decode_pieces(big, n + 7, NULL, 0, &l, NULL);
	CHECK(l.rc == 0 && l.n == 1 && l.frames[0]->body_len == n);
	list_free(&l);
	free(big);
}

/*
 * decode_dropping
 *		Decode "data" (len bytes) with lim in one piece and byte by byte:
 *		both must give one frame and then the next, a RECEIPT; returns the
 *		first frame of the whole-piece decode in *first (the caller frees
 *		it), and whether the two decodes agree.
 */
static bool
decode_dropping(const char *data, size_t len, const StompLimits *lim,
				StompFrame **first)
{
	FrameList	whole;
	FrameList	bytewise;
	size_t	   *cuts = malloc(sizeof(size_t) * (len + 1));
	size_t		i;
	bool		ok;

	for (i = 0; i < len; i++)
		cuts[i] = i;
	decode_pieces(data, len, NULL, 0, &whole, lim);
	decode_pieces(data, len, cuts, (int) len, &bytewise, lim);
	free(cuts);
	ok = whole.rc == 0 && whole.n == 2 && lists_equal(&whole, &bytewise) &&
		whole.frames[0]->headers_dropped == bytewise.frames[0]->headers_dropped &&
		strcmp(whole.frames[1]->command, "RECEIPT") == 0;
	if (!ok)
		printf("  expected two frames, got rc=%d n=%d \"%s\"\n",
			   whole.rc, whole.n, whole.err);
	*first = whole.n > 0 ? whole.frames[0] : NULL;
	if (whole.n > 0)
		whole.frames[0] = NULL;
	for (i = 1; i < (size_t) whole.n; i++)
		stomp_frame_free(whole.frames[i]);
	whole.n = 0;
	list_free(&whole);
	list_free(&bytewise);
	return ok;
}

/*
 * test_message_past_limits
 *		A MESSAGE past a limit on headers is still a frame, whether its
 *		data arrives at once or byte by byte: the headers past the limit
 *		are dropped (an over-long line as it comes), but for the first of
 *		each the receiver needs to settle it, and the frame says so; its
 *		body is read and the next frame follows.  Within the limits
 *		nothing is dropped.  Other frames past a limit still fail.
 */
static void
test_message_past_limits(void)
{
	StompLimits lim;
	StompFrame *f = NULL;
	char	   *big;
	size_t		n;
	static const char receipt[] = "RECEIPT\nreceipt-id:1\n\n";

	/* too many headers: the ack after them is kept, once */
	memset(&lim, 0, sizeof(lim));
	lim.max_header_count = 3;
	{
		static const char d[] = "MESSAGE\nsubscription:s\nx:1\ny:2\nz:3\n"
			"ack:A1\nmessage-id:m\nack:A2\ncontent-length:2\n\nhi\0"
			"RECEIPT\nreceipt-id:1\n\n";

		CHECK(decode_dropping(d, sizeof(d), &lim, &f));
		CHECK(f != NULL && f->headers_dropped && f->nheaders == 6);
		CHECK(f != NULL && header_is(f, 3, "ack", "A1") &&
			  header_is(f, 4, "message-id", "m") &&
			  header_is(f, 5, "content-length", "2"));
		CHECK(f != NULL && f->body_len == 2 && memcmp(f->body, "hi", 2) == 0);
		stomp_frame_free(f);
	}

	/* a header line over the limit, dropped without being held whole */
	memset(&lim, 0, sizeof(lim));
	lim.max_line_len = 16;
	{
		static const char d[] = "MESSAGE\nack:A\nx-big:0123456789abcdefghij\r\n"
			"x-small:1\nmessage-id:0123456789abcdefghij\n\nbody\0"
			"RECEIPT\nreceipt-id:1\n\n";

		CHECK(decode_dropping(d, sizeof(d), &lim, &f));
		/* message-id is needed, but over the line limit itself */
		CHECK(f != NULL && f->headers_dropped && f->nheaders == 2 &&
			  header_is(f, 0, "ack", "A") && header_is(f, 1, "x-small", "1"));
		CHECK(f != NULL && f->body_len == 4);
		stomp_frame_free(f);
	}

	/* the header bytes: past them only what settles it */
	memset(&lim, 0, sizeof(lim));
	lim.max_header_bytes = 24;	/* "MESSAGE\n" + "x:12345678\n" = 19 */
	{
		static const char d[] = "MESSAGE\nx:12345678\ny:12345678\nack:A\n\n\0"
			"RECEIPT\nreceipt-id:1\n\n";

		CHECK(decode_dropping(d, sizeof(d), &lim, &f));
		CHECK(f != NULL && f->headers_dropped && f->nheaders == 2 &&
			  header_is(f, 0, "x", "12345678") && header_is(f, 1, "ack", "A"));
		stomp_frame_free(f);
	}

	/* within the limits, nothing is dropped */
	memset(&lim, 0, sizeof(lim));
	lim.max_header_count = 2;
	{
		static const char d[] = "MESSAGE\nack:A\nx:1\n\n\0RECEIPT\nreceipt-id:1\n\n";

		CHECK(decode_dropping(d, sizeof(d), &lim, &f));
		CHECK(f != NULL && !f->headers_dropped && f->nheaders == 2);
		stomp_frame_free(f);
	}

	/* other frames still fail; so does a MESSAGE's body past its limit */
	CHECK(decode_fails("ERROR\na:1\nb:2\nc:3\nd:4\n\n\0", 25, &lim, "more than 2 headers"));
	memset(&lim, 0, sizeof(lim));
	lim.max_body_len = 4;
	CHECK(decode_fails("MESSAGE\nack:A\n\nabcde\0", 21, &lim, "exceeds the limit of 4"));

	/* at the default limits: a header of 1 MiB, in pieces of 4 kB */
	n = 1024 * 1024;
	big = malloc(n + 128);
	{
		static const char head[] = "MESSAGE\nack:A\nx-big:";
		static const char tail[] = "\nmessage-id:m\n\n{}";	/* and its NUL */
		FrameList	l;
		size_t		total = 0;
		size_t		ncuts;
		size_t	   *cuts;
		size_t		i;

		memcpy(big, head, strlen(head));
		total += strlen(head);
		memset(big + total, 'v', n);
		total += n;
		memcpy(big + total, tail, sizeof(tail));
		total += sizeof(tail);
		memcpy(big + total, receipt, sizeof(receipt));
		total += sizeof(receipt);
		ncuts = total / 4096;
		cuts = malloc(sizeof(size_t) * (ncuts + 1));
		for (i = 0; i < ncuts; i++)
			cuts[i] = (i + 1) * 4096;
		decode_pieces(big, total, cuts, (int) ncuts, &l, NULL);
		CHECK(l.rc == 0 && l.n == 2 && l.frames[0]->headers_dropped &&
			  l.frames[0]->nheaders == 2 &&
			  header_is(l.frames[0], 1, "message-id", "m") &&
			  l.frames[0]->body_len == 2);
		free(cuts);
		list_free(&l);
	}
	free(big);
}

/*
 * test_sticky_error
 *		After an error the decoder stays failed: no frames, no feeding,
 *		until it is reset.
 */
static void
test_sticky_error(void)
{
	StompDecoder dec;
	StompFrame *f;
	static const char good[] = "RECEIPT\nreceipt-id:1\n\n\0";

	stomp_decoder_init(&dec, NULL);
	CHECK(stomp_decoder_feed(&dec, "SEND\nbad\n\n\0", 11));
	CHECK(stomp_decoder_next(&dec, &f) == -1 && f == NULL);
	CHECK(strlen(stomp_decoder_error(&dec)) > 0);
	CHECK(!stomp_decoder_feed(&dec, good, sizeof(good) - 1));
	CHECK(stomp_decoder_next(&dec, &f) == -1);
	CHECK(stomp_decoder_next(&dec, &f) == -1);
	stomp_decoder_reset(&dec);
	CHECK(stomp_decoder_error(&dec)[0] == '\0');
	CHECK(stomp_decoder_feed(&dec, good, sizeof(good) - 1));
	CHECK(stomp_decoder_next(&dec, &f) == 1);
	stomp_frame_free(f);
	CHECK(stomp_decoder_next(&dec, &f) == 0);
	stomp_decoder_free(&dec);
}

/*
 * test_linear_and_compact
 *		Byte-at-a-time feeding of a big frame is linear (it would take
 *		minutes if each byte rescanned the buffer), and decoding many frames
 *		keeps the input buffer small.
 */
static void
test_linear_and_compact(void)
{
	StompDecoder dec;
	StompFrame *f;
	size_t		n = 4 * 1024 * 1024;
	size_t		i;
	clock_t		start;
	double		secs;
	int			frames = 0;
	static const char msg[] = "MESSAGE\ndestination:/q\ncontent-length:3\n\nabc\0\n";

	stomp_decoder_init(&dec, NULL);
	start = clock();
	stomp_decoder_feed(&dec, "SEND\nk:v\n\n", 10);
	for (i = 0; i < n; i++)
	{
		stomp_decoder_feed(&dec, "y", 1);
		if (stomp_decoder_next(&dec, &f) != 0)
			break;
	}
	stomp_decoder_feed(&dec, "\0", 1);
	CHECK(stomp_decoder_next(&dec, &f) == 1);
	CHECK(f != NULL && f->body_len == n);
	stomp_frame_free(f);
	secs = (double) (clock() - start) / CLOCKS_PER_SEC;
	CHECK(secs < 10.0);
	/* the memory of the 4 MB frame goes back with the next bytes */
	CHECK(dec.in.cap > STOMP_BUF_KEEP_CAP);
	stomp_decoder_feed(&dec, "\n", 1);
	CHECK(dec.in.cap <= STOMP_BUF_KEEP_CAP);
	CHECK(stomp_decoder_next(&dec, &f) == 0);

	/* header lines byte by byte: one 60000-byte header */
	stomp_decoder_feed(&dec, "SEND\nk:", 7);
	for (i = 0; i < 60000; i++)
	{
		stomp_decoder_feed(&dec, "h", 1);
		if (stomp_decoder_next(&dec, &f) != 0)
			break;
	}
	stomp_decoder_feed(&dec, "\n\n\0", 3);
	CHECK(stomp_decoder_next(&dec, &f) == 1);
	CHECK(f != NULL && f->nheaders == 1 && f->headers[0].value_len == 60000);
	stomp_frame_free(f);
	secs = (double) (clock() - start) / CLOCKS_PER_SEC;
	CHECK(secs < 10.0);

	stomp_decoder_free(&dec);
	stomp_decoder_init(&dec, NULL);
	for (i = 0; i < 100000; i++)
	{
		size_t		k;

		for (k = 0; k < sizeof(msg) - 1; k += 7)
		{
			size_t		len = sizeof(msg) - 1 - k < 7 ? sizeof(msg) - 1 - k : 7;

			stomp_decoder_feed(&dec, msg + k, len);
			while (stomp_decoder_next(&dec, &f) == 1)
			{
				frames++;
				stomp_frame_free(f);
			}
		}
	}
	CHECK(frames == 100000);
	CHECK(dec.in.cap <= 1024);
	CHECK(stomp_decoder_buffered(&dec) == 0);
	stomp_decoder_free(&dec);
}

/*
 * test_frame_helpers
 *		Header lookup (first wins), removal, name sanitizing, buffers.
 */
static void
test_frame_helpers(void)
{
	StompFrame *f = stomp_frame_new("MESSAGE");
	StompBuf	b;
	char		d[80];
	char		longname[200];

	CHECK(stomp_frame_add_header(f, "a", "1"));
	CHECK(stomp_frame_add_header(f, "b", "2"));
	CHECK(stomp_frame_add_header(f, "a", "3"));
	CHECK(strcmp(stomp_frame_get_header(f, "a"), "1") == 0);
	CHECK(stomp_frame_get_header(f, "c") == NULL);
	CHECK(stomp_frame_remove_header(f, "a") == 2);
	CHECK(f->nheaders == 1 && header_is(f, 0, "b", "2"));
	stomp_frame_free(f);
	stomp_frame_free(NULL);

	stomp_describe_name(d, sizeof(d), "a\nb\x01", 4);
	CHECK(strcmp(d, "a?b?") == 0);
	memset(longname, 'n', sizeof(longname));
	stomp_describe_name(d, sizeof(d), longname, sizeof(longname));
	CHECK(strlen(d) == 64 && strcmp(d + 61, "...") == 0);

	stomp_buf_init(&b);
	CHECK(stomp_buf_append_u64(&b, 0));
	CHECK(stomp_buf_append_u64(&b, 18446744073709551615ULL));
	CHECK(strcmp(b.data, "018446744073709551615") == 0);
	stomp_buf_consume(&b, 1);
	CHECK(strcmp(b.data, "18446744073709551615") == 0);
	b.max = b.len + 2;
	CHECK(stomp_buf_append(&b, "ab", 2));
	CHECK(!stomp_buf_append(&b, "c", 1));
	CHECK(!stomp_buf_reserve(&b, SIZE_MAX));
	stomp_buf_free(&b);
}

/*
 * test_codec
 *		Run the codec group.
 */
void
test_codec(void)
{
	test_encode_send();
	test_encode_refusals();
	test_encode_connect();
	test_escape_round_trip();
	test_reference_stream();
	test_splits();
	test_malformed();
	test_limits();
	test_message_past_limits();
	test_sticky_error();
	test_linear_and_compact();
	test_frame_helpers();
}
