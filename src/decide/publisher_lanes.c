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
 * The pipelined lane sends fresh rows chunk after chunk in one pass
 * transaction, keeping at most "window" messages unconfirmed while the
 * next chunk is fetched and sent; it stops at a chunk that is not full
 * (the backlog is drained), after max_chunks chunks or max_ms; the
 * chunks a pass may take are as many as make max_messages, whatever the
 * chunk size, since a crash sends a pass's messages again.  At the end of
 * a pass the last receipts are taken in a chunk at a time, each
 * chunk's rows marked while the next chunk's receipts are on their way,
 * so that only the last chunk's rows are marked once the broker has
 * nothing left to confirm.  While it
 * drains a backlog, the next pass resumes after the last id fetched, for
 * at most resume_max_ms from the pass that started the run.
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
 *		Whether the pass fetches another chunk after one of "fetched" rows,
 *		chunks of them fetched so far and elapsed_ms into the pass: only
 *		after a full chunk, and within the pass's chunks and time.
 */
bool
publisher_pipeline_another_chunk(const PublisherPipelineLimits *limits,
								 int fetched, int chunks, int64_t elapsed_ms)
{
	return fetched == limits->chunk_size &&
		chunks < limits->max_chunks &&
		elapsed_ms < limits->max_ms;
}

/*
 * publisher_pipeline_max_chunks
 *		How many chunks of chunk_size rows one pass transaction may take:
 *		as many as make max_messages, and at least one.
 */
int
publisher_pipeline_max_chunks(int max_messages, int chunk_size)
{
	if (chunk_size <= 0 || max_messages / chunk_size < 1)
		return 1;
	return max_messages / chunk_size;
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
