/*-------------------------------------------------------------------------
 *
 * dag.c
 *		DAG flows: parents and edges at push time, promotion of children
 *		when a parent completes, cascades when it does not.
 *
 * A job pushed with parents that are not all completed starts blocked,
 * with pending_parents counting its unfinished parents and one row in
 * taskq.job_edges per unfinished parent.  Each such parent gets
 * has_children = true.
 *
 * When a job finishes (dagfinish.c, the trigger on finished_jobs and
 * dead_jobs):
 *
 *	completed	each child's pending_parents drops by one, and the child
 *				becomes waiting (or delayed) when it reaches zero
 *				(TaskqPromoteChildren);
 *	dlq			blocked descendants move to the DLQ (TaskqCascade);
 *	cancelled	blocked descendants are cancelled (TaskqCascade).
 *
 * A job that leaves while still blocked (cancelled, or dead by a cascade)
 * also loses its own edges from its other, unfinished parents
 * (TaskqDropChildEdges).
 *
 * Cascades recurse through the same trigger: moving a child fires it for
 * the child.  The error recorded on every descendant names the job the
 * cascade started from (cascade_error).
 *
 * Locking: a child's push takes FOR KEY SHARE on its live parents, so a
 * parent cannot finish between the child reading its state and the child's
 * edge becoming visible: the parent's move waits for the child's
 * transaction and its trigger then sees the edge.  Two parents finishing
 * at once serialise on the child's row, so exactly one of them promotes it.
 *
 * Depth: each job stores its depth (1 + its deepest parent's), bounded by
 * taskq.max_dag_depth.  Cycles can only be described by push_flow
 * (dagflow.c), which checks for them.
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "taskq.h"

/* taskq.max_dag_depth: longest chain of jobs a flow may have */
int			taskq_max_dag_depth = 10;

static TaskqPlan lock_parents_plan = {
	"SELECT id, dag_depth FROM taskq.jobs WHERE id = ANY($1) FOR KEY SHARE",
	1, {UUIDARRAYOID}
};
static TaskqPlan mark_parents_plan = {
	"UPDATE taskq.jobs SET has_children = true WHERE id = ANY($1) AND NOT has_children",
	1, {UUIDARRAYOID}
};
static TaskqPlan finished_parents_plan = {
	"SELECT id, state::text, dag_depth FROM taskq.finished_jobs WHERE id = ANY($1)"
	" UNION ALL"
	" SELECT id, state::text, dag_depth FROM taskq.dead_jobs WHERE id = ANY($1)",
	1, {UUIDARRAYOID}
};
static TaskqPlan add_edges_plan = {
	"INSERT INTO taskq.job_edges (parent, child) SELECT p, $2 FROM unnest($1) AS p",
	2, {UUIDARRAYOID, UUIDOID}
};
static TaskqPlan promote_plan = {
	"WITH e AS (DELETE FROM taskq.job_edges WHERE parent = $1 RETURNING child)"
	" UPDATE taskq.jobs j SET pending_parents = j.pending_parents - 1,"
	" state = CASE WHEN j.pending_parents > 1 THEN 'blocked'"
	" WHEN j.run_at > now() THEN 'delayed' ELSE 'waiting' END::taskq.job_state"
	" FROM e WHERE j.id = e.child AND j.state = 'blocked'"
	" RETURNING j.queue, j.state = 'waiting', j.priority, j.id, j.state <> 'blocked'",
	1, {UUIDOID}
};
static TaskqPlan drop_edges_plan = {
	"DELETE FROM taskq.job_edges WHERE parent = $1",
	1, {UUIDOID}
};
static TaskqPlan drop_child_edges_plan = {
	"DELETE FROM taskq.job_edges WHERE child = $1",
	1, {UUIDOID}
};
static TaskqPlan cascade_dead_plan = {NULL, 2, {UUIDOID, TEXTOID}};
static TaskqPlan cascade_cancel_plan = {NULL, 2, {UUIDOID, TEXTOID}};

