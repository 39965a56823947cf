/*-------------------------------------------------------------------------
 *
 * pullwait.c
 *		A pull that waits: pull's wait_ms sleeps on the backend's latch
 *		until a committing transaction makes a job of its queue runnable.
 *
 * A waiting backend publishes, in its slot of a shared array indexed by
 * PGPROC number, its database and the hash of its queue's name; a count of
 * waiters lets committing backends skip the array when nobody waits.  The
 * wake-ups come from the same place as the worker's NOTIFY taskq_wakeup
 * (events.c): at commit, after the transaction is visible, a backend that
 * pushed runnable jobs, promoted, redrove or reclaimed some sets the latch
 * of every waiter on those queues (on any queue of the database when it
 * touched more than events.c keeps track of).  A hash collision only
 * wakes a waiter for nothing.
 *
 * The waiter publishes its slot before it tries the claim for the last
 * time, so a commit that lands between that try and the sleep finds the
 * slot and sets the latch, and the sleep returns at once.  A sleep ends
 * at the latest when the queue's first delayed job comes due (no commit
 * announces that; a commit that pushed a delayed job or set a failed one
 * to be retried later wakes the waiters to look again), and after
 * WAIT_STEP_MS in any case, for anything no wake-up told of (a queue
 * resumed, a job made waiting by hand).
 *
 * Without shared_preload_libraries there is no array: wait_ms then sleeps
 * in steps of a second, trying the claim after each.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/inval.h"
#include "utils/wait_event.h"

#include "taskq.h"

/* the longest sleep between two tries of the claim */
#define WAIT_STEP_MS	10000

typedef struct WaitShared
{
	pg_atomic_uint32 nwaiters;
	int			nslots;
	/* by PGPROC number: database << 32 | queue hash, 0 when not waiting */
	pg_atomic_uint64 slots[FLEXIBLE_ARRAY_MEMBER];
} WaitShared;

static WaitShared *wait_shared = NULL;
static bool i_wait = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static int
wait_nslots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
wait_shmem_size(void)
{
	return add_size(offsetof(WaitShared, slots),
					mul_size(wait_nslots(), sizeof(pg_atomic_uint64)));
}

static void
wait_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(wait_shmem_size());
}

static void
wait_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	wait_shared = ShmemInitStruct("taskq pull waiters", wait_shmem_size(), &found);
	if (!found)
	{
		pg_atomic_init_u32(&wait_shared->nwaiters, 0);
		wait_shared->nslots = wait_nslots();
		for (int i = 0; i < wait_shared->nslots; i++)
			pg_atomic_init_u64(&wait_shared->slots[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* what a waiter on queue (len bytes) of this database publishes */
static uint64
wait_key(const char *queue, int len)
{
	uint32		h = hash_bytes((const unsigned char *) queue, len);

	return ((uint64) MyDatabaseId << 32) | (h == 0 ? 1 : h);
}

/* stop waiting: clear the slot */
static void
wait_leave(void)
{
	if (!i_wait)
		return;
	pg_atomic_write_u64(&wait_shared->slots[MyProc->pgprocno], 0);
	pg_atomic_fetch_sub_u32(&wait_shared->nwaiters, 1);
	i_wait = false;
}

/* an error ends the wait with the transaction */
static void
wait_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		wait_leave();
}

/*
 * Wait, for at most wait_ms milliseconds, until try_claim returns jobs:
 * try it, and between tries sleep until woken, until next_due (when the
 * queue's first delayed job comes due) or for WAIT_STEP_MS.
 * Returns what the last try returned.  The caller's transaction must not
 * have written anything (its locks would be held meanwhile), and must see
 * a fresh snapshot in each try (READ COMMITTED).
 */
int
TaskqPullWait(Datum queue, int32 wait_ms, int (*try_claim) (void *),
			  TimestampTz (*next_due) (void *), void *arg)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
	text	   *q = DatumGetTextPP(queue);
	int			n;
	int			step_ms = WAIT_STEP_MS;

	if (wait_shared != NULL && MyProc != NULL)
	{
		pg_atomic_write_u64(&wait_shared->slots[MyProc->pgprocno],
							wait_key(VARDATA_ANY(q), VARSIZE_ANY_EXHDR(q)));
		pg_atomic_fetch_add_u32(&wait_shared->nwaiters, 1);
		i_wait = true;
	}
	else
		step_ms = 1000;			/* nobody will wake us: poll */
	for (;;)
	{
		TimestampTz now;
		TimestampTz until;
		long		sleep_ms;

		n = try_claim(arg);
		if (n > 0)
			break;
		now = GetCurrentTimestamp();
		if (now >= deadline)
			break;
		until = Min(deadline, TimestampTzPlusMilliseconds(now, step_ms));
		until = Min(until, next_due(arg));
		sleep_ms = TimestampDifferenceMilliseconds(now, until);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(sleep_ms, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		/* queue settings changed meanwhile (resume) reach the cache */
		AcceptInvalidationMessages();
	}
	wait_leave();
	return n;
}

/*
 * At commit: jobs of these queues became runnable (all of the database's
 * when any is set): wake their waiters.
 */
void
TaskqWakeWaiters(char (*queues)[TASKQ_MAX_QUEUE_NAME + 1], int n, bool any)
{
	uint64		keys[TASKQ_WAKE_RING];

	if (wait_shared == NULL || pg_atomic_read_u32(&wait_shared->nwaiters) == 0)
		return;
	for (int i = 0; i < n; i++)
		keys[i] = wait_key(queues[i], strlen(queues[i]));
	for (int s = 0; s < wait_shared->nslots; s++)
	{
		uint64		k = pg_atomic_read_u64(&wait_shared->slots[s]);
		bool		wake = false;

		if (k == 0 || (Oid) (k >> 32) != MyDatabaseId)
			continue;
		wake = any;
		for (int i = 0; i < n && !wake; i++)
			wake = k == keys[i];
		if (wake)
			SetLatch(&ProcGlobal->allProcs[s].procLatch);
	}
}

/*
 * While shared_preload_libraries is processed, ask for the shared memory.
 */
void
TaskqPullWaitInit(bool preloading)
{
	RegisterXactCallback(wait_xact_callback, NULL);
	if (!preloading)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = wait_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = wait_shmem_startup;
}
