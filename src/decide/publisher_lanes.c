/*-------------------------------------------------------------------------
 *
 * publisher_lanes.c
 *	  Which messages a publisher pass sends, where that is a choice rather
 *	  than a query: pure functions of the counts, limits and clock passed
 *	  in, unit-tested without PostgreSQL (test/stomp/test_publisher_lanes.c).
 *
 * The isolation lane sends one message at a time (PUBLISHER_ALONE), each
 * alone on the wire until its receipt, a few a pass so that the pipelined
 * lane keeps moving: first the probe of a held destination
 * whose hold is up (a destination refused as a whole is tried again
 * before anything else is), then the suspects of a broker ERROR (the
 * session that had them in flight could not say which one it was), then
 * the refused messages whose next attempt is due.
 *
 * The pipelined lane sends fresh rows chunk after chunk, keeping at most
 * "window" messages unconfirmed while the next chunk is fetched and sent.
 * A pass transaction stops fetching at a chunk that is not full (the
 * backlog is drained), after max_chunks chunks or max_ms; the chunks it
 * may take are as many as make max_messages together with the messages
 * it took over in flight from the transaction before, whatever the chunk
 * size, since a crash sends again every message a pass transaction has
 * not committed as sent.  While more is waiting and the lane is within
 * lane_ms, the transaction commits with its window still in flight and
 * the next one takes it over (it rolls over), so that the broker is never
 * left idle while a commit waits for its WAL; not while messages wait to
 * be sent alone, which happens between lanes.  At the end of the lane the
 * last receipts are taken in a chunk at a time, each chunk's rows marked
 * while the next chunk's receipts are on their way, so that only the last
 * chunk's rows are marked once the broker has nothing left to confirm.
 * While it drains a backlog, the next lane resumes after the last id
 * fetched, for at most resume_max_ms from the lane that started the run,
 * and a resumed lane that reaches the end is followed at once by one from
 * the head.
 * Each fetch asks for the ids at or above a bound that starts at the
 * lowest id and moves to one above the last id fetched, so that no id is
 * out of reach: a hand-written row may hold the nil UUID or the highest.
 *
 * Error policy: none; every input gives an answer.
 * Memory: none allocated.
 *
 * src/decide/publisher_lanes.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "publisher_lanes.h"

/*
 * publisher_isolation_source
 *		Where the isolation lane takes its next message from: a due probe
 *		first, then a suspect, then a due retry.
 */
PublisherIsolationSource
publisher_isolation_source(bool probe_due, bool have_suspects)
{
	if (probe_due)
		return PUBLISHER_ISOLATE_PROBE;
	if (have_suspects)
		return PUBLISHER_ISOLATE_SUSPECT;
	return PUBLISHER_ISOLATE_RETRY;
}

/*
 * publisher_pipeline_outstanding
 *		How many sends may stay unconfirmed when the next chunk is sent:
 *		the window less a chunk (none if the chunk is the window or more).
 */
int
publisher_pipeline_outstanding(const PublisherPipelineLimits *limits)
{
	int			left = limits->window - limits->chunk_size;

	return left > 0 ? left : 0;
}

/*
 * publisher_pipeline_another_chunk
 *		Whether the pass fetches another chunk after one that was full or
 *		not (more may be waiting: all the rows asked for came, or the fetch
 *		stopped at its byte bound), chunks of them fetched so far and
 *		elapsed_ms into the pass: only after a full chunk, and within the
 *		pass's chunks and time.
 */
bool
publisher_pipeline_another_chunk(const PublisherPipelineLimits *limits,
								 bool full, int chunks, int64_t elapsed_ms)
{
	return full &&
		chunks < limits->max_chunks &&
		elapsed_ms < limits->max_ms;
}

/*
 * publisher_pipeline_max_chunks
 *		How many chunks of chunk_size rows one pass transaction may take,
 *		having taken over carried messages in flight: as many as make
 *		max_messages with them, and at least one.
 */