/* the error of the cascade in progress in this backend, naming its origin */
static char *cascade_error = NULL;

/*
 * Look up the parents of a job about to be pushed.  Unfinished parents are
 * locked and marked as having children, and returned in *live; completed
 * ones count as done.  A parent that does not exist, is dead or cancelled
 * is an error, as is a depth beyond taskq.max_dag_depth.  Returns the
 * number of unfinished parents and sets *depth to the job's depth.
 * Runs inside SPI_connect.
 */
int
TaskqResolveParents(const pg_uuid_t *parents, int nparents, int *depth,
					pg_uuid_t **live)
{
	Datum		arr = TaskqUuidArray(parents, nparents);
	bool	   *found = palloc0(sizeof(bool) * nparents);
	int			nlive;
	int			maxdepth = 0;
	int			n;
	Datum		hidden;

	*live = palloc(sizeof(pg_uuid_t) * nparents);

	/*
	 * A parent in a queue the caller cannot see is answered as one that
	 * does not exist, before any lock is taken on it.
	 */
	if (!TaskqJobsVisible(arr, &hidden))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("parent job \"%s\" does not exist", TaskqUuidText(hidden))));

	/* unfinished parents: lock them, so none finishes before we commit */
	nlive = TaskqExecute(&lock_parents_plan, &arr, NULL, false, 0);
	for (int i = 0; i < nlive; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		pg_uuid_t  *id = DatumGetUUIDP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		int			d = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));

		(*live)[i] = *id;
		maxdepth = Max(maxdepth, d);
		for (int j = 0; j < nparents; j++)
			if (memcmp(&parents[j], id, sizeof(pg_uuid_t)) == 0)
				found[j] = true;
	}
	if (nlive > 0)
	{
		Datum		livearr = TaskqUuidArray(*live, nlive);

		TaskqExecute(&mark_parents_plan, &livearr, NULL, false, 0);
	}

	/* finished parents: only completed ones may have children */
	if (nlive < nparents)
	{
		n = TaskqExecute(&finished_parents_plan, &arr, NULL, false, 0);
		for (int i = 0; i < n; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			bool		isnull;
			Datum		id = SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull);
			char	   *state = SPI_getvalue(tup, SPI_tuptable->tupdesc, 2);
			int			d = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));

			if (strcmp(state, "completed") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("parent job \"%s\" is in state \"%s\"",
								TaskqUuidText(id), state),
						 errdetail("A job can only depend on jobs that are not dead or cancelled.")));
			maxdepth = Max(maxdepth, d);
			for (int j = 0; j < nparents; j++)
				if (memcmp(&parents[j], DatumGetUUIDP(id), sizeof(pg_uuid_t)) == 0)
					found[j] = true;
		}
		for (int j = 0; j < nparents; j++)
			if (!found[j])
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("parent job \"%s\" does not exist",
								TaskqUuidText(UUIDPGetDatum(&parents[j])))));
	}

	*depth = maxdepth + 1;
	if (*depth > taskq_max_dag_depth)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("dependency graph is too deep"),
				 errdetail("The job would be at depth %d; taskq.max_dag_depth is %d.",
						   *depth, taskq_max_dag_depth),
				 errhint("Shorten the chain of dependencies or raise taskq.max_dag_depth.")));
	return nlive;
}

/*
 * Record that child waits for each of the given unfinished parents.
 */
void
TaskqAddEdges(const pg_uuid_t *parents, int nparents, const pg_uuid_t *child)
{
	Datum		values[2];

	values[0] = TaskqUuidArray(parents, nparents);
	values[1] = UUIDPGetDatum(child);
	TaskqExecute(&add_edges_plan, values, NULL, false, 0);
}

/*
 * A job completed: its children wait for it no more, and those whose last
 * parent it was become waiting (or delayed), waking their queues' workers.
 * Runs inside SPI_connect.
 */
