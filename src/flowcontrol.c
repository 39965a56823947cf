/*-------------------------------------------------------------------------
 *
 * flowcontrol.c
 *		Concurrency limits inside pull: a queue's "concurrency" (active
 *		jobs of the queue) and "group_concurrency" (active jobs per group
 *		key, the push option "group"); and where the rate limits of
 *		ratelimit.c are applied.
 *
 * A limit is a count of active jobs, so a lease that ends in any way (ack,
 * fail, cancel, expiry reclaimed by a pull or the reaper, a bundled ack)
 * frees its slot when its transaction commits: nothing else is kept.  The
 * count is taken with a dirty snapshot (a queue's from jobs_lease_idx, a
 * group's from jobs_active_idx), which also
 * sees the leases of transactions still in progress (and an ack in
 * progress as still active), so two pulls that count one after the other
 * never both take the last slot, even before the first commits.
 *
 * What makes "one after the other" is a lock per queue and one per
 * (queue, group).  The queue's lock is held only from the count to the end
 * of the claim statement, then released (LockRelease), not at commit: it
 * is waited for, and a pull in a long transaction must not hold up the
 * others.  A group's lock is only tried: a pull that finds it taken passes
 * over that group's jobs this time, so that pulls never wait for each
 * other's groups.  It is kept to the end of the transaction when the pull
 * leased jobs of the group (and released at once otherwise): until then
 * the jobs it leased still look waiting to the other pulls' statements,
 * which would choose the same jobs, lose them to SKIP LOCKED and come back
 * empty.  A pull in a long transaction thus keeps other pulls off the
 * groups it leased from until it ends.  Both are advisory locks
 * of the database (pg_locks: locktype advisory, objsubid 4 for a queue, 5
 * for a group), keyed by hashes: two keys with the same hash share a
 * lock, which can only make a pull pass over a group, never over-admit.
 *
 * With a group limit the claim reads the queue's waiting jobs in delivery
 * order and takes those whose group has a free slot (jobs without a group
 * only count against the queue's limit), looking at most at
 * TASKQ_FLOW_SCAN_MAX jobs: a pull does not walk the whole queue past the
 * jobs of groups at their limit.  Jobs further down wait for the groups
 * ahead of them to drain (fair scheduling across groups is a separate
 * setting).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "taskq.h"

/* how many waiting jobs a pull looks at, at most, to fill its group slots */
#define TASKQ_FLOW_SCAN_MAX		1000

/* objsubid of the advisory locks (the SQL functions use 1 and 2) */
#define FLOW_LOCK_QUEUE			4
#define FLOW_LOCK_GROUP			5

/*
 * The first $2 waiting jobs in delivery order: from the head of the pull
 * index, or from the bounds of pullhead.c (per level, $3, highest first,
 * from $4).  A pull reads a few more than it needs first, and up to
 * TASKQ_FLOW_SCAN_MAX when those are not enough.
 */
static TaskqPlan candidates_plan = {
	"SELECT ctid, group_key FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	" ORDER BY priority DESC, id LIMIT $2",
	2, {TEXTOID, INT4OID}, true
};
static TaskqPlan candidates_levels_plan = {
	"SELECT c.ctid, c.group_key FROM unnest($3::integer[], $4::uuid[]) AS u(p, b),"
	" LATERAL (SELECT ctid, group_key FROM taskq.jobs WHERE queue = $1"
	"  AND state = 'waiting' AND priority = u.p AND id >= u.b ORDER BY id LIMIT $2) c"
	" LIMIT $2",
	4, {TEXTOID, INT4OID, INT4ARRAYOID, UUIDARRAYOID}, true
};

/* a group met by one pull */
typedef struct FlowGroup
{
	char		key[TASKQ_MAX_GROUP_KEY + 1];	/* hash key */
	int32		free;			/* slots this pull may still fill */
	bool		locked;			/* this pull holds the group's lock */
	bool		chosen;			/* this pull chose jobs of the group */
	LOCKTAG		tag;
} FlowGroup;

