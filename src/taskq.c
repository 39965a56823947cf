/*-------------------------------------------------------------------------
 *
 * taskq.c
 *		Module entry point of the taskq extension.
 *
 * _PG_init stays short: each module defines its own settings in its Init
 * function, and sets up its shared memory, hooks and background workers
 * when the library is in shared_preload_libraries.  The SQL API works
 * when the library is loaded on demand by the first call of a taskq
 * function; the background workers (reaper, retention, webhooks,
 * wake-ups) and the counters need it preloaded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "taskq.h"

PG_MODULE_MAGIC;

/*
 * Module load callback.
 */
void
_PG_init(void)
{
	bool		preloading = process_shared_preload_libraries_in_progress;

	/* pg_upgrade's servers must run no launcher nor worker of ours */
	if (IsBinaryUpgrade)
		return;

	/* in this order: the callbacks of events run after those of metrics */
	TaskqEventsInit();
	TaskqUuidInit();
	TaskqPullInit();
	TaskqMallocInit();
	TaskqDagInit();
	TaskqDagFinishInit();
	TaskqWorkerInit();
	TaskqDeliveryInit();
	if (preloading)
		TaskqSlotsInit();
	TaskqLauncherInit(preloading);
	TaskqMetricsInit(preloading);
	TaskqHeadInit(preloading);
	TaskqPullWaitInit(preloading);
	TaskqRateLimitInit(preloading);
	TaskqEventRingInit(preloading);
	MarkGUCPrefixReserved("taskq");
}
