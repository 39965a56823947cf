/*-------------------------------------------------------------------------
 *
 * direct.c
 *		The worker loop's reads and writes of taskq.jobs by index and heap
 *		access, without a plan: pull's housekeeping probe, raise and claim,
 *		the candidates of a limited pull, and the acks.
 *
 * A pull of a queue without limits runs, in the steady state, a probe for
 * housekeeping (two index probes), at times a raise of its bounds (an
 * index probe, pullhead.c) and the claim (an index scan, then an update of
 * each job it takes; a claim of a few jobs reads the entries it needs from
 * the index's leaf page directly, leafpeek.c, and goes on with a scan only
 * when those are not enough); the ack of a job is a delete by id and lease
 * and an insert into finished_jobs.  As statements, each had a plan kept by
 * the backend, and VACUUM and ANALYZE of taskq.jobs invalidate those:
 * every worker's backend planned them again at its next call, after each
 * autovacuum (about 1 ms a pull, all workers at once: the worst windows of
 * claim latency under steady load).  Setting up their executors was also a
 * good part of each call.  A limited pull (flowcontrol.c) reads its
 * candidates the same way, then claims the jobs it chose by TID.
 * Here they are the same reads and writes done directly: the index is
 * scanned with the statement's conditions as scan keys, under a fresh
 * snapshot taken as a statement of READ COMMITTED takes it; a claimed job
 * is updated with heap_update, whose new version gets its index entries
 * as UPDATE writes them (ExecInsertIndexTuples); an acked job is deleted
 * with heap_delete and its finished row written as the acks' statements
 * write it (rowinsert.c).
 *
 * Locking is the statements': the claim's FOR UPDATE SKIP LOCKED skips a
 * job that another transaction has locked or is changing, never waiting; a
 * job changed by a transaction that committed after the snapshot was taken
 * is skipped too (the statement locked its new version but did not claim
 * it either).  The claim updates each job without waiting, which skips the
 * same jobs, and takes the statement's way (lock as FOR UPDATE SKIP LOCKED
 * locks, then update) only for a job being modified, so that a lock held
 * by this transaction itself lets it through.  The ack's delete waits for a
 * concurrent change of its job, as the statement does; when one committed,
 * the ack leaves the job to the statement, which takes a new snapshot and
 * reads the job again.  Locks on the table and its indexes are held to the
 * end of the transaction, as a statement's are.
 *
 * Each function returns false (or -1) without doing anything when it
 * cannot act for the statement, and its caller runs the statement: when
 * taskq.jobs has rules, triggers for the change or row-level security, is
 * not a heap or has other columns than taskq's, when an index is not the
 * install script's or not valid, and in a transaction whose snapshot is
 * the transaction's (REPEATABLE READ and SERIALIZABLE, where the
 * statements raise a serialization failure instead).  The acks also
 * leave to the statement a job whose completion has consequences
 * (children, parents, follow-ups, reply_to: dagfinish.c) and the queues
 * that keep no completed jobs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/sysattr.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_index.h"
#include "commands/defrem.h"
#include "common/int.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "taskq.h"

/* an index of taskq.jobs read here, as the install script makes it */
typedef struct DirectIndex
{
	const char *name;
	int			ncolumns;
	const char *columns[3];
	int16		options[3];		/* indoption of each column */
	bool		partial;
} DirectIndex;

static const DirectIndex pull_index = {
	"jobs_pull_idx", 3, {"queue", "priority", "id"},
	{0, INDOPTION_DESC | INDOPTION_NULLS_FIRST, 0}, true
};
static const DirectIndex delayed_index = {
	"jobs_delayed_idx", 2, {"queue", "run_at"}, {0, 0}, true
};
static const DirectIndex lease_index = {
	"jobs_lease_idx", 2, {"queue", "lease_expires_at"}, {0, 0}, true
};
static const DirectIndex active_index = {
	"jobs_active_idx", 2, {"queue", "group_key"}, {0, 0}, true
};
static const DirectIndex pkey_index = {
	"jobs_pkey", 1, {"id"}, {0}, false
};

/* indexes found to be as expected (their definition cannot change) */
static Oid	verified_indexes[8];
static int	nverified = 0;

/* the columns a claim sets */
static const char *const claim_set_columns[] = {
	"state", "attempts", "lease", "lease_ms", "lease_expires_at", "started_at"
};

/*
 * Whether the statements on taskq.jobs can be done directly on rel: no
 * rules, no triggers for the change (UPDATE or DELETE: they fire only for
 * a statement) nor row-level security, a heap with taskq's columns, and
 * READ COMMITTED.
 */
static bool
jobs_usable(Relation rel, CmdType change)
{
	TriggerDesc *td = rel->trigdesc;

	if (IsolationUsesXactSnapshot())
		return false;
	if (rel->rd_rel->relam != HEAP_TABLE_AM_OID || rel->rd_rel->relrowsecurity ||
		rel->rd_rules != NULL || !TaskqIsJobTable(rel))
		return false;
	if (td == NULL || change == CMD_SELECT)
		return true;
	if (change == CMD_DELETE)
		return !(td->trig_delete_before_row || td->trig_delete_after_row ||
				 td->trig_delete_instead_row || td->trig_delete_before_statement ||
				 td->trig_delete_after_statement || td->trig_delete_old_table);
	return !(td->trig_update_before_row || td->trig_update_after_row ||
			 td->trig_update_instead_row || td->trig_update_before_statement ||
			 td->trig_update_after_statement || td->trig_update_old_table ||
			 td->trig_update_new_table);
}