static void
flow_locktag(LOCKTAG *tag, text *queue, const char *group, int len)
{
	uint32		qh = hash_bytes((const unsigned char *) VARDATA_ANY(queue),
								VARSIZE_ANY_EXHDR(queue));
	uint32		gh = group ? hash_bytes((const unsigned char *) group, len) : 0;

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, qh, gh,
						 group ? FLOW_LOCK_GROUP : FLOW_LOCK_QUEUE);
}

/*
 * taskq.jobs and the indexes of its active jobs, each opened once, when
 * first needed, for the counts of one pull: jobs_lease_idx (queue, lease_expires_at) has every
 * active job, jobs_active_idx (queue, group_key) those with a group.
 */
typedef struct ActiveIndex
{
	Relation	heap;			/* NULL until the first count */
	Relation	queue_index;	/* jobs_lease_idx, NULL until needed */
	Relation	group_index;	/* jobs_active_idx, NULL until needed */
	TupleTableSlot *slot;
} ActiveIndex;

static void
active_close(ActiveIndex *ai)
{
	if (ai->heap == NULL)
		return;
	ExecDropSingleTupleTableSlot(ai->slot);
	if (ai->queue_index != NULL)
		index_close(ai->queue_index, NoLock);
	if (ai->group_index != NULL)
		index_close(ai->group_index, NoLock);
	table_close(ai->heap, AccessShareLock);
	ai->heap = NULL;
}

/*
 * How many jobs of the queue (of one group, when group is not NULL) are
 * active, up to limit, counting those of transactions in progress.
 */
static int32
count_active(ActiveIndex *ai, text *queue, const char *group, int len, int32 limit)
{
	Relation	index;
	SnapshotData dirty;
	ScanKeyData keys[2];
	int			nkeys = 1;
	IndexScanDesc scan;
	int32		n = 0;

	if (ai->heap == NULL)
	{
		ai->heap = table_open(TaskqTableOid("jobs"), AccessShareLock);
		ai->queue_index = NULL;
		ai->group_index = NULL;
		ai->slot = table_slot_create(ai->heap, NULL);
	}
	if (group == NULL && ai->queue_index == NULL)
		ai->queue_index = TaskqActiveIndexOpen(false);
	if (group != NULL && ai->group_index == NULL)
		ai->group_index = TaskqActiveIndexOpen(true);
	index = group != NULL ? ai->group_index : ai->queue_index;
	InitDirtySnapshot(dirty);
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ,
						   PointerGetDatum(queue));
	if (group != NULL)
	{
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[1], F_TEXTEQ,
							   PointerGetDatum(cstring_to_text_with_len(group, len)));
		nkeys = 2;
	}
	scan = index_beginscan(ai->heap, index, &dirty, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	while (n < limit && index_getnext_slot(scan, ForwardScanDirection, ai->slot))
	{
		CHECK_FOR_INTERRUPTS();
		n++;
	}
	index_endscan(scan);
	return n;
}

/* the jobs one limited pull chooses (TaskqClaimLimited) */
typedef struct FlowPick
{
	const TaskqQueueInfo *qi;
	text	   *queue;
	HTAB	   *groups;			/* FlowGroup by key */
	ActiveIndex *active;
	ItemPointerData *chosen;
	int			nchosen;
	int			want;
} FlowPick;

/*
 * Whether to take a waiting job (its TID and group, NULL for none): not
 * yet chosen, and its group (if any) has a free slot and a lease left in
 * its window.  The first time a pull meets a group it tries the group's
 * lock and counts the group's active jobs.  Chosen jobs go into
 * pick->chosen.
 */
