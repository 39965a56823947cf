/*-------------------------------------------------------------------------
 *
 * pullhead.c
 *		Where pull's claim starts: per queue and priority, a lower bound on
 *		the ids of the waiting jobs, so that the claim does not walk over
 *		the dead index entries of jobs already delivered.
 *
 * Why.  The claim takes the first waiting jobs of jobs_pull_idx, (queue,
 * priority DESC, id) WHERE state = 'waiting'.  Every job it delivers
 * leaves its entry behind, dead, at the left end of its priority's range:
 * job ids grow, so no insert ever lands there, and B-tree deletes dead
 * entries only on a page an insert would split, or in VACUUM.  Until
 * VACUUM, each claim walked over all of them (131 index pages after 20k
 * jobs, test/bench/head_rot.sh), and while some snapshot holds them (a
 * long transaction, scenario 7 of the benchmark) it visited their heap
 * tuples too.  With a bound b per priority the claim's index scan starts
 * at (queue, priority, b): it descends straight past them.
 *
 * The bound.  bound(q, p) is the first 8 bytes of a job id (the UUIDv7's
 * time stamp and version; compared as an unsigned integer they order like
 * the ids), such that no job of queue q and priority p that is waiting, or
 * will become waiting, has an id below it.  Lowering it is always safe;
 * raising it is the delicate part:
 *
 * - A raise reads the entry's generation and then the cap (below), both
 *   before its probe's snapshot; the probe finds the first id each level
 *   has waiting, as a plain read (a job that another transaction is
 *   claiming, and may give back by aborting, is still waiting to it); the
 *   new bound is the smaller of that and the cap, stored only if the
 *   generation did not move meanwhile.
 * - Every change that makes an older job waiting (a lease reclaimed,
 *   delayed jobs coming due, DAG promotion, redrive) lowers the bound of
 *   its level and bumps the generation, after its statement and before
 *   commit: a raise in flight then fails, and a later one sees its floor
 *   (next point) until the job is visible.
 * - Each backend publishes a floor in shared memory: the lowest id its
 *   transaction may yet make waiting or give back.  A backend sets it
 *   before it makes its first job id (TaskqHeadPushing, from push.c),
 *   to the clock's time stamp; re-entries and claims lower it to their
 *   ids.  It is cleared when the transaction ends, after its commit is
 *   visible.  The cap of a raise is the lowest floor of all backends, and
 *   at most the clock's time stamp as read before the floors: an id made
 *   after that read is newer than it (the two barriers order a backend's
 *   floor against the reader's clock), one made before has its floor seen.
 *
 * Levels.  An entry keeps the priorities of its queue that may have
 * waiting jobs, highest first, at most HEAD_MAX_LEVELS of them; the claim
 * is one statement over all of them (a nested loop over an array of
 * (priority, bound), see pull.c).  A push registers its job's priority
 * before it commits; levels are never dropped while the server runs.
 *
 * The check.  An entry is trusted only once a check has found its levels
 * and bounds from the head of the index (a loose index scan, as costly as
 * one claim used to be), after which bounds follow the protocol above.
 * Until then, and for a queue with more priorities than fit, the claim
 * scans from the head as before.  The check runs again every
 * taskq.head_check_interval, which also catches what no taskq statement
 * told us about: a job made waiting by an administrator's own UPDATE of
 * taskq.jobs that slipped past the hooks below, an id made on a clock that
 * stepped back.  A prepared
 * transaction's jobs become visible at COMMIT PREPARED, long after its
 * floor is gone, so that marks the database's entries unchecked
 * (TaskqHeadBreak), as does a server restart (shared memory starts empty).
 * So does the commit of a transaction that wrote taskq.jobs by other means
 * than taskq's statements (TaskqHeadForeignWrite: an ExecutorStart hook
 * sees INSERT, UPDATE and MERGE; the ProcessUtility hook COPY and CREATE
 * EXTENSION), which until then publishes a floor of zero.
 *
 * Without taskq in shared_preload_libraries nothing of this exists and the
 * claim always scans from the head.  Queues beyond taskq.metrics_max_queues
 * (the size of this table too) do the same.
 *
 * A queue's entry keeps its lease floor too (TaskqLeaseFloor, below),
 * which the housekeeping of pull and the reaper read expired leases from.
 *
 * Locking: head_shared->lock guards the hash (shared to find an entry,
 * exclusive to add one); each entry's spinlock guards its fields.  Floors
 * are atomics, each written only by its backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "parser/parsetree.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "taskq.h"

/* taskq.head_check_interval */
int			taskq_head_check_interval = 10000;

