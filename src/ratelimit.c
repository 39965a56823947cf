/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *		Rate limits inside pull: a queue's "rate_limit" (jobs leased per
 *		period for the whole queue) and "group_rate_limit" (the same per
 *		group key).
 *
 * Fixed windows: a limit of N per P ms lets at most N jobs be leased in
 * each window [k * P, (k + 1) * P) of the server's clock (since the Unix
 * epoch, so a per-minute limit starts afresh on the minute).  Exact and
 * O(1) per pull, with a few bytes per key; the price is that the leases of
 * the end of one window and the start of the next can come close together
 * (up to 2N within P around a boundary).  A sliding log would need N
 * timestamps per key; a token bucket allows the same burst.  Who needs the
 * leases spread out sets a shorter period (10 per 6 s rather than 100 per
 * minute).
 *
 * The counts live in shared memory, one entry per (database, queue, group)
 * keyed by 64-bit hashes of the names (two keys with the same hash share
 * a count: that can only lease fewer), taken under one lock.  A pull takes
 * what it may lease before its claim and gives back what it did not get;
 * a pull whose transaction aborts does not give back what it leased, so a
 * window can only lease fewer than its limit, never more.  A restart
 * starts every window afresh.  Entries of windows that have ended are
 * reused when the table (taskq.rate_limit_keys) is full; when none has
 * ended, a key not yet in the table leases nothing in that window.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "taskq.h"

typedef struct RateKey
{
	Oid			dbid;
	bool		group;			/* a group's count, else the queue's */
	uint64		queue;			/* hashes of the names */
	uint64		key;
} RateKey;

typedef struct RateEntry
{
	RateKey		key;
	int64		window_end;		/* ms since the epoch; the count is of the
								 * window ending then */
	int32		used;
} RateEntry;

typedef struct RateShared
{
	LWLock	   *lock;
} RateShared;

/* taskq.rate_limit_keys: entries of the table */
int			taskq_rate_limit_keys = 16384;

static RateShared *rate_shared = NULL;
static HTAB *rate_hash = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
rate_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(MAXALIGN(sizeof(RateShared)),
									hash_estimate_size(taskq_rate_limit_keys,
													   sizeof(RateEntry))));
	RequestNamedLWLockTranche("taskq rate limits", 1);
}

static void
rate_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	rate_shared = ShmemInitStruct("taskq rate limits", sizeof(RateShared), &found);
	if (!found)
		rate_shared->lock = &(GetNamedLWLockTranche("taskq rate limits"))->lock;
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(RateKey);
	info.entrysize = sizeof(RateEntry);
	rate_hash = ShmemInitHash("taskq rate limits hash",
							  taskq_rate_limit_keys, taskq_rate_limit_keys,
							  &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);
}

/* whether rate limits can be kept: taskq was preloaded */
bool
TaskqRateLimitsAvailable(void)
{
	return rate_shared != NULL;
}

static void
rate_key(RateKey *k, text *queue, const char *group, int len)
{
	memset(k, 0, sizeof(*k));
	k->dbid = MyDatabaseId;
	k->group = group != NULL;
	k->queue = hash_bytes_extended((const unsigned char *) VARDATA_ANY(queue),
								   VARSIZE_ANY_EXHDR(queue), 0);
	if (group != NULL)
		k->key = hash_bytes_extended((const unsigned char *) group, len, 1);
}

/* ms since the Unix epoch, by the clock */
static int64
now_ms(void)
{
	return (GetCurrentTimestamp() / 1000) +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
}

/* when the window of a period that holds the time now (ms) ends */
static int64
window_end(int64 now, int32 period_ms)
{
	return (now / period_ms + 1) * period_ms;
}

/* a free entry: one whose window has ended, when the table is full */
static bool
evict_one(int64 now)
{
	HASH_SEQ_STATUS st;
	RateEntry  *e;

	hash_seq_init(&st, rate_hash);
	while ((e = hash_seq_search(&st)) != NULL)
	{
		if (e->window_end <= now)
		{
			RateKey		k = e->key;

			hash_seq_term(&st);
			(void) hash_search(rate_hash, &k, HASH_REMOVE, NULL);
			return true;
		}
	}
	return false;
}

/*
 * Take up to want leases of the current window of a limit of limit per
 * period_ms, for the queue (group NULL) or one of its groups; returns how
 * many it took.
 */
