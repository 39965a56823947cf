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

#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/rel.h"

#include "taskq.h"

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
 * An empty slot for one of nrows rows to write into rel with
 * TaskqInsertRows.  For more than one row, the slots are made on a copy
 * of rel's descriptor (*copy: NULL before the first call), which slots do
 * not pin.  A slot made on the relation's own descriptor pins it in the
 * resource owner, whose list of pins turns into a hash table past 64:
 * making and dropping the slots of a hundred rows that way cost as much
 * as a fifth of their insert.  Free them with TaskqDropRowSlots.
 */
TupleTableSlot *
TaskqRowSlot(Relation rel, int nrows, TupleDesc *copy)
{
	if (nrows <= 1)
		return table_slot_create(rel, NULL);
	if (*copy == NULL)
		*copy = CreateTupleDescCopy(RelationGetDescr(rel));
	return MakeSingleTupleTableSlot(*copy, table_slot_callbacks(rel));
}

/* drop n slots made by TaskqRowSlot, then their descriptor's copy */
void
TaskqDropRowSlots(TupleTableSlot **slots, int n, TupleDesc copy)
{
	for (int i = 0; i < n; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	if (copy != NULL)
		FreeTupleDesc(copy);
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
	TaskqOpenResultRel(rri, estate);

	for (int i = 0; i < n; i++)
	{
		if (RelationGetDescr(rel)->constr != NULL)
			ExecConstraints(rri, slots[i], estate);
		/* the indexes the rows go into, opened before anything is written */
		TaskqOpenIndexesFor(rri, slots[i], estate);
		ResetPerTupleExprContext(estate);
	}
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
