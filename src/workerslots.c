/*-------------------------------------------------------------------------
 *
 * workerslots.c
 *		taskq's shared memory for its background processes: the launcher's
 *		latch and one slot per database worker.
 *
 * Shared memory (TaskqShared) holds the launcher's latch and one slot per
 * database worker: its pid and latch, so that backends can wake it when
 * they commit (events.c), and the names of queues that got new jobs, which
 * the worker turns into one NOTIFY per queue (coalesced wake-ups).
 *
 * Locking: TaskqShared->lock (an LWLock) guards the slots.
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "taskq.h"

TaskqShared *taskq_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Shared memory size of taskq.
 */
static Size
taskq_shmem_size(void)
{
	return sizeof(TaskqShared);
}

/* shmem_request_hook: ask for our shared memory and lock */
static void
taskq_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(taskq_shmem_size());
	RequestNamedLWLockTranche("taskq", 1);
}

/* shmem_startup_hook: set up our shared memory */
static void
taskq_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	taskq_shared = ShmemInitStruct("taskq", taskq_shmem_size(), &found);
	if (!found)
	{
		memset(taskq_shared, 0, taskq_shmem_size());
		taskq_shared->lock = &(GetNamedLWLockTranche("taskq"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The slot of a database, or NULL; caller holds the lock.
 */
TaskqDbSlot *
TaskqFindSlot(Oid dbid)
{
	if (taskq_shared == NULL)
		return NULL;
	for (int i = 0; i < TASKQ_MAX_DATABASES; i++)
		if (taskq_shared->slots[i].dbid == dbid)
			return &taskq_shared->slots[i];
	return NULL;
}

/*
 * Pin search_path for the life of a launcher or worker process: they run
 * as the bootstrap superuser, and every statement they run, or fire
 * (triggers, the DAG trigger's pushes), must resolve names in pg_catalog
 * only, never in a schema another role can create objects in.  The
 * override source outranks ALTER DATABASE/ROLE settings, the
 * configuration file and SET, so it holds in every transaction.
 */
void
TaskqPinSearchPath(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET,
					PGC_S_OVERRIDE);
}

/*
 * Ask for and set up the shared memory; from _PG_init while
 * shared_preload_libraries is processed.
 */
void
TaskqSlotsInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = taskq_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = taskq_shmem_startup;
}
