/*-------------------------------------------------------------------------
 *
 * metrics.c
 *		The counters behind taskq.metrics() (metricsscrape.c), and the
 *		kept counts of finished and dead jobs behind taskq.queues().
 *
 * Counters (jobs pushed, pulled, completed, failed, dead, cancelled, lease
 * expirations per queue; webhook deliveries by outcome, reaper and
 * retention runs per database) live in shared memory, in a hash keyed by
 * database, kind and queue name, of fixed size: taskq.metrics_max_queues
 * queue entries, plus a database entry and an overflow entry per database
 * (queue label "", which can name no queue) for the queues beyond that.
 * They need taskq in shared_preload_libraries; without it metrics() shows
 * the gauges only.  They start at zero when the server starts (or restarts
 * after a crash): taskq_stats_reset_timestamp_seconds says when.
 *
 * Counts reflect committed work only.  The places that change a job's
 * state (push, pull, ack, fail, cancel, lease reclaims, DAG cascades,
 * webhook deliveries, the worker's rounds) add to a backend-local table,
 * keyed by subtransaction level and queue; a subtransaction's counts go to
 * its parent when it commits and are dropped when it aborts.  At commit of
 * the top-level transaction they are added to shared memory: once per
 * transaction, under the metrics lock in shared mode, with atomic adds, so
 * committing backends do not wait for each other; the lock is taken in
 * exclusive mode only to create an entry.  Nothing runs at abort but
 * forgetting.  Work of prepared transactions (PREPARE TRANSACTION) is not
 * counted.
 *
 * DROP DATABASE forgets the entries of the database; the scrape's refresh
 * forgets those of queues that no longer exist.
 *
 * Locking: metrics_shared->lock guards the hash and the non-atomic fields
 * of its entries; counters are atomics, added to under the lock in shared
 * mode.
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "metrics.h"

/* settings */
int			taskq_metrics_max_queues = 1000;
int			taskq_metrics_refresh_interval = 15;

/* the local table is emptied when it grows past this many entries */
#define MAX_IDLE_PENDING	64

MetricsShared *metrics_shared = NULL;
HTAB	   *metrics_hash = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* the counts of the running transaction, per subtransaction level */
typedef struct PendingKey
{
	int			level;
	char		queue[TASKQ_MAX_QUEUE_NAME + 1];	/* "": the database's */
} PendingKey;

typedef struct PendingEntry
{
	PendingKey	key;
	bool		dirty;			/* counts not all zero */
	bool		hist_done;		/* history counts added at pre-commit */
	int64		counts[TASKQ_NUM_METRICS];
} PendingEntry;

static HTAB *pending = NULL;
static PendingEntry *pending_last = NULL;	/* the entry used last */
static int	pending_dirty = 0;	/* entries with counts */
static int	pending_deep = 0;	/* entries of subtransactions */

/*
 * Shared hash: hash and compare only the used part of the queue name.
 */
static uint32
metrics_key_hash(const void *key, Size keysize)
{
	const MetricsKey *k = key;

	return hash_combine(hash_combine(hash_bytes_uint32(k->dbid), (uint32) k->kind),
						hash_bytes((const unsigned char *) k->queue, strlen(k->queue)));
}

static int
metrics_key_compare(const void *key1, const void *key2, Size keysize)
{
	const MetricsKey *a = key1;
	const MetricsKey *b = key2;

	return (a->dbid == b->dbid && a->kind == b->kind &&
			strcmp(a->queue, b->queue) == 0) ? 0 : 1;
}

/* the same for the local table */
static uint32
pending_key_hash(const void *key, Size keysize)
{
	const PendingKey *k = key;

	return hash_combine(hash_bytes_uint32((uint32) k->level),
						hash_bytes((const unsigned char *) k->queue, strlen(k->queue)));
}

static int
pending_key_compare(const void *key1, const void *key2, Size keysize)
{
	const PendingKey *a = key1;
	const PendingKey *b = key2;

	return (a->level == b->level && strcmp(a->queue, b->queue) == 0) ? 0 : 1;
}

/* entries of the shared hash */
static long
metrics_hash_entries(void)
{
	return (long) taskq_metrics_max_queues + MAX_OTHER_ENTRIES;
}

/* shared memory of the metrics */
static Size
metrics_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(MetricsShared)),
					hash_estimate_size(metrics_hash_entries(), sizeof(MetricsEntry)));
}

/* shmem_request_hook: ask for our shared memory and lock */
static void
metrics_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(metrics_shmem_size());
	RequestNamedLWLockTranche("taskq metrics", 1);
}

