/*-------------------------------------------------------------------------
 *
 * worker_state.c
 *		  A worker's state machine, and the one place that publishes its
 *		  state.
 *
 * Each kind of worker (publisher, consumer) describes its states as a
 * table: for every state, the set of states it may go to next.  The worker
 * keeps its current state in an OutboxStateMachine and changes it only
 * through outbox_worker_transition(), which checks the move against the
 * table and copies the new state into the worker's shared slot, where
 * outbox.status reads it.  No other code writes a slot's state, so the
 * status cannot say one thing while the worker does another.
 *
 * The tables and their diagrams live beside each worker's code
 * (publisher.c, consumer.c).
 *
 * Error policy: a move the table does not allow is a bug in the worker.
 * Assert-enabled builds stop on it; production builds log it at WARNING
 * once per pair of states and make the move, since a status that is
 * briefly unusual is better than a worker that stops sending.
 *
 * Memory: none; the machine lives in the worker's static state.
 *
 * src/worker_state.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "outbox.h"

/* "reported" keeps a bit per pair of states */
StaticAssertDecl(OUTBOX_STATE_NO_DATABASE < 8,
				 "OutboxStateMachine.reported holds 8 states at most");

/*
 * Start a worker's machine in OUTBOX_STATE_STARTING, the state a slot is
 * acquired in.  next[s] is the set of states s may move to, as
 * OUTBOX_STATE_BIT()s; it must outlive the machine (a static table).
 */
void
outbox_worker_state_init(OutboxStateMachine *machine, const char *worker,
						 const uint32 *next)
{
	machine->worker = worker;
	machine->next = next;
	machine->state = OUTBOX_STATE_STARTING;
	machine->reported = 0;
	outbox_slot_set_state(OUTBOX_STATE_STARTING, NULL);
}

/*
 * Whether the machine's table lets its current state move to "to".
 * Staying in the same state is always allowed (only the broker may change).
 */
bool
outbox_worker_may_transition(const OutboxStateMachine *machine,
							 OutboxWorkerState to)
{
	return to == machine->state ||
		(machine->next[machine->state] & OUTBOX_STATE_BIT(to)) != 0;
}

/*
 * Move the machine to "to" and show it in the worker's slot, with the
 * broker it now talks to (NULL: unchanged, "": none).
 */
void
outbox_worker_transition(OutboxStateMachine *machine, OutboxWorkerState to,
						 const char *broker)
{
	if (!outbox_worker_may_transition(machine, to))
	{
		uint64		pair = UINT64CONST(1) << (machine->state * 8 + to);

		Assert(false);
		if ((machine->reported & pair) == 0)
		{
			machine->reported |= pair;
			elog(WARNING, "outbox %s moved from state \"%s\" to \"%s\", which its state table does not allow",
				 machine->worker, outbox_state_name(machine->state),
				 outbox_state_name(to));
		}
	}
	machine->state = to;
	outbox_slot_set_state(to, broker);
}