/* whether index is def: a btree over its columns, options and opclasses */
static bool
index_is(Relation index, const DirectIndex *def)
{
	Form_pg_index ix = index->rd_index;

	if (index->rd_rel->relam != BTREE_AM_OID ||
		ix->indrelid != TaskqTableOid("jobs") ||
		ix->indnatts != def->ncolumns || ix->indnkeyatts != def->ncolumns ||
		def->partial == heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) ||
		!heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL))
		return false;
	for (int i = 0; i < def->ncolumns; i++)
	{
		int			col = TaskqJobColumn(def->columns[i]);
		Oid			type = TupleDescAttr(RelationGetDescr(index), i)->atttypid;
		Oid			opclass = GetDefaultOpClass(type, BTREE_AM_OID);

		if (ix->indkey.values[i] != col + 1 ||
			index->rd_indoption[i] != def->options[i] ||
			!OidIsValid(opclass) ||
			index->rd_opfamily[i] != get_opclass_family(opclass))
			return false;
	}
	return true;
}

/*
 * Open the index def of taskq.jobs, when it is valid and as the install
 * script makes it; else NULL (an index built again by hand, perhaps
 * CONCURRENTLY and not yet valid, is the statements' to use).  The lock
 * is held to the end of the transaction, as a statement holds it.
 */
static Relation
open_index(const DirectIndex *def)
{
	Oid			oid = TaskqTableOid(def->name);
	Relation	index;
	bool		known = false;

	if (!OidIsValid(oid))
		return NULL;
	index = index_open(oid, AccessShareLock);
	if (index->rd_index->indisvalid && index->rd_index->indisready &&
		index->rd_index->indislive)
	{
		for (int i = 0; i < nverified && !known; i++)
			known = verified_indexes[i] == oid;
		if (!known && index_is(index, def))
		{
			if (nverified == lengthof(verified_indexes))
				nverified = 0;
			verified_indexes[nverified++] = oid;
			known = true;
		}
	}
	if (known)
		return index;
	index_close(index, NoLock);
	return NULL;
}

/*
 * Open taskq.jobs in mode and its index def, for a change (CMD_SELECT:
 * a read) done directly; false, having left nothing open, when the
 * statement must do it.
 */
static bool
open_jobs(CmdType change, LOCKMODE mode, const DirectIndex *def,
		  Relation *rel, Relation *index)
{
	*rel = table_open(TaskqTableOid("jobs"), mode);
	*index = NULL;
	if (!jobs_usable(*rel, change) ||
		(def != NULL && (*index = open_index(def)) == NULL))
	{
		table_close(*rel, NoLock);
		return false;
	}
	return true;
}

/*
 * The snapshot of a statement of READ COMMITTED, as SPI takes it for one
 * that may write: after this transaction's earlier changes, a new one.
 */
static Snapshot
statement_snapshot(void)
{
	CommandCounterIncrement();
	return RegisterSnapshot(GetTransactionSnapshot());
}

/* a scan key on index column attno (1-based), with the index's collation */
static void
scan_key(ScanKey key, Relation index, int attno, StrategyNumber strategy,
		 RegProcedure proc, Datum arg)
{
	ScanKeyEntryInitialize(key, 0, attno, strategy, InvalidOid,
						   index->rd_indcollation[attno - 1], proc, arg);
}

/*
 * A scan of the pull index under snapshot, over the queue's head (nlevels
 * 0) or over levels: pull_rescan starts it at one of them.
 */
static IndexScanDesc
pull_beginscan(Relation rel, Relation index, Snapshot snapshot, int nlevels)
{
	/* a scan has as many keys at each rescan as at its start */
	return index_beginscan(rel, index, snapshot, nlevels > 0 ? 3 : 1, 0);
}

/*
 * Start scan at the queue's head (nlevels 0), or at a level of the
 * nlevels: its priority, from bound.
 */
static void
pull_rescan(IndexScanDesc scan, Datum queue, int nlevels, int32 priority,
			Datum bound)
{
	Relation	index = scan->indexRelation;
	ScanKeyData keys[3];
	int			nkeys = 1;

	scan_key(&keys[0], index, 1, BTEqualStrategyNumber, F_TEXTEQ, queue);
	if (nlevels > 0)
	{
		scan_key(&keys[1], index, 2, BTEqualStrategyNumber, F_INT4EQ,
				 Int32GetDatum(priority));
		scan_key(&keys[2], index, 3, BTGreaterEqualStrategyNumber, F_UUID_GE,
				 bound);
		nkeys = 3;
	}
	Assert(nkeys == scan->numberOfKeys);
	index_rescan(scan, keys, nkeys, NULL, 0);
}

/*
 * The first job a scan of levels met in level l (TaskqClaimRequest.first),
 * noted in first[l] when first is not NULL: with slot NULL as pull_rescan
 * starts the level (none met yet: PG_UINT64_MAX), then with each job the
 * scan returns there (the first one stays).
 */
static void
note_first(uint64 *first, int nlevels, int l, TupleTableSlot *slot, int id_att)
{
	bool		isnull;

	if (first == NULL || nlevels == 0)
		return;
	if (slot == NULL)
		first[l] = PG_UINT64_MAX;
	else if (first[l] == PG_UINT64_MAX)
		first[l] = TaskqIdPrefix(DatumGetUUIDP(slot_getattr(slot, id_att, &isnull)));
}

/*
 * A read of one level of the pull index at a time (of the queue's head
 * when nlevels is 0), in delivery order, of the versions of its entries'
 * jobs that the snapshot sees.  A read that needs a few jobs takes their
 * entries, and PEEK_SLACK more (for jobs other workers are claiming or
 * have just claimed), from the leaf page where the level starts, read
 * directly (leafpeek.c): an index scan would read the rest of the page.
 * When those are not enough and the level has more, it goes on with an
 * index scan from the last entry read (from the head, without levels),
 * passing over the entries the peek returned: each job is returned once
 * (a limited pull's second read counts on it, flowcontrol.c).
 */
#define PEEK_SLACK		16