/* shmem_startup_hook: set up our shared memory */
static void
metrics_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	metrics_shared = ShmemInitStruct("taskq metrics", sizeof(MetricsShared), &found);
	if (!found)
	{
		memset(metrics_shared, 0, sizeof(MetricsShared));
		metrics_shared->lock = &(GetNamedLWLockTranche("taskq metrics"))->lock;
		metrics_shared->reset_time = GetCurrentTimestamp();
		metrics_shared->next_created = 1;
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(MetricsKey);
	info.entrysize = sizeof(MetricsEntry);
	info.hash = metrics_key_hash;
	info.match = metrics_key_compare;
	metrics_hash = ShmemInitHash("taskq metrics hash",
								 metrics_hash_entries(), metrics_hash_entries(),
								 &info,
								 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The shared entry of a key, or NULL; caller holds the lock.
 */
MetricsEntry *
MetricsFindEntry(Oid dbid, char kind, const char *queue)
{
	MetricsKey	key;

	memset(&key, 0, sizeof(key));
	key.dbid = dbid;
	key.kind = kind;
	strlcpy(key.queue, queue, sizeof(key.queue));
	return hash_search(metrics_hash, &key, HASH_FIND, NULL);
}

/*
 * The shared entry of a key, created if need be; caller holds the lock
 * exclusively.  A queue beyond taskq.metrics_max_queues gets its
 * database's overflow entry.  NULL only when even that cannot be made
 * (more databases than TASKQ_MAX_DATABASES): the counts are then lost.
 * Never raises an error: this runs after commit.
 */
MetricsEntry *
MetricsGetEntry(Oid dbid, char kind, const char *queue)
{
	MetricsKey	key;
	MetricsEntry *e;
	bool		found;

	e = MetricsFindEntry(dbid, kind, queue);
	if (e != NULL)
		return e;
	if (kind == KIND_QUEUE && metrics_shared->nqueues >= taskq_metrics_max_queues)
		return MetricsGetEntry(dbid, KIND_OVERFLOW, "");
	if (kind != KIND_QUEUE && metrics_shared->nother >= MAX_OTHER_ENTRIES)
		return NULL;

	memset(&key, 0, sizeof(key));
	key.dbid = dbid;
	key.kind = kind;
	strlcpy(key.queue, queue, sizeof(key.queue));
	e = hash_search(metrics_hash, &key, HASH_ENTER_NULL, &found);
	if (e == NULL)
		return NULL;
	if (!found)
	{
		e->created = metrics_shared->next_created++;
		for (int i = 0; i < TASKQ_NUM_METRICS; i++)
			pg_atomic_init_u64(&e->counters[i], 0);
		e->snap_gen = 0;
		memset(e->jobs, 0, sizeof(e->jobs));
		e->gen = 0;
		e->snap_time = 0;
		e->claimed_until = 0;
		e->hist_state = HIST_NONE;
		e->hist_gen = 0;
		e->hist_relid = InvalidOid;
		e->hist_claimed_until = 0;
		pg_atomic_init_u32(&e->hist_inflight, 0);
		pg_atomic_init_u32(&e->hist_broken, 0);
		if (kind == KIND_QUEUE)
			metrics_shared->nqueues++;
		else
			metrics_shared->nother++;
	}
	return e;
}

/* remove a shared entry; caller holds the lock exclusively */
void
MetricsRemoveEntry(MetricsEntry *e)
{
	if (e->key.kind == KIND_QUEUE)
		metrics_shared->nqueues--;
	else
		metrics_shared->nother--;
	hash_search(metrics_hash, &e->key, HASH_REMOVE, NULL);
}

/* add the counts of a local entry to a shared one (not the history's) */
static void
add_counts(MetricsEntry *e, const PendingEntry *p)
{
	for (int i = 0; i < FIRST_HISTORY; i++)
		if (p->counts[i] != 0)
			pg_atomic_fetch_add_u64(&e->counters[i], (uint64) p->counts[i]);
}

/*
 * Commit: add the transaction's counts to shared memory.  Entries that
 * exist take the lock in shared mode only.
 */
static void
pending_flush(void)
{
	HASH_SEQ_STATUS scan;
	PendingEntry *p;
	bool		missing = false;

	if (pending_dirty == 0 || metrics_shared == NULL)
		return;

	LWLockAcquire(metrics_shared->lock, LW_SHARED);
	hash_seq_init(&scan, pending);
	while ((p = hash_seq_search(&scan)) != NULL)
	{
		MetricsEntry *e;

		if (!p->dirty)
			continue;
		e = MetricsFindEntry(MyDatabaseId, p->key.queue[0] ? KIND_QUEUE : KIND_DATABASE,
					   p->key.queue);
		if (e == NULL)
		{
			missing = true;
			continue;
		}
		add_counts(e, p);
		p->dirty = false;
	}
	LWLockRelease(metrics_shared->lock);

	if (!missing)
		return;
	LWLockAcquire(metrics_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&scan, pending);
	while ((p = hash_seq_search(&scan)) != NULL)
	{
		MetricsEntry *e;

		if (!p->dirty)
			continue;
		e = MetricsGetEntry(MyDatabaseId, p->key.queue[0] ? KIND_QUEUE : KIND_DATABASE,
					  p->key.queue);
		if (e != NULL)
			add_counts(e, p);
		p->dirty = false;
	}
	LWLockRelease(metrics_shared->lock);
}

/*
 * The transaction is over: forget its counts.  The entries stay (zeroed)
 * for the next transaction, which likely uses the same queues, unless the
 * table grew large.
 */
static void
pending_reset(void)
{
	HASH_SEQ_STATUS scan;
	PendingEntry *p;

	if (pending == NULL || (pending_dirty == 0 && pending_deep == 0))
		return;
	if (hash_get_num_entries(pending) > MAX_IDLE_PENDING)
	{
		hash_destroy(pending);
		pending = NULL;
	}
	else
	{
		hash_seq_init(&scan, pending);
		while ((p = hash_seq_search(&scan)) != NULL)
		{
			if (p->key.level > 1)
			{
				if (p == pending_last)
					pending_last = NULL;
				hash_search(pending, &p->key, HASH_REMOVE, NULL);
				continue;
			}
			p->dirty = false;
			p->hist_done = false;
			memset(p->counts, 0, sizeof(p->counts));
		}
	}
	if (pending == NULL)
		pending_last = NULL;
	pending_dirty = 0;
	pending_deep = 0;
}

/*
 * The local entry of a level and queue, created if need be.
 */
static PendingEntry *
pending_entry(int level, const char *queue, int len)
{
	PendingEntry *p = pending_last;
	PendingKey	key;
	bool		found;

	if (p != NULL && p->key.level == level &&
		strncmp(p->key.queue, queue, len) == 0 && p->key.queue[len] == '\0')
		return p;

	if (pending == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(PendingKey);
		info.entrysize = sizeof(PendingEntry);
		info.hash = pending_key_hash;
		info.match = pending_key_compare;
		info.hcxt = TopMemoryContext;
		pending = hash_create("taskq pending metrics", 16, &info,
							  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.level = level;
	memcpy(key.queue, queue, len);
	p = hash_search(pending, &key, HASH_ENTER, &found);
	if (!found)
	{
		p->dirty = false;
		p->hist_done = false;
		memset(p->counts, 0, sizeof(p->counts));
		if (level > 1)
			pending_deep++;
	}
	pending_last = p;
	return p;
}

/* add n to the given counters (a TASKQ_COUNT mask) of a queue ("": the database) */
static void
pending_add(const char *queue, int len, int metrics, int64 n)
{
	PendingEntry *p;

	len = Min(len, TASKQ_MAX_QUEUE_NAME);
	p = pending_entry(GetCurrentTransactionNestLevel(), queue, len);
	if (!p->dirty)
	{
		p->dirty = true;
		pending_dirty++;
	}
	for (int i = 0; i < TASKQ_NUM_METRICS; i++)
		if (metrics & TASKQ_COUNT(i))
			p->counts[i] += n;
}

/*
 * A subtransaction ends: on commit its counts go to its parent, on abort
 * they are dropped.
 */
static void
metrics_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	int			level;
	HASH_SEQ_STATUS scan;
	PendingEntry *p;
	PendingEntry **ended;
	int			n = 0;

	if ((event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB) ||
		pending_deep == 0)
		return;
	/* the ending subtransaction's entries (and deeper ones, if any were left) */
	level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		hash_seq_init(&scan, pending);
		while ((p = hash_seq_search(&scan)) != NULL)
		{
			if (p->key.level < level)
				continue;
			if (p == pending_last)
				pending_last = NULL;
			if (p->dirty)
				pending_dirty--;
			pending_deep--;
			hash_search(pending, &p->key, HASH_REMOVE, NULL);
		}
		return;
	}

	/* commit: collect them first, as adding to the parents inserts */
	ended = palloc(sizeof(PendingEntry *) * hash_get_num_entries(pending));
	hash_seq_init(&scan, pending);
	while ((p = hash_seq_search(&scan)) != NULL)
		if (p->key.level >= level)
			ended[n++] = p;
	for (int i = 0; i < n; i++)
	{
		PendingEntry copy = *ended[i];

		if (ended[i] == pending_last)
			pending_last = NULL;
		if (copy.dirty)
			pending_dirty--;
		pending_deep--;
		hash_search(pending, &copy.key, HASH_REMOVE, NULL);
		if (copy.dirty)
		{
			PendingEntry *parent = pending_entry(level - 1, copy.key.queue,
												 strlen(copy.key.queue));

			if (!parent->dirty)
			{
				parent->dirty = true;
				pending_dirty++;
			}
			for (int m = 0; m < TASKQ_NUM_METRICS; m++)
				parent->counts[m] += copy.counts[m];
		}
	}
	pfree(ended);
}

/*
 * History counts
 *
 * taskq.queues() and taskq.stats() show how many jobs each queue keeps in
 * finished_jobs (completed, cancelled) and dead_jobs (dlq) without
 * counting those tables, which hold a day of completions by default.  The
 * counts live in the queue entries of the shared hash (counters
 * TASKQ_HISTORY_*), are counted once per database (after the server
 * starts, and again whenever they cannot be trusted), and follow every
 * change from then on:
 *
 * - a job moved into a history table is counted by the statement that
 *   moved it (the TASKQ_COUNT_*_KEPT masks); rows deleted or updated by
 *   any statement are counted by a statement trigger on the two tables
 *   (taskq_history_changed), from its transition tables;
 * - a transaction adds its counts at pre-commit, before its rows become
 *   visible, under the lock in shared mode, and it is "in flight" (in the
 *   database entry's hist_inflight) until its commit (or abort) callback;
 * - taking the counts (history_take) holds the lock exclusively, waits for
 *   the transactions in flight, and takes its snapshot and zeroes the
 *   counts before it lets go: every transaction then either is in the
 *   snapshot with its counts zeroed, or is not and adds its counts after.
 *   It counts with that snapshot without the lock and adds what it found.
 *
 * So the counts are exact for committed work, as of the moment they are
 * read (not as of the reader's snapshot).  What they cannot follow marks
 * them broken, to be counted again by the next reader (or the background
 * worker): a transaction that aborts after adding its counts, TRUNCATE,
 * COMMIT PREPARED, no room in shared memory, a re-created extension.
 * Rows inserted into the history tables by other means than taskq's
 * functions are not seen until then (taskq.recount() marks them broken).
 * Without the shared memory (taskq not preloaded), on a standby, while
 * another backend is counting, and in a database with more queues than
 * taskq.metrics_max_queues, readers count the tables themselves.
 */

/* the longest wait for the transactions in flight, holding the lock */
#define HIST_DRAIN_MS		100

/* how long a backend may take the counts before another one may */
#define HIST_CLAIM_MS		(10 * 60 * 1000)

/* the history counts of a transaction: added, in flight in this entry */
static MetricsEntry *hist_db = NULL;

/* break the counts when this transaction commits (TRUNCATE) */
static bool hist_break_at_commit = false;

/* the counts of the history tables, per queue */
static const char *const history_sql =
"SELECT s.queue, pg_catalog.sum(s.c)::int8, pg_catalog.sum(s.x)::int8,"
" pg_catalog.sum(s.d)::int8 FROM ("
" SELECT f.queue,"
"  pg_catalog.count(*) FILTER (WHERE f.state OPERATOR(pg_catalog.=) 'completed') AS c,"
"  pg_catalog.count(*) FILTER (WHERE f.state OPERATOR(pg_catalog.<>) 'completed') AS x,"
"  0::int8 AS d"
"  FROM taskq.finished_jobs f %s GROUP BY f.queue"
" UNION ALL"
" SELECT d.queue, 0, 0, pg_catalog.count(*) FROM taskq.dead_jobs d %s GROUP BY d.queue) s"
" GROUP BY s.queue";

/* whether a local entry has history counts */
static bool
has_history(const PendingEntry *p)
{
	for (int i = FIRST_HISTORY; i < TASKQ_NUM_METRICS; i++)
		if (p->counts[i] != 0)
			return true;
	return false;
}

/* mark a database's counts broken: the next reader counts them again */
static void
history_break(MetricsEntry *db)
{
	pg_atomic_write_u32(&db->hist_broken, 1);
}

/*
 * Add the transaction's history counts to shared memory; false when an
 * entry is missing and the lock is held in shared mode only (the caller
 * tries again exclusively).
 */
static bool
history_add(bool exclusive)
{
	HASH_SEQ_STATUS scan;
	PendingEntry *p;
	MetricsEntry *db;
	bool		complete = true;

	db = exclusive ? MetricsGetEntry(MyDatabaseId, KIND_DATABASE, "") :
		MetricsFindEntry(MyDatabaseId, KIND_DATABASE, "");
	if (db == NULL)
		return exclusive;		/* no room: no counts to keep right */
	if (hist_db == NULL)
	{
		hist_db = db;
		pg_atomic_fetch_add_u32(&db->hist_inflight, 1);
		if (hist_break_at_commit)
			history_break(db);
	}
	if (pending == NULL)
		return true;
	hash_seq_init(&scan, pending);
	while ((p = hash_seq_search(&scan)) != NULL)
	{
		MetricsEntry *e;

		if (!p->dirty || p->hist_done || p->key.queue[0] == '\0' || !has_history(p))
			continue;
		e = exclusive ? MetricsGetEntry(MyDatabaseId, KIND_QUEUE, p->key.queue) :
			MetricsFindEntry(MyDatabaseId, KIND_QUEUE, p->key.queue);
		if (e == NULL)
		{
			if (exclusive)
			{
				history_break(db);
				p->hist_done = true;
			}
			else
				complete = false;
			continue;
		}
		for (int i = FIRST_HISTORY; i < TASKQ_NUM_METRICS; i++)
			if (p->counts[i] != 0)
				pg_atomic_fetch_add_u64(&e->counters[i], (uint64) p->counts[i]);
		p->hist_done = true;
	}
	return complete;
}

/* pre-commit: add the transaction's history counts, if it has any */
static void
history_flush(void)
{
	HASH_SEQ_STATUS scan;
	PendingEntry *p;
	bool		any = hist_break_at_commit;

	if (metrics_shared == NULL)
		return;
	if (!any && pending_dirty > 0)
	{
		hash_seq_init(&scan, pending);
		while ((p = hash_seq_search(&scan)) != NULL)
			if (p->dirty && has_history(p))
			{
				any = true;
				hash_seq_term(&scan);
				break;
			}
	}
	if (!any)
		return;
	LWLockAcquire(metrics_shared->lock, LW_SHARED);
	if (history_add(false))
	{
		LWLockRelease(metrics_shared->lock);
		return;
	}
	LWLockRelease(metrics_shared->lock);
	LWLockAcquire(metrics_shared->lock, LW_EXCLUSIVE);
	history_add(true);
	LWLockRelease(metrics_shared->lock);
}

/*
 * The transaction ended: it is no longer in flight.  Its counts were added
 * before its commit; if it aborted after that, they are wrong.  Takes no
 * lock: a backend taking the counts holds it while it waits for this.
 */
static void
history_end(bool aborted)
{
	hist_break_at_commit = false;
	if (hist_db == NULL)
		return;
	if (aborted)
		history_break(hist_db);
	pg_atomic_fetch_sub_u32(&hist_db->hist_inflight, 1);
	hist_db = NULL;
}

/* the OID of taskq.finished_jobs, which changes when the extension is re-created */
static Oid
history_relid(void)
{
	return get_relname_relid("finished_jobs", get_namespace_oid("taskq", false));
}

/*
 * Make sure this database's history counts can be used, counting the
 * history tables if need be (inside SPI_connect).  False when they cannot:
 * the caller counts for itself.
 */
static bool
history_take(void)
{
	Oid			relid = history_relid();
	MetricsEntry *db;
	TimestampTz start = GetCurrentTimestamp();
	Snapshot	snap;
	uint64		gen;
	int			nrows;
	char	  **names;
	int64	   *counts;
	bool		valid = false;

	if (metrics_shared == NULL || RecoveryInProgress())
		return false;

	LWLockAcquire(metrics_shared->lock, LW_EXCLUSIVE);
	db = MetricsGetEntry(MyDatabaseId, KIND_DATABASE, "");
	if (db == NULL || MetricsFindEntry(MyDatabaseId, KIND_OVERFLOW, "") != NULL)
	{
		LWLockRelease(metrics_shared->lock);
		return false;
	}
	if (db->hist_state == HIST_VALID && db->hist_relid == relid &&
		pg_atomic_read_u32(&db->hist_broken) == 0)
	{
		LWLockRelease(metrics_shared->lock);
		return true;
	}
	if (db->hist_state == HIST_TAKING && start < db->hist_claimed_until)
	{
		LWLockRelease(metrics_shared->lock);
		return false;
	}
	/* the transactions whose counts are added, and that are not yet visible */
	while (pg_atomic_read_u32(&db->hist_inflight) != 0)
	{
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), HIST_DRAIN_MS))
		{
			LWLockRelease(metrics_shared->lock);
			return false;
		}
		pg_usleep(100L);
	}
	snap = RegisterSnapshot(GetLatestSnapshot());
	{
		HASH_SEQ_STATUS scan;
		MetricsEntry *e;

		hash_seq_init(&scan, metrics_hash);
		while ((e = hash_seq_search(&scan)) != NULL)
			if (e->key.dbid == MyDatabaseId && e->key.kind != KIND_DATABASE)
				for (int i = FIRST_HISTORY; i < TASKQ_NUM_METRICS; i++)
					pg_atomic_write_u64(&e->counters[i], 0);
	}
	pg_atomic_write_u32(&db->hist_broken, 0);
	db->hist_state = HIST_TAKING;
	gen = ++db->hist_gen;
	db->hist_relid = relid;
	db->hist_claimed_until = start + (TimestampTz) HIST_CLAIM_MS * 1000;
	LWLockRelease(metrics_shared->lock);

	PG_TRY();
	{
		SPIPlanPtr	plan = SPI_prepare(psprintf(history_sql, "", ""), 0, NULL);
		int			rc;

		if (plan == NULL)
			elog(ERROR, "taskq: SPI_prepare failed (%s) for the history counts",
				 SPI_result_code_string(SPI_result));
		rc = SPI_execute_snapshot(plan, NULL, NULL, snap, InvalidSnapshot,
								  true, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "taskq: could not count the finished jobs (%s)",
				 SPI_result_code_string(rc));
	}
	PG_CATCH();
	{
		LWLockAcquire(metrics_shared->lock, LW_EXCLUSIVE);
		db = MetricsFindEntry(MyDatabaseId, KIND_DATABASE, "");
		if (db != NULL && db->hist_gen == gen)
			db->hist_state = HIST_NONE;
		LWLockRelease(metrics_shared->lock);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* out of SPI's tuples first, so that the lock is held briefly */
	nrows = (int) SPI_processed;
	names = palloc(sizeof(char *) * Max(nrows, 1));
	counts = palloc(sizeof(int64) * NUM_HISTORY * Max(nrows, 1));
	for (int i = 0; i < nrows; i++)
	{
		bool		isnull;

		names[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		for (int h = 0; h < NUM_HISTORY; h++)
			counts[i * NUM_HISTORY + h] =
				DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
											SPI_tuptable->tupdesc, h + 2, &isnull));
	}

	LWLockAcquire(metrics_shared->lock, LW_EXCLUSIVE);
	db = MetricsFindEntry(MyDatabaseId, KIND_DATABASE, "");
	if (db != NULL && db->hist_gen == gen && db->hist_state == HIST_TAKING)
	{
		valid = true;
		for (int i = 0; i < nrows && valid; i++)
		{
			MetricsEntry *e = MetricsGetEntry(MyDatabaseId, KIND_QUEUE, names[i]);

			if (e == NULL || e->key.kind != KIND_QUEUE)
				valid = false;
			else
				for (int h = 0; h < NUM_HISTORY; h++)
					pg_atomic_fetch_add_u64(&e->counters[FIRST_HISTORY + h],
											(uint64) counts[i * NUM_HISTORY + h]);
		}
		db->hist_state = valid ? HIST_VALID : HIST_NONE;
	}
	LWLockRelease(metrics_shared->lock);
	UnregisterSnapshot(snap);
	return valid;
}