static bool
consider(FlowPick *pick, ItemPointer tid, text *gt)
{
	const TaskqQueueInfo *qi = pick->qi;

	if (pick->nchosen >= pick->want)
		return false;
	for (int i = 0; i < pick->nchosen; i++)
		if (ItemPointerEquals(&pick->chosen[i], tid))
			return false;
	if (gt != NULL)
	{
		int			len = VARSIZE_ANY_EXHDR(gt);
		char		key[TASKQ_MAX_GROUP_KEY + 1];
		FlowGroup  *fg;
		bool		found;

		memcpy(key, VARDATA_ANY(gt), Min(len, TASKQ_MAX_GROUP_KEY));
		key[Min(len, TASKQ_MAX_GROUP_KEY)] = '\0';
		fg = hash_search(pick->groups, key, HASH_ENTER, &found);
		if (!found)
		{
			fg->locked = false;
			fg->chosen = false;
			fg->free = PG_INT32_MAX;
			/* round robin: so that concurrent pulls take different groups */
			if (qi->group_concurrency > 0 || qi->round_robin)
			{
				flow_locktag(&fg->tag, pick->queue, VARDATA_ANY(gt), len);
				fg->locked = LockAcquire(&fg->tag, ExclusiveLock, false, true) !=
					LOCKACQUIRE_NOT_AVAIL;
				if (!fg->locked)
					fg->free = 0;
				else if (qi->group_concurrency > 0)
					fg->free = qi->group_concurrency -
						count_active(pick->active, pick->queue, VARDATA_ANY(gt), len,
									 qi->group_concurrency);
			}
		}
		if (fg->free <= 0)
			return false;
		/* one lease of the group's window; none left: pass over the group */
		if (qi->group_rate_limit > 0 &&
			TaskqRateTake(pick->queue, VARDATA_ANY(gt), len, qi->group_rate_limit,
						  qi->group_rate_period_ms, 1) == 0)
		{
			fg->free = 0;
			return false;
		}
		fg->free--;
		fg->chosen = true;
	}
	pick->chosen[pick->nchosen++] = *tid;
	return true;
}

/*
 * Round robin (fairness "round_robin"): the first job (priority, then id)
 * of each of the next groups after this backend's cursor, in the order of
 * the group keys, wrapping around; the cursor moves to the last group
 * taken.  Each backend keeps its own cursor, so every group with waiting
 * jobs gets its turn from each worker; jobs without a group are left to
 * the delivery-order pass that fills what the rotation did not.
 */
static TaskqPlan rotation_plan = {
	"WITH RECURSIVE g(k) AS ("
	" (SELECT group_key FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	"  AND group_key > $2 ORDER BY group_key LIMIT 1)"
	" UNION ALL"
	" SELECT (SELECT j.group_key FROM taskq.jobs j WHERE j.queue = $1"
	"  AND j.state = 'waiting' AND j.group_key > g.k ORDER BY j.group_key LIMIT 1)"
	" FROM g WHERE g.k IS NOT NULL)"
	" SELECT c.ctid, c.group_key FROM (SELECT k FROM g WHERE k IS NOT NULL LIMIT $3) n,"
	" LATERAL (SELECT ctid, group_key FROM taskq.jobs WHERE queue = $1"
	"  AND state = 'waiting' AND group_key = n.k ORDER BY priority DESC, id LIMIT 1) c",
	3, {TEXTOID, TEXTOID, INT4OID}, true
};

/* this backend's rotation cursors: queue name -> last group key taken */
typedef struct RotationCursor
{
	char		queue[TASKQ_MAX_QUEUE_NAME + 1];	/* hash key */
	char		last[TASKQ_MAX_GROUP_KEY + 1];
} RotationCursor;

static HTAB *rotation_cursors = NULL;

/*
 * The waiting jobs of the groups after $2 in rotation order, best job of
 * each group first: when the groups are small (many keys, a few jobs
 * each), the first rows of one index scan already hold the next groups'
 * best jobs, which is cheaper than the loose scan of rotation_plan.
 */