typedef enum LevelReadMode
{
	LEVEL_PEEK,					/* from the peek's entries */
	LEVEL_SCAN,					/* from the index scan */
	LEVEL_DONE					/* the level has no more entries */
} LevelReadMode;

typedef struct LevelRead
{
	Relation	rel;
	Relation	index;
	Snapshot	snapshot;
	TupleTableSlot *slot;		/* the job read */
	Datum		queue;
	int			nlevels;
	int32		priority;		/* the level's */
	Datum		bound;			/* the level's, uuid */
	LevelReadMode mode;
	TaskqLeafPeek peek;
	int			next;			/* the peek's next entry */
	/* the heap TIDs of the entries the peek returned, for the scan to skip */
	int			npeeked;
	ItemPointerData peeked[TASKQ_PEEK_MAX];
	IndexFetchTableData *fetch; /* for the peek's entries */
	IndexScanDesc scan;			/* NULL until a level needs one */
} LevelRead;

static void
level_read_init(LevelRead *r, Relation rel, Relation index, Snapshot snapshot,
				TupleTableSlot *slot, Datum queue, int nlevels)
{
	r->rel = rel;
	r->index = index;
	r->snapshot = snapshot;
	r->slot = slot;
	r->queue = queue;
	r->nlevels = nlevels;
	r->mode = LEVEL_DONE;
	r->npeeked = 0;
	r->fetch = NULL;
	r->scan = NULL;
}

/* the scan of the level, from its bound */
static void
level_read_scan(LevelRead *r)
{
	if (r->scan == NULL)
		r->scan = pull_beginscan(r->rel, r->index, r->snapshot, r->nlevels);
	pull_rescan(r->scan, r->queue, r->nlevels, r->priority, r->bound);
	r->mode = LEVEL_SCAN;
}

/* the end of the level's peek: its dead entries marked, its page let go */
static void
level_read_unpeek(LevelRead *r)
{
	if (r->mode == LEVEL_PEEK)
		TaskqLeafPeekEnd(&r->peek);
	r->mode = LEVEL_DONE;
}

/*
 * Start reading level l of the levels priority and bound (the queue's
 * head without levels), where the caller expects to need about need jobs.
 */
static void
level_read_start(LevelRead *r, const int32 *priority, const Datum *bound,
				 int l, int need)
{
	level_read_unpeek(r);
	r->priority = r->nlevels > 0 ? priority[l] : 0;
	r->bound = r->nlevels > 0 ? bound[l] : (Datum) 0;
	r->npeeked = 0;
	/* (a standby neither skips nor marks entries marked dead on the primary) */
	if (need + PEEK_SLACK > TASKQ_PEEK_MAX || RecoveryInProgress())
	{
		level_read_scan(r);
		return;
	}
	{
		Datum		key[3] = {r->queue, Int32GetDatum(r->priority), r->bound};
		bool		levels = r->nlevels > 0;

		TaskqLeafPeekRead(&r->peek, r->index, r->snapshot, key, levels ? 3 : 1,
						  levels ? 2 : 1, need + PEEK_SLACK);
	}
	if (r->fetch == NULL)
		r->fetch = table_index_fetch_begin(r->rel);
	r->next = 0;
	r->mode = LEVEL_PEEK;
}

/* the level's next job the snapshot sees, into r->slot; false at its end */
static bool
level_read_next(LevelRead *r)
{
	CHECK_FOR_INTERRUPTS();
	while (r->mode == LEVEL_PEEK)
	{
		TaskqLeafPeek *peek = &r->peek;

		if (r->next < peek->n)
		{
			int			i = r->next++;
			ItemPointerData tid = peek->tids[i];	/* the fetch moves it along a HOT chain */
			bool		call_again = false;
			bool		all_dead = false;

			/* as the index scan reads the heap (index_fetch_heap) */
			if (table_index_fetch_tuple(r->fetch, &tid, r->snapshot,
										r->slot, &call_again, &all_dead))
			{
				pgstat_count_heap_fetch(r->index);
				return true;
			}
			if (all_dead)
			{
				peek->dead[i] = true;
				peek->ndead++;
			}
			continue;
		}
		/* the peek is read: the level ends with it, or a scan goes on */
		if (peek->complete)
		{
			level_read_unpeek(r);
			return false;
		}
		if (r->nlevels > 0 && peek->last != NULL)
		{
			bool		isnull;
			Datum		id = index_getattr(peek->last, 3, RelationGetDescr(r->index),
										   &isnull);

			Assert(!isnull);
			r->bound = UUIDPGetDatum(palloc(sizeof(pg_uuid_t)));
			memcpy(DatumGetUUIDP(r->bound), DatumGetUUIDP(id), sizeof(pg_uuid_t));
		}
		memcpy(r->peeked, peek->tids, sizeof(ItemPointerData) * peek->n);
		r->npeeked = peek->n;
		level_read_unpeek(r);
		level_read_scan(r);
	}
	if (r->mode == LEVEL_DONE)
		return false;
	/* index_getnext_slot, but each job once: not those the peek returned */
	for (;;)
	{
		ItemPointer tid = index_getnext_tid(r->scan, ForwardScanDirection);
		bool		peeked = false;

		if (tid == NULL)
			break;
		for (int i = 0; i < r->npeeked && !peeked; i++)
			peeked = ItemPointerEquals(tid, &r->peeked[i]);
		if (!peeked && index_fetch_heap(r->scan, r->slot))
			return true;
		CHECK_FOR_INTERRUPTS();
	}
	r->mode = LEVEL_DONE;
	return false;
}

static void
level_read_end(LevelRead *r)
{
	level_read_unpeek(r);
	ExecClearTuple(r->slot);
	if (r->fetch != NULL)
		table_index_fetch_end(r->fetch);
	if (r->scan != NULL)
		index_endscan(r->scan);
}