/*
 * Count the history of this database now, if its counts are not usable,
 * so that the next reader need not: from the background worker, inside
 * SPI_connect.
 */
void
TaskqHistoryPrepare(void)
{
	history_take();
}

/*
 * The history tables changed in a way the counts cannot follow (COMMIT
 * PREPARED of a transaction that may have moved jobs): count again.
 */
void
TaskqHistoryBreak(void)
{
	MetricsEntry *db;

	if (metrics_shared == NULL)
		return;
	LWLockAcquire(metrics_shared->lock, LW_SHARED);
	db = MetricsFindEntry(MyDatabaseId, KIND_DATABASE, "");
	if (db != NULL)
		history_break(db);
	LWLockRelease(metrics_shared->lock);
}

/* count the rows of a transition table, each in its queue, with a sign */
static void
history_count_rows(Relation rel, Tuplestorestate *rows, int sign)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	int			queue_col = SPI_fnumber(desc, "queue");
	int			state_col = SPI_fnumber(desc, "state");
	bool		dead = strcmp(RelationGetRelationName(rel), "dead_jobs") == 0;
	Oid			completed = InvalidOid;

	if (queue_col <= 0 || state_col <= 0)
		elog(ERROR, "taskq: no column \"queue\" or \"state\" in \"%s\"",
			 RelationGetRelationName(rel));
	tuplestore_rescan(rows);
	while (tuplestore_gettupleslot(rows, true, false, slot))
	{
		bool		isnull;
		Datum		queue = slot_getattr(slot, queue_col, &isnull);
		Datum		state;
		TaskqMetric m = TASKQ_HISTORY_DLQ;
		text	   *q;

		if (isnull)
			continue;
		if (!dead)
		{
			state = slot_getattr(slot, state_col, &isnull);
			if (completed == InvalidOid)
				completed = DatumGetObjectId(DirectFunctionCall2(enum_in,
																 CStringGetDatum("completed"),
																 ObjectIdGetDatum(TupleDescAttr(desc, state_col - 1)->atttypid)));
			m = (!isnull && DatumGetObjectId(state) == completed) ?
				TASKQ_HISTORY_COMPLETED : TASKQ_HISTORY_CANCELLED;
		}
		q = DatumGetTextPP(queue);
		pending_add(VARDATA_ANY(q), VARSIZE_ANY_EXHDR(q), TASKQ_COUNT(m), sign);
	}
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * taskq._history_changed() RETURNS trigger
 *
 * AFTER DELETE, UPDATE and TRUNCATE statement trigger of finished_jobs and
 * dead_jobs: count the rows that left (and, for UPDATE, came back), or,
 * after TRUNCATE, count everything again once the transaction commits.
 */
