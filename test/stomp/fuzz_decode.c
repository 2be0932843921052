/*-------------------------------------------------------------------------
 *
 * fuzz_decode.c
 *	  libFuzzer target for the STOMP frame decoder (and encoder round trip).
 *
 * Input layout: the first 5 bytes steer the run, the rest is the stream.
 *	- bytes 0-3: seed of the generator that chooses how the stream is cut
 *	  into pieces (1 to ~100 bytes, sometimes larger);
 *	- byte 4: bit 0 selects tiny limits (to reach the limit paths).
 * Shorter inputs are decoded whole with default limits.
 *
 * Invariants checked (a failure calls abort(), which libFuzzer reports):
 *	- the decoder never reads outside its input (each piece is fed from an
 *	  exactly-sized heap copy so ASan sees any over-read);
 *	- decoding in pieces gives the same frames and result as decoding the
 *	  whole input at once;
 *	- when a frame has a valid content-length, body_len equals it;
 *	- every decoded SEND or MESSAGE re-encodes (minus content-length, which
 *	  the encoder owns) and decodes back to the same frame.
 *
 * test/stomp/fuzz_decode.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stomp_frame.h"

#define FUZZ_MAX_FRAMES 256

/* frames and outcome of one decode */
typedef struct FuzzResult
{
	StompFrame *frames[FUZZ_MAX_FRAMES];
	int			n;
	int			rc;
	char		err[STOMP_ERRMSG_SIZE];
} FuzzResult;

extern int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void fuzz_decode(const uint8_t *data, size_t size, uint32_t seed,
						bool split, const StompLimits *limits, FuzzResult *r);
static bool fuzz_frames_equal(const StompFrame *a, const StompFrame *b);
static void fuzz_check_frame(const StompFrame *f);
static void fuzz_free(FuzzResult *r);

/*
 * fuzz_free
 *		Free the frames of a result.
 */
static void
fuzz_free(FuzzResult *r)
{
	int			i;

	for (i = 0; i < r->n; i++)
		stomp_frame_free(r->frames[i]);
	r->n = 0;
}

/*
 * fuzz_decode
 *		Decode "data", whole or cut into generator-chosen pieces, draining
 *		after every piece.
 */
static void
fuzz_decode(const uint8_t *data, size_t size, uint32_t seed, bool split,
			const StompLimits *limits, FuzzResult *r)
{
	StompDecoder dec;
	size_t		off = 0;
	uint32_t	x = seed | 1;

	memset(r, 0, sizeof(FuzzResult));
	stomp_decoder_init(&dec, limits);
	while (off < size || (size == 0 && off == 0))
	{
		size_t		piece = size - off;
		uint8_t    *copy;
		StompFrame *f;

		if (split)
		{
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			piece = (x % 8 == 0) ? 1 + x % 4096 : 1 + x % 100;
			if (piece > size - off)
				piece = size - off;
		}
		copy = malloc(piece ? piece : 1);
		if (copy == NULL)
			abort();
		if (piece)
			memcpy(copy, data + off, piece);
		stomp_decoder_feed(&dec, copy, piece);
		free(copy);
		off += piece;
		while ((r->rc = stomp_decoder_next(&dec, &f)) == 1)
		{
			if (r->n < FUZZ_MAX_FRAMES)
				r->frames[r->n++] = f;
			else
				stomp_frame_free(f);
		}
		if (r->rc < 0)
		{
			memcpy(r->err, stomp_decoder_error(&dec), sizeof(r->err));
			break;
		}
		if (size == 0)
			break;
	}
	stomp_decoder_free(&dec);
}

/*
 * fuzz_frames_equal
 *		Same command, headers (in order) and body, and the same headers
 *		dropped or not.
 */
