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
 * seven) and each CHECK constraint, after reading it back from its text
 * (stringToNode).  In a drain of one job at a time that was about 4 % of
 * the CPU (test/bench/README.md, "fifteenth").  An executor state is
 * still made per call.  The expression states of the predicates and CHECK
 * constraints are made once too, in the entry, when they are of the
 * simple kinds whose states keep nothing of a call (state_not_keepable)
 * and call no user-defined function; others per call, as the executor
 * makes them.
 *
 * Indexes are opened when a row needs one (TaskqOpenIndexesFor, called
 * for each row before anything is written, so that a wait for an index's
 * lock never holds a row), not all of them at the start as
 * ExecOpenIndices does: a partial index whose predicate no row of the
 * call satisfies is neither opened nor locked (taskq.jobs has eight
 * indexes, seven of them partial; a push writes into two).  That holds
 * while the backend's entry of the table is current: building one opens
 * every index (after any relcache invalidation of the table or its
 * indexes, which includes the statistics VACUUM and ANALYZE write).
 * Whatever could change an index's part in the call waits for the
 * table's lock, which the callers hold to the end of their transaction:
 * DROP INDEX, CREATE INDEX and REINDEX lock the table; their CONCURRENTLY
 * forms wait for the transactions holding a lock on it before an index
 * becomes ready, valid or dead; and a change to the index list
 * invalidates the table's relcache entry, processed when the table was
 * locked.
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
#include "nodes/nodeFuncs.h"
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
	bool		states_made;	/* the two below (not if depends when made) */
	ExprState **predstates;		/* each predicate's state, or NULL */
	ExprState **checkstates;	/* each CHECK constraint's state */
} ResultRelEntry;

/*
 * The IndexInfo that TaskqOpenResultRel gives the executor for an index,
 * with what TaskqOpenIndexesFor needs to open it (the executor reads the
 * IndexInfo, its first member, only)
 */
typedef struct LazyIndexInfo
{
	IndexInfo	info;
	Oid			indexoid;
} LazyIndexInfo;

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
 * Whether the state of a planned expression may be kept from one call to
 * the next: it is made only of column references (not a whole row),
 * constants, and built-in operators and functions (the entry does not
 * depend on user-defined ones; none returning a set, which state_keepable
 * asks expression_returns_set), combined by AND, OR, NOT, NULL tests of
 * scalars, boolean tests, relabelings, IS DISTINCT FROM, NULLIF, COALESCE
 * and "= ANY" of an array unhashed.  Their steps
 * keep nothing of one evaluation for the next, but what functions cache
 * for their own flinfo, which lives as long; others keep, from their
 * first evaluation, memory of the call's executor state (a whole row's
 * descriptor, a hashed array's table, a row type's cache).
 */
static bool
state_not_keepable(Node *node, void *context)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
			return ((Var *) node)->varattno <= 0;
		case T_Const:
			return false;
		case T_ScalarArrayOpExpr:
			if (OidIsValid(((ScalarArrayOpExpr *) node)->hashfuncid))
				return true;
			break;
		case T_NullTest:
			if (((NullTest *) node)->argisrow)
				return true;
			break;
		case T_FuncExpr:
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:		/* none returning a set (state_keepable) */
		case T_BoolExpr:
		case T_BooleanTest:
		case T_RelabelType:
		case T_CoalesceExpr:
		case T_List:
			break;
		default:
			return true;
	}
	return expression_tree_walker(node, state_not_keepable, context);
}

/* whether expr's state may be kept (state_not_keepable) */
static bool
state_keepable(Node *expr)
{
	return !expression_returns_set(expr) && !state_not_keepable(expr, NULL);
}

/*
 * The expression states of e's predicates and CHECK constraints that may
 * be kept (state_keepable), made once in e's memory; the others stay
 * NULL and are made per call.  Built when nothing in e is user-defined.
 * They are evaluated one after the other, never in one another.  Making
 * a state checks the EXECUTE privilege of its functions (built-in ones,
 * which PUBLIC may execute unless revoked): a kept state is checked once
 * per backend, as the extension's owner, whom the callers run as.
 */