PG_FUNCTION_INFO_V1(taskq_history_changed);
Datum
taskq_history_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("taskq._history_changed() was not called as a trigger")));
	if (metrics_shared == NULL)
		return PointerGetDatum(NULL);
	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		hist_break_at_commit = true;
	if (trigdata->tg_oldtable != NULL)
		history_count_rows(trigdata->tg_relation, trigdata->tg_oldtable, -1);
	if (trigdata->tg_newtable != NULL)
		history_count_rows(trigdata->tg_relation, trigdata->tg_newtable, 1);
	return PointerGetDatum(NULL);
}

/*
 * taskq._history_counts(queue text DEFAULT NULL)
 *   RETURNS TABLE (queue text, completed bigint, cancelled bigint, dlq bigint)
 *
 * The jobs each queue (or the given one) keeps in finished_jobs and
 * dead_jobs; queues that keep none may be left out.  From shared memory
 * when the counts are usable, else counted now.
 */
PG_FUNCTION_INFO_V1(taskq_history_counts);
Datum
taskq_history_counts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *queue = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum		values[1 + NUM_HISTORY];
	bool		nulls[1 + NUM_HISTORY] = {false};

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	if (history_take())
	{
		HASH_SEQ_STATUS scan;
		MetricsEntry *e;

		LWLockAcquire(metrics_shared->lock, LW_SHARED);
		hash_seq_init(&scan, metrics_hash);
		while ((e = hash_seq_search(&scan)) != NULL)
		{
			bool		any = false;

			if (e->key.dbid != MyDatabaseId || e->key.kind != KIND_QUEUE ||
				(queue != NULL && strcmp(queue, e->key.queue) != 0))
				continue;
			for (int h = 0; h < NUM_HISTORY; h++)
			{
				int64		n = (int64) pg_atomic_read_u64(&e->counters[FIRST_HISTORY + h]);

				values[1 + h] = Int64GetDatum(n);
				any |= (n != 0);
			}
			if (!any)
				continue;
			values[0] = CStringGetTextDatum(e->key.queue);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		LWLockRelease(metrics_shared->lock);
	}
	else
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		args[1];
		int			rc;

		if (queue != NULL)
		{
			args[0] = CStringGetTextDatum(queue);
			rc = SPI_execute_with_args(psprintf(history_sql,
												"WHERE f.queue OPERATOR(pg_catalog.=) $1",
												"WHERE d.queue OPERATOR(pg_catalog.=) $1"),
									   1, argtypes, args, NULL, true, 0);
		}
		else
			rc = SPI_execute(psprintf(history_sql, "", ""), true, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "taskq: could not count the finished jobs (%s)",
				 SPI_result_code_string(rc));
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			for (int c = 0; c < 1 + NUM_HISTORY; c++)
				values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
										  c + 1, &nulls[c]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * taskq.recount() RETURNS void
 *
 * Forget this database's history counts: the next reader counts the
 * history tables again (after rows were written into them by hand).
 */
PG_FUNCTION_INFO_V1(taskq_recount);
Datum
taskq_recount(PG_FUNCTION_ARGS)
{
	TaskqHistoryBreak();
	PG_RETURN_VOID();
}

/*
 * The transaction ends: at commit its counts go to shared memory, at
 * abort (or PREPARE) they are dropped.
 */
static void
metrics_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			history_flush();
			break;
		case XACT_EVENT_COMMIT:
			/* first, as a backend taking the counts may wait for it */
			history_end(false);
			pending_flush();
			pending_reset();
			break;
		case XACT_EVENT_ABORT:
			history_end(true);
			pending_reset();
			break;
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction's counts: see TaskqHistoryBreak */
			hist_break_at_commit = false;
			pending_reset();
			break;
		default:
			break;
	}
}

