/*-------------------------------------------------------------------------
 *
 * queuecache.c
 *		Each backend's cache of the queues it uses: their settings (for
 *		push and pull) and their grants (for acl.c).
 *
 * Only queues that exist are kept, so that push runs no statement to look
 * its queue up.  A statement trigger on taskq.queues and taskq.queue_grants
 * sends a relcache invalidation of the table at commit; every backend then
 * forgets its cache.  The cache is loaded with the latest snapshot, never
 * an older transaction snapshot, so that a repeatable-read transaction
 * cannot put stale settings into it.
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "taskq.h"

/* a cached queue: its settings (when it exists) and its grants */
typedef struct QueueEntry
{
	char		name[TASKQ_MAX_QUEUE_NAME + 1];	/* hash key */
	bool		exists;
	TaskqQueueInfo info;		/* backoff points into queue_cache_cxt */
	int			ngrants;
	Oid		   *grantees;
	int		   *privileges;
} QueueEntry;

/* the cache is emptied when it grows past this many queues */
#define QUEUE_CACHE_MAX 1024

static HTAB *queue_cache = NULL;
static MemoryContext queue_cache_cxt = NULL;
static bool queue_cache_callback_set = false;
/* counts invalidations, to tell whether one came while loading an entry */
static uint64 queue_cache_invals = 0;

static TaskqPlan load_plan = {
	"SELECT q.paused, q.timeout_ms, q.max_attempts, q.backoff,"
	" coalesce(q.concurrency, 0), coalesce(q.group_concurrency, 0),"
	" coalesce(q.rate_limit, 0), coalesce(q.rate_period_ms, 0),"
	" coalesce(q.group_rate_limit, 0), coalesce(q.group_rate_period_ms, 0),"
	" q.priority_aging_ms, q.fairness = 'round_robin', q.notify_events,"
	" ARRAY(SELECT g.grantee::oid FROM taskq.queue_grants g WHERE g.queue = $1"
	"  ORDER BY g.grantee, g.privilege),"
	" ARRAY(SELECT g.privilege FROM taskq.queue_grants g WHERE g.queue = $1"
	"  ORDER BY g.grantee, g.privilege),"
	" q.completed_retention_ms = 0"
	" FROM (VALUES (1)) v LEFT JOIN taskq.queues q ON q.name = $1",
	1, {TEXTOID}, true
};

/* forget the cache (cheap to load again) */
static void
queue_cache_reset(void)
{
	if (queue_cache_cxt != NULL)
	{
		MemoryContextDelete(queue_cache_cxt);
		queue_cache_cxt = NULL;
		queue_cache = NULL;
	}
}

/* relcache callback: forget the cache when queues or grants changed */
static void
queue_cache_callback(Datum arg, Oid relid)
{
	if (!TaskqCacheInvalidation(relid))
		return;
	queue_cache_invals++;
	queue_cache_reset();
}

static void
queue_cache_init(void)
{
	HASHCTL		ctl;

	if (!queue_cache_callback_set)
	{
		CacheRegisterRelcacheCallback(queue_cache_callback, (Datum) 0);
		queue_cache_callback_set = true;
	}
	queue_cache_cxt = AllocSetContextCreate(CacheMemoryContext,
											"taskq queue cache",
											ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = TASKQ_MAX_QUEUE_NAME + 1;
	ctl.entrysize = sizeof(QueueEntry);
	ctl.hcxt = queue_cache_cxt;
	queue_cache = hash_create("taskq queue cache", 64, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/*
 * Read a queue's settings and grants into the cache (or into *tmp when an
 * invalidation came while reading, so the entry may be stale already).
 * Runs inside TaskqSwitchToOwner.
 */
static QueueEntry *
queue_load(const char *name, QueueEntry *tmp)
{
	Datum		values[1];
	uint64		invals = queue_cache_invals;
	QueueEntry	e;
	QueueEntry *entry;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	MemoryContext old;
	ArrayType  *grantees;
	ArrayType  *privs;
	Datum	   *gv;
	Datum	   *pv;
	int			ng;

	memset(&e, 0, sizeof(e));
	if (queue_cache != NULL &&
		hash_get_num_entries(queue_cache) >= QUEUE_CACHE_MAX)
		queue_cache_reset();
	if (queue_cache == NULL)
		queue_cache_init();

	TaskqNoteCacheTables();
	values[0] = CStringGetTextDatum(name);
	PushActiveSnapshot(GetLatestSnapshot());
	TaskqExecute(&load_plan, values, NULL, true, 1);
	PopActiveSnapshot();

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	(void) SPI_getbinval(tup, desc, 1, &isnull);
	e.exists = !isnull;
	old = MemoryContextSwitchTo(invals == queue_cache_invals && e.exists ?
								queue_cache_cxt : CurrentMemoryContext);
	if (e.exists)
	{
		e.info.paused = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
		e.info.timeout_ms = DatumGetInt32(SPI_getbinval(tup, desc, 2,
														&e.info.timeout_null));
		e.info.max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		e.info.backoff = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
		e.info.backoff_default = TaskqBackoffIsDefault(e.info.backoff);
	}
	if (e.exists)
	{
		e.info.concurrency = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		e.info.group_concurrency = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		e.info.rate_limit = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
		e.info.rate_period_ms = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
		e.info.group_rate_limit = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
		e.info.group_rate_period_ms = DatumGetInt32(SPI_getbinval(tup, desc, 10, &isnull));
		e.info.priority_aging_ms = DatumGetInt32(SPI_getbinval(tup, desc, 11, &isnull));
		e.info.round_robin = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull));
	}
	if (e.exists)
	{
		e.info.notify_events = DatumGetBool(SPI_getbinval(tup, desc, 13, &isnull));
		e.info.forgets_completed = DatumGetBool(SPI_getbinval(tup, desc, 16, &isnull));
	}
	grantees = DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 14, &isnull));
	privs = DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 15, &isnull));
	deconstruct_array(grantees, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &gv, NULL, &ng);
	deconstruct_array(privs, TEXTOID, -1, false, TYPALIGN_INT, &pv, NULL, &ng);
	e.ngrants = ng;
	e.grantees = palloc(sizeof(Oid) * (ng + 1));
	e.privileges = palloc(sizeof(int) * (ng + 1));
	for (int i = 0; i < ng; i++)
	{
		e.grantees[i] = DatumGetObjectId(gv[i]);
		e.privileges[i] = TaskqPrivilegeBit(TextDatumGetCString(pv[i]));
	}
	MemoryContextSwitchTo(old);

	/*
	 * Not kept: what an invalidation came while loading (it may be stale
	 * already), and a queue that does not exist.  Other backends see a
	 * commit before its invalidations are sent, and the wake-up of a
	 * push's commit can make a worker pull in that window: a cached "no
	 * such queue" would then hide the queue the push created.
	 */
	if (invals != queue_cache_invals || !e.exists)
	{
		*tmp = e;
		strlcpy(tmp->name, name, sizeof(tmp->name));
		return tmp;
	}
	entry = hash_search(queue_cache, name, HASH_ENTER, NULL);
	entry->exists = e.exists;
	entry->info = e.info;
	entry->ngrants = e.ngrants;
	entry->grantees = e.grantees;
	entry->privileges = e.privileges;
	return entry;
}

