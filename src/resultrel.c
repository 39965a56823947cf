/*-------------------------------------------------------------------------
 *
 * resultrel.c
 *		What the executor prepares before it writes rows into a table (the
 *		index list with each index's IndexInfo, the planned predicates of
 *		partial indexes, the planned CHECK constraints and column
 *		defaults), made once per backend and table rather than per call.
 *
 * The paths that write without a statement (rowinsert.c, direct.c, the
 * outbox in events.c) used ExecOpenIndices and ExecConstraints, which
 * build all of this again on every call: BuildIndexInfo for each index,
 * expression_planner for each partial index's predicate (taskq.jobs has
 * six) and each CHECK constraint, after reading it back from its text
 * (stringToNode).  In a drain of one job at a time that was about 4 % of
 * the CPU (test/bench/README.md, "fifteenth").  An executor state is
 * still made per call, and the expression states in it (ExecInitQual,
 * ExecInitExpr: no catalog access, no planning).
 *
 * An entry lasts until a relcache invalidation of its table or of one of
 * its indexes.  Every change to what an entry holds sends one: CREATE and
 * DROP INDEX, ALTER TABLE's constraints and defaults invalidate the
 * table, CREATE INDEX CONCURRENTLY's step that makes the index ready for
 * inserts invalidates the index; an entry that planned a user-defined
 * function (which the planner may have inlined) or a domain's default is
 * dropped as well when any function or type changes.  The callers have
 * locked the table, which processed the invalidations sent before; an
 * invalidation that arrives while an entry is in use (opening an index
 * accepts invalidations) marks it stale, and the next call builds it
 * again, as ExecOpenIndices, which reads the index list before it opens
 * the indexes, would see it.  A stale entry's memory is freed in a later
 * transaction, never while this one may still hold expression states or
 * index infos that point into it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "storage/proc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "taskq.h"

typedef struct ResultRelEntry
{
	struct ResultRelEntry *next;
	Oid			relid;
	bool		stale;			/* invalidated since it was built */
	LocalTransactionId dropped_in;	/* unlinked in this transaction */
	MemoryContext cxt;			/* everything of the entry, itself included */
	int			nindexes;
	Oid		   *indexoids;
	IndexInfo **infos;			/* BuildIndexInfo's, as it made them */
	List	  **predicates;		/* each one's predicate, planned, or NIL */
	int			nchecks;
	Expr	  **checks;			/* the CHECK constraints, planned */
	int			natts;
	bool		depends;		/* on functions or domains (syscache) */
	bool		defaults_made;
	Expr	  **defaults;		/* column defaults, planned, or NULL */
} ResultRelEntry;

static ResultRelEntry *entries = NULL;
/* stale entries unlinked, freed once their transaction is over */
static ResultRelEntry *dropped = NULL;
static bool callback_registered = false;
/* an entry is being built; an invalidation meanwhile makes it stale */
static bool building = false;
static bool invalidated_while_building = false;

/*
 * A function or a type changed: what was planned with a user-defined
 * function (inlined, perhaps) or a domain's default may have changed
 */
static void
resultrel_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	if (building)
		invalidated_while_building = true;
	for (ResultRelEntry *e = entries; e != NULL; e = e->next)
		if (e->depends)
			e->stale = true;
}

/* plan expr, noting in e whether it depends on user-defined functions */
static Expr *
plan_noting(ResultRelEntry *e, Expr *expr)
{
	List	   *relations = NIL;
	List	   *items = NIL;
	Expr	   *planned = expression_planner_with_deps(expr, &relations, &items);

	if (items != NIL)
		e->depends = true;
	return planned;
}

static void
resultrel_callback(Datum arg, Oid relid)
{
	if (building)
		invalidated_while_building = true;
	for (ResultRelEntry *e = entries; e != NULL; e = e->next)
	{
		if (relid == InvalidOid || e->relid == relid)
			e->stale = true;
		for (int i = 0; i < e->nindexes && !e->stale; i++)
			if (e->indexoids[i] == relid)
				e->stale = true;
	}
}

/*
 * Unlink the stale entries, and free those unlinked in an earlier
 * transaction (nothing of this one points into them).
 */
static void
drop_stale(void)
{
	ResultRelEntry **link = &dropped;

	while (*link != NULL)
	{
		ResultRelEntry *e = *link;

		if (e->dropped_in != MyProc->lxid)
		{
			*link = e->next;
			MemoryContextDelete(e->cxt);
		}
		else
			link = &e->next;
	}
	link = &entries;
	while (*link != NULL)
	{
		ResultRelEntry *e = *link;

		if (e->stale)
		{
			*link = e->next;
			e->dropped_in = MyProc->lxid;
			e->next = dropped;
			dropped = e;
		}
		else
			link = &e->next;
	}
}

/*
 * The entry of rel (locked by the caller), built when there is none or
 * the one there is stale.
 */