/*
 * Forget the counters of a database once it is dropped (from taskq's
 * ProcessUtility hook, worker.c); caller holds no lock.
 */
void
TaskqMetricsForgetDatabase(Oid dbid)
{
	HASH_SEQ_STATUS scan;
	MetricsEntry *e;

	if (metrics_shared == NULL)
		return;
	LWLockAcquire(metrics_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&scan, metrics_hash);
	while ((e = hash_seq_search(&scan)) != NULL)
		if (e->key.dbid == dbid)
			MetricsRemoveEntry(e);
	LWLockRelease(metrics_shared->lock);
}

/*
 * Define the settings of the metrics; and, while shared_preload_libraries
 * is processed, set up the shared memory and the callbacks.
 */
void
TaskqMetricsInit(bool preloading)
{
	DefineCustomIntVariable("taskq.metrics_refresh_interval",
							"Sets how old the job counts of taskq.metrics() may be before a scrape counts again.",
							"Zero counts at every scrape.",
							&taskq_metrics_refresh_interval,
							15,
							0,
							24 * 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	if (!preloading)
		return;

	/* shared memory: only while preloading */
	DefineCustomIntVariable("taskq.metrics_max_queues",
								"Sets how many queues have counters of their own in taskq.metrics().",
								"Counters of further queues are added up under the queue label \"\".",
								&taskq_metrics_max_queues,
								1000,
								16,
								1000000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = metrics_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = metrics_shmem_startup;
	RegisterXactCallback(metrics_xact_callback, NULL);
	RegisterSubXactCallback(metrics_subxact_callback, NULL);
}

/*
 * Count n jobs of a queue in the given counters (a mask of TASKQ_COUNT
 * bits), at commit.
 */
void
TaskqMetricsCount(text *queue, int metrics, int64 n)
{
	if (metrics_shared == NULL || n <= 0)
		return;
	pending_add(VARDATA_ANY(queue), VARSIZE_ANY_EXHDR(queue), metrics, n);
}

/*
 * Count the n rows the last statement returned, each in its queue (its
 * column "queue"), at commit.  Runs inside SPI_connect.
 */
void
TaskqMetricsCountReturned(int n, int metrics)
{
	int			col;

	if (metrics_shared == NULL || n <= 0)
		return;
	col = SPI_fnumber(SPI_tuptable->tupdesc, "queue");
	if (col <= 0)
		elog(ERROR, "taskq: no column \"queue\" to count jobs by");
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
									  col, &isnull);
		text	   *queue;

		if (isnull)
			continue;
		queue = DatumGetTextPP(d);
		pending_add(VARDATA_ANY(queue), VARSIZE_ANY_EXHDR(queue), metrics, 1);
	}
}