/* the cached entry of a queue, loading it on a miss */
static QueueEntry *
queue_get(const char *name, QueueEntry *tmp)
{
	QueueEntry *entry;

	if (queue_cache != NULL &&
		(entry = hash_search(queue_cache, name, HASH_FIND, NULL)) != NULL)
		return entry;
	return queue_load(name, tmp);
}

/* whether role has the privileges of a grant in entry covering need */
static bool
grants_allow(const QueueEntry *entry, Oid role, int need)
{
	for (int i = 0; i < entry->ngrants; i++)
		if ((entry->privileges[i] & (need | TASKQ_PRIV_ADMIN)) != 0 &&
			has_privs_of_role(role, entry->grantees[i]))
			return true;
	return false;
}

/*
 * A queue's settings, from the cache unless fresh is set; false when the
 * queue does not exist.  qi->backoff is a copy in the caller's memory.
 * Runs inside TaskqSwitchToOwner.
 */
bool
TaskqCachedQueue(const char *name, bool fresh, TaskqQueueInfo *qi)
{
	QueueEntry	tmp;
	QueueEntry *entry = fresh ? queue_load(name, &tmp) : queue_get(name, &tmp);

	if (!entry->exists)
		return false;
	*qi = entry->info;
	qi->backoff = palloc(VARSIZE(entry->info.backoff));
	memcpy(qi->backoff, entry->info.backoff, VARSIZE(entry->info.backoff));
	return true;
}

/*
 * Whether a queue has notify_events (false when it does not exist), from
 * the cache.  Runs inside TaskqSwitchToOwner.
 */
bool
TaskqQueueNotifies(const char *name)
{
	QueueEntry	tmp;
	QueueEntry *entry = queue_get(name, &tmp);

	return entry->exists && entry->info.notify_events;
}

/*
 * Whether a queue keeps no completed jobs (retention.completed_ms 0; false
 * when it does not exist), from the cache.  Runs inside
 * TaskqSwitchToOwner.
 */
bool
TaskqQueueForgetsCompleted(const char *name)
{
	QueueEntry	tmp;
	QueueEntry *entry = queue_get(name, &tmp);

	return entry->exists && entry->info.forgets_completed;
}

/*
 * taskq._queues_changed() trigger: statement trigger on taskq.queues,
 * taskq.queue_grants and taskq.webhooks; every backend forgets its queue
 * cache and what events.c cached of the webhooks at commit.
 */
PG_FUNCTION_INFO_V1(taskq_queues_changed);
Datum
taskq_queues_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("taskq._queues_changed() must be called as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * Whether a role has the privileges of a grant on a queue (the queue's own
 * grants only; "*" is a queue name of its own) covering need.  Runs inside
 * TaskqSwitchToOwner.
 */
bool
TaskqQueueGrantsAllow(const char *queue, Oid role, int need)
{
	QueueEntry	tmp;

	return grants_allow(queue_get(queue, &tmp), role, need);
}