/*
 * The index flow control counts active jobs with (flowcontrol.c): a
 * queue's in jobs_lease_idx, a group's in jobs_active_idx (by_group),
 * checked as open_index checks the others.  There is no statement to fall
 * back on: one that is missing or not as the install script makes it is
 * an error.  The lock is held to the end of the transaction.
 */
Relation
TaskqActiveIndexOpen(bool by_group)
{
	const DirectIndex *def = by_group ? &active_index : &lease_index;
	Relation	index;

	if (!OidIsValid(TaskqTableOid(def->name)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("index \"taskq.%s\" does not exist", def->name),
				 errhint("Flow control counts active jobs with it; create the extension again.")));
	index = open_index(def);
	if (index == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"taskq.%s\" is not as taskq makes it", def->name),
				 errdetail("Flow control counts active jobs by its leading columns (%s).",
						   by_group ? "queue, group_key" : "queue"),
				 errhint("Create the extension again, or build the index as taskq's install script does.")));
	return index;
}

/*
 * The housekeeping probe of pull: the first lease of the queue that ran
 * out in [floor, now) (*first_lease, DT_NOEND when none), and whether a
 * delayed job of the queue is due at now (*due; not looked for when due
 * is NULL, as by the reaper).  With quiet (a pull), both reads go on up to
 * now plus the quiet window: when nothing is due, *quiet is the first
 * active lease or delayed job there, or else the window's end (pullhead.c,
 * "quiet"); when something is, DT_NOBEGIN.  Returns false, having read
 * nothing, when the statement must do it.
 */
bool
TaskqProbeHousekeeping(Datum queue, TimestampTz floor, TimestampTz now,
					   TimestampTz *first_lease, bool *due, TimestampTz *quiet)
{
	Relation	rel;
	Relation	lease;
	Relation	delayed;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	IndexScanDesc scan;
	ScanKeyData keys[3];
	int			state = TaskqJobColumn("state") + 1;
	int			expires = TaskqJobColumn("lease_expires_at") + 1;
	int			run_at = TaskqJobColumn("run_at") + 1;
	Datum		active;
	TimestampTz upto = now;
	TimestampTz next = DT_NOEND;

	if (!open_jobs(CMD_SELECT, AccessShareLock, &lease_index, &rel, &lease))
		return false;
	delayed = open_index(&delayed_index);
	if (delayed == NULL)
	{
		index_close(lease, NoLock);
		table_close(rel, NoLock);
		return false;
	}
	active = TaskqJobState(TupleDescAttr(RelationGetDescr(rel), state - 1)->atttypid,
						   "active");
	snapshot = statement_snapshot();
	slot = table_slot_create(rel, NULL);

	/*
	 * leases in [floor, upto), by expiry: the first of an active job, which
	 * ran out if it is before now
	 */
	if (quiet != NULL)
		upto = next = TimestampTzPlusMilliseconds(now, TASKQ_QUIET_WINDOW_MS);
	*first_lease = DT_NOEND;
	scan_key(&keys[0], lease, 1, BTEqualStrategyNumber, F_TEXTEQ, queue);
	scan_key(&keys[1], lease, 2, BTGreaterEqualStrategyNumber,
			 F_TIMESTAMPTZ_GE, TimestampTzGetDatum(floor));
	scan_key(&keys[2], lease, 2, BTLessStrategyNumber,
			 F_TIMESTAMPTZ_LT, TimestampTzGetDatum(upto));
	scan = index_beginscan(rel, lease, snapshot, 3, 0);
	index_rescan(scan, keys, 3, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		s = slot_getattr(slot, state, &isnull);

		if (!isnull && DatumGetObjectId(s) == DatumGetObjectId(active))
		{
			Datum		e = slot_getattr(slot, expires, &isnull);

			if (!isnull)
			{
				if (DatumGetTimestampTz(e) < now)
					*first_lease = DatumGetTimestampTz(e);
				else
					next = DatumGetTimestampTz(e);
				break;
			}
		}
	}
	index_endscan(scan);

	/*
	 * the first delayed job of the queue (the index holds only those), due
	 * if it is at now or before; up to now, or with quiet up to upto
	 */
	if (due != NULL)
	{
		scan_key(&keys[0], delayed, 1, BTEqualStrategyNumber, F_TEXTEQ, queue);
		if (quiet != NULL)
			scan_key(&keys[1], delayed, 2, BTLessStrategyNumber,
					 F_TIMESTAMPTZ_LT, TimestampTzGetDatum(upto));
		else
			scan_key(&keys[1], delayed, 2, BTLessEqualStrategyNumber,
					 F_TIMESTAMPTZ_LE, TimestampTzGetDatum(now));
		scan = index_beginscan(rel, delayed, snapshot, 2, 0);
		index_rescan(scan, keys, 2, NULL, 0);
		*due = false;
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			bool		isnull;
			Datum		r = slot_getattr(slot, run_at, &isnull);

			/* a NULL run_at (not taskq's) counts as due, as before */
			if (quiet == NULL || isnull || DatumGetTimestampTz(r) <= now)
				*due = true;
			else if (DatumGetTimestampTz(r) < next)
				next = DatumGetTimestampTz(r);
		}
		index_endscan(scan);
	}
	if (quiet != NULL)
		*quiet = (*first_lease != DT_NOEND || (due != NULL && *due)) ? DT_NOBEGIN : next;

	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(delayed, NoLock);
	index_close(lease, NoLock);
	table_close(rel, NoLock);
	return true;
}

/*
 * A raise of the head's bounds (pullhead.c): of each of the nlevels
 * levels, the first waiting job's id from its bound (first[i], or NULL
 * when none).  Returns false, having read nothing, when the statement
 * must do it.
 */