void
TaskqPromoteChildren(Datum id)
{
	int			n = TaskqExecute(&promote_plan, &id, NULL, false, 0);
	pg_uuid_t  *promoted = NULL;
	int			npromoted = 0;

	TaskqHeadLowerReturned(n, 1, 3, 4, 2);
	if (n > 0 && TaskqEventRingWanted())
		promoted = palloc(sizeof(pg_uuid_t) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		/* promoted: no longer blocked (waiting, or delayed) */
		bool		unblocked = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));

		if (DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull)))
			TaskqNoteWakeup(DatumGetTextPP(SPI_getbinval(tup, desc, 1, &isnull)));
		else if (unblocked)
			TaskqNoteDelayed(DatumGetTextPP(SPI_getbinval(tup, desc, 1, &isnull)));
		if (promoted && unblocked)
			promoted[npromoted++] = *DatumGetUUIDP(SPI_getbinval(tup, desc, 4, &isnull));
	}
	/* for the live stream only: webhooks do not offer it */
	if (npromoted > 0)
		TaskqEventRingNote("job.promoted", TaskqUuidArray(promoted, npromoted), false);
}

/*
 * A blocked job gave up (cancelled, or dead by a cascade): it waits for
 * its other parents no more.  Runs inside SPI_connect.
 */
void
TaskqDropChildEdges(Datum id)
{
	TaskqExecute(&drop_child_edges_plan, &id, NULL, false, 0);
}

/*
 * Move the blocked children of a dead or cancelled job the same way, with
 * an error naming the job the cascade started from.  Grandchildren follow
 * through the trigger that the children's move fires.
 */
void
TaskqCascade(Datum id, text *name, bool dead)
{
	TaskqPlan  *plan = dead ? &cascade_dead_plan : &cascade_cancel_plan;
	Datum		values[2];
	bool		outermost = cascade_error == NULL;

	if (plan->sql == NULL)
	{
		static const TaskqColumnSet dead_sets[] = {
			{"state", "'dlq'"},
			{"error", "$2"},
			{"errors", TASKQ_ERRORS_APPEND("m", "$2")},
			{"finished_at", "now()"},
			{NULL, NULL}
		};
		static const TaskqColumnSet cancel_sets[] = {
			{"state", "'cancelled'"},
			{"error", "$2"},
			{"finished_at", "now()"},
			{NULL, NULL}
		};
		const char *where = "j.state = 'blocked' AND j.id IN"
			" (SELECT child FROM taskq.job_edges WHERE parent = $1)";

		plan->sql = TaskqMoveSql("jobs", dead ? "dead_jobs" : "finished_jobs",
								 NULL, where, dead ? dead_sets : cancel_sets,
								 "id, queue", false);
	}

	if (outermost)
		cascade_error = MemoryContextStrdup(TopTransactionContext,
											psprintf(dead ?
													 "dependency failed: job %s (\"%s\") moved to the dead-letter queue" :
													 "dependency cancelled: job %s (\"%s\") was cancelled",
													 TaskqUuidText(id), text_to_cstring(name)));
	values[0] = id;
	values[1] = CStringGetTextDatum(cascade_error);
	PG_TRY();
	{
		int			n = TaskqExecute(plan, values, NULL, false, 0);

		TaskqMetricsCountReturned(n, dead ? TASKQ_COUNT_DEAD_KEPT : TASKQ_COUNT_CANCELLED_KEPT);
		if (n > 0)
			TaskqEmitEvent(dead ? "job.dlq" : "job.cancelled", TaskqReturnedIds(n));
		TaskqExecute(&drop_edges_plan, values, NULL, false, 0);
	}
	PG_FINALLY();
	{
		if (outermost)
			cascade_error = NULL;
	}
	PG_END_TRY();
}

/*
 * Define the settings of DAG flows; from _PG_init.
 */
void
TaskqDagInit(void)
{
	DefineCustomIntVariable("taskq.max_dag_depth",
							"Sets the longest chain of dependent jobs a flow may have.",
							"A job without parents is at depth 1; a push that would put a job deeper is refused.",
							&taskq_max_dag_depth,
							10,
							1,
							1000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
}
