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
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "taskq.h"

#define EXPIRED_JOBS(cond) \
	"SELECT id FROM taskq.jobs WHERE ($1::text IS NULL OR queue = $1)" \
	" AND state = 'active'" \
	" AND lease_expires_at < now() AND " cond \
	" ORDER BY lease_expires_at LIMIT " CppAsString2(TASKQ_RECLAIM_BATCH) \
	" FOR UPDATE SKIP LOCKED"

static TaskqPlan reclaim_retry_plan = {
	"UPDATE taskq.jobs j SET state = 'waiting', lease = NULL,"
	" lease_expires_at = NULL, error = 'lease expired', errors = "
	TASKQ_ERRORS_APPEND("j", "'lease expired'")
	" WHERE j.id IN (" EXPIRED_JOBS("attempts < max_attempts") ")"
	" RETURNING j.id, j.queue",
	1, {TEXTOID}
};

static TaskqPlan reclaim_dead_plan = {NULL, 1, {TEXTOID}};

static TaskqPlan promote_plan = {
	"UPDATE taskq.jobs SET state = 'waiting' WHERE id IN ("
	" SELECT id FROM taskq.jobs WHERE queue = $1 AND state = 'delayed'"
	" AND run_at <= now() ORDER BY run_at LIMIT " CppAsString2(TASKQ_RECLAIM_BATCH)
	" FOR UPDATE SKIP LOCKED)",
	1, {TEXTOID}
};

static TaskqPlan claim_plan = {
	"WITH c AS ("
	" SELECT id FROM taskq.jobs WHERE queue = $1 AND state = 'waiting'"
	" ORDER BY priority DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED),"
	" u AS (UPDATE taskq.jobs j SET state = 'active', attempts = j.attempts + 1,"
	" lease = gen_random_uuid(), lease_ms = coalesce($3, j.timeout_ms, $4),"
	" lease_expires_at = now() + coalesce($3, j.timeout_ms, $4) * interval '1 millisecond',"
	" started_at = now()"
	" FROM c WHERE j.id = c.id"
	" RETURNING j.id, j.lease, j.queue, j.name, j.data, j.metadata, j.priority,"
	" j.attempts, j.max_attempts, j.lease_expires_at, j.flow_id,"
	" CASE WHEN j.depends_on IS NOT NULL THEN"
	"  (SELECT jsonb_object_agg(f.id, f.result) FROM taskq.finished_jobs f"
	"   WHERE f.id = ANY (j.depends_on)) END)"
	" SELECT * FROM u ORDER BY priority DESC, id",
	4, {TEXTOID, INT4OID, INT4OID, INT4OID}
};

/*
 * Reclaim expired leases (step 1 above), of one queue or, for the reaper,
 * of all; at most TASKQ_RECLAIM_BATCH of each kind.  Returns how many it
 * reclaimed.  Runs inside SPI_connect.
 */
int
TaskqReclaimExpired(Datum queue, bool all_queues)
{
	Datum		values[1] = {queue};
	bool		nulls[1] = {all_queues};
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
						 sets, "id, queue");
	}
	dead = TaskqExecute(&reclaim_dead_plan, values, nulls, false, 0);
	TaskqMetricsCountReturned(dead, TASKQ_COUNT(TASKQ_METRIC_DEAD) | TASKQ_COUNT(TASKQ_METRIC_LEASE_EXPIRED));
	if (dead > 0)
		TaskqEmitEvent("job.dlq", TaskqReturnedIds(dead));
	retried = TaskqExecute(&reclaim_retry_plan, values, nulls, false, 0);
	TaskqMetricsCountReturned(retried, TASKQ_COUNT(TASKQ_METRIC_FAILED) | TASKQ_COUNT(TASKQ_METRIC_LEASE_EXPIRED));
	if (retried > 0)
		TaskqEmitEvent("job.failed", TaskqReturnedIds(retried));
	return dead + retried;
}

/*
 * taskq.pull(queue text, count int, timeout_ms int) RETURNS SETOF taskq.leased_job
 *
 * A paused or unknown queue yields no rows.
 */
PG_FUNCTION_INFO_V1(taskq_pull);
Datum
taskq_pull(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		queue;
	int32		count;
	TaskqQueueInfo qi;
	Datum		values[4];
	bool		nulls[4] = {0};
	int			n;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queue name must not be null")));
	queue = PG_GETARG_DATUM(0);
	count = PG_ARGISNULL(1) ? 1 : PG_GETARG_INT32(1);
	if (count < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("count must be at least 1, not %d", count)));
	if (!PG_ARGISNULL(2) && PG_GETARG_INT32(2) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout_ms must be at least 1, not %d", PG_GETARG_INT32(2))));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	SPI_connect();
	if (!TaskqLookupQueue(queue, false, &qi) || qi.paused)
	{
		SPI_finish();
		return (Datum) 0;
	}

	TaskqReclaimExpired(queue, false);
	values[0] = queue;
	TaskqExecute(&promote_plan, values, NULL, false, 0);

	values[1] = Int32GetDatum(count);
	values[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2);
	values[3] = Int32GetDatum(qi.timeout_null ? taskq_default_timeout_ms : qi.timeout_ms);
	n = TaskqExecute(&claim_plan, values, nulls, false, 0);
	TaskqMetricsCount(DatumGetTextPP(queue), TASKQ_COUNT(TASKQ_METRIC_PULLED), n);

	for (int i = 0; i < n; i++)
	{
		Datum		row[12];
		bool		rownulls[12];

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
						  row, rownulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	}
	SPI_finish();
	return (Datum) 0;
}
