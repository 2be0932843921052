/*-------------------------------------------------------------------------
 *
 * uuid7.c
 *		  Time-ordered UUIDs for outbox.published.id.
 *
 * A version 7 UUID (RFC 9562) starts with the Unix time in milliseconds, so
 * ids generated one after another sort in that order and the primary key
 * index of outbox.published is appended to at its right edge instead of
 * being written all over.  The 12 bits after the version hold the fraction
 * of the millisecond (RFC 9562, method 3), and within one backend each id
 * is made strictly greater than the previous one even when the clock stands
 * still or steps back.  The remaining 62 bits are random.
 *
 * The random bits come from a per-process generator seeded once from the
 * operating system's strong source: ids need to be unique, not secret, and
 * a strong random call per row was a sixth of the capture trigger's time.
 *
 * src/uuid7.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "common/pg_prng.h"
#include "fmgr.h"
#include "miscadmin.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_uuid_generate_v7);

/* 48 bits of milliseconds and 12 bits of fraction: the last one handed out */
static uint64 last_timestamp = 0;

/* the generator, and the process it was seeded in (backends are forked) */
static pg_prng_state random_state;
static pid_t random_state_pid = 0;

/*
 * Fill uuid with random bytes.
 */
static void
fill_random(pg_uuid_t *uuid)
{
	uint64		high;
	uint64		low;

	if (random_state_pid != MyProcPid)
	{
		uint64		seed[2];

		if (!pg_strong_random(seed, sizeof(seed)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
		pg_prng_seed(&random_state, seed[0] ^ seed[1]);
		random_state_pid = MyProcPid;
	}
	high = pg_prng_uint64(&random_state);
	low = pg_prng_uint64(&random_state);
	memcpy(uuid->data, &high, sizeof(high));
	memcpy(uuid->data + sizeof(high), &low, sizeof(low));
}

/*
 * Make uuid a version 7 UUID that sorts after every one this backend made.
 */
void
outbox_uuid_v7(pg_uuid_t *uuid)
{
	struct timespec now;
	uint64		unix_ms;
	uint64		fraction;
	uint64		stamp;

	fill_random(uuid);

	clock_gettime(CLOCK_REALTIME, &now);
	unix_ms = (uint64) now.tv_sec * 1000 + now.tv_nsec / 1000000;
	/* nanoseconds within the millisecond scaled to 12 bits */
	fraction = ((uint64) (now.tv_nsec % 1000000) << 12) / 1000000;
	stamp = (unix_ms << 12) | fraction;

	/* never go back: one more than the last if the clock did not move on */
	if (stamp <= last_timestamp)
		stamp = last_timestamp + 1;
	last_timestamp = stamp;

	unix_ms = stamp >> 12;
	fraction = stamp & 0xFFF;

	uuid->data[0] = (unsigned char) (unix_ms >> 40);
	uuid->data[1] = (unsigned char) (unix_ms >> 32);
	uuid->data[2] = (unsigned char) (unix_ms >> 24);
	uuid->data[3] = (unsigned char) (unix_ms >> 16);
	uuid->data[4] = (unsigned char) (unix_ms >> 8);
	uuid->data[5] = (unsigned char) unix_ms;
	uuid->data[6] = (unsigned char) (0x70 | (fraction >> 8));
	uuid->data[7] = (unsigned char) (fraction & 0xFF);
	/* variant 10xx */
	uuid->data[8] = (unsigned char) ((uuid->data[8] & 0x3F) | 0x80);
}

/*
 * Return whether uuid is a version 7 UUID of RFC 9562's variant, and if so
 * set *unix_ms to the Unix time in milliseconds it starts with.
 */
bool
outbox_uuid_v7_unix_ms(const pg_uuid_t *uuid, int64 *unix_ms)
{
	uint64		ms = 0;
	int			i;

	if ((uuid->data[6] & 0xF0) != 0x70 || (uuid->data[8] & 0xC0) != 0x80)
		return false;
	for (i = 0; i < 6; i++)
		ms = (ms << 8) | uuid->data[i];
	*unix_ms = (int64) ms;
	return true;
}

/*
 * Make uuid a random (version 4) UUID, for correlation ids.
 */
void
outbox_uuid_v4(pg_uuid_t *uuid)
{
	fill_random(uuid);
	uuid->data[6] = (unsigned char) ((uuid->data[6] & 0x0F) | 0x40);
	uuid->data[8] = (unsigned char) ((uuid->data[8] & 0x3F) | 0x80);
}

/*
 * Write uuid as uuid_out() does (lower-case hex, 8-4-4-4-12) into buf, which
 * holds OUTBOX_UUID_TEXT_LEN + 1 bytes: the capture of every message needs
 * it twice, and uuid_out()'s StringInfo costs ten times as much.
 */
void
outbox_uuid_text(const pg_uuid_t *uuid, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	char	   *p = buf;
	int			i;

	for (i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[uuid->data[i] >> 4];
		*p++ = hex[uuid->data[i] & 0x0F];
	}
	*p = '\0';
}

/*
 * SQL: outbox.uuid_generate_v7(), the default of the outbox tables' ids.
 */
Datum
outbox_uuid_generate_v7(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *uuid = palloc(sizeof(pg_uuid_t));

	outbox_uuid_v7(uuid);
	PG_RETURN_UUID_P(uuid);
}
