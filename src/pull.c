/*-------------------------------------------------------------------------
 *
 * pull.c
 *		taskq.pull: lease runnable jobs to a worker.
 *
 * A pull first does the housekeeping that makes jobs runnable, so that
 * correctness never depends on the background worker being up:
 *
 *	1. active jobs whose lease expired are reclaimed: back to waiting when
 *	   attempts remain (the attempt was counted when it was delivered),
 *	   else to the dead-letter queue, both with the error "lease expired";
 *	2. delayed jobs whose run_at has come become waiting.
 *
 * The queue's settings come from this backend's queue cache (acl.c); one
 * statement probes whether either kind of housekeeping has anything to do
 * (two index probes), so that a pull in the steady state runs two
 * statements: that check and the claim.
 *
 * Then it takes at most count waiting jobs, highest priority first and by
 * id (creation order) within a priority, with FOR UPDATE SKIP LOCKED, so
 * concurrent pullers never wait for each other nor get the same job.  Each
 * becomes active with a fresh lease token and expiry, and a job with
 * parents carries their results (fan-in).  All of this is one
 * transaction: a pull that aborts hands out nothing.
 *
 * Housekeeping works in batches of TASKQ_RECLAIM_BATCH and skips rows
 * locked by others, so a pull never waits on another session's job.  The
 * background worker's reaper runs the same reclaim over all queues.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "taskq.h"

/* taskq.default_timeout: lease length when neither call, job nor queue sets one */
int			taskq_default_timeout = 30000;

#define EXPIRED_JOBS(cond) \
	"SELECT id FROM taskq.jobs WHERE queue = $1 AND state = 'active'" \
	" AND lease_expires_at >= $2 AND lease_expires_at < $3 AND " cond \
	" ORDER BY lease_expires_at LIMIT " CppAsString2(TASKQ_RECLAIM_BATCH) \
	" FOR UPDATE SKIP LOCKED"

static TaskqPlan reclaim_retry_plan = {
	"UPDATE taskq.jobs j SET state = 'waiting', lease = NULL,"
	" lease_expires_at = NULL, error = 'lease expired', errors = "
	TASKQ_ERRORS_APPEND("j", "'lease expired'")
	" WHERE j.id IN (" EXPIRED_JOBS("attempts < max_attempts") ")"
	" RETURNING j.id, j.queue, j.priority",
	3, {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}, true
};

static TaskqPlan reclaim_dead_plan = {NULL, 3, {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}, true};

/*
 * Whether housekeeping has anything to do, in two index probes: the first
 * expired lease of the queue, read from its lease floor ($2, pullhead.c),
 * so only over the leases that ran out since the floor was raised;
 * whether a delayed job of the queue is due.  $3 is now(), or the clock
 * in a pull that has waited (pullwait.c).
 */
static TaskqPlan check_plan = {
	"SELECT (SELECT lease_expires_at FROM taskq.jobs WHERE queue = $1"
	"  AND state = 'active' AND lease_expires_at >= $2 AND lease_expires_at < $3"
	"  ORDER BY lease_expires_at LIMIT 1),"
	" EXISTS (SELECT FROM taskq.jobs WHERE queue = $1 AND state = 'delayed'"
	"  AND run_at <= $3)",
	3, {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}, true
};

static TaskqPlan promote_plan = {
	"UPDATE taskq.jobs SET state = 'waiting' WHERE id IN ("
	" SELECT id FROM taskq.jobs WHERE queue = $1 AND state = 'delayed'"
	" AND run_at <= $2 ORDER BY run_at LIMIT " CppAsString2(TASKQ_RECLAIM_BATCH)
	" FOR UPDATE SKIP LOCKED) RETURNING queue, priority, id",
	2, {TEXTOID, TIMESTAMPTZOID}, true
};

/*
 * The claim.  The jobs to take are found by the pull index and locked
 * first, then updated where they lie: ctid = ANY (ARRAY(...)) is always a
 * TID scan, whatever the plan thinks of the table.  (By id, the generic
 * plan, made once per backend, was a sequential scan when the backend's
 * first pull saw a small table, and stayed one as the table grew: 741
 * buffers per claim in scenario 9 of the benchmark.  A join would be sized
 * by guess.)  A row that a concurrent, committed change kept waiting is
 * locked in its new version, which the statement's snapshot does not see:
 * that pull returns one job fewer, and the job is pulled again once this
 * transaction ends.  The statement is kept small, since setting up its
 * executor is a good part of a pull: rows are put in delivery order and
 * parents' results added (fan-in) in C, only when needed.
 */