static bool
fuzz_frames_equal(const StompFrame *a, const StompFrame *b)
{
	size_t		i;

	if (strcmp(a->command, b->command) != 0 || a->nheaders != b->nheaders ||
		a->body_len != b->body_len || a->headers_dropped != b->headers_dropped)
		return false;
	if (a->body_len && memcmp(a->body, b->body, a->body_len) != 0)
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
 * fuzz_check_frame
 *		Per-frame invariants: content-length honoured, terminators in place,
 *		and the SEND/MESSAGE encode/decode round trip.
 */
static void
fuzz_check_frame(const StompFrame *f)
{
	const char *cl = stomp_frame_get_header(f, "content-length");
	size_t		i;

	if (cl != NULL)
	{
		/* the decoder accepted it, so it is all digits and fits */
		unsigned long long v = strtoull(cl, NULL, 10);

		if (v != (unsigned long long) f->body_len)
			abort();
	}
	if (f->body_len > 0 && f->body[f->body_len] != '\0')
		abort();
	for (i = 0; i < f->nheaders; i++)
	{
		if (f->headers[i].name_len == 0 ||
			f->headers[i].name[f->headers[i].name_len] != '\0' ||
			f->headers[i].value[f->headers[i].value_len] != '\0' ||
			memchr(f->headers[i].name, '\0', f->headers[i].name_len) ||
			memchr(f->headers[i].value, '\0', f->headers[i].value_len))
			abort();
	}

	if (strcmp(f->command, "SEND") == 0 || strcmp(f->command, "MESSAGE") == 0)
	{
		StompFrame *copy = stomp_frame_new(f->command);
		StompBuf	out;
		char		err[STOMP_ERRMSG_SIZE];
		FuzzResult	again;

		if (copy == NULL)
			abort();
		for (i = 0; i < f->nheaders; i++)
			if (!stomp_frame_add_header_len(copy, f->headers[i].name,
											f->headers[i].name_len,
											f->headers[i].value,
											f->headers[i].value_len))
				abort();
		if (!stomp_frame_set_body(copy, f->body, f->body_len))
			abort();
		stomp_frame_remove_header(copy, "content-length");

		stomp_buf_init(&out);
		if (!stomp_encode_frame(&out, copy, err, sizeof(err)))
			abort();
		fuzz_decode((const uint8_t *) out.data, out.len, 0, false, NULL, &again);
		if (again.rc != 0 || again.n != 1)
			abort();
		if (stomp_frame_remove_header(again.frames[0], "content-length") != 1)
			abort();
		if (!fuzz_frames_equal(again.frames[0], copy))
			abort();
		fuzz_free(&again);
		stomp_buf_free(&out);
		stomp_frame_free(copy);
	}
}

/*
 * LLVMFuzzerTestOneInput
 *		libFuzzer entry point; see the file header.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	StompLimits tiny = {8, 64, 256, 512};
	const StompLimits *limits = NULL;
	uint32_t	seed = 0;
	FuzzResult	whole;
	FuzzResult	pieces;
	int			i;

	if (size >= 5)
	{
		seed = (uint32_t) data[0] | (uint32_t) data[1] << 8 |
			(uint32_t) data[2] << 16 | (uint32_t) data[3] << 24;
		if (data[4] & 1)
			limits = &tiny;
		data += 5;
		size -= 5;
	}

	fuzz_decode(data, size, seed, false, limits, &whole);
	fuzz_decode(data, size, seed, true, limits, &pieces);

	/*
	 * The error message may differ (a line cut short can only be known to
	 * break the header-bytes limit, the whole line also the line limit),
	 * but the outcome and the frames before it may not.
	 */
	if (whole.rc != pieces.rc || whole.n != pieces.n)
		abort();
	for (i = 0; i < whole.n; i++)
	{
		if (!fuzz_frames_equal(whole.frames[i], pieces.frames[i]))
			abort();
		fuzz_check_frame(whole.frames[i]);
	}
	fuzz_free(&whole);
	fuzz_free(&pieces);
	return 0;
}