static ResultRelEntry *
entry_for(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	ResultRelEntry *e;
	MemoryContext cxt;
	MemoryContext old;
	List	   *indexoids;
	ListCell   *lc;
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	int			i;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(resultrel_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, resultrel_syscache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, resultrel_syscache_callback, (Datum) 0);
		callback_registered = true;
	}
	drop_stale();
	for (e = entries; e != NULL; e = e->next)
		if (e->relid == relid)
			return e;

	/* built in a context of its own, linked in only when complete */
	cxt = AllocSetContextCreate(CacheMemoryContext, "taskq result relation",
								ALLOCSET_SMALL_SIZES);
	MemoryContextCopyAndSetIdentifier(cxt, RelationGetRelationName(rel));
	old = MemoryContextSwitchTo(cxt);
	e = palloc0(sizeof(ResultRelEntry));
	e->cxt = cxt;
	e->relid = relid;
	building = true;
	invalidated_while_building = false;
	PG_TRY();
	{
		indexoids = RelationGetForm(rel)->relhasindex ? RelationGetIndexList(rel) : NIL;
		e->nindexes = list_length(indexoids);
		e->indexoids = palloc(sizeof(Oid) * Max(1, e->nindexes));
		e->infos = palloc(sizeof(IndexInfo *) * Max(1, e->nindexes));
		e->predicates = palloc0(sizeof(List *) * Max(1, e->nindexes));
		i = 0;
		foreach(lc, indexoids)
		{
			Oid			indexoid = lfirst_oid(lc);

			/* the lock ExecOpenIndices takes, kept to the transaction's end */
			Relation	index = index_open(indexoid, RowExclusiveLock);

			e->indexoids[i] = indexoid;
			e->infos[i] = BuildIndexInfo(index);
			if (e->infos[i]->ii_Predicate != NIL)
				e->predicates[i] = (List *) plan_noting(e, (Expr *) e->infos[i]->ii_Predicate);
			index_close(index, NoLock);
			i++;
		}

		e->nchecks = constr != NULL ? constr->num_check : 0;
		e->checks = palloc(sizeof(Expr *) * Max(1, e->nchecks));
		for (i = 0; i < e->nchecks; i++)
			e->checks[i] = plan_noting(e, stringToNode(constr->check[i].ccbin));
		e->natts = RelationGetDescr(rel)->natts;
	}
	PG_CATCH();
	{
		building = false;
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	building = false;
	MemoryContextSwitchTo(old);
	e->stale = invalidated_while_building;
	e->next = entries;
	entries = e;
	return e;
}

/*
 * What ExecOpenIndices does for rri (made by InitResultRelInfo, its table
 * locked by the caller), from the backend's entry of the table: each index
 * opened with RowExclusiveLock, a copy of its IndexInfo, the state of its
 * predicate; and the states of the table's CHECK constraints, which
 * ExecConstraints would otherwise plan.  All in estate's query context;
 * ExecCloseIndices closes the indexes.
 */
void
TaskqOpenResultRel(ResultRelInfo *rri, EState *estate)
{
	Relation	rel = rri->ri_RelationDesc;
	ResultRelEntry *e = entry_for(rel);
	MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);

	rri->ri_NumIndices = e->nindexes;
	if (e->nindexes > 0)
	{
		rri->ri_IndexRelationDescs = palloc(sizeof(Relation) * e->nindexes);
		rri->ri_IndexRelationInfo = palloc(sizeof(IndexInfo *) * e->nindexes);
	}
	for (int i = 0; i < e->nindexes; i++)
	{
		Relation	index = index_open(e->indexoids[i], RowExclusiveLock);
		IndexInfo  *ii = palloc(sizeof(IndexInfo));

		/*
		 * A copy whose lists stay the entry's (the executor only reads
		 * them); the state that ExecInsertIndexTuples keeps in it is this
		 * call's.
		 */
		memcpy(ii, e->infos[i], sizeof(IndexInfo));
		ii->ii_ReadyForInserts = index->rd_index->indisready;
		ii->ii_PredicateState = e->predicates[i] != NIL ?
			ExecInitQual(e->predicates[i], NULL) : NULL;
		ii->ii_ExpressionsState = NIL;
		ii->ii_CheckedUnchanged = false;
		ii->ii_IndexUnchanged = false;
		ii->ii_AmCache = NULL;
		ii->ii_Context = CurrentMemoryContext;
		rri->ri_IndexRelationDescs[i] = index;
		rri->ri_IndexRelationInfo[i] = ii;
	}

	/*
	 * ExecRelCheck's array, in the order of the relcache's constraints (if
	 * the entry does not match them, ExecRelCheck makes the array itself)
	 */
	if (e->nchecks > 0 && RelationGetDescr(rel)->constr != NULL &&
		RelationGetDescr(rel)->constr->num_check == e->nchecks)
	{
		rri->ri_ConstraintExprs = palloc(sizeof(ExprState *) * e->nchecks);
		for (int i = 0; i < e->nchecks; i++)
			rri->ri_ConstraintExprs[i] = ExecInitExpr(e->checks[i], NULL);
	}
	MemoryContextSwitchTo(old);
}

/*
 * The defaults of rel's columns, planned, indexed by attribute number - 1
 * (NULL: none; what an INSERT that leaves the column out evaluates).
 * Valid until the transaction's end.
 */
Expr	  **
TaskqColumnDefaults(Relation rel)
{
	ResultRelEntry *e = entry_for(rel);

	if (!e->defaults_made)
	{
		MemoryContext old = MemoryContextSwitchTo(e->cxt);
		Expr	  **defaults = palloc0(sizeof(Expr *) * Max(1, e->natts));

		for (int i = 0; i < e->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), i);
			Node	   *def;

			if (att->attisdropped)
				continue;
			/* a column without a default of its own takes its domain's */
			if (get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
				e->depends = true;
			def = build_column_default(rel, i + 1);
			if (def != NULL)
				defaults[i] = plan_noting(e, (Expr *) def);
		}
		MemoryContextSwitchTo(old);
		e->defaults = defaults;
		e->defaults_made = true;
	}
	return e->defaults;
}