#define CLAIM_SET \
	"UPDATE taskq.jobs j SET state = 'active', attempts = j.attempts + 1," \
	" lease = taskq._random_uuid(), lease_ms = coalesce($3, j.timeout_ms, $4)," \
	" lease_expires_at = $5 + coalesce($3, j.timeout_ms, $4) * interval '1 millisecond'," \
	" started_at = $5"
#define CLAIM_RETURNING \
	" RETURNING j.id, j.lease, j.queue, j.name, j.data, j.metadata, j.priority," \
	" j.attempts, j.max_attempts, j.lease_expires_at, j.flow_id, j.depends_on," \
	" j.group_key"

/* from the head of the queue's range of the pull index */
static TaskqPlan claim_plan = {
	CLAIM_SET
	" WHERE j.ctid = ANY (ARRAY("
	"  SELECT ctid FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	"  ORDER BY priority DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED))"
	CLAIM_RETURNING,
	5, {TEXTOID, INT4OID, INT4OID, INT4OID, TIMESTAMPTZOID}, true
};

/*
 * From the bounds of pullhead.c: a nested loop over the queue's priority
 * levels, highest first ($6) with their bounds ($7), each an index scan
 * that starts at its bound.
 */
static TaskqPlan claim_levels_plan = {
	CLAIM_SET
	" WHERE j.ctid = ANY (ARRAY("
	"  SELECT c.ctid FROM unnest($6::integer[], $7::uuid[]) AS u(p, b),"
	"  LATERAL (SELECT ctid FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	"   AND priority = u.p AND id >= u.b ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) c"
	"  LIMIT $2))"
	CLAIM_RETURNING,
	7, {TEXTOID, INT4OID, INT4OID, INT4OID, TIMESTAMPTZOID, INT4ARRAYOID, UUIDARRAYOID}, true
};

/*
 * The same for a queue with one priority level in use, the usual case: a
 * plan of fewer nodes, so less to set up at each pull.  $6 is the level,
 * $7 its bound.
 */
static TaskqPlan claim_level_plan = {
	CLAIM_SET
	" WHERE j.ctid = ANY (ARRAY("
	"  SELECT ctid FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	"  AND priority = $6 AND id >= $7 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED))"
	CLAIM_RETURNING,
	7, {TEXTOID, INT4OID, INT4OID, INT4OID, TIMESTAMPTZOID, INT4OID, UUIDOID}, true
};

/*
 * Of the jobs a limited pull chose (flowcontrol.c), those still waiting.
 * The state is compared as text: "state = 'waiting'" implies the pull
 * index's predicate, and the generic plan made on a table of a page read
 * that whole index, the TIDs as a filter, and kept doing so as it grew.
 */
static TaskqPlan claim_ctids_plan = {
	CLAIM_SET
	" WHERE j.ctid = ANY (ARRAY("
	"  SELECT ctid FROM taskq.jobs WHERE ctid = ANY ($6::tid[]) AND state::text = 'waiting'"
	"  FOR UPDATE SKIP LOCKED))"
	CLAIM_RETURNING,
	6, {TEXTOID, INT4OID, INT4OID, INT4OID, TIMESTAMPTZOID, TIDARRAYOID}, true
};

/* priority aging: when the first waiting job of each level became runnable */
static TaskqPlan aging_plan = {
	"SELECT (SELECT run_at FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	"  AND priority = u.p AND id >= u.b ORDER BY id LIMIT 1)"
	" FROM unnest($2::integer[], $3::uuid[]) WITH ORDINALITY AS u(p, b, o)"
	" ORDER BY u.o",
	3, {TEXTOID, INT4ARRAYOID, UUIDARRAYOID}, true
};

/* a raise: the first id each level has waiting, from its bound */
static TaskqPlan raise_plan = {
	"SELECT (SELECT id FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	"  AND priority = u.p AND id >= u.b ORDER BY id LIMIT 1)"
	" FROM unnest($2::integer[], $3::uuid[]) WITH ORDINALITY AS u(p, b, o)"
	" ORDER BY u.o",
	3, {TEXTOID, INT4ARRAYOID, UUIDARRAYOID}, true
};

/* raise_plan for one level: $2 the level, $3 its bound */
static TaskqPlan raise_level_plan = {
	"SELECT id FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	" AND priority = $2 AND id >= $3 ORDER BY id LIMIT 1",
	3, {TEXTOID, INT4OID, UUIDOID}, true
};

/*
 * A check: the levels that have waiting jobs and the first id of each,
 * from the head (a loose index scan: one descent per level)
 */