static TaskqPlan rotation_rows_plan = {
	"SELECT ctid, group_key FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	" AND group_key IS NOT NULL AND group_key > $2"
	" ORDER BY group_key, priority DESC, id LIMIT $3",
	3, {TEXTOID, TEXTOID, INT4OID}, true
};

/*
 * Consider the first job of each group among the rows of the last
 * statement (group key in *last before the first row when groups > 0),
 * until groups reaches ngroups; returns groups.  A row of the same group
 * as the one before it is passed over: the rows of rotation_rows_plan
 * hold every job of a group, those of rotation_plan one per group.
 */
static int
rotation_consider(FlowPick *pick, RotationCursor *rc, int groups, int ngroups,
				  char *last)
{
	SPITupleTable *tt = SPI_tuptable;

	for (uint64 i = 0; i < SPI_processed && groups < ngroups &&
		 pick->nchosen < pick->want; i++)
	{
		bool		isnull;
		Datum		ctid = SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull);
		Datum		g = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
		char	   *key = TextDatumGetCString(g);

		if (groups > 0 && strcmp(key, last) == 0)
			continue;
		strlcpy(last, key, TASKQ_MAX_GROUP_KEY + 1);
		groups++;
		if (consider(pick, (ItemPointer) DatumGetPointer(ctid), DatumGetTextPP(g)))
			strlcpy(rc->last, key, sizeof(rc->last));
	}
	SPI_freetuptable(tt);
	return groups;
}

/*
 * Consider the best job of up to ngroups groups after the key from, in
 * key order; returns how many groups it found (fewer: no more groups).
 */
static int
rotation_read(FlowPick *pick, RotationCursor *rc, const char *from, int ngroups)
{
	Datum		args[3];
	int			rows;
	int			found;
	int32		nrows = Min(4 * ngroups, TASKQ_FLOW_SCAN_MAX);
	char		last[TASKQ_MAX_GROUP_KEY + 1];

	/* first the rows of one scan, keeping the first of each group */
	args[0] = PointerGetDatum(pick->queue);
	args[1] = CStringGetTextDatum(from);
	args[2] = Int32GetDatum(nrows);
	rows = TaskqExecute(&rotation_rows_plan, args, NULL, false, 0);
	found = rotation_consider(pick, rc, 0, ngroups, last);
	if (found == ngroups || rows < nrows || pick->nchosen >= pick->want)
		return found;

	/* big groups: the loose scan, from the last group the rows reached */
	args[1] = CStringGetTextDatum(last);
	args[2] = Int32GetDatum(ngroups - found);
	(void) TaskqExecute(&rotation_plan, args, NULL, false, 0);
	return rotation_consider(pick, rc, found, ngroups, last);
}

