/*-------------------------------------------------------------------------
 *
 * rowinsert.c
 *		Writing rows into taskq's tables without a statement, as COPY
 *		writes them: the heap's multi-insert, then each row's index
 *		entries.
 *
 * No plan is made or executed, and the heap writes one WAL record per
 * page rather than one per row.  The rows must be complete (every column
 * given, as an INSERT would have filled it).  Constraints are checked as
 * INSERT checks them.  A table with INSERT triggers or row-level security
 * is not written this way (TaskqCanInsertRows): its callers run an INSERT
 * instead, so that the triggers fire.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "taskq.h"

/* the index set of one table, as TaskqOpenIndices keeps it */
typedef struct IndexSet
{
	Oid			relid;			/* InvalidOid: a free entry */
	MemoryContext cxt;			/* of what follows */
	bool		usable;			/* false: ExecOpenIndices is to open them */
	int			n;
	Oid		   *oids;			/* the relcache's index list, in its order */
	bool	   *ready;			/* indisready of each, when it was built */
	IndexInfo **infos;			/* with ii_PredicateState prepared */
} IndexSet;

/* jobs, finished_jobs, dead_jobs and a spare */
static IndexSet index_sets[4];
static int	next_set = 0;

/*
 * Build set for rel, whose index list is oids, opening the indexes with
 * RowExclusiveLock into descs; when the set is not usable, having closed
 * them again.
 */