static TaskqPlan head_check_plan = {
	"WITH RECURSIVE l(p, id) AS ("
	" (SELECT priority, id FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	"  ORDER BY priority DESC, id LIMIT 1)"
	" UNION ALL"
	" SELECT n.priority, n.id FROM l, LATERAL (SELECT priority, id FROM taskq.jobs"
	"  WHERE queue = $1 AND state = 'waiting' AND priority < l.p"
	"  ORDER BY priority DESC, id LIMIT 1) n)"
	" SELECT p, id FROM l LIMIT " CppAsString2(TASKQ_HEAD_MAX_LEVELS) " + 1",
	1, {TEXTOID}, true
};

/* the results of a job's parents, by parent id */
static TaskqPlan parent_results_plan = {
	"SELECT jsonb_object_agg(f.id, f.result) FROM taskq.finished_jobs f"
	" WHERE f.id = ANY ($1)",
	1, {UUIDARRAYOID}, true
};

/* columns of a claimed row, and of taskq.leased_job */
#define CLAIM_PRIORITY		6
#define CLAIM_DEPENDS_ON	11
#define CLAIM_COLUMNS		13
#define CLAIM_LEASE_END		9		/* lease_expires_at among them */

typedef struct ClaimedJob
{
	Datum		values[CLAIM_COLUMNS];
	bool		nulls[CLAIM_COLUMNS];
} ClaimedJob;

/* delivery order: priority, highest first, then id (creation order) */
static int
claimed_cmp(const void *a, const void *b)
{
	const ClaimedJob *x = a;
	const ClaimedJob *y = b;
	int32		px = DatumGetInt32(x->values[CLAIM_PRIORITY]);
	int32		py = DatumGetInt32(y->values[CLAIM_PRIORITY]);

	if (px != py)
		return px > py ? -1 : 1;
	return memcmp(DatumGetUUIDP(x->values[0]), DatumGetUUIDP(y->values[0]),
				  UUID_LEN);
}

/*
 * Reclaim the queue's expired leases (step 1 above), from its lease floor
 * (pullhead.c) to now; at most TASKQ_RECLAIM_BATCH of each kind.  Returns
 * how many it reclaimed.  Runs inside SPI_connect.
 */
int
TaskqReclaimExpired(Datum queue, TimestampTz floor, TimestampTz now)
{
	Datum		values[3] = {queue, TimestampTzGetDatum(floor), TimestampTzGetDatum(now)};
	bool		nulls[3] = {false, false, false};
	int			dead;
	int			retried;

	if (reclaim_dead_plan.sql == NULL)
	{
		static const TaskqColumnSet sets[] = {
			{"state", "'dlq'"},
			{"error", "'lease expired'"},
			{"errors", TASKQ_ERRORS_APPEND("m", "'lease expired'")},
			{"lease_expires_at", "NULL"},
			{"finished_at", "now()"},
			{NULL, NULL}
		};

		reclaim_dead_plan.sql =
			TaskqMoveSql("jobs", "dead_jobs", NULL,
						 "j.id IN (" EXPIRED_JOBS("attempts >= max_attempts") ")",
						 sets, "id, queue", false);
	}
	dead = TaskqExecute(&reclaim_dead_plan, values, nulls, false, 0);
	TaskqMetricsCountReturned(dead, TASKQ_COUNT_DEAD_KEPT | TASKQ_COUNT(TASKQ_METRIC_LEASE_EXPIRED));
	TaskqNoteSlotsFreed(dead);
	if (dead > 0)
		TaskqEmitEvent("job.dlq", TaskqReturnedIds(dead));
	retried = TaskqExecute(&reclaim_retry_plan, values, nulls, false, 0);
	TaskqMetricsCountReturned(retried, TASKQ_COUNT(TASKQ_METRIC_FAILED) | TASKQ_COUNT(TASKQ_METRIC_LEASE_EXPIRED));
	/* waiting again: wake the workers of their queues, as a push does */
	TaskqNoteWakeupReturned(retried, 2);
	TaskqHeadLowerReturned(retried, 2, 3, 1, 0);
	if (retried > 0)
		TaskqEmitEvent("job.failed", TaskqReturnedIds(retried));
	return dead + retried;
}

/*
 * The housekeeping probe (step 1 and 2 above): the first lease of the
 * queue that ran out in [floor, now), DT_NOEND when none, and whether a
 * delayed job of the queue is due at now (*due; due NULL: the reaper,
 * which only asks for the first); and with quiet, until when the next
 * pulls need not probe (pullhead.c; DT_NOBEGIN: not known).  Directly
 * when it can (direct.c), else by statement.  Runs inside SPI_connect.
 */
