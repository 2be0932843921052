/*-------------------------------------------------------------------------
 *
 * publisher_lanes.h
 *	  Which messages a publisher pass sends (publisher_lanes.c): the
 *	  isolation lane's order and the pipelined lane's limits; pure.
 *
 * src/decide/publisher_lanes.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PUBLISHER_LANES_H
#define PUBLISHER_LANES_H

#include <stdbool.h>
#include <stdint.h>

/* messages the isolation lane puts on the wire at a time */
#define PUBLISHER_ALONE		1

/* the bytes of a message id, a UUID */
#define PUBLISHER_ID_BYTES	16

/* Where the isolation lane takes its next message from */
typedef enum PublisherIsolationSource
{
	PUBLISHER_ISOLATE_PROBE,	/* a due message of a held destination */
	PUBLISHER_ISOLATE_SUSPECT,	/* a suspect of a broker ERROR */
	PUBLISHER_ISOLATE_RETRY		/* the most overdue refused message */
} PublisherIsolationSource;

/* The pipelined lane's limits: for one pass transaction, and for the lane */
typedef struct PublisherPipelineLimits
{
	int			chunk_size;		/* rows fetched at a time */
	int			window;			/* messages in flight at most */
	int			max_chunks;		/* chunks per pass transaction */
	int64_t		max_ms;			/* time per pass transaction */
	int64_t		lane_ms;		/* time of the lane's transactions in a row */
} PublisherPipelineLimits;

extern PublisherIsolationSource publisher_isolation_source(bool probe_due,
														   bool have_suspects);
extern int	publisher_pipeline_outstanding(const PublisherPipelineLimits *limits);
extern bool publisher_pipeline_another_chunk(const PublisherPipelineLimits *limits,
											 bool full, int chunks,
											 int64_t elapsed_ms);
extern int	publisher_pipeline_max_chunks(int max_messages, int carried,
										  int chunk_size);
extern bool publisher_pipeline_rolls_over(const PublisherPipelineLimits *limits,
										  bool full, int64_t lane_elapsed_ms,
										  bool alone_waiting);
extern int	publisher_pipeline_tail_target(int outstanding, int chunk_size);
extern bool publisher_pipeline_resumes(bool resume_valid, int64_t now_ms,
									   int64_t resume_since_ms,
									   int64_t resume_max_ms);
extern bool publisher_pipeline_look_again(bool more_waiting, bool resumed);
extern bool publisher_pipeline_fetched(int fetched, int chunk_size, bool cut,
									   const uint8_t *last, uint8_t *bound);

#endif							/* PUBLISHER_LANES_H */