bool
TaskqFirstWaiting(Datum queue, int nlevels, const int32 *priority,
				  const Datum *bound, pg_uuid_t **first)
{
	Relation	rel;
	Relation	index;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	LevelRead	r;
	int			id = TaskqJobColumn("id") + 1;

	if (!open_jobs(CMD_SELECT, AccessShareLock, &pull_index, &rel, &index))
		return false;
	snapshot = statement_snapshot();
	slot = table_slot_create(rel, NULL);
	level_read_init(&r, rel, index, snapshot, slot, queue, nlevels);
	for (int i = 0; i < nlevels; i++)
	{
		level_read_start(&r, priority, bound, i, 1);
		first[i] = NULL;
		if (level_read_next(&r))
		{
			bool		isnull;

			first[i] = palloc(sizeof(pg_uuid_t));
			memcpy(first[i], DatumGetUUIDP(slot_getattr(slot, id, &isnull)),
				   sizeof(pg_uuid_t));
		}
	}
	level_read_end(&r);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return true;
}

/* what a claim keeps while it takes jobs */
typedef struct ClaimState
{
	Relation	rel;
	TupleDesc	desc;
	EState	   *estate;
	ResultRelInfo *rri;
	Snapshot	snapshot;
	CommandId	cid;
	TupleTableSlot *found;		/* the waiting job, from the index */
	TupleTableSlot *locked;		/* for table_tuple_lock */
	TupleTableSlot *updated;	/* the new version, for its index entries */
	const TaskqClaimRequest *req;
	Datum		waiting;
	Datum		active;
	int			col[lengthof(claim_set_columns)];
	int			id_col;
	int			queue_col;
	int			state_col;
	int			timeout_col;
	Datum	   *values;
	bool	   *nulls;
} ClaimState;

/* whether the job in slot is of queue and in state (attribute numbers) */
static bool
job_is(TupleTableSlot *slot, int state_att, Datum state, int queue_att, Datum queue)
{
	bool		isnull;
	Datum		v = slot_getattr(slot, state_att, &isnull);

	if (isnull || DatumGetObjectId(v) != DatumGetObjectId(state))
		return false;
	v = slot_getattr(slot, queue_att, &isnull);
	return !isnull && DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID,
														   v, queue));
}

/*
 * Claim the job in cs->found, as the claim statement sets it.  Returns the
 * new version (in the caller's memory), or NULL when the job was skipped:
 * locked or changed by another transaction.
 */
static HeapTuple
claim_one(ClaimState *cs, Datum queue)
{
	const TaskqClaimRequest *req = cs->req;
	Datum	   *v = cs->values;
	bool	   *isnull = cs->nulls;
	HeapTuple	newtup;
	TM_Result	r;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	int32		lease_ms;
	int32		attempts;
	TimestampTz expires;
	pg_uuid_t  *lease;
	ItemPointerData tid = cs->found->tts_tid;

	/* what the index promises, checked as the statement's quals would be */
	if (!job_is(cs->found, cs->state_col + 1, cs->waiting, cs->queue_col + 1, queue))
		return NULL;
	slot_getallattrs(cs->found);
	memcpy(v, cs->found->tts_values, sizeof(Datum) * cs->desc->natts);
	memcpy(isnull, cs->found->tts_isnull, sizeof(bool) * cs->desc->natts);

	/* lease_ms = coalesce(the call's timeout, the job's, the queue's) */
	if (!req->timeout_null)
		lease_ms = req->timeout_ms;
	else if (!isnull[cs->timeout_col])
		lease_ms = DatumGetInt32(v[cs->timeout_col]);
	else
		lease_ms = req->default_timeout_ms;
	expires = req->now + (int64) lease_ms * INT64CONST(1000);
	if (!IS_VALID_TIMESTAMP(expires))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	lease = palloc(sizeof(pg_uuid_t));
	TaskqRandomUuid(lease);

	if (pg_add_s32_overflow(DatumGetInt32(v[cs->col[1]]), 1, &attempts))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("integer out of range")));
	v[cs->col[0]] = cs->active;
	v[cs->col[1]] = Int32GetDatum(attempts);
	v[cs->col[2]] = UUIDPGetDatum(lease);
	v[cs->col[3]] = Int32GetDatum(lease_ms);
	v[cs->col[4]] = TimestampTzGetDatum(expires);
	v[cs->col[5]] = TimestampTzGetDatum(req->now);
	for (int c = 0; c < lengthof(cs->col); c++)
		isnull[cs->col[c]] = false;
	newtup = heap_form_tuple(cs->desc, v, isnull);
	pfree(lease);

	ExecStoreHeapTuple(newtup, cs->updated, false);

	/*
	 * Only CHECK constraints can fail here: the claim sets no column to
	 * NULL and keeps the others, which met every NOT NULL when they were
	 * written or when SET NOT NULL checked them.
	 */
	if (cs->desc->constr != NULL && cs->desc->constr->num_check > 0)
		ExecConstraints(cs->rri, cs->updated, cs->estate);
	/* the indexes the new version goes into, before the job is locked */
	TaskqOpenIndexesFor(cs->rri, cs->updated, cs->estate);

	/*
	 * Update without waiting: a row someone else has locked or is
	 * changing is reported as being modified and skipped, as FOR UPDATE
	 * SKIP LOCKED skips it, and a row changed by a transaction that
	 * committed after the snapshot is not claimed (TM_Updated,
	 * TM_Deleted).  One record in the WAL and one visit of the page,
	 * where locking first (FOR UPDATE SKIP LOCKED, then UPDATE) wrote a
	 * lock record too.  A row being modified takes that way: it skips a
	 * row another transaction holds, and lets through one that only this
	 * transaction has locked, which the update without waiting also
	 * reports as being modified.
	 */
	r = heap_update(cs->rel, &tid, newtup, cs->cid, InvalidSnapshot, false,
					&tmfd, &lockmode);
	if (r == TM_BeingModified)
	{
		r = table_tuple_lock(cs->rel, &tid, cs->snapshot, cs->locked, cs->cid,
							 LockTupleExclusive, LockWaitSkip, 0, &tmfd);
		ExecClearTuple(cs->locked);
		if (r == TM_Ok)
			r = heap_update(cs->rel, &tid, newtup, cs->cid, InvalidSnapshot, true,
							&tmfd, &lockmode);
	}
	if (r != TM_Ok)
	{
		ExecClearTuple(cs->updated);
		heap_freetuple(newtup);
		return NULL;
	}
	/* a claim changes the state, which the indexes' predicates read */
	if (!HeapTupleIsHeapOnly(newtup))
	{
		ExecStoreHeapTuple(newtup, cs->updated, false);
		list_free(ExecInsertIndexTuples(cs->rri, cs->updated, cs->estate, true,
										false, NULL, NIL));
	}
	ExecClearTuple(cs->updated);
	ResetPerTupleExprContext(cs->estate);
	return newtup;
}