TimestampTz
TaskqProbeExpired(Datum queue, TimestampTz floor, TimestampTz now, bool *due,
				  TimestampTz *quiet)
{
	TimestampTz first_lease;
	Datum		values[3] = {queue, TimestampTzGetDatum(floor), TimestampTzGetDatum(now)};
	bool		isnull;

	if (quiet != NULL)
		*quiet = DT_NOBEGIN;
	if (TaskqProbeHousekeeping(queue, floor, now, &first_lease, due,
							   due != NULL ? quiet : NULL))
		return first_lease;
	TaskqExecute(&check_plan, values, NULL, false, 1);
	first_lease = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1,
													&isnull));
	if (isnull)
		first_lease = DT_NOEND;
	if (due != NULL)
		*due = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return first_lease;
}

/* the levels of a head as the arrays of claim_levels_plan and raise_plan */
static void
head_arrays(const TaskqHead *h, Datum *priorities, Datum *bounds)
{
	Datum		p[TASKQ_HEAD_MAX_LEVELS];
	Datum		b[TASKQ_HEAD_MAX_LEVELS];

	for (int i = 0; i < h->nlevels; i++)
	{
		p[i] = Int32GetDatum(h->priority[i]);
		b[i] = TaskqPrefixId(h->bound[i]);
	}
	*priorities = PointerGetDatum(construct_array(p, h->nlevels, INT4OID, 4, true,
												  TYPALIGN_INT));
	*bounds = PointerGetDatum(construct_array(b, h->nlevels, UUIDOID, UUID_LEN, false,
											  TYPALIGN_CHAR));
}

/*
 * Priority aging (the queue's priority_aging_ms): a waiting job's priority
 * rises by one for every aging_ms it has been runnable (since its run_at),
 * so nothing waits for ever behind newer jobs of higher priority.  Within
 * a level the first job has waited longest, so the levels are put in the
 * order of their first jobs' effective priorities (ties: the higher level
 * first) and the claim takes from them in that order.  Puts the levels of
 * h in that order into values[5] and values[6] (claim_levels_plan).
 */
static void
age_levels(Datum queue, const TaskqHead *h, Datum *values, int32 aging_ms, TimestampTz now)
{
	Datum		args[3] = {queue, values[5], values[6]};
	int64		eff[TASKQ_HEAD_MAX_LEVELS];
	int			order[TASKQ_HEAD_MAX_LEVELS];
	TaskqHead	aged = *h;
	int			n = TaskqExecute(&aging_plan, args, NULL, false, 0);

	for (int i = 0; i < h->nlevels; i++)
	{
		bool		isnull = true;
		Datum		run_at = (Datum) 0;

		if (i < n)
			run_at = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		eff[i] = isnull ? PG_INT64_MIN :
			(int64) h->priority[i] +
			Max(now - DatumGetTimestampTz(run_at), 0) / ((int64) aging_ms * 1000);
		order[i] = i;
	}
	/* insertion sort, stable: effective priority, highest first */
	for (int i = 1; i < h->nlevels; i++)
	{
		int			o = order[i];
		int			j = i;

		while (j > 0 && eff[order[j - 1]] < eff[o])
		{
			order[j] = order[j - 1];
			j--;
		}
		order[j] = o;
	}
	for (int i = 0; i < h->nlevels; i++)
	{
		aged.priority[i] = h->priority[order[i]];
		aged.bound[i] = h->bound[order[i]];
	}
	head_arrays(&aged, &values[5], &values[6]);
}

/*
 * Raise the bounds of the queue's entry h (read by pull_head) to the first
 * waiting job of each level, found by a probe of its own: when the claim
 * did not scan the levels itself (it ran as a statement, or took the
 * candidates of a limited pull read by a statement), after it; claimed is
 * the id prefix of the first job it claimed (PG_UINT64_MAX: none).
 */