static void
rotate(FlowPick *pick)
{
	char	   *qname = text_to_cstring(pick->queue);
	RotationCursor *rc;
	bool		found;
	int			limit = Min(pick->want + 2, TASKQ_FLOW_SCAN_MAX);

	if (rotation_cursors == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = TASKQ_MAX_QUEUE_NAME + 1;
		ctl.entrysize = sizeof(RotationCursor);
		ctl.hcxt = TopMemoryContext;
		rotation_cursors = hash_create("taskq rotation cursors", 16, &ctl,
									   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	if (strlen(qname) > TASKQ_MAX_QUEUE_NAME)
		return;
	rc = hash_search(rotation_cursors, qname, HASH_ENTER, &found);
	if (!found)
		rc->last[0] = '\0';
	/* from the cursor to the last key, then once more from the first */
	for (int pass = 0; pass < 2 && pick->nchosen < pick->want; pass++)
	{
		if (rotation_read(pick, rc, pass == 0 ? rc->last : "", limit) == limit &&
			pass == 0)
			break;
	}
}

/*
 * Lease at most count jobs of a queue that has a concurrency or group
 * concurrency limit: claim(arg, max, ctids) leases them, either the first
 * max waiting jobs (ctids NULL) or those of the TID array ctids, and
 * returns how many it leased.  levels, when not NULL, are the head's
 * priorities and bounds (pullhead.c), where the waiting jobs start.
 * Returns what claim returned, or 0 when the queue is at its limit.  Runs
 * inside TaskqSwitchToOwner and SPI.  When it read the candidates from the
 * levels without a statement, *first_known is set and first holds, per
 * level, what TaskqWaitingDirect met first there.
 */
int
TaskqClaimLimited(Datum queue, const TaskqQueueInfo *qi, int32 count,
				  const Datum *levels, TaskqClaimFn claim, void *arg,
				  uint64 *first, bool *first_known)
{
	text	   *q = DatumGetTextPP(queue);
	LOCKTAG		queue_tag;
	bool		queue_locked = false;
	int32		want = count;
	int32		rate_taken = 0;
	int			n = 0;
	HTAB	   *groups = NULL;
	ActiveIndex active = {0};

	if (qi->concurrency > 0)
	{
		flow_locktag(&queue_tag, q, NULL, 0);
		(void) LockAcquire(&queue_tag, ExclusiveLock, false, false);
		queue_locked = true;
		want = Min(want, qi->concurrency - count_active(&active, q, NULL, 0, qi->concurrency));
	}
	if (qi->rate_limit > 0 && want > 0)
		want = rate_taken = TaskqRateTake(q, NULL, 0, qi->rate_limit, qi->rate_period_ms, want);

	if (want > 0 && qi->group_concurrency <= 0 && qi->group_rate_limit <= 0 &&
		!qi->round_robin)
		n = claim(arg, want, (Datum) 0);
	else if (want > 0)
	{
		HASHCTL		ctl;
		FlowPick	pick;
		int			seen = 0;
		int32		limit = Min(4 * want + 12, TASKQ_FLOW_SCAN_MAX);
		Datum		args[4] = {queue, 0, levels ? levels[0] : 0, levels ? levels[1] : 0};
		int			nlevels = 0;
		int32		priority[TASKQ_HEAD_MAX_LEVELS];
		Datum		bound[TASKQ_HEAD_MAX_LEVELS];

		ctl.keysize = TASKQ_MAX_GROUP_KEY + 1;
		ctl.entrysize = sizeof(FlowGroup);
		ctl.hcxt = CurrentMemoryContext;
		groups = hash_create("taskq flow groups", 64, &ctl,
							 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		pick.qi = qi;
		pick.queue = q;
		pick.groups = groups;
		pick.active = &active;
		pick.want = want;
		pick.nchosen = 0;
		pick.chosen = palloc(sizeof(ItemPointerData) * want);

		if (qi->round_robin)
			rotate(&pick);

		if (levels != NULL)
			nlevels = TaskqLevelsUnpack(levels[0], levels[1], priority, bound);

		/*
		 * In delivery order (after the rotation: what it could not fill);
		 * nothing to read when the head knows of no waiting job.
		 */
		while (pick.nchosen < want && (levels == NULL || nlevels > 0))
		{
			ItemPointerData *tids = palloc(sizeof(ItemPointerData) * limit);
			text	  **keys = palloc(sizeof(text *) * limit);
			SPITupleTable *tt = NULL;
			int			rows;

			/* the levels' first waiting jobs: from the first read only */
			rows = TaskqWaitingDirect(queue, nlevels, priority, bound, limit, tids, keys,
									  seen == 0 && nlevels > 0 ? first : NULL);
			if (rows >= 0 && seen == 0 && nlevels > 0)
				*first_known = true;
			if (rows < 0)
			{
				args[1] = Int32GetDatum(limit);
				rows = TaskqExecute(levels ? &candidates_levels_plan : &candidates_plan,
									args, NULL, false, 0);
				tt = SPI_tuptable;
				for (int i = 0; i < rows; i++)
				{
					bool		isnull;
					Datum		g;

					tids[i] = *(ItemPointer) DatumGetPointer(SPI_getbinval(tt->vals[i], tt->tupdesc,
																		   1, &isnull));
					g = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
					keys[i] = isnull ? NULL : DatumGetTextPP(g);
				}
			}
			/* a second read starts again from the head: skip what was seen */
			for (int i = seen; i < rows && pick.nchosen < want; i++)
			{
				seen++;
				(void) consider(&pick, &tids[i], keys[i]);
			}
			/* the group keys point into the statement's rows until here */
			if (tt != NULL)
				SPI_freetuptable(tt);
			pfree(tids);
			pfree(keys);
			if (rows < limit || limit == TASKQ_FLOW_SCAN_MAX)
				break;
			/*
			 * Four times as many: the head holds the jobs of groups at their
			 * limit (the others' jobs are taken first), so a read often
			 * falls short by a few jobs, rarely by hundreds.
			 */
			limit = Min(limit * 4, TASKQ_FLOW_SCAN_MAX);
		}
		if (pick.nchosen > 0)
		{
			Datum	   *d = palloc(sizeof(Datum) * pick.nchosen);

			for (int i = 0; i < pick.nchosen; i++)
				d[i] = PointerGetDatum(&pick.chosen[i]);
			n = claim(arg, pick.nchosen,
					  PointerGetDatum(construct_array(d, pick.nchosen, TIDOID,
													  sizeof(ItemPointerData),
													  false, TYPALIGN_SHORT)));
		}
	}

	/* the claim has leased what it leased: the next pull counts it */
	if (groups != NULL)
	{
		HASH_SEQ_STATUS st;
		FlowGroup  *fg;

		hash_seq_init(&st, groups);
		while ((fg = hash_seq_search(&st)) != NULL)
		{
			if (fg->locked && !fg->chosen)
				LockRelease(&fg->tag, ExclusiveLock, false);
		}
		hash_destroy(groups);
	}
	active_close(&active);
	if (queue_locked)
		LockRelease(&queue_tag, ExclusiveLock, false);
	/* what the queue's window gave that the claim did not lease */
	if (rate_taken > n)
		TaskqRateGiveBack(q, NULL, 0, qi->rate_period_ms, rate_taken - n);
	return n;
}

/*
 * The leases of the rows the last statement returned ended (ack, fail,
 * expiry; its column "queue"): at commit, wake the pulls waiting on those
 * of their queues that have a concurrency limit (wait_ms), whose slots
 * they freed.  Leaves SPI_tuptable as it was.  Runs inside SPI.
 */
void
TaskqNoteSlotsFreed(int n)
{
	SPITupleTable *tuptable = SPI_tuptable;
	uint64		processed = SPI_processed;
	char	  **names;
	int			nnames = 0;
	int			col;

	if (n <= 0 || tuptable == NULL)
		return;
	col = SPI_fnumber(tuptable->tupdesc, "queue");
	if (col <= 0)
		return;
	names = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, col, &isnull);
		char	   *name;

		if (isnull)
			continue;
		name = TextDatumGetCString(d);
		if (nnames == 0 || strcmp(names[nnames - 1], name) != 0)
			names[nnames++] = name;
	}
	for (int i = 0; i < nnames; i++)
		TaskqNoteQueueSlotsFreed(names[i]);
	SPI_tuptable = tuptable;
	SPI_processed = processed;
}

/*
 * A lease of a job of queue ended: at commit, wake the pulls waiting on
 * the queue if it has a concurrency limit (TaskqNoteSlotsFreed).
 */
void
TaskqNoteQueueSlotsFreed(const char *queue)
{
	TaskqQueueInfo qi;

	if (TaskqCachedQueue(queue, false, &qi) &&
		(qi.concurrency > 0 || qi.group_concurrency > 0))
		TaskqNoteWakeup(cstring_to_text(queue));
}