/* how long a check may take before another backend takes over */
#define CHECK_CLAIM_MS	10000

typedef struct HeadKey
{
	Oid			dbid;
	char		queue[TASKQ_MAX_QUEUE_NAME + 1];
} HeadKey;

typedef struct HeadEntry
{
	HeadKey		key;
	slock_t		mutex;
	uint64		gen;			/* bumped by each lowering and new level */
	bool		checked;		/* levels and bounds are complete */
	bool		overflow;		/* more priorities than HEAD_MAX_LEVELS */
	int			nlevels;
	int32		priority[TASKQ_HEAD_MAX_LEVELS];	/* highest first */
	uint64		bound[TASKQ_HEAD_MAX_LEVELS];
	TimestampTz checked_at;		/* when the last check read its cap */
	TimestampTz check_until;	/* a backend is checking until then */

	/* the queue's lease floor, see below */
	uint64		lease_gen;		/* bumped by each reset of the floor */
	TimestampTz lease_floor;	/* DT_NOBEGIN: unknown */
	TimestampTz lease_checked_at;
	TimestampTz lease_check_until;

	/* until when housekeeping has nothing to do, see TaskqLeaseFloor */
	uint64		quiet_gen;		/* bumped by each lowering and reset */
	TimestampTz quiet_until;	/* DT_NOBEGIN: unknown */
} HeadEntry;

typedef struct HeadShared
{
	LWLock	   *lock;
	int			nentries;
	int			nfloors;
	pg_atomic_uint64 floors[FLEXIBLE_ARRAY_MEMBER];	/* by pgprocno */
} HeadShared;

#define NO_FLOOR	PG_UINT64_MAX

static HeadShared *head_shared = NULL;
static HTAB *head_hash = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ExecutorStart_hook_type prev_executor_start_hook = NULL;

/* this backend's floor, as last published (NO_FLOOR: none) */
static uint64 my_floor = NO_FLOOR;

/* this transaction wrote taskq.jobs by itself: break the entries at commit */
static bool break_at_commit = false;

/*
 * The deadlines this transaction made, by queue, to lower the queues'
 * quiet with after its commit (TaskqQuietNote)
 */
#define QUIET_PENDING	8
static struct
{
	char		queue[TASKQ_MAX_QUEUE_NAME + 1];
	TimestampTz at;
}			quiet_pending[QUIET_PENDING];
static int	nquiet_pending = 0;
static bool quiet_pending_overflow = false;

static void quiet_apply(void);
static bool quiet_mine(const char *queue, TimestampTz now);
static void break_entries(bool bounds);

/* the levels this backend's pushes registered: (queue, priority) */
typedef struct KnownLevel
{
	char		queue[TASKQ_MAX_QUEUE_NAME + 1];
	int32		priority;
} KnownLevel;

static HTAB *known_levels = NULL;
/* the level registered or found last, which the next push likely has */
static KnownLevel last_level;
static bool last_level_known = false;

static uint32
head_key_hash(const void *key, Size keysize)
{
	const HeadKey *k = key;

	return hash_combine(hash_bytes_uint32(k->dbid),
						hash_bytes((const unsigned char *) k->queue, strlen(k->queue)));
}

static int
head_key_compare(const void *key1, const void *key2, Size keysize)
{
	const HeadKey *a = key1;
	const HeadKey *b = key2;

	return (a->dbid == b->dbid && strcmp(a->queue, b->queue) == 0) ? 0 : 1;
}

static int
head_nfloors(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
head_shmem_size(void)
{
	return add_size(MAXALIGN(add_size(offsetof(HeadShared, floors),
									  mul_size(head_nfloors(), sizeof(pg_atomic_uint64)))),
					hash_estimate_size(taskq_metrics_max_queues, sizeof(HeadEntry)));
}

static void
head_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(head_shmem_size());
	RequestNamedLWLockTranche("taskq pull heads", 1);
}