static void
raise_by_probe(Datum queue, const char *name, const TaskqHead *h, uint64 claimed)
{
	Datum		args[3];
	uint64		first[TASKQ_HEAD_MAX_LEVELS];
	int			n;
	Datum		bounds[TASKQ_HEAD_MAX_LEVELS];
	pg_uuid_t  *ids[TASKQ_HEAD_MAX_LEVELS];

	for (int i = 0; i < h->nlevels; i++)
		bounds[i] = TaskqPrefixId(h->bound[i]);
	if (!TaskqFirstWaiting(queue, h->nlevels, h->priority, bounds, ids))
	{
		args[0] = queue;
		if (h->nlevels == 1)
		{
			args[1] = Int32GetDatum(h->priority[0]);
			args[2] = bounds[0];
			n = TaskqExecute(&raise_level_plan, args, NULL, false, 1);
		}
		else
		{
			head_arrays(h, &args[1], &args[2]);
			n = TaskqExecute(&raise_plan, args, NULL, false, 0);
		}
		for (int i = 0; i < h->nlevels; i++)
		{
			bool		isnull = true;
			Datum		id = (Datum) 0;

			if (i < n)
				id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			ids[i] = isnull ? NULL : DatumGetUUIDP(id);
		}
	}
	/*
	 * The probe sees the jobs this pull claimed as active; this transaction
	 * may still give them back, so no bound goes past them
	 */
	for (int i = 0; i < h->nlevels; i++)
		first[i] = Min(ids[i] == NULL ? PG_UINT64_MAX : TaskqIdPrefix(ids[i]), claimed);
	TaskqHeadRaised(name, h, first);
}

/*
 * Where the claim starts (pullhead.c): check the queue's entry from the
 * head if it is due.  Returns whether the claim starts from the bounds,
 * which it then puts in values[5] and values[6] for claim_levels_plan.
 * *raise: the bounds may be raised, after the claim (pull_raise), with the
 * entry as read here in *h.
 */
static bool
pull_head(Datum queue, const char *name, Datum *values, int32 aging_ms,
		  TimestampTz now, TaskqHead *h, bool *raise)
{
	bool		usable = TaskqHeadRead(name, h, true);

	*raise = false;
	if (h->check)
	{
		int			n = TaskqExecute(&head_check_plan, &queue, NULL, false, 0);
		int32		priority[TASKQ_HEAD_MAX_LEVELS];
		uint64		first[TASKQ_HEAD_MAX_LEVELS];

		for (int i = 0; i < Min(n, TASKQ_HEAD_MAX_LEVELS); i++)
		{
			bool		isnull;

			priority[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 1, &isnull));
			first[i] = TaskqIdPrefix(DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i],
																 SPI_tuptable->tupdesc,
																 2, &isnull)));
		}
		TaskqHeadChecked(name, h, Min(n, TASKQ_HEAD_MAX_LEVELS), priority, first,
						 n > TASKQ_HEAD_MAX_LEVELS);
		usable = TaskqHeadRead(name, h, false);
	}
	else if (h->raise && h->nlevels > 0)
		*raise = true;
	if (!usable)
		return false;
	head_arrays(h, &values[5], &values[6]);
	if (aging_ms > 0 && h->nlevels > 1)
		age_levels(queue, h, values, aging_ms, now);
	return true;
}

/* what one try of a pull needs (pull_once) */
typedef struct PullArgs
{
	ClaimedJob *jobs;			/* what the claim leased */
	Datum		queue;
	int32		count;
	bool		timeout_null;
	int32		timeout_ms;
	bool		waited;			/* a try after a wait: now is the clock */
	Datum	   *values;			/* of the claim plans, while claiming */
	bool	   *nulls;
	bool		bounded;		/* values[5] and [6] hold the head's levels */
	/* the direct claim scanned the levels: their first waiting jobs */
	bool		first_known;
	int			nfirst;
	int32		first_priority[TASKQ_HEAD_MAX_LEVELS];
	uint64		first[TASKQ_HEAD_MAX_LEVELS];
} PullArgs;

/* the columns of taskq.leased_job, as they are named in taskq.jobs */
static const char *const claim_column_names[CLAIM_COLUMNS] = {
	"id", "lease", "queue", "name", "data", "metadata", "priority",
	"attempts", "max_attempts", "lease_expires_at", "flow_id", "depends_on",
	"group_key"
};

/* a job TaskqClaimDirect leased, as a whole row of taskq.jobs */
static void
take_claimed(void *arg, int i, const Datum *values, const bool *nulls)
{
	PullArgs   *a = arg;
	static int	columns[CLAIM_COLUMNS];
	static bool known = false;

	if (!known)
	{
		for (int c = 0; c < CLAIM_COLUMNS; c++)
			columns[c] = TaskqJobColumn(claim_column_names[c]);
		known = true;
	}
	for (int c = 0; c < CLAIM_COLUMNS; c++)
	{
		a->jobs[i].values[c] = values[columns[c]];
		a->jobs[i].nulls[c] = nulls[columns[c]];
	}
}

/*
 * The claim without a statement (direct.c), from the head of the queue,
 * from the bounds of its levels, or of the jobs of the TID array ctids;
 * -1 when the statement must do it.
 */