/*
 * Open taskq.jobs for claims and set up cs; false, having left nothing
 * open, when the statement must claim.  With scan, *index is the pull
 * index, opened.
 */
static bool
claim_begin(ClaimState *cs, const TaskqClaimRequest *req, bool scan, Relation *index)
{
	RangeTblEntry *rte;

	if (!open_jobs(CMD_UPDATE, RowExclusiveLock, scan ? &pull_index : NULL,
				   &cs->rel, index))
		return false;
	/* what the executor checks of an UPDATE (a standby is read only) */
	PreventCommandIfReadOnly("UPDATE");
	PreventCommandIfParallelMode("UPDATE");
	CheckCmdReplicaIdentity(cs->rel, CMD_UPDATE);

	cs->req = req;
	cs->desc = RelationGetDescr(cs->rel);
	cs->queue_col = TaskqJobColumn("queue");
	cs->state_col = TaskqJobColumn("state");
	cs->id_col = TaskqJobColumn("id");
	cs->waiting = TaskqJobState(TupleDescAttr(cs->desc, cs->state_col)->atttypid, "waiting");
	cs->active = TaskqJobState(TupleDescAttr(cs->desc, cs->state_col)->atttypid, "active");
	cs->timeout_col = TaskqJobColumn("timeout_ms");
	cs->values = palloc(sizeof(Datum) * cs->desc->natts);
	cs->nulls = palloc(sizeof(bool) * cs->desc->natts);

	/*
	 * A result relation for the new versions' index entries, whose range
	 * table entry says which columns changed: an index over none of them
	 * gets the hint that bottom-up deletion uses, as with UPDATE.
	 */
	cs->estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(cs->rel);
	rte->relkind = cs->rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	for (int c = 0; c < lengthof(claim_set_columns); c++)
	{
		cs->col[c] = TaskqJobColumn(claim_set_columns[c]);
		rte->updatedCols = bms_add_member(rte->updatedCols,
										  cs->col[c] + 1 - FirstLowInvalidHeapAttributeNumber);
	}
	ExecInitRangeTable(cs->estate, list_make1(rte));
	cs->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(cs->rri, cs->rel, 1, NULL, 0);
	TaskqOpenResultRel(cs->rri, cs->estate);

	cs->snapshot = statement_snapshot();
	cs->cid = GetCurrentCommandId(true);
	cs->found = table_slot_create(cs->rel, NULL);
	cs->locked = table_slot_create(cs->rel, NULL);
	cs->updated = MakeSingleTupleTableSlot(cs->desc, &TTSOpsHeapTuple);
	return true;
}

/* claim the job in cs->found; when claimed, pass it to take */
static bool
claim_take(ClaimState *cs, TaskqClaimTake take, void *arg, int i)
{
	HeapTuple	claimed = claim_one(cs, cs->req->queue);

	if (claimed == NULL)
		return false;
	/* values that point into the new version, which stays */
	heap_deform_tuple(claimed, cs->desc, cs->values, cs->nulls);
	take(arg, i, cs->values, cs->nulls);
	return true;
}

/* the end of claim_begin's claims */
static void
claim_end(ClaimState *cs, Relation index)
{
	ExecDropSingleTupleTableSlot(cs->found);
	ExecDropSingleTupleTableSlot(cs->locked);
	ExecDropSingleTupleTableSlot(cs->updated);
	ExecCloseIndices(cs->rri);
	FreeExecutorState(cs->estate);
	UnregisterSnapshot(cs->snapshot);
	if (index != NULL)
		index_close(index, NoLock);
	table_close(cs->rel, NoLock);
	/* the caller's next statements see the claims */
	CommandCounterIncrement();
}

/*
 * The claim: at most req->count waiting jobs, from the head of the
 * queue's range of the pull index (req->nlevels 0), or from each of the
 * given levels in turn, from its bound; or, with req->tids, those of the
 * jobs at these TIDs that are still waiting (the choice of a limited
 * pull, flowcontrol.c).  Each becomes active with a fresh lease, as the
 * claim statement sets it, and is passed to take(arg, i, values, nulls)
 * as the whole row of taskq.jobs (in the caller's memory), i counting
 * from 0.  Returns the number claimed, or -1, having done nothing, when
 * the statement must do it.
 */