static void
head_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	head_shared = ShmemInitStruct("taskq pull heads",
								  offsetof(HeadShared, floors) +
								  head_nfloors() * sizeof(pg_atomic_uint64),
								  &found);
	if (!found)
	{
		head_shared->lock = &(GetNamedLWLockTranche("taskq pull heads"))->lock;
		head_shared->nentries = 0;
		head_shared->nfloors = head_nfloors();
		for (int i = 0; i < head_shared->nfloors; i++)
			pg_atomic_init_u64(&head_shared->floors[i], NO_FLOOR);
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(HeadKey);
	info.entrysize = sizeof(HeadEntry);
	info.hash = head_key_hash;
	info.match = head_key_compare;
	head_hash = ShmemInitHash("taskq pull heads hash",
							  taskq_metrics_max_queues, taskq_metrics_max_queues,
							  &info,
							  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The transaction is over, its commit visible: drop the floor; after rows
 * written by something other than taskq's statements, check again.
 */
static void
head_xact_callback(XactEvent event, void *arg)
{
	if (head_shared == NULL)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		if (break_at_commit && event == XACT_EVENT_COMMIT)
			TaskqHeadBreak();
		else if (event == XACT_EVENT_COMMIT &&
				 (nquiet_pending > 0 || quiet_pending_overflow))
			quiet_apply();
		break_at_commit = false;
		nquiet_pending = 0;
		quiet_pending_overflow = false;
		if (my_floor != NO_FLOOR)
		{
			pg_atomic_write_u64(&head_shared->floors[MyProc->pgprocno], NO_FLOOR);
			my_floor = NO_FLOOR;
		}
	}
}

/*
 * The first 8 bytes of an id, as an integer that orders like the ids.
 */
uint64
TaskqIdPrefix(const pg_uuid_t *id)
{
	uint64		v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | id->data[i];
	return v;
}

/*
 * The lowest id with the given prefix, as a uuid Datum.
 */
Datum
TaskqPrefixId(uint64 prefix)
{
	pg_uuid_t  *id = palloc0(sizeof(pg_uuid_t));

	for (int i = 7; i >= 0; i--)
	{
		id->data[i] = (unsigned char) (prefix & 0xFF);
		prefix >>= 8;
	}
	return UUIDPGetDatum(id);
}

/* the prefix of ids made at this instant or later (their time stamp) */
static uint64
clock_prefix(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64) ts.tv_sec * 1000 + (uint64) ts.tv_nsec / 1000000) << 16;
}

/* lower this backend's floor to v */
static void
lower_floor(uint64 v)
{
	if (head_shared == NULL || v >= my_floor || MyProc == NULL)
		return;
	my_floor = v;
	pg_atomic_write_u64(&head_shared->floors[MyProc->pgprocno], v);
	pg_memory_barrier();
}

/*
 * About to make job ids: publish a floor below them (see the file header).
 */
void
TaskqHeadPushing(void)
{
	if (my_floor == NO_FLOOR && head_shared != NULL && IsTransactionState())
		lower_floor(clock_prefix());
}

/*
 * This transaction claimed a job: should it abort, the job is waiting
 * again, so no raise, not even ours, may pass it meanwhile.
 */
void
TaskqHeadClaimed(const pg_uuid_t *id)
{
	lower_floor(TaskqIdPrefix(id));
}

/*
 * The lowest floor of all backends, and at most the clock.  Read after
 * the generation of the entries it caps, before the probe's snapshot.
 */
static uint64
head_cap(void)
{
	uint64		cap = clock_prefix();

	pg_memory_barrier();
	for (int i = 0; i < head_shared->nfloors; i++)
	{
		uint64		f = pg_atomic_read_u64(&head_shared->floors[i]);

		if (f < cap)
			cap = f;
	}
	return cap;
}

/*
 * The entry of a queue, made if need be (NULL when the table is full).
 * Called under the lock in shared mode; may take it exclusively and
 * return with it so.
 */
static HeadEntry *
head_entry(const char *queue, bool create)
{
	HeadKey		key;
	HeadEntry  *e;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	strlcpy(key.queue, queue, sizeof(key.queue));
	e = hash_search(head_hash, &key, HASH_FIND, NULL);
	if (e != NULL || !create)
		return e;

	LWLockRelease(head_shared->lock);
	LWLockAcquire(head_shared->lock, LW_EXCLUSIVE);
	if (head_shared->nentries >= taskq_metrics_max_queues)
		return NULL;
	e = hash_search(head_hash, &key, HASH_ENTER_NULL, &found);
	if (e != NULL && !found)
	{
		SpinLockInit(&e->mutex);
		e->gen = 1;
		e->checked = false;
		e->overflow = false;
		e->nlevels = 0;
		e->checked_at = 0;
		e->check_until = 0;
		e->lease_gen = 1;
		e->lease_floor = DT_NOBEGIN;
		e->lease_checked_at = 0;
		e->lease_check_until = 0;
		e->quiet_gen = 1;
		e->quiet_until = DT_NOBEGIN;
		head_shared->nentries++;
	}
	return e;
}

/*
 * Make sure an entry has level p, with a bound at most b; caller holds
 * its spinlock.  Bumps the generation when anything changed.
 */