static int
pull_claim_direct(PullArgs *a, int32 count, Datum ctids)
{
	TaskqClaimRequest req;
	int32		priority[TASKQ_HEAD_MAX_LEVELS];
	Datum		bound[TASKQ_HEAD_MAX_LEVELS];
	int			n;

	req.queue = a->queue;
	req.count = count;
	req.timeout_null = a->timeout_null;
	req.timeout_ms = a->timeout_ms;
	req.default_timeout_ms = DatumGetInt32(a->values[3]);
	req.now = DatumGetTimestampTz(a->values[4]);
	req.nlevels = 0;
	req.priority = priority;
	req.bound = bound;
	req.tids = NULL;
	req.ntids = 0;
	req.first = NULL;
	if (ctids != (Datum) 0)
	{
		ArrayType  *t = DatumGetArrayTypeP(ctids);

		/* TIDs are 6 bytes aligned on 2: stored one after another */
		req.tids = (ItemPointerData *) ARR_DATA_PTR(t);
		req.ntids = ArrayGetNItems(ARR_NDIM(t), ARR_DIMS(t));
	}
	else if (a->bounded)
	{
		req.nlevels = TaskqLevelsUnpack(a->values[5], a->values[6], priority, bound);
		/* no level has waiting jobs */
		if (req.nlevels == 0)
			return 0;
		req.first = a->first;
	}
	n = TaskqClaimDirect(&req, take_claimed, a);
	if (n >= 0 && req.first != NULL)
	{
		a->first_known = true;
		a->nfirst = req.nlevels;
		memcpy(a->first_priority, priority, sizeof(int32) * req.nlevels);
	}
	return n;
}

/*
 * Raise the bounds of the queue's entry h after the claim: to the first
 * waiting jobs the direct claim met in the levels it scanned (each level
 * by its priority: aging may have reordered them; a level it did not reach
 * keeps its bound), else to those of a probe.  The entry's generation and
 * cap were read before the claim's snapshot, as the probe's protocol asks
 * (pullhead.c).
 */
static void
pull_raise(PullArgs *a, const char *name, const TaskqHead *h, const pg_uuid_t *claimed)
{
	uint64		first[TASKQ_HEAD_MAX_LEVELS];

	if (!a->first_known)
	{
		raise_by_probe(a->queue, name, h,
					   claimed != NULL ? TaskqIdPrefix(claimed) : PG_UINT64_MAX);
		return;
	}
	for (int i = 0; i < h->nlevels; i++)
	{
		first[i] = 0;
		for (int l = 0; l < a->nfirst; l++)
			if (a->first_priority[l] == h->priority[i])
				first[i] = a->first[l];
	}
	TaskqHeadRaised(name, h, first);
}

/*
 * The claim: at most count jobs from the head, or the jobs of the TID
 * array ctids that are still waiting (a limited pull, flowcontrol.c).
 * What it leased goes to a->jobs.
 */
static int
pull_claim(void *arg, int32 count, Datum ctids)
{
	PullArgs   *a = arg;
	int			n;

	a->values[1] = Int32GetDatum(count);
	a->jobs = palloc(sizeof(ClaimedJob) * count);
	n = pull_claim_direct(a, count, ctids);
	if (n < 0)
	{
		if (ctids != (Datum) 0)
		{
			/* the levels stay in a->values[5] for the raise (pull_raise) */
			Datum		args[6];

			memcpy(args, a->values, sizeof(Datum) * 5);
			args[5] = ctids;
			n = TaskqExecute(&claim_ctids_plan, args, a->nulls, false, 0);
		}
		else if (a->bounded)
		{
			ArrayType  *levels = DatumGetArrayTypeP(a->values[5]);
			Datum		args[7];

			if (ArrayGetNItems(ARR_NDIM(levels), ARR_DIMS(levels)) != 1)
				n = TaskqExecute(&claim_levels_plan, a->values, a->nulls, false, 0);
			else
			{
				memcpy(args, a->values, sizeof(Datum) * 5);
				args[5] = Int32GetDatum(((int32 *) ARR_DATA_PTR(levels))[0]);
				args[6] = UUIDPGetDatum((pg_uuid_t *) ARR_DATA_PTR(DatumGetArrayTypeP(a->values[6])));
				n = TaskqExecute(&claim_level_plan, args, a->nulls, false, 0);
			}
		}
		else
			n = TaskqExecute(&claim_plan, a->values, a->nulls, false, 0);
		for (int i = 0; i < n; i++)
			heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
							  a->jobs[i].values, a->jobs[i].nulls);
	}
	return n;
}