static void
make_states(ResultRelEntry *e)
{
	MemoryContext old;
	ExprState **predstates;
	ExprState **checkstates;

	if (e->states_made || e->depends)
		return;
	old = MemoryContextSwitchTo(e->cxt);
	predstates = palloc0(sizeof(ExprState *) * Max(1, e->nindexes));
	for (int i = 0; i < e->nindexes; i++)
		if (e->predicates[i] != NIL && state_keepable((Node *) e->predicates[i]))
			predstates[i] = ExecInitQual(e->predicates[i], NULL);
	checkstates = palloc0(sizeof(ExprState *) * Max(1, e->nchecks));
	for (int i = 0; i < e->nchecks; i++)
		if (state_keepable((Node *) e->checks[i]))
			checkstates[i] = ExecInitExpr(e->checks[i], NULL);
	MemoryContextSwitchTo(old);
	e->predstates = predstates;
	e->checkstates = checkstates;
	e->states_made = true;
}

/*
 * What ExecOpenIndices does for rri (made by InitResultRelInfo, its table
 * locked by the caller), from the backend's entry of the table: a copy of
 * each index's IndexInfo with the state of its predicate, the index
 * itself left unopened (TaskqOpenIndexesFor opens it when a row needs
 * it); and the states of the table's CHECK constraints, which
 * ExecConstraints would otherwise plan.  All in estate's query context;
 * ExecCloseIndices closes the indexes opened.
 */
void
TaskqOpenResultRel(ResultRelInfo *rri, EState *estate)
{
	Relation	rel = rri->ri_RelationDesc;
	ResultRelEntry *e = entry_for(rel);
	MemoryContext old;

	make_states(e);
	old = MemoryContextSwitchTo(estate->es_query_cxt);
	rri->ri_NumIndices = e->nindexes;
	if (e->nindexes > 0)
	{
		rri->ri_IndexRelationDescs = palloc0(sizeof(Relation) * e->nindexes);
		rri->ri_IndexRelationInfo = palloc(sizeof(IndexInfo *) * e->nindexes);
	}
	for (int i = 0; i < e->nindexes; i++)
	{
		LazyIndexInfo *lazy = palloc(sizeof(LazyIndexInfo));
		IndexInfo  *ii = &lazy->info;

		/*
		 * A copy whose lists stay the entry's (the executor only reads
		 * them); the state that ExecInsertIndexTuples keeps in it is this
		 * call's.
		 */
		memcpy(ii, e->infos[i], sizeof(IndexInfo));
		lazy->indexoid = e->indexoids[i];
		ii->ii_ReadyForInserts = false; /* until opened */
		if (e->predicates[i] == NIL)
			ii->ii_PredicateState = NULL;
		else if (e->states_made && e->predstates[i] != NULL)
			ii->ii_PredicateState = e->predstates[i];
		else
			ii->ii_PredicateState = ExecInitQual(e->predicates[i], NULL);
		ii->ii_ExpressionsState = NIL;
		ii->ii_CheckedUnchanged = false;
		ii->ii_IndexUnchanged = false;
		ii->ii_AmCache = NULL;
		ii->ii_Context = CurrentMemoryContext;
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
			rri->ri_ConstraintExprs[i] = e->states_made && e->checkstates[i] != NULL ?
				e->checkstates[i] : ExecInitExpr(e->checks[i], NULL);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Open, with RowExclusiveLock as ExecOpenIndices does, the indexes of rri
 * (set up by TaskqOpenResultRel) that the row in slot goes into and that
 * are not open yet: those without a predicate, and those whose predicate
 * the row satisfies.  Call it for each row before writing the rows (then
 * ExecInsertIndexTuples passes over the indexes left unopened).  Uses
 * estate's per-tuple memory.
 */
void
TaskqOpenIndexesFor(ResultRelInfo *rri, TupleTableSlot *slot, EState *estate)
{
	ExprContext *econtext = GetPerTupleExprContext(estate);

	econtext->ecxt_scantuple = slot;
	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		LazyIndexInfo *lazy = (LazyIndexInfo *) rri->ri_IndexRelationInfo[i];
		MemoryContext old;
		Relation	index;

		if (rri->ri_IndexRelationDescs[i] != NULL)
			continue;
		if (lazy->info.ii_PredicateState != NULL &&
			!ExecQual(lazy->info.ii_PredicateState, econtext))
			continue;
		old = MemoryContextSwitchTo(estate->es_query_cxt);
		index = index_open(lazy->indexoid, RowExclusiveLock);
		MemoryContextSwitchTo(old);
		lazy->info.ii_ReadyForInserts = index->rd_index->indisready;
		rri->ri_IndexRelationDescs[i] = index;
	}
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