int
TaskqClaimDirect(const TaskqClaimRequest *req, TaskqClaimTake take, void *arg)
{
	ClaimState	cs;
	Relation	index;
	LevelRead	r;
	int			n = 0;

	if (!claim_begin(&cs, req, req->tids == NULL, &index))
		return -1;

	if (req->tids != NULL)
	{
		/* as a TID scan under the snapshot: a version of another is not followed */
		for (int i = 0; i < req->ntids && n < req->count; i++)
		{
			CHECK_FOR_INTERRUPTS();
			if (table_tuple_fetch_row_version(cs.rel, (ItemPointer) &req->tids[i],
											  cs.snapshot, cs.found) &&
				claim_take(&cs, take, arg, n))
				n++;
		}
		claim_end(&cs, NULL);
		return n;
	}

	/* levels the claim does not reach: 0 */
	if (req->first != NULL)
		memset(req->first, 0, sizeof(uint64) * req->nlevels);
	level_read_init(&r, cs.rel, index, cs.snapshot, cs.found, req->queue, req->nlevels);
	for (int l = 0; l < Max(req->nlevels, 1) && n < req->count; l++)
	{
		level_read_start(&r, req->priority, req->bound, l, req->count - n);
		note_first(req->first, req->nlevels, l, NULL, 0);
		while (n < req->count && level_read_next(&r))
		{
			/* the level's first waiting job, claimed or not */
			note_first(req->first, req->nlevels, l, cs.found, cs.id_col + 1);
			if (claim_take(&cs, take, arg, n))
				n++;
		}
	}
	level_read_end(&r);
	claim_end(&cs, index);
	return n;
}

/*
 * The candidates of a limited pull (flowcontrol.c): at most limit waiting
 * jobs of the queue in delivery order, from the head of its range of the
 * pull index (nlevels 0) or from each level's bound in turn, as the
 * candidates statement reads them without locking: their TIDs into tids
 * and group keys into groups (copies, NULL for none).  Returns how many,
 * or -1, having read nothing, when the statement must do it.
 */
int
TaskqWaitingDirect(Datum queue, int nlevels, const int32 *priority,
				   const Datum *bound, int32 limit, ItemPointerData *tids,
				   text **groups, uint64 *first)
{
	Relation	rel;
	Relation	index;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	LevelRead	r;
	int			group = TaskqJobColumn("group_key") + 1;
	int			state = TaskqJobColumn("state") + 1;
	int			queue_col = TaskqJobColumn("queue") + 1;
	int			id_col = TaskqJobColumn("id") + 1;
	Datum		waiting;
	int			n = 0;

	if (!open_jobs(CMD_SELECT, AccessShareLock, &pull_index, &rel, &index))
		return -1;
	waiting = TaskqJobState(TupleDescAttr(RelationGetDescr(rel), state - 1)->atttypid,
							"waiting");
	snapshot = statement_snapshot();
	slot = table_slot_create(rel, NULL);
	/* levels the read does not reach: 0 */
	if (first != NULL)
		memset(first, 0, sizeof(uint64) * nlevels);
	level_read_init(&r, rel, index, snapshot, slot, queue, nlevels);
	for (int l = 0; l < Max(nlevels, 1) && n < limit; l++)
	{
		level_read_start(&r, priority, bound, l, limit - n);
		note_first(first, nlevels, l, NULL, 0);
		while (n < limit && level_read_next(&r))
		{
			bool		isnull;
			Datum		g;

			note_first(first, nlevels, l, slot, id_col);
			/* what the index promises, checked as the statement's quals would be */
			if (!job_is(slot, state, waiting, queue_col, queue))
				continue;
			g = slot_getattr(slot, group, &isnull);
			tids[n] = slot->tts_tid;
			groups[n] = isnull ? NULL : DatumGetTextPCopy(g);
			n++;
		}
	}
	level_read_end(&r);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return n;
}

/*
 * The levels of the head (pullhead.c) as the claim plans take them, an
 * integer[] of priorities and a uuid[] of bounds, unpacked into priority
 * and bound (pointing into the array); returns how many.
 */
int
TaskqLevelsUnpack(Datum levels, Datum bounds, int32 *priority, Datum *bound)
{
	ArrayType  *l = DatumGetArrayTypeP(levels);
	ArrayType  *b = DatumGetArrayTypeP(bounds);
	int			n = ArrayGetNItems(ARR_NDIM(l), ARR_DIMS(l));

	Assert(n <= TASKQ_HEAD_MAX_LEVELS);
	for (int i = 0; i < n; i++)
	{
		priority[i] = ((int32 *) ARR_DATA_PTR(l))[i];
		bound[i] = PointerGetDatum(ARR_DATA_PTR(b) + i * UUID_LEN);
	}
	return n;
}

/* whether a job's completion has consequences (dagfinish.c) */
static bool
has_consequences(const Datum *v, const bool *isnull)
{
	static int	children = -1;
	static int	parents;
	static int	metadata;
	Jsonb	   *m;

	if (children < 0)
	{
		children = TaskqJobColumn("has_children");
		parents = TaskqJobColumn("pending_parents");
		metadata = TaskqJobColumn("metadata");
	}
	if (DatumGetBool(v[children]) || DatumGetInt32(v[parents]) > 0)
		return true;
	if (isnull[metadata])
		return false;
	m = DatumGetJsonbP(v[metadata]);
	/* metadata is an object; anything else is the statement's to judge */
	return !JB_ROOT_IS_OBJECT(m) ||
		getKeyJsonValueFromContainer(&m->root, "reply_to", 8, NULL) != NULL ||
		getKeyJsonValueFromContainer(&m->root, "follow_ups", 10, NULL) != NULL;
}

/* whether finished_jobs (hist) has taskq.jobs' (a) columns and their types */
static bool
same_types(TupleDesc a, Relation hist)
{
	TupleDesc	b = RelationGetDescr(hist);

	if (!TaskqIsJobTable(hist))
		return false;
	for (int i = 0; i < a->natts; i++)
		if (TupleDescAttr(a, i)->atttypid != TupleDescAttr(b, i)->atttypid)
			return false;
	return true;
}