/*
 * One try: the housekeeping, then the claim, then the raise of the queue's
 * bounds.  Returns how many jobs it leased, which a->jobs holds.  A paused
 * or unknown queue leases nothing.  Runs inside TaskqSwitchToOwner.
 */
static int
pull_once(void *arg)
{
	PullArgs   *a = arg;
	TaskqQueueInfo qi;
	bool		expired;
	bool		due;
	Datum		values[7];
	bool		nulls[7] = {0};
	int			n;
	TimestampTz now;
	TimestampTz floor;
	uint64		floor_gen;
	bool		floor_check;
	TaskqQuiet	quiet;
	TimestampTz first_lease;
	char	   *name = TextDatumGetCString(a->queue);
	TaskqHead	head;
	bool		raise;
	pg_uuid_t  *first = NULL;	/* the lowest id this pull claimed */

	/* the first try as of now(), the later ones of a waiting pull by the clock */
	now = a->waited ? GetCurrentTimestamp() : GetCurrentTransactionStartTimestamp();
	a->waited = true;
	if (!TaskqCachedQueue(name, false, &qi) || qi.paused)
		return 0;

	values[0] = a->queue;
	floor = TaskqLeaseFloor(name, true, &floor_gen, &floor_check, &quiet);
	if (!floor_check && now < quiet.until)
	{
		/* nothing can be due before the queue's quiet ends */
		first_lease = DT_NOEND;
		due = false;
	}
	else
	{
		first_lease = TaskqProbeExpired(a->queue, floor, now, &due, &quiet.until);
		TaskqLeaseFloorSeen(name, floor_gen, floor_check, first_lease, now, &quiet);
	}
	expired = first_lease != DT_NOEND;
	if (expired)
		TaskqReclaimExpired(a->queue, floor, now);
	if (due)
	{
		int			promoted;

		values[1] = TimestampTzGetDatum(now);
		promoted = TaskqExecute(&promote_plan, values, NULL, false, 0);

		TaskqHeadLowerReturned(promoted, 1, 2, 3, 0);
	}

	values[1] = Int32GetDatum(a->count);
	values[2] = Int32GetDatum(a->timeout_ms);
	nulls[2] = a->timeout_null;
	values[3] = Int32GetDatum(qi.timeout_null ? taskq_default_timeout : qi.timeout_ms);
	values[4] = TimestampTzGetDatum(now);
	a->values = values;
	a->nulls = nulls;
	a->bounded = pull_head(a->queue, name, values, qi.priority_aging_ms, now, &head, &raise);
	a->first_known = false;
	if (qi.concurrency > 0 || qi.group_concurrency > 0 ||
		qi.rate_limit > 0 || qi.group_rate_limit > 0 || qi.round_robin)
	{
		bool		candidates_met = false;
		int32		priority[TASKQ_HEAD_MAX_LEVELS];
		Datum		bound[TASKQ_HEAD_MAX_LEVELS];
		int			nlevels = 0;

		/* the levels the candidates are read from, in this order */
		if (raise && a->bounded)
			nlevels = TaskqLevelsUnpack(values[5], values[6], priority, bound);
		n = TaskqClaimLimited(a->queue, &qi, a->count,
							  a->bounded ? &values[5] : NULL, pull_claim, a,
							  a->first, &candidates_met);
		if (candidates_met && !a->first_known)
		{
			a->first_known = true;
			a->nfirst = nlevels;
			memcpy(a->first_priority, priority, sizeof(int32) * nlevels);
		}
	}
	else
		n = pull_claim(a, a->count, (Datum) 0);
	TaskqMetricsCount(DatumGetTextPP(a->queue), TASKQ_COUNT(TASKQ_METRIC_PULLED), n);
	if (n > 0)
	{
		TimestampTz lease_end = DT_NOEND;

		for (int i = 0; i < n; i++)
		{
			pg_uuid_t  *id = DatumGetUUIDP(a->jobs[i].values[0]);

			if (first == NULL || memcmp(id, first, UUID_LEN) < 0)
				first = id;
			if (!a->jobs[i].nulls[CLAIM_LEASE_END] &&
				DatumGetTimestampTz(a->jobs[i].values[CLAIM_LEASE_END]) < lease_end)
				lease_end = DatumGetTimestampTz(a->jobs[i].values[CLAIM_LEASE_END]);
		}
		TaskqHeadClaimed(first);
		/* the leases made: the queue's quiet ends by the first, after commit */
		TaskqQuietNote(name, lease_end);
	}
	if (raise)
		pull_raise(a, name, &head, first);
	return n;
}