static void
index_set_build(IndexSet *set, Relation rel, List *oids, Relation *descs)
{
	MemoryContext old;
	int			i = 0;
	ListCell   *lc;

	if (set->cxt != NULL)
		MemoryContextDelete(set->cxt);
	set->relid = InvalidOid;
	set->cxt = AllocSetContextCreate(CacheMemoryContext, "taskq index set",
									 ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(set->cxt);
	set->usable = true;
	set->n = list_length(oids);
	set->oids = palloc(sizeof(Oid) * Max(set->n, 1));
	set->ready = palloc(sizeof(bool) * Max(set->n, 1));
	set->infos = palloc(sizeof(IndexInfo *) * Max(set->n, 1));
	foreach(lc, oids)
	{
		Relation	index = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *ii = BuildIndexInfo(index);

		descs[i] = index;
		set->oids[i] = lfirst_oid(lc);
		set->ready[i] = index->rd_index->indisready;
		set->infos[i] = ii;
		if (index->rd_rel->relam != BTREE_AM_OID || ii->ii_Expressions != NIL ||
			ii->ii_ExclusionOps != NULL)
			set->usable = false;
		else if (ii->ii_Predicate != NIL)
			ii->ii_PredicateState =
				ExecInitQual((List *) expression_planner((Expr *) ii->ii_Predicate), NULL);
		i++;
	}
	MemoryContextSwitchTo(old);
	set->relid = RelationGetRelid(rel);
	if (!set->usable)
		for (i = 0; i < set->n; i++)
			index_close(descs[i], RowExclusiveLock);
}

/*
 * ExecOpenIndices(rri, false), with each index's IndexInfo and predicate
 * built once per backend (see the header).  ExecCloseIndices closes them.
 */
void
TaskqOpenIndices(ResultRelInfo *rri)
{
	Relation	rel = rri->ri_RelationDesc;
	Oid			relid = RelationGetRelid(rel);
	IndexSet   *set = NULL;
	List	   *oids;
	Relation   *descs;
	IndexInfo **infos;
	int			n;
	int			i = 0;
	ListCell   *lc;

	if (!RelationGetForm(rel)->relhasindex)
	{
		ExecOpenIndices(rri, false);
		return;
	}
	oids = RelationGetIndexList(rel);
	n = list_length(oids);
	for (int s = 0; s < lengthof(index_sets) && set == NULL; s++)
		if (index_sets[s].relid == relid)
			set = &index_sets[s];
	/* the set kept, while the relcache lists the same indexes */
	if (set != NULL && set->n == n)
	{
		foreach(lc, oids)
		{
			if (set->oids[foreach_current_index(lc)] != lfirst_oid(lc))
				break;
		}
		if (lc == NULL && !set->usable)
		{
			list_free(oids);
			ExecOpenIndices(rri, false);
			return;
		}
		if (lc != NULL)
			set = NULL;
	}
	else
		set = NULL;

	descs = palloc(sizeof(Relation) * Max(n, 1));
	infos = palloc(sizeof(IndexInfo *) * Max(n, 1));
	if (set != NULL)
	{
		/* and while each index is as ready for inserts as it was */
		for (i = 0; i < n; i++)
		{
			descs[i] = index_open(set->oids[i], RowExclusiveLock);
			if (descs[i]->rd_index->indisready != set->ready[i])
				break;
		}
		if (i < n)
		{
			/* build it again; the indexes opened stay locked */
			for (int j = 0; j <= i; j++)
				index_close(descs[j], NoLock);
			set->relid = InvalidOid;
			set = NULL;
		}
	}
	if (set == NULL)
	{
		for (int s = 0; s < lengthof(index_sets) && set == NULL; s++)
			if (index_sets[s].relid == relid || index_sets[s].relid == InvalidOid)
				set = &index_sets[s];
		if (set == NULL)
		{
			set = &index_sets[next_set];
			next_set = (next_set + 1) % lengthof(index_sets);
		}
		index_set_build(set, rel, oids, descs);
		if (!set->usable)
		{
			pfree(descs);
			pfree(infos);
			list_free(oids);
			ExecOpenIndices(rri, false);
			return;
		}
	}
	for (i = 0; i < n; i++)
	{
		infos[i] = set->infos[i];
		/* what ExecInsertIndexTuples notes of one statement's update */
		infos[i]->ii_CheckedUnchanged = false;
		infos[i]->ii_IndexUnchanged = false;
	}
	rri->ri_NumIndices = n;
	rri->ri_IndexRelationDescs = descs;
	rri->ri_IndexRelationInfo = infos;
	list_free(oids);
}

/*
 * Whether rows may go into rel with TaskqInsertRows: a heap without rules,
 * triggers on insert or row-level security (the INSERT statement does
 * what those ask for).
 */
bool
TaskqCanInsertRows(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_rel->relam != HEAP_TABLE_AM_OID || rel->rd_rules != NULL)
		return false;

	/* the history tables' triggers count deletes and updates: those may be */
	if (td != NULL &&
		(td->trig_insert_before_row || td->trig_insert_after_row ||
		 td->trig_insert_instead_row || td->trig_insert_before_statement ||
		 td->trig_insert_after_statement || td->trig_insert_new_table))
		return false;
	return !rel->rd_rel->relrowsecurity;
}

/*
 * Insert the n rows of slots (virtual or heap slots of rel) into rel,
 * opened with RowExclusiveLock, with their index entries; then advance
 * the command counter, so that the caller's next statements see them.
 * The slots are left holding the rows as stored.
 */
void
TaskqInsertRows(Relation rel, TupleTableSlot **slots, int n)
{
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	Assert(TaskqCanInsertRows(rel));
	/* what the executor checks of an INSERT (a standby is read only) */
	PreventCommandIfReadOnly("INSERT");
	PreventCommandIfParallelMode("INSERT");
	if (n <= 0)
		return;
	/* a range table, for the messages of ExecConstraints */
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(estate, list_make1(rte));
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	TaskqOpenIndices(rri);

	if (RelationGetDescr(rel)->constr != NULL)
		for (int i = 0; i < n; i++)
			ExecConstraints(rri, slots[i], estate);
	table_multi_insert(rel, slots, n, GetCurrentCommandId(true), 0, NULL);
	for (int i = 0; i < n; i++)
	{
		list_free(ExecInsertIndexTuples(rri, slots[i], estate, false, false,
										NULL, NIL));
		ResetPerTupleExprContext(estate);
	}
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	CommandCounterIncrement();
}