/*
 * The acks of n jobs, as ack's and ack_batch's statements move them: the
 * job of each item, when it is active (under the item's lease, when one
 * is given), is deleted from taskq.jobs, and the finished rows, completed
 * with their results at now(), are written into finished_jobs together
 * (one multi-insert).  Each item's outcome: 1 acked (its job's queue in
 * queue), 0 no job active under the lease (what the statement would have
 * found), -1 left for the statement: a job whose completion has
 * consequences, or that another transaction changed meanwhile (the
 * statement takes a new snapshot and reads it again).  An id given twice
 * is acked once (the second is 0).  With forget (TaskqAckMayForget: no
 * one is told of completions), a job of a queue that keeps no completed
 * jobs and whose completion has no consequences is only deleted, as the
 * ack's forget statement does (outcome 2).  The job.completed events of
 * the rows written are emitted (TaskqEmitEventRows).  Returns false,
 * having done nothing, when the statements must do all of them.
 */
bool
TaskqAckDirect(TaskqAckItem *items, int n, bool forget)
{
	Relation	rel;
	Relation	hist;
	Relation	index;
	TupleTableSlot *slot;
	TupleTableSlot **rows;
	TupleDesc	copy = NULL;
	TupleDesc	hdesc;
	Snapshot	snapshot;
	IndexScanDesc scan;
	ScanKeyData key;
	CommandId	cid;
	int			nrows = 0;
	int			state_col = TaskqJobColumn("state");
	int			lease_col = TaskqJobColumn("lease");
	int			queue_col = TaskqJobColumn("queue");
	int			result_col = TaskqJobColumn("result");
	int			expires_col = TaskqJobColumn("lease_expires_at");
	int			finished_col = TaskqJobColumn("finished_at");
	Datum		active;
	Datum		completed;
	char	   *last_queue = NULL;	/* the queue looked up last, and */
	bool		last_forgets = false;	/* whether it keeps no completed jobs */

	if (!open_jobs(CMD_DELETE, RowExclusiveLock, &pkey_index, &rel, &index))
		return false;
	hist = table_open(TaskqTableOid("finished_jobs"), RowExclusiveLock);
	if (!TaskqCanInsertRows(hist) || !same_types(RelationGetDescr(rel), hist))
	{
		table_close(hist, NoLock);
		index_close(index, NoLock);
		table_close(rel, NoLock);
		return false;
	}
	PreventCommandIfReadOnly("DELETE");
	PreventCommandIfParallelMode("DELETE");
	CheckCmdReplicaIdentity(rel, CMD_DELETE);

	hdesc = RelationGetDescr(hist);
	active = TaskqJobState(TupleDescAttr(RelationGetDescr(rel), state_col)->atttypid, "active");
	completed = TaskqJobState(TupleDescAttr(hdesc, state_col)->atttypid, "completed");
	snapshot = statement_snapshot();
	cid = GetCurrentCommandId(true);
	slot = table_slot_create(rel, NULL);
	rows = palloc(sizeof(TupleTableSlot *) * n);
	scan = index_beginscan(rel, index, snapshot, 1, 0);
	for (int i = 0; i < n; i++)
	{
		TaskqAckItem *it = &items[i];
		Datum	   *v;
		bool	   *isnull;
		ItemPointerData tid;
		TM_FailureData tmfd;
		TM_Result	r;
		TupleTableSlot *row;

		it->outcome = 0;
		scan_key(&key, index, 1, BTEqualStrategyNumber, F_UUID_EQ, it->id);
		index_rescan(scan, &key, 1, NULL, 0);
		if (!index_getnext_slot(scan, ForwardScanDirection, slot))
			continue;			/* no such job */
		slot_getallattrs(slot);
		v = slot->tts_values;
		isnull = slot->tts_isnull;
		if (isnull[state_col] || DatumGetObjectId(v[state_col]) != DatumGetObjectId(active))
			continue;			/* not active */
		if (!it->lease_null &&
			(isnull[lease_col] ||
			 memcmp(DatumGetUUIDP(v[lease_col]), DatumGetUUIDP(it->lease), UUID_LEN) != 0))
			continue;			/* not under this lease */
		if (has_consequences(v, isnull))
		{
			it->outcome = -1;
			continue;
		}
		tid = slot->tts_tid;
		r = heap_delete(rel, &tid, cid, InvalidSnapshot, true, &tmfd, false);
		if (r == TM_SelfModified)
			continue;			/* acked by this very call: an id given twice */
		if (r != TM_Ok)
		{
			it->outcome = -1;	/* changed meanwhile */
			continue;
		}
		/* a copy: the job's row is in the buffer, which the next item unpins */
		it->queue = DatumGetTextPCopy(v[queue_col]);
		if (forget)
		{
			char	   *queue = text_to_cstring(it->queue);

			if (last_queue == NULL || strcmp(last_queue, queue) != 0)
			{
				last_forgets = TaskqQueueForgetsCompleted(queue);
				last_queue = queue;
			}
			if (last_forgets)
			{
				it->outcome = 2;
				continue;
			}
		}

		/* the finished row: the job's, with ack's changes, then its own copy */
		row = TaskqRowSlot(hist, n, &copy);
		memcpy(row->tts_values, v, sizeof(Datum) * hdesc->natts);
		memcpy(row->tts_isnull, isnull, sizeof(bool) * hdesc->natts);
		row->tts_values[state_col] = completed;
		row->tts_values[result_col] = it->result;
		row->tts_isnull[result_col] = it->result_null;
		row->tts_isnull[expires_col] = true;
		row->tts_values[finished_col] =
			TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		row->tts_isnull[finished_col] = false;
		ExecStoreVirtualTuple(row);
		ExecMaterializeSlot(row);
		it->outcome = 1;
		rows[nrows++] = row;
	}
	index_endscan(scan);
	if (nrows > 0)
		TaskqInsertRows(hist, rows, nrows);
	/* their events, from the rows as written (no statement reads them) */
	TaskqEmitEventRows("job.completed", rows, nrows);
	TaskqDropRowSlots(rows, nrows, copy);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(index, NoLock);
	table_close(hist, NoLock);
	table_close(rel, NoLock);
	return true;
}