int32
TaskqRateTake(text *queue, const char *group, int len, int32 limit,
			  int32 period_ms, int32 want)
{
	RateKey		k;
	RateEntry  *e;
	bool		found;
	int64		now = now_ms();
	int64		end = window_end(now, period_ms);
	int32		took;

	if (rate_shared == NULL || want <= 0)
		return 0;
	rate_key(&k, queue, group, len);
	LWLockAcquire(rate_shared->lock, LW_EXCLUSIVE);
	e = hash_search(rate_hash, &k, HASH_ENTER_NULL, &found);
	if (e == NULL && evict_one(now))
		e = hash_search(rate_hash, &k, HASH_ENTER_NULL, &found);
	if (e == NULL)
	{
		LWLockRelease(rate_shared->lock);
		return 0;
	}
	if (!found || e->window_end != end)
	{
		/* a new window (or the period changed): count afresh */
		e->window_end = end;
		e->used = 0;
	}
	took = Min(want, Max(limit - e->used, 0));
	e->used += took;
	LWLockRelease(rate_shared->lock);
	return took;
}

/* give back n leases taken by TaskqRateTake but not used */
void
TaskqRateGiveBack(text *queue, const char *group, int len, int32 period_ms,
				  int32 n)
{
	RateKey		k;
	RateEntry  *e;
	int64		end = window_end(now_ms(), period_ms);

	if (rate_shared == NULL || n <= 0)
		return;
	rate_key(&k, queue, group, len);
	LWLockAcquire(rate_shared->lock, LW_EXCLUSIVE);
	e = hash_search(rate_hash, &k, HASH_FIND, NULL);
	/* only into the window they were taken from */
	if (e != NULL && e->window_end == end)
		e->used = Max(e->used - n, 0);
	LWLockRelease(rate_shared->lock);
}

/*
 * How many leases the current window of a limit has used (0 in a window
 * with none), for stats().
 */
int32
TaskqRateUsed(text *queue, const char *group, int len, int32 period_ms)
{
	RateKey		k;
	RateEntry  *e;
	int64		end = window_end(now_ms(), period_ms);
	int32		used = 0;

	if (rate_shared == NULL)
		return 0;
	rate_key(&k, queue, group, len);
	LWLockAcquire(rate_shared->lock, LW_SHARED);
	e = hash_search(rate_hash, &k, HASH_FIND, NULL);
	if (e != NULL && e->window_end == end)
		used = e->used;
	LWLockRelease(rate_shared->lock);
	return used;
}

/*
 * Forget the counts of a queue and its groups: its rate limits were set
 * (create_queue, alter_queue), and count from then on.
 */
void
TaskqRateReset(text *queue)
{
	RateKey		k;
	HASH_SEQ_STATUS st;
	RateEntry  *e;

	if (rate_shared == NULL)
		return;
	rate_key(&k, queue, NULL, 0);
	LWLockAcquire(rate_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&st, rate_hash);
	while ((e = hash_seq_search(&st)) != NULL)
	{
		if (e->key.dbid == k.dbid && e->key.queue == k.queue)
		{
			RateKey		gone = e->key;

			/* removing the entry just returned is allowed during a scan */
			(void) hash_search(rate_hash, &gone, HASH_REMOVE, NULL);
		}
	}
	LWLockRelease(rate_shared->lock);
}

/*
 * taskq._rate_used(queue text, group_key text, period_ms int) RETURNS int
 */
PG_FUNCTION_INFO_V1(taskq_rate_used);
Datum
taskq_rate_used(PG_FUNCTION_ARGS)
{
	text	   *group;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 1)
		PG_RETURN_NULL();
	group = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	PG_RETURN_INT32(TaskqRateUsed(PG_GETARG_TEXT_PP(0),
								  group ? VARDATA_ANY(group) : NULL,
								  group ? VARSIZE_ANY_EXHDR(group) : 0,
								  PG_GETARG_INT32(2)));
}

/*
 * Define the setting; while shared_preload_libraries is processed, ask for
 * the shared memory.
 */
void
TaskqRateLimitInit(bool preloading)
{
	/* shared memory: only while preloading */
	if (!preloading)
		return;
	DefineCustomIntVariable("taskq.rate_limit_keys",
							"Sets how many queues and groups with a rate limit shared memory keeps counts for.",
							"A key that does not fit while every window is still open leases nothing until one ends.",
							&taskq_rate_limit_keys,
							16384,
							64,
							INT_MAX / 2,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = rate_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = rate_shmem_startup;
}