int
publisher_pipeline_max_chunks(int max_messages, int carried, int chunk_size)
{
	int			left = max_messages - (carried > 0 ? carried : 0);

	if (chunk_size <= 0 || left / chunk_size < 1)
		return 1;
	return left / chunk_size;
}

/*
 * publisher_pipeline_rolls_over
 *		Whether a pass transaction that stopped fetching after a chunk,
 *		full or not, commits with its messages still in flight, for the
 *		next one to take over, rather than waiting for their receipts: only
 *		after a full chunk (more is waiting), within the lane's time, and
 *		while no message waits for the isolation lane (alone_waiting: the
 *		suspects of an ERROR, the probe of a held destination), which runs
 *		only between lanes.
 */
bool
publisher_pipeline_rolls_over(const PublisherPipelineLimits *limits,
							  bool full, int64_t lane_elapsed_ms,
							  bool alone_waiting)
{
	return full && !alone_waiting &&
		lane_elapsed_ms < limits->lane_ms;
}

/*
 * publisher_pipeline_tail_target
 *		At the end of a pass, with outstanding sends unconfirmed: how many
 *		may stay unconfirmed before the rows confirmed so far are marked.
 *		A chunk less, and none at the end.
 */
int
publisher_pipeline_tail_target(int outstanding, int chunk_size)
{
	int			left = outstanding - (chunk_size > 0 ? chunk_size : outstanding);

	return left > 0 ? left : 0;
}

/*
 * publisher_pipeline_resumes
 *		Whether a pass starting at now_ms resumes after the last id of the
 *		previous one (resume_valid: that one drained a full pass) rather
 *		than at the head of the outbox: only within resume_max_ms of the
 *		pass that started the run, for rows committed late with lower ids.
 */
bool
publisher_pipeline_resumes(bool resume_valid, int64_t now_ms,
						   int64_t resume_since_ms, int64_t resume_max_ms)
{
	return resume_valid && now_ms - resume_since_ms < resume_max_ms;
}

/*
 * publisher_pipeline_look_again
 *		Whether the publisher runs the pipelined lane again at once after
 *		one that sent all it fetched, rather than waiting to be woken: while
 *		more may be waiting, and after a lane that resumed past the head and
 *		reached the end, since rows below where it resumed (committed late
 *		with lower ids, their wake-up spent on the lane that resumed, or
 *		unlocked by another session) are found only by a lane from the
 *		head.  A row still locked when that lane passes it waits for the
 *		next wake-up or outbox.poll_interval, as SKIP LOCKED leaves it.
 */
bool
publisher_pipeline_look_again(bool more_waiting, bool resumed)
{
	return more_waiting || resumed;
}

/*
 * publisher_pipeline_fetched
 *		After a fetch of the pipelined lane, which asks for chunk_size rows
 *		with ids at or above a bound, returned fetched rows (cut: it stopped
 *		at its byte bound, rows left behind), the last of them with id last
 *		(a UUID's 16 bytes, compared as PostgreSQL compares them: unsigned,
 *		first byte most significant): move the bound to the id one above it
 *		and say whether more may be waiting (the chunk was whole or cut).
 *		Nothing is above the highest id: the bound stays and nothing more
 *		is waiting, since a fetch from it would return the pass's own rows
 *		again.  A bound that starts at the lowest id, all zeros, and moves
 *		so, leaves no id unseen, the lowest and the highest included.
 */
bool
publisher_pipeline_fetched(int fetched, int chunk_size, bool cut,
						   const uint8_t *last, uint8_t *bound)
{
	uint8_t		next[PUBLISHER_ID_BYTES];
	int			i;

	memcpy(next, last, PUBLISHER_ID_BYTES);
	for (i = PUBLISHER_ID_BYTES - 1; i >= 0; i--)
	{
		if (++next[i] != 0)
			break;
	}
	if (i < 0)
		return false;
	memcpy(bound, next, PUBLISHER_ID_BYTES);
	return fetched == chunk_size || cut;
}
