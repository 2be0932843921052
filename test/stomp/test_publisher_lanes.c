/*-------------------------------------------------------------------------
 *
 * test_publisher_lanes.c
 *	  Unit tests of src/decide/publisher_lanes.c: the isolation lane's
 *	  order, the pipelined lane's window, chunks, time, roll-over and last
 *	  receipts, where a draining lane resumes and where its next fetch
 *	  starts, with the clock at the exact boundaries.
 *
 * test/stomp/test_publisher_lanes.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "decide/publisher_lanes.h"
#include "test_util.h"

/*
 * test_publisher_lanes
 *		Every choice of the lanes.
 */
void
test_publisher_lanes(void)
{
	PublisherPipelineLimits l = {200, 1000, 10, 1000, 3000};
	/* chunk size, carried in flight, chunks of a pass of 2000 messages */
	static const int max_chunks[][3] = {
		{200, 0, 10}, {300, 0, 6}, {2000, 0, 1}, {5000, 0, 1}, {1, 0, 2000},
		{0, 0, 1}, {200, 1000, 5}, {200, 999, 5}, {200, 1001, 4},
		{200, 1999, 1}, {200, 2000, 1}, {200, 5000, 1}, {200, -5, 10},
		{1, 1000, 1000}, {0, 1000, 1}
	};
	/* outstanding, chunk size, how many may stay unconfirmed */
	static const int tail[][3] = {
		{1000, 200, 800}, {201, 200, 1}, {200, 200, 0}, {37, 200, 0},
		{0, 200, 0}, {5, 0, 0}
	};
	int			i;

	/* a due probe first, then the suspects, then the retries */
	CHECK(publisher_isolation_source(true, true) == PUBLISHER_ISOLATE_PROBE);
	CHECK(publisher_isolation_source(true, false) == PUBLISHER_ISOLATE_PROBE);
	CHECK(publisher_isolation_source(false, true) == PUBLISHER_ISOLATE_SUSPECT);
	CHECK(publisher_isolation_source(false, false) == PUBLISHER_ISOLATE_RETRY);
	CHECK(PUBLISHER_ALONE == 1);

	/* a chunk goes out while the window less a chunk is unconfirmed */
	CHECK(publisher_pipeline_outstanding(&l) == 800);
	l.chunk_size = 1000;
	CHECK(publisher_pipeline_outstanding(&l) == 0);
	l.chunk_size = 10000;
	CHECK(publisher_pipeline_outstanding(&l) == 0);
	l.chunk_size = 200;

	/* another chunk only after a full one, within chunks and time */
	CHECK(publisher_pipeline_another_chunk(&l, true, 1, 0));
	CHECK(!publisher_pipeline_another_chunk(&l, false, 1, 0));
	CHECK(publisher_pipeline_another_chunk(&l, true, 9, 0));
	CHECK(!publisher_pipeline_another_chunk(&l, true, 10, 0));
	CHECK(publisher_pipeline_another_chunk(&l, true, 1, 999));
	CHECK(!publisher_pipeline_another_chunk(&l, true, 1, 1000));
	CHECK(!publisher_pipeline_another_chunk(&l, false, 10, 1000));

	/*
	 * a pass takes as many chunks as make its messages with those it took
	 * over in flight, at least one
	 */
	for (i = 0; i < (int) (sizeof(max_chunks) / sizeof(max_chunks[0])); i++)
		CHECK(publisher_pipeline_max_chunks(2000, max_chunks[i][1],
											max_chunks[i][0]) ==
			  max_chunks[i][2]);

	/* it rolls over after a full chunk only, within the lane's time */
	CHECK(publisher_pipeline_rolls_over(&l, true, 0, false));
	CHECK(publisher_pipeline_rolls_over(&l, true, 2999, false));
	CHECK(!publisher_pipeline_rolls_over(&l, true, 3000, false));
	CHECK(!publisher_pipeline_rolls_over(&l, false, 0, false));
	/* never while messages wait to be sent alone, between lanes */
	CHECK(!publisher_pipeline_rolls_over(&l, true, 0, true));
	CHECK(!publisher_pipeline_rolls_over(&l, false, 0, true));
	l.lane_ms = 0;
	CHECK(!publisher_pipeline_rolls_over(&l, true, 0, false));

	/* the last receipts are taken in a chunk at a time, down to none */
	for (i = 0; i < (int) (sizeof(tail) / sizeof(tail[0])); i++)
		CHECK(publisher_pipeline_tail_target(tail[i][0], tail[i][1]) ==
			  tail[i][2]);

	/* a draining pass resumes for less than the limit, never without a mark */
	CHECK(publisher_pipeline_resumes(true, 5000, 0, 10000));
	CHECK(publisher_pipeline_resumes(true, 9999, 0, 10000));
	CHECK(!publisher_pipeline_resumes(true, 10000, 0, 10000));
	CHECK(!publisher_pipeline_resumes(false, 5000, 0, 10000));

	/*
	 * after a lane: again at once while more may wait, and after a resumed
	 * lane that reached the end, for rows below where it resumed
	 */
	CHECK(publisher_pipeline_look_again(true, false));
	CHECK(publisher_pipeline_look_again(true, true));
	CHECK(publisher_pipeline_look_again(false, true));
	CHECK(!publisher_pipeline_look_again(false, false));

	/* the next fetch starts one id above the last: carries, and the end */
	{
		uint8_t		last[PUBLISHER_ID_BYTES];
		uint8_t		bound[PUBLISHER_ID_BYTES];
		uint8_t		want[PUBLISHER_ID_BYTES];

		memset(last, 0, sizeof(last));
		memset(want, 0, sizeof(want));
		want[15] = 1;
		/* a whole chunk: more may wait; a short one: no more; a cut one: more */
		CHECK(publisher_pipeline_fetched(200, 200, false, last, bound) &&
			  memcmp(bound, want, sizeof(want)) == 0);
		memset(bound, 0xaa, sizeof(bound));
		CHECK(!publisher_pipeline_fetched(7, 200, false, last, bound) &&
			  memcmp(bound, want, sizeof(want)) == 0);
		CHECK(publisher_pipeline_fetched(7, 200, true, last, bound));
		CHECK(publisher_pipeline_fetched(1, 1, false, last, bound));
		/* carries */
		last[14] = 0x12;
		last[15] = 0xff;
		want[14] = 0x13;
		want[15] = 0x00;
		CHECK(publisher_pipeline_fetched(200, 200, false, last, bound) &&
			  memcmp(bound, want, sizeof(want)) == 0);
		memset(last, 0xff, sizeof(last));
		last[0] = 0x7f;
		memset(want, 0, sizeof(want));
		want[0] = 0x80;
		CHECK(publisher_pipeline_fetched(200, 200, false, last, bound) &&
			  memcmp(bound, want, sizeof(want)) == 0);
		/*
		 * nothing is above the highest id: no more is waiting even after a
		 * whole or a cut chunk, and the bound stays where it was
		 */
		memset(last, 0xff, sizeof(last));
		memset(bound, 0x42, sizeof(bound));
		memset(want, 0x42, sizeof(want));
		CHECK(!publisher_pipeline_fetched(200, 200, false, last, bound));
		CHECK(!publisher_pipeline_fetched(7, 200, true, last, bound));
		CHECK(memcmp(bound, want, sizeof(want)) == 0);
		/* the last id is left as it was */
		CHECK(last[0] == 0xff && last[15] == 0xff);
	}
}