/*
 * Add n to a counter of the database, at commit.
 */
void
TaskqMetricsCountDb(TaskqMetric metric, int64 n)
{
	if (metrics_shared == NULL || n <= 0)
		return;
	pending_add("", 0, TASKQ_COUNT(metric), n);
}

/*
 * Count the webhook delivery attempts whose outcome the last statement
 * recorded (its column "status": succeeded; pending, to be retried; or
 * failed, out of attempts), at commit.  Runs inside SPI_connect.
 */
void
TaskqMetricsCountDeliveries(int n)
{
	int			col;

	if (metrics_shared == NULL || n <= 0)
		return;
	col = SPI_fnumber(SPI_tuptable->tupdesc, "status");
	if (col <= 0)
		elog(ERROR, "taskq: no column \"status\" to count deliveries by");
	for (int i = 0; i < n; i++)
	{
		char	   *status = SPI_getvalue(SPI_tuptable->vals[i],
										  SPI_tuptable->tupdesc, col);

		if (status == NULL)
			continue;
		if (strcmp(status, "succeeded") == 0)
			TaskqMetricsCountDb(TASKQ_METRIC_WEBHOOK_SUCCEEDED, 1);
		else if (strcmp(status, "failed") == 0)
			TaskqMetricsCountDb(TASKQ_METRIC_WEBHOOK_EXHAUSTED, 1);
		else
			TaskqMetricsCountDb(TASKQ_METRIC_WEBHOOK_FAILED, 1);
	}
}