/* when the queue's first delayed job comes due (DT_NOEND: none), for waits */
static TaskqPlan next_due_plan = {
	"SELECT run_at FROM taskq.jobs WHERE queue = $1 AND state = 'delayed'"
	" ORDER BY run_at LIMIT 1",
	1, {TEXTOID}, true
};

static TimestampTz
pull_next_due(void *arg)
{
	PullArgs   *a = arg;
	bool		isnull;

	/* not read-only: a fresh snapshot sees the delayed jobs pushed since */
	if (TaskqExecute(&next_due_plan, &a->queue, NULL, false, 1) == 0)
		return DT_NOEND;
	return DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * taskq.pull(queue text, count int, timeout_ms int, acks jsonb,
 *		wait_ms int) RETURNS SETOF taskq.leased_job
 *
 * A paused or unknown queue yields no rows.  acks, items as for ack_batch,
 * are acked first, in the same transaction: a worker loop then needs one
 * commit per job (its previous jobs' acks and its next lease) instead of
 * two.  An ack whose lease is no longer current is skipped, never an
 * error, so that it cannot lose the pull: the job was re-delivered or has
 * finished, as ack_batch would have found.
 *
 * wait_ms: when nothing could be leased, wait up to that long for a job
 * (pullwait.c), trying again whenever a commit makes one of the queue's
 * jobs runnable.  Only in a transaction that has written nothing yet (its
 * locks would be held while it waits: a call with acks returns at once)
 * and whose snapshots are taken per statement (READ COMMITTED).
 */
PG_FUNCTION_INFO_V1(taskq_pull);
Datum
taskq_pull(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PullArgs	a;
	int32		wait_ms = 0;
	int			n;
	ClaimedJob *jobs;
	TaskqContext cxt;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queue name must not be null")));
	a.queue = PG_GETARG_DATUM(0);
	a.count = PG_ARGISNULL(1) ? 1 : PG_GETARG_INT32(1);
	if (a.count < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("count must be at least 1, not %d", a.count)));
	if (a.count > TASKQ_MAX_PULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("count must be at most %d, not %d", TASKQ_MAX_PULL, a.count),
				 errhint("Pull in batches of at most %d jobs.", TASKQ_MAX_PULL)));
	a.waited = false;
	a.timeout_null = PG_ARGISNULL(2);
	a.timeout_ms = a.timeout_null ? 0 : PG_GETARG_INT32(2);
	if (!a.timeout_null && a.timeout_ms < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout_ms must be at least 1, not %d", a.timeout_ms)));
	if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
	{
		wait_ms = PG_GETARG_INT32(4);
		if (wait_ms < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("wait_ms must not be negative, not %d", wait_ms)));
	}

	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
		TaskqCheckAckItems(PG_GETARG_JSONB_P(3), "acks");

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	TaskqSwitchToOwner(&cxt);
	TaskqRequireQueuePrivilege(TextDatumGetCString(a.queue), TASKQ_PRIV_PULL);
	/* the acks first: their jobs' children may be runnable at once */
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
		TaskqAckItems(PG_GETARG_JSONB_P(3));

	n = pull_once(&a);
	if (n == 0 && wait_ms > 0 && !IsolationUsesXactSnapshot() &&
		!TransactionIdIsValid(GetTopTransactionIdIfAny()))
		n = TaskqPullWait(a.queue, wait_ms, pull_once, pull_next_due, &a);
	if (n == 0)
	{
		TaskqSwitchBack(&cxt);
		return (Datum) 0;
	}

	jobs = a.jobs;
	if (n > 1)
		qsort(jobs, n, sizeof(ClaimedJob), claimed_cmp);
	for (int i = 0; i < n; i++)
	{
		/* depends_on becomes parent_results */
		if (!jobs[i].nulls[CLAIM_DEPENDS_ON])
		{
			Datum		parents = jobs[i].values[CLAIM_DEPENDS_ON];

			TaskqExecute(&parent_results_plan, &parents, NULL, false, 1);
			jobs[i].values[CLAIM_DEPENDS_ON] =
				SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
							  &jobs[i].nulls[CLAIM_DEPENDS_ON]);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 jobs[i].values, jobs[i].nulls);
	}
	TaskqSwitchBack(&cxt);
	return (Datum) 0;
}

/*
 * Define the settings of pull; from _PG_init.
 */
void
TaskqPullInit(void)
{
	DefineCustomIntVariable("taskq.default_timeout",
							"Sets the default lease length of a pulled job.",
							"Used when neither the pull, the job nor its queue sets timeout_ms.",
							&taskq_default_timeout,
							30000,
							1,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}