static void
level_lower(HeadEntry *e, int32 p, uint64 b, bool bump)
{
	int			i;

	for (i = 0; i < e->nlevels && e->priority[i] > p; i++)
		;
	if (i < e->nlevels && e->priority[i] == p)
	{
		if (b < e->bound[i])
		{
			e->bound[i] = b;
			bump = true;
		}
	}
	else if (e->nlevels == TASKQ_HEAD_MAX_LEVELS)
	{
		if (!e->overflow)
			bump = true;
		e->overflow = true;
	}
	else
	{
		memmove(&e->priority[i + 1], &e->priority[i], sizeof(int32) * (e->nlevels - i));
		memmove(&e->bound[i + 1], &e->bound[i], sizeof(uint64) * (e->nlevels - i));
		e->priority[i] = p;
		e->bound[i] = b;
		e->nlevels++;
		bump = true;
	}
	if (bump)
		e->gen++;
}

/*
 * A push made job id of queue and priority p: register the level, once
 * per backend (levels are never dropped).  The floor was published before
 * the id was made.
 */
void
TaskqHeadNoteLevel(text *queue, int32 p, const pg_uuid_t *id)
{
	KnownLevel	key;
	bool		found;
	HeadEntry  *e;
	int			len = Min(VARSIZE_ANY_EXHDR(queue), TASKQ_MAX_QUEUE_NAME);

	if (head_shared == NULL)
		return;
	if (known_levels == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(KnownLevel);
		info.entrysize = sizeof(KnownLevel);
		info.hcxt = TopMemoryContext;
		known_levels = hash_create("taskq known levels", 16, &info,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	memcpy(key.queue, VARDATA_ANY(queue), len);
	key.priority = p;
	/* a run of pushes to one level (a batch) looks it up once */
	if (last_level_known && memcmp(&key, &last_level, sizeof(key)) == 0)
		return;
	hash_search(known_levels, &key, HASH_FIND, &found);
	if (found)
	{
		last_level = key;
		last_level_known = true;
		return;
	}

	LWLockAcquire(head_shared->lock, LW_SHARED);
	e = head_entry(key.queue, true);
	if (e != NULL)
	{
		SpinLockAcquire(&e->mutex);
		level_lower(e, p, TaskqIdPrefix(id), false);
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(head_shared->lock);
	/* a full table is full for good: remember that as well */
	if (hash_get_num_entries(known_levels) < 10000)
	{
		hash_search(known_levels, &key, HASH_ENTER, NULL);
		last_level = key;
		last_level_known = true;
	}
}

/*
 * Job id of queue and priority p is made waiting again by this
 * transaction: lower the floor, then the level's bound, and fail the
 * raises in flight.
 */
void
TaskqHeadLower(const char *queue, int32 p, const pg_uuid_t *id)
{
	HeadEntry  *e;
	uint64		b = TaskqIdPrefix(id);

	if (head_shared == NULL)
		return;
	lower_floor(b);
	LWLockAcquire(head_shared->lock, LW_SHARED);
	e = head_entry(queue, true);
	if (e != NULL)
	{
		SpinLockAcquire(&e->mutex);
		level_lower(e, p, b, true);
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(head_shared->lock);
}

/*
 * TaskqHeadLower for the rows a statement returned (SPI_tuptable): the
 * queue, priority and id columns given (1-based).  A NULL in the waiting
 * column, when given, or false, skips the row.
 */
void
TaskqHeadLowerReturned(int n, int queue_col, int priority_col, int id_col,
					   int waiting_col)
{
	if (head_shared == NULL)
		return;
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		queue;
		Datum		p;
		Datum		id;

		if (waiting_col > 0)
		{
			Datum		w = SPI_getbinval(tup, desc, waiting_col, &isnull);

			if (isnull || !DatumGetBool(w))
				continue;
		}
		queue = SPI_getbinval(tup, desc, queue_col, &isnull);
		if (isnull)
			continue;
		p = SPI_getbinval(tup, desc, priority_col, &isnull);
		if (isnull)
			continue;
		id = SPI_getbinval(tup, desc, id_col, &isnull);
		if (isnull)
			continue;
		TaskqHeadLower(text_to_cstring(DatumGetTextPP(queue)), DatumGetInt32(p),
					   DatumGetUUIDP(id));
	}
}

/*
 * Read the entry of a queue into *h.  Returns whether the claim may start
 * from its bounds.  h->check says this backend is to check the entry from
 * the head first (TaskqHeadChecked), h->raise that it may raise bounds
 * (TaskqHeadRaised); both take a snapshot after this call, so neither in a
 * transaction whose snapshot is older (REPEATABLE READ, SERIALIZABLE), and
 * neither unless work is set.
 */
bool
TaskqHeadRead(const char *queue, TaskqHead *h, bool work)
{
	HeadEntry  *e;
	TimestampTz now;
	bool		fresh_snapshots = !IsolationUsesXactSnapshot();

	memset(h, 0, sizeof(*h));
	if (head_shared == NULL)
		return false;

	now = GetCurrentTimestamp();
	LWLockAcquire(head_shared->lock, LW_SHARED);
	e = head_entry(queue, true);
	if (e != NULL)
	{
		SpinLockAcquire(&e->mutex);
		h->gen = e->gen;
		h->usable = e->checked && !e->overflow;
		h->nlevels = e->nlevels;
		memcpy(h->priority, e->priority, sizeof(int32) * e->nlevels);
		memcpy(h->bound, e->bound, sizeof(uint64) * e->nlevels);
		if (work && fresh_snapshots && e->check_until < now &&
			(!e->checked ||
			 TimestampDifferenceExceeds(e->checked_at, now, taskq_head_check_interval)))
		{
			e->check_until = TimestampTzPlusMilliseconds(now, CHECK_CLAIM_MS);
			h->check = true;
		}
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(head_shared->lock);
	h->raise = work && fresh_snapshots && h->usable && !h->check;
	if (h->check || h->raise)
		h->cap = head_cap();
	return h->usable;
}

/*
 * A raise probed the levels of *h (read by TaskqHeadRead): first[i] is the
 * first id level i has waiting, NO_FLOOR if none.  Store the new bounds
 * unless the entry changed since.
 */
void
TaskqHeadRaised(const char *queue, const TaskqHead *h, const uint64 *first)
{
	HeadEntry  *e;

	LWLockAcquire(head_shared->lock, LW_SHARED);
	e = head_entry(queue, false);
	if (e != NULL)
	{
		SpinLockAcquire(&e->mutex);
		if (e->gen == h->gen && e->nlevels == h->nlevels)
			for (int i = 0; i < e->nlevels; i++)
			{
				uint64		b = Min(first[i], h->cap);

				if (b > e->bound[i])
					e->bound[i] = b;
			}
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(head_shared->lock);
}

/*
 * A check found the levels that have waiting jobs, from the head: n of
 * them (more: there are more than fit), priority[i] with its first waiting
 * id first[i].  Unless the entry changed since TaskqHeadRead, its bounds
 * become those; levels it knew and the check did not find are kept, empty
 * (bound at the cap).  The entry is then trusted.
 */
void
TaskqHeadChecked(const char *queue, const TaskqHead *h, int n, const int32 *priority,
				 const uint64 *first, bool more)
{
	HeadEntry  *e;
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(head_shared->lock, LW_SHARED);
	e = head_entry(queue, false);
	if (e != NULL)
	{
		SpinLockAcquire(&e->mutex);
		e->check_until = 0;
		if (e->gen == h->gen)
		{
			for (int i = 0; i < e->nlevels; i++)
				if (e->bound[i] < h->cap)
					e->bound[i] = h->cap;
			for (int i = 0; i < n; i++)
			{
				int			j;

				for (j = 0; j < e->nlevels && e->priority[j] != priority[i]; j++)
					;
				if (j < e->nlevels)
					e->bound[j] = Min(first[i], h->cap);
				else
					level_lower(e, priority[i], Min(first[i], h->cap), false);
			}
			if (more)
				e->overflow = true;
			/* fail the raises that read the entry before */
			e->gen++;
			e->checked = true;
			e->checked_at = now;
		}
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(head_shared->lock);
}

/*
 * The lease floor.  Pull looks for expired leases of its queue before it
 * claims, and the reaper for those of each queue in turn, in
 * jobs_lease_idx, (queue, lease_expires_at) WHERE lease_expires_at IS NOT
 * NULL.  Jobs acked before their lease ran out leave dead entries there
 * which, once their expiry has passed, lie in the range "lease_expires_at
 * < now()" that every probe reads, and stay until VACUUM (for as long as
 * a long transaction holds them back, scenario 7: 825 buffers per pull
 * after a minute).  So the queue's entry keeps a floor: no active lease of
 * the queue expires before it, as far as anyone can tell; the probes read
 * from it to now(), and each raises it to the first expired lease it sees,
 * or else to now().
 *
 * No bookkeeping of writers is needed here as it is for the bounds: a
 * lease is set to now() plus its length, so a transaction can set one
 * below a floor only if it is older than that length, and then its job is
 * found by the next check from the beginning, which a pull makes every
 * taskq.head_check_interval (and after the foreign writes and COMMIT
 * PREPARED that reset the floor).  A lease reclaimed late is the worst
 * case, never a lost job.
 *
 * The quiet.  Most probes find nothing to do: leases run out after tens
 * of seconds, most queues have no delayed jobs.  So a probe also reads a
 * window (TASKQ_QUIET_WINDOW_MS) past its now(): the first active lease
 * from the floor and the first delayed job, up to now() plus the window;
 * when neither is due, the entry keeps the earliest of them (or the end
 * of the window) as the queue's quiet, and pulls before that time make no
 * probe.  A transaction that makes an earlier deadline (a claim with a
 * short lease, a delayed job pushed, a failed job retried after its
 * backoff, a job released with a delay, a DAG child promoted to delayed)
 * lowers the quiet after its commit (TaskqQuietNote), bumping its
 * generation; a probe sets its quiet only if the generation it read
 * before its snapshot did not move, as a raise of the bounds does.  The
 * check from the beginning, foreign writes and COMMIT PREPARED end the
 * quiet as they reset the floor.  A lease set below the floor by an old
 * transaction is found by the next check, as before.
 *
 * TaskqLeaseFloor returns where to read from (DT_NOBEGIN: the beginning,
 * when the floor is unknown or a check is due, then *check is set) and the
 * floor's generation, for TaskqLeaseFloorSeen; with check NULL no check
 * is taken on; and the queue's quiet with its generation, for the same
 * (quiet NULL: not wanted).  The entry is made if need be when create is set (a pull);
 * the reaper, which goes through every queue, makes none (the table is
 * the pulls'), and reads a queue without one from the beginning.
 */
TimestampTz
TaskqLeaseFloor(const char *queue, bool create, uint64 *gen, bool *check,
				TaskqQuiet *quiet)
{
	HeadEntry  *e;
	TimestampTz floor = DT_NOBEGIN;
	TimestampTz now;
	bool		mine;

	*gen = 0;
	if (check != NULL)
		*check = false;
	if (quiet != NULL)
	{
		quiet->gen = 0;
		quiet->until = DT_NOBEGIN;
	}
	if (head_shared == NULL)
		return DT_NOBEGIN;
	now = GetCurrentTimestamp();
	mine = quiet != NULL && quiet_mine(queue, now);
	LWLockAcquire(head_shared->lock, LW_SHARED);
	e = head_entry(queue, create);
	if (e != NULL)
	{
		SpinLockAcquire(&e->mutex);
		*gen = e->lease_gen;
		floor = e->lease_floor;
		if (quiet != NULL)
		{
			quiet->gen = e->quiet_gen;
			quiet->until = mine ? DT_NOBEGIN : e->quiet_until;
		}
		if (check != NULL && !IsolationUsesXactSnapshot() && e->lease_check_until < now &&
			(floor == DT_NOBEGIN ||
			 TimestampDifferenceExceeds(e->lease_checked_at, now, taskq_head_check_interval)))
		{
			e->lease_check_until = TimestampTzPlusMilliseconds(now, CHECK_CLAIM_MS);
			*check = true;
			floor = DT_NOBEGIN;
		}
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(head_shared->lock);
	return floor;
}

/*
 * A probe read the leases from the floor (or the beginning, for a check)
 * to upto (its now()) under a fresh snapshot and saw first as the first
 * that expired (DT_NOEND: none): raise the floor there, or to upto, unless
 * the entry was reset meanwhile.  And set the quiet it found (quiet
 * NULL: none), unless it was lowered or reset since it was read.
 */
void
TaskqLeaseFloorSeen(const char *queue, uint64 gen, bool check, TimestampTz first,
					TimestampTz upto, const TaskqQuiet *quiet)
{
	HeadEntry  *e;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz floor = Min(first, upto);

	if (head_shared == NULL || IsolationUsesXactSnapshot())
		return;
	LWLockAcquire(head_shared->lock, LW_SHARED);
	e = head_entry(queue, false);
	if (e != NULL)
	{
		SpinLockAcquire(&e->mutex);
		if (check)
			e->lease_check_until = 0;
		if (e->lease_gen == gen && (check || e->lease_floor != DT_NOBEGIN))
		{
			if (check)
				e->lease_checked_at = now;
			if (check || floor > e->lease_floor)
				e->lease_floor = floor;
		}
		if (quiet != NULL && e->quiet_gen == quiet->gen)
			e->quiet_until = quiet->until;
		SpinLockRelease(&e->mutex);
	}
	LWLockRelease(head_shared->lock);
}

/*
 * This transaction made a deadline of queue at "at": a lease that runs
 * out then, or a delayed job due then (DT_NOBEGIN: a time not known).
 * After its commit, the queue's quiet is lowered to it, and its
 * generation bumped, so that a probe that missed the deadline (its
 * snapshot taken before the commit) does not set a later quiet.  A
 * deadline a window or more after the commit needs neither: such a probe
 * read before the commit, up to its now() plus the window at most.  So
 * a claim of the usual lease length touches nothing.
 */
void
TaskqQuietNote(const char *queue, TimestampTz at)
{
	if (head_shared == NULL)
		return;
	for (int i = 0; i < nquiet_pending; i++)
		if (strcmp(quiet_pending[i].queue, queue) == 0)
		{
			if (at < quiet_pending[i].at)
				quiet_pending[i].at = at;
			return;
		}
	if (nquiet_pending == QUIET_PENDING)
	{
		quiet_pending_overflow = true;
		return;
	}
	strlcpy(quiet_pending[nquiet_pending].queue, queue, TASKQ_MAX_QUEUE_NAME + 1);
	quiet_pending[nquiet_pending].at = at;
	nquiet_pending++;
}

/*
 * Whether this transaction itself made a deadline of queue within the
 * window from now, or wrote taskq.jobs by other means: its own changes,
 * which its probes see, are in no quiet until it commits.
 */
static bool
quiet_mine(const char *queue, TimestampTz now)
{
	TimestampTz limit = TimestampTzPlusMilliseconds(now, TASKQ_QUIET_WINDOW_MS);

	if (break_at_commit || quiet_pending_overflow)
		return true;
	for (int i = 0; i < nquiet_pending; i++)
		if (quiet_pending[i].at < limit && strcmp(quiet_pending[i].queue, queue) == 0)
			return true;
	return false;
}

/*
 * After commit: lower the quiet of the queues this transaction noted, of
 * those whose deadline is within the window from now (none, for a claim
 * of the usual lease: then the lock is not taken).
 */
static void
quiet_apply(void)
{
	TimestampTz limit = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													TASKQ_QUIET_WINDOW_MS);
	bool		any = quiet_pending_overflow;

	for (int i = 0; i < nquiet_pending && !any; i++)
		any = quiet_pending[i].at < limit;
	if (!any)
		return;
	LWLockAcquire(head_shared->lock, LW_SHARED);
	if (quiet_pending_overflow)
		break_entries(false);
	else
		for (int i = 0; i < nquiet_pending; i++)
		{
			HeadEntry  *e;

			if (quiet_pending[i].at >= limit)
				continue;
			e = head_entry(quiet_pending[i].queue, false);
			if (e == NULL)
				continue;
			SpinLockAcquire(&e->mutex);
			e->quiet_gen++;
			if (quiet_pending[i].at < e->quiet_until)
				e->quiet_until = quiet_pending[i].at;
			SpinLockRelease(&e->mutex);
		}
	LWLockRelease(head_shared->lock);
}

/*
 * This transaction writes taskq.jobs with statements of its own (an
 * administrator's UPDATE, a restore's COPY, CREATE EXTENSION): the jobs it
 * makes waiting were not told to us.  No raise may pass anything until it
 * ends, and after its commit every entry of the database is checked again.
 */
void
TaskqHeadForeignWrite(void)
{
	if (head_shared == NULL)
		return;
	lower_floor(0);
	break_at_commit = true;
}

/* whether relid is taskq.jobs */
static bool
is_jobs_table(Oid relid)
{
	char	   *name = get_rel_name(relid);
	Oid			nsp;

	if (name == NULL || strcmp(name, "jobs") != 0)
		return false;
	nsp = get_rel_namespace(relid);
	return OidIsValid(nsp) && nsp == get_namespace_oid("taskq", true);
}

/*
 * ExecutorStart hook: an INSERT, UPDATE or MERGE of taskq.jobs that is not
 * one of taskq's own statements (taskq_statement_depth) is a foreign write.
 */
static void
head_executor_start(QueryDesc *queryDesc, int eflags)
{
	CmdType		op = queryDesc->operation;

	if ((op == CMD_INSERT || op == CMD_UPDATE || op == CMD_MERGE) &&
		taskq_statement_depth == 0 && !break_at_commit && head_shared != NULL &&
		!(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		ListCell   *lc;

		foreach(lc, queryDesc->plannedstmt->resultRelations)
		{
			RangeTblEntry *rte = rt_fetch(lfirst_int(lc), queryDesc->plannedstmt->rtable);

			if (rte->rtekind == RTE_RELATION && is_jobs_table(rte->relid))
			{
				TaskqHeadForeignWrite();
				break;
			}
		}
	}
	if (prev_executor_start_hook)
		prev_executor_start_hook(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* the same for COPY ... FROM into taskq.jobs (ProcessUtility hook) */
void
TaskqHeadNoteCopy(Node *stmt)
{
	CopyStmt   *copy = (CopyStmt *) stmt;
	Oid			relid;

	if (head_shared == NULL || !IsA(stmt, CopyStmt) || !copy->is_from ||
		copy->relation == NULL)
		return;
	relid = RangeVarGetRelid(copy->relation, NoLock, true);
	if (OidIsValid(relid) && is_jobs_table(relid))
		TaskqHeadForeignWrite();
}

/*
 * COMMIT PREPARED: the prepared transaction's jobs are visible only now,
 * long after its floor went.  Check this database's entries again.
 */
void
TaskqHeadBreak(void)
{
	if (head_shared == NULL)
		return;
	LWLockAcquire(head_shared->lock, LW_SHARED);
	break_entries(true);
	LWLockRelease(head_shared->lock);
}

/*
 * End the quiet of every entry of this database, and with bounds also
 * their bounds and lease floors (TaskqHeadBreak).  Caller holds
 * head_shared->lock.
 */
static void
break_entries(bool bounds)
{
	HASH_SEQ_STATUS scan;
	HeadEntry  *e;

	hash_seq_init(&scan, head_hash);
	while ((e = hash_seq_search(&scan)) != NULL)
	{
		if (e->key.dbid != MyDatabaseId)
			continue;
		SpinLockAcquire(&e->mutex);
		if (bounds)
		{
			e->checked = false;
			e->lease_floor = DT_NOBEGIN;
			e->gen++;
			e->lease_gen++;
		}
		e->quiet_gen++;
		e->quiet_until = DT_NOBEGIN;
		SpinLockRelease(&e->mutex);
	}
}

/*
 * DROP DATABASE: forget its entries.
 */
void
TaskqHeadForgetDatabase(Oid dbid)
{
	HASH_SEQ_STATUS scan;
	HeadEntry  *e;

	if (head_shared == NULL)
		return;
	LWLockAcquire(head_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&scan, head_hash);
	while ((e = hash_seq_search(&scan)) != NULL)
		if (e->key.dbid == dbid)
		{
			hash_search(head_hash, &e->key, HASH_REMOVE, NULL);
			head_shared->nentries--;
		}
	LWLockRelease(head_shared->lock);
}

/*
 * taskq._pull_heads(queue text) RETURNS TABLE (priority integer,
 *		bound uuid, checked boolean, overflow boolean)
 *
 * The levels of a queue's entry and their bounds (the lowest id with that
 * prefix): for tests and for looking into a slow pull.  No rows without
 * an entry.
 */
PG_FUNCTION_INFO_V1(taskq_pull_heads);
Datum
taskq_pull_heads(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HeadEntry	copy;
	HeadEntry  *e;
	bool		found = false;

	TaskqRequireArg(fcinfo, 0, "queue");
	InitMaterializedSRF(fcinfo, 0);
	if (head_shared == NULL)
		return (Datum) 0;

	LWLockAcquire(head_shared->lock, LW_SHARED);
	e = head_entry(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	if (e != NULL)
	{
		SpinLockAcquire(&e->mutex);
		copy = *e;
		SpinLockRelease(&e->mutex);
		found = true;
	}
	LWLockRelease(head_shared->lock);
	if (!found)
		return (Datum) 0;
	for (int i = 0; i < copy.nlevels; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {0};

		values[0] = Int32GetDatum(copy.priority[i]);
		values[1] = TaskqPrefixId(copy.bound[i]);
		values[2] = BoolGetDatum(copy.checked);
		values[3] = BoolGetDatum(copy.overflow);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Define the setting; while shared_preload_libraries is processed, ask for
 * the shared memory.
 */
void
TaskqHeadInit(bool preloading)
{
	DefineCustomIntVariable("taskq.head_check_interval",
							"Sets how often pull checks its bounds on the pull index from the head.",
							"Zero checks before every pull.",
							&taskq_head_check_interval,
							10000,
							0,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	if (!preloading)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = head_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = head_shmem_startup;
	prev_executor_start_hook = ExecutorStart_hook;
	ExecutorStart_hook = head_executor_start;
	RegisterXactCallback(head_xact_callback, NULL);
}
