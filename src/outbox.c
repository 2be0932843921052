/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		  Entry point of the outbox extension.
 *
 * The library must be loaded through shared_preload_libraries: its
 * settings are read by background workers, and later by the workers
 * themselves, which only the postmaster can start at server start.
 *
 * src/outbox.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "outbox.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Module load: define the settings; at server start also set up shared
 * memory and register the publishers, unless pg_upgrade started the
 * server: a worker connected to a database makes pg_upgrade's DROP
 * DATABASE of it fail.
 */
void
_PG_init(void)
{
	outbox_define_settings();

	if (!process_shared_preload_libraries_in_progress)
		return;
	outbox_shmem_init();
	if (!IsBinaryUpgrade)
		outbox_register_publishers();
}
