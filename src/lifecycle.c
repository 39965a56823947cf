/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *		What happens to a job after it was pulled, and to a dead one:
 *		ack, ack_batch, fail, heartbeat, progress, cancel, redrive.
 *
 * Lease fencing: ack, fail, progress and heartbeat act only on an active
 * job, and, when the caller passes its lease, only while that lease is the
 * job's current one.  Each is one statement whose WHERE clause carries
 * these conditions, so the check and the change cannot be separated by a
 * concurrent re-delivery: whoever locks the row first wins, and the other
 * finds the conditions false and gets an error that says why
 * (TaskqRaiseJobConflict).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "taskq.h"

/*
 * The fencing condition of a job alias j, id $1 and lease parameter.
 * Statements with it have generic plans: a custom plan sees the lease as a
 * constant, which may imply the predicate of a partial index ("j.lease =
 * '…'" implied jobs_active_idx's when it was "lease IS NOT NULL"), and made
 * after ANALYZE saw few active jobs (a drained queue) beside a bloated
 * primary key, the plan read the whole of that index for one job: 12,400
 * buffers and 50 ms an ack in scenario 7, a third of the rate for a
 * minute.  A generic plan cannot fold "$2 IS NULL OR j.lease = $2" away,
 * so it proves no such predicate and has only the primary key.
 */
#define ACTIVE_UNDER_LEASE(lease) \
	"j.id = $1 AND j.state = 'active' AND (" lease " IS NULL OR j.lease = " lease ")"

/*
 * The acks move jobs into finished_jobs in two steps (TaskqExecuteMove):
 * the _select_ plans delete them, and their rows are written without a
 * statement; the others are the same moves as one statement, for when
 * finished_jobs has triggers.
 */
static TaskqPlan ack_plan = {NULL, 3, {UUIDOID, JSONBOID, UUIDOID}, true};
static TaskqPlan ack_select_plan = {NULL, 3, {UUIDOID, JSONBOID, UUIDOID}, true};

/*
 * A queue that keeps no completed jobs (retention.completed_ms 0): an ack
 * deletes the job rather than moving it to finished_jobs, when nothing
 * needs the completed row: no children to promote, no follow-ups or
 * reply_to in its metadata (the trigger on finished_jobs acts on those),
 * and no webhook or stream subscriber (TaskqAckMayForget).  Otherwise the
 * job is moved as usual and retention removes it.  TaskqAckDirect forgets
 * such jobs without a statement; these statements are for what it leaves.
 */
#define FORGETTABLE(j) \
	"NOT " j ".has_children AND (" j ".metadata IS NULL OR NOT (" j ".metadata ? 'follow_ups'" \
	" OR " j ".metadata ? 'reply_to')) AND EXISTS (SELECT FROM taskq.queues q" \
	" WHERE q.name = " j ".queue AND q.completed_retention_ms = 0)"
static TaskqPlan forget_plan = {
	"DELETE FROM taskq.jobs j WHERE " ACTIVE_UNDER_LEASE("$3::uuid")
	" AND " FORGETTABLE("j") " RETURNING j.queue",
	3, {UUIDOID, JSONBOID, UUIDOID}, true
};
static TaskqPlan forget_batch_plan = {
	"DELETE FROM taskq.jobs j USING (SELECT (x.item ->> 'id')::uuid AS item_id,"
	" (x.item ->> 'lease')::uuid AS item_lease"
	" FROM jsonb_array_elements($1) AS x(item)) i"
	" WHERE j.id = i.item_id AND j.state = 'active'"
	" AND (i.item_lease IS NULL OR j.lease = i.item_lease)"
	" AND " FORGETTABLE("j") " RETURNING j.queue",
	1, {JSONBOID}, true
};
static TaskqPlan ack_batch_plan = {NULL, 1, {JSONBOID}, true};
static TaskqPlan ack_batch_select_plan = {NULL, 1, {JSONBOID}, true};
static TaskqPlan fail_lock_plan = {
	"SELECT j.attempts, j.max_attempts, j.backoff FROM taskq.jobs j"
	" WHERE " ACTIVE_UNDER_LEASE("$2::uuid") " FOR UPDATE",
	2, {UUIDOID, UUIDOID}, true
};
static TaskqPlan fail_retry_plan = {
	"UPDATE taskq.jobs j SET state = 'delayed',"
	" run_at = now() + $2 * interval '1 millisecond',"
	" lease = NULL, lease_expires_at = NULL, error = $3,"
	" errors = " TASKQ_ERRORS_APPEND("j", "$3") " WHERE j.id = $1"
	" RETURNING j.queue",
	3, {UUIDOID, INT8OID, TEXTOID}, true
};
static TaskqPlan fail_dead_plan = {NULL, 2, {UUIDOID, TEXTOID}, true};
static TaskqPlan heartbeat_plan = {
	"UPDATE taskq.jobs j"
	" SET lease_expires_at = now() + j.lease_ms * interval '1 millisecond'"
	" WHERE " ACTIVE_UNDER_LEASE("$2::uuid") " RETURNING j.lease_expires_at",
	2, {UUIDOID, UUIDOID}, true
};
static TaskqPlan progress_plan = {
	"UPDATE taskq.jobs j SET progress = $3, logs = CASE WHEN $4 IS NULL"
	" THEN j.logs ELSE "
	TASKQ_HISTORY_APPEND("j.logs",
						 "jsonb_build_object('at', now(), 'progress', $3, 'message', $4)")
	" END WHERE " ACTIVE_UNDER_LEASE("$2::uuid"),
	4, {UUIDOID, UUIDOID, INT4OID, TEXTOID}, true
};
static TaskqPlan cancel_plan = {NULL, 1, {UUIDOID}, true};
static TaskqPlan state_plan = {
	"SELECT state::text FROM taskq.all_jobs WHERE id = $1",
	1, {UUIDOID}
};
static TaskqPlan redrive_plan = {NULL, 1, {UUIDOID}};
static TaskqPlan retry_now_plan = {
	"UPDATE taskq.jobs SET state = 'waiting', run_at = now()"
	/* as text: "state = 'delayed'" would make the delayed index a candidate */
	" WHERE id = $1 AND state::text = 'delayed'"
	" RETURNING queue, priority, id",
	1, {UUIDOID}, true
};
static TaskqPlan dead_ids_plan = {
	"SELECT id FROM taskq.dead_jobs WHERE queue = $1 ORDER BY id",
	1, {TEXTOID}
};
static TaskqPlan dead_parent_plan = {
	"SELECT p.id, p.state::text FROM taskq.dead_jobs d"
	" CROSS JOIN LATERAL unnest(d.depends_on) AS u(parent)"
	" JOIN (SELECT id, state FROM taskq.dead_jobs"
	"       UNION ALL SELECT id, state FROM taskq.finished_jobs"
	"       WHERE state = 'cancelled') p ON p.id = u.parent"
	" WHERE d.id = $1 LIMIT 1",
	1, {UUIDOID}
};
/*
 * Parents of a dead job that are in no table any more (retention removed
 * them), with the job's pending_parents: 0 means it was runnable when it
 * died, so every parent had completed.
 */
static TaskqPlan gone_parents_plan = {
	"SELECT u.parent, d.pending_parents FROM taskq.dead_jobs d"
	" CROSS JOIN LATERAL unnest(d.depends_on) AS u(parent)"
	" WHERE d.id = $1"
	" AND NOT EXISTS (SELECT FROM taskq.jobs WHERE id = u.parent)"
	" AND NOT EXISTS (SELECT FROM taskq.finished_jobs WHERE id = u.parent)"
	" AND NOT EXISTS (SELECT FROM taskq.dead_jobs WHERE id = u.parent)",
	1, {UUIDOID}
};
static TaskqPlan rewire_plan = {
	"UPDATE taskq.jobs SET pending_parents = $2,"
	" state = CASE WHEN $2 > 0 THEN 'blocked' ELSE state END::taskq.job_state"
	" WHERE id = $1 RETURNING depends_on",
	2, {UUIDOID, INT4OID}
};
static TaskqPlan redrive_conflict_plan = {
	"SELECT l.id, l.unique_key FROM taskq.dead_jobs d JOIN taskq.jobs l"
	" ON l.queue = d.queue AND l.unique_key = d.unique_key WHERE d.id = $1",
	1, {UUIDOID}
};

/* a redriven job starts over: waiting, no attempts, no lease */
static const TaskqColumnSet redrive_sets[] = {
	{"state", "'waiting'"},
	{"attempts", "0"},
	{"run_at", "now()"},
	{"lease", "NULL"},
	{"lease_ms", "NULL"},
	{"lease_expires_at", "NULL"},
	{"progress", "0"},
	{"result", "NULL"},
	{"started_at", "NULL"},
	{"finished_at", "NULL"},
	{"pending_parents", "0"},
	{NULL, NULL}
};

/* a result is any JSON value up to TASKQ_MAX_RESULT bytes */
static void
check_result(Jsonb *result)
{
	if (result != NULL && TaskqJsonbSize(result) > TASKQ_MAX_RESULT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("job result is too large"),
				 errdetail("The result is %d bytes; the limit is %d bytes (1 MB).",
						   TaskqJsonbSize(result), TASKQ_MAX_RESULT)));
}

/*
 * Prepare the plans built by TaskqMoveSql, once per backend.
 */
static void
init_move_plans(void)
{
	static const TaskqColumnSet ack_sets[] = {
		{"state", "'completed'"},
		{"result", "$2"},
		{"lease_expires_at", "NULL"},
		{"finished_at", "now()"},
		{NULL, NULL}
	};
	static const TaskqColumnSet ack_batch_sets[] = {
		{"state", "'completed'"},
		{"result", "m.item_result"},
		{"lease_expires_at", "NULL"},
		{"finished_at", "now()"},
		{NULL, NULL}
	};
	static const TaskqColumnSet dead_sets[] = {
		{"state", "'dlq'"},
		{"error", "$2"},
		{"errors", TASKQ_ERRORS_APPEND("m", "$2")},
		{"lease_expires_at", "NULL"},
		{"finished_at", "now()"},
		{NULL, NULL}
	};
	static const TaskqColumnSet cancel_sets[] = {
		{"state", "'cancelled'"},
		{"finished_at", "now()"},
		{NULL, NULL}
	};

	if (ack_plan.sql != NULL)
		return;
	for (int select = 0; select <= 1; select++)
		(select ? &ack_batch_select_plan : &ack_batch_plan)->sql =
			TaskqMoveSql("jobs", "finished_jobs",
						 "(SELECT (x.item ->> 'id')::uuid AS item_id,"
						 " x.item -> 'result' AS item_result,"
						 " (x.item ->> 'lease')::uuid AS item_lease"
						 " FROM jsonb_array_elements($1) AS x(item)) i",
						 "j.id = i.item_id AND j.state = 'active'"
						 " AND (i.item_lease IS NULL OR j.lease = i.item_lease)",
						 ack_batch_sets, "id, queue", select);
	fail_dead_plan.sql =
		TaskqMoveSql("jobs", "dead_jobs", NULL, "j.id = $1", dead_sets, "queue",
					 false);
	cancel_plan.sql =
		TaskqMoveSql("jobs", "finished_jobs", NULL,
					 "j.id = $1 AND j.state IN ('waiting', 'delayed', 'blocked')",
					 cancel_sets, "queue", false);
	redrive_plan.sql =
		TaskqMoveSql("dead_jobs", "jobs", NULL, "j.id = $1", redrive_sets,
					 "depends_on, queue, priority, id", false);
	ack_select_plan.sql =
		TaskqMoveSql("jobs", "finished_jobs", NULL,
					 ACTIVE_UNDER_LEASE("$3::uuid"), ack_sets, "queue", true);

	/* last, so that its being set means all are */
	ack_plan.sql =
		TaskqMoveSql("jobs", "finished_jobs", NULL,
					 ACTIVE_UNDER_LEASE("$3::uuid"), ack_sets, "queue", false);
}

/* ack's arguments (id, result, lease) as an item of TaskqAckDirect */
static TaskqAckItem
ack_item(const Datum *values, const bool *nulls)
{
	TaskqAckItem it = {values[0], values[1], nulls[1], values[2], nulls[2]};

	return it;
}

/*
 * What TaskqAckDirect acked: count each and free its slot, as the
 * statements' paths below do (TaskqAckDirect emitted the events).
 * Returns how many.
 */
static int
ack_direct_done(const TaskqAckItem *items, int n)
{
	int			acked = 0;
	char	   *last = NULL;

	for (int i = 0; i < n; i++)
	{
		char	   *queue;

		if (items[i].outcome != 1 && items[i].outcome != 2)
			continue;
		/* kept in finished_jobs (1), or forgotten (2) */
		TaskqMetricsCount(items[i].queue, items[i].outcome == 1 ?
						  TASKQ_COUNT_COMPLETED_KEPT :
						  TASKQ_COUNT(TASKQ_METRIC_COMPLETED), 1);
		/* once per run of one queue, as TaskqNoteSlotsFreed does */
		queue = text_to_cstring(items[i].queue);
		if (last == NULL || strcmp(last, queue) != 0)
			TaskqNoteQueueSlotsFreed(queue);
		last = queue;
		acked++;
	}
	return acked;
}

/*
 * Ack one job, the values of ack's arguments (id, result, lease): forget
 * it when its queue keeps no completed jobs (and nothing needs the row),
 * else move it to finished_jobs; count it, free its slot and tell of it.
 * Returns 1, or 0 when the job is not active under the lease.  Runs
 * inside TaskqSwitchToOwner, after init_move_plans.
 */
static int
ack_job(Datum *values, bool *nulls)
{
	int			n;
	bool		forget = TaskqAckMayForget();
	TaskqAckItem it = ack_item(values, nulls);

	/* without a statement (direct.c): as below */
	if (TaskqAckDirect(&it, 1, forget) && it.outcome >= 0)
		return ack_direct_done(&it, 1);
	if (forget && TaskqExecute(&forget_plan, values, nulls, false, 0) == 1)
	{
		TaskqMetricsCountReturned(1, TASKQ_COUNT(TASKQ_METRIC_COMPLETED));
		TaskqNoteSlotsFreed(1);
		return 1;
	}
	n = TaskqExecuteMove(&ack_select_plan, &ack_plan, "finished_jobs", values, nulls);
	TaskqMetricsCountReturned(n, TASKQ_COUNT_COMPLETED_KEPT);
	TaskqNoteSlotsFreed(n);
	if (n > 0)
		TaskqEmitEventOne("job.completed", values[0]);
	return n;
}

/*
 * taskq.ack(id uuid, result jsonb, lease uuid) RETURNS void
 */
PG_FUNCTION_INFO_V1(taskq_ack);
Datum
taskq_ack(PG_FUNCTION_ARGS)
{
	Datum		values[3];
	bool		nulls[3];
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "job id");
	for (int i = 0; i < 3; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i);
	}
	if (!nulls[1])
		check_result(PG_GETARG_JSONB_P(1));

	TaskqSwitchToOwner(&cxt);
	if (!TaskqRequireJobPrivilege(values[0], TASKQ_PRIV_PULL))
		TaskqRaiseJobNotFound(values[0]);
	init_move_plans();
	if (ack_job(values, nulls) == 0)
		TaskqRaiseJobConflict(values[0], !nulls[2], values[2]);
	TaskqSwitchBack(&cxt);
	PG_RETURN_VOID();
}

/*
 * Check the items of an ack_batch (or of pull's acks): a JSON array of
 * objects with a string "id", and optionally "result" and "lease".
 */
void
TaskqCheckAckItems(Jsonb *items, const char *argname)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken r;

	if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON array", argname),
				 errhint("Pass an array of objects with keys \"id\", \"result\" and \"lease\".")));

	/* each item is an object with a string "id" and nothing unknown */
	it = JsonbIteratorInit(&items->root);
	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbIterator *iit;
		char	   *key;
		JsonbValue	iv;
		bool		has_id = false;

		if (r != WJB_ELEM)
			continue;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("each item of %s must be a JSON object", argname)));
		iit = TaskqJsonKeys(v.val.binary.data);
		while (TaskqJsonKeyNext(&iit, &key, &iv))
		{
			if (strcmp(key, "id") == 0)
			{
				if (iv.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("item \"id\" must be a string")));
				has_id = true;
			}
			else if (strcmp(key, "result") == 0)
				check_result(JsonbValueToJsonb(&iv));
			else if (strcmp(key, "lease") == 0)
			{
				if (iv.type != jbvString && iv.type != jbvNull)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("item \"lease\" must be a string or null")));
			}
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unrecognized item key \"%s\"", key),
						 errhint("Valid keys are: id, result, lease.")));
		}
		if (!has_id)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("item has no \"id\"")));
	}

}

/* a string of a checked item as a uuid */
static Datum
item_uuid(const JsonbValue *v)
{
	return DirectFunctionCall1(uuid_in,
							   CStringGetDatum(pnstrdup(v->val.string.val,
														v->val.string.len)));
}

/*
 * Item i of a checked array as ack's arguments: id, result (absent: SQL
 * NULL, as "x.item -> 'result'" gives), lease (absent or null: NULL).
 */
static void
ack_item_values(Jsonb *items, int i, Datum *values, bool *nulls)
{
	JsonbValue *item = getIthJsonbValueFromContainer(&items->root, i);
	JsonbValue *v;

	Assert(item != NULL && item->type == jbvBinary);
	v = getKeyJsonValueFromContainer(item->val.binary.data, "id", 2, NULL);
	Assert(v != NULL && v->type == jbvString);
	values[0] = item_uuid(v);
	nulls[0] = false;
	v = getKeyJsonValueFromContainer(item->val.binary.data, "result", 6, NULL);
	nulls[1] = (v == NULL);
	values[1] = v ? JsonbPGetDatum(JsonbValueToJsonb(v)) : (Datum) 0;
	v = getKeyJsonValueFromContainer(item->val.binary.data, "lease", 5, NULL);
	nulls[2] = (v == NULL || v->type != jbvString);
	values[2] = nulls[2] ? (Datum) 0 : item_uuid(v);
}

/*
 * An array of one item, the worker loop's usual case (pull with the ack of
 * its previous job): the statements of ack, whose plans are smaller than
 * the batch's join over the array's elements.  Same outcome as the batch:
 * a job not active under the lease is skipped, not an error.
 */
static int
ack_one_item(Jsonb *items)
{
	Datum		values[3];
	bool		nulls[3];

	ack_item_values(items, 0, values, nulls);
	return ack_job(values, nulls);
}

/*
 * Ack the jobs of checked items, each under its lease when it names one;
 * items whose job is not active under that lease are skipped.  Returns
 * how many were acked.  Runs inside TaskqSwitchToOwner.
 */
int
TaskqAckItems(Jsonb *items)
{
	Datum		values[1];
	int			n;
	int			earlier = 0;	/* acked without a statement, or forgotten */
	int			nitems;
	TaskqAckItem *its;
	bool		forget;

	values[0] = TaskqRequireItemsPrivilege(JsonbPGetDatum(items), TASKQ_PRIV_PULL);
	init_move_plans();
	items = DatumGetJsonbP(values[0]);
	if (JB_ROOT_COUNT(items) == 0)
		return 0;
	if (JB_ROOT_COUNT(items) == 1)
		return ack_one_item(items);
	forget = TaskqAckMayForget();
	nitems = JB_ROOT_COUNT(items);
	its = palloc(sizeof(TaskqAckItem) * nitems);
	/* without statements (direct.c) */
	for (int i = 0; i < nitems; i++)
	{
		Datum		v[3];
		bool		isnull[3];

		ack_item_values(items, i, v, isnull);
		its[i] = ack_item(v, isnull);
	}
	if (TaskqAckDirect(its, nitems, forget))
	{
		JsonbParseState *st = NULL;
		JsonbValue *rest;
		bool		left = false;

		earlier = ack_direct_done(its, nitems);
		/* the statements for the items it left, when any (rare) */
		pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
		for (int i = 0; i < nitems; i++)
		{
			if (its[i].outcome >= 0)
				continue;
			left = true;
			pushJsonbValue(&st, WJB_ELEM,
						   getIthJsonbValueFromContainer(&items->root, i));
		}
		rest = pushJsonbValue(&st, WJB_END_ARRAY, NULL);
		if (!left)
			return earlier;
		values[0] = JsonbPGetDatum(JsonbValueToJsonb(rest));
	}
	if (forget)
	{
		int			forgotten = TaskqExecute(&forget_batch_plan, values, NULL, false, 0);

		TaskqMetricsCountReturned(forgotten, TASKQ_COUNT(TASKQ_METRIC_COMPLETED));
		TaskqNoteSlotsFreed(forgotten);
		earlier += forgotten;
	}
	n = TaskqExecuteMove(&ack_batch_select_plan, &ack_batch_plan, "finished_jobs",
						 values, NULL);
	TaskqMetricsCountReturned(n, TASKQ_COUNT_COMPLETED_KEPT);
	TaskqNoteSlotsFreed(n);
	if (n > 0)
		TaskqEmitEvent("job.completed", TaskqReturnedIds(n));
	return n + earlier;
}

/*
 * taskq.ack_batch(items jsonb) RETURNS int
 *
 * Completes every item that is active under the given lease (or under any
 * lease when none is given) and returns how many it completed; the others
 * are left as they are.
 */
PG_FUNCTION_INFO_V1(taskq_ack_batch);
Datum
taskq_ack_batch(PG_FUNCTION_ARGS)
{
	Jsonb	   *items;
	int			n;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "items");
	items = PG_GETARG_JSONB_P(0);
	TaskqCheckAckItems(items, "items");
	TaskqSwitchToOwner(&cxt);
	n = TaskqAckItems(items);
	TaskqSwitchBack(&cxt);
	PG_RETURN_INT32(n);
}

/*
 * taskq.fail(id uuid, error text, lease uuid) RETURNS text
 *
 * Retries after the job's backoff while attempts remain ('delayed'), else
 * moves the job to the dead-letter queue ('dlq').  The error is appended
 * to the job's error history; text over 10 kB is cut, not rejected.
 */
PG_FUNCTION_INFO_V1(taskq_fail);
Datum
taskq_fail(PG_FUNCTION_ARGS)
{
	Datum		values[3];
	bool		nulls[3] = {0};
	text	   *error;
	int32		attempts;
	int32		max_attempts;
	Jsonb	   *backoff;
	Datum		d;
	bool		isnull;
	const char *outcome;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "job id");
	TaskqRequireArg(fcinfo, 1, "error");
	error = TaskqClipText(PG_GETARG_TEXT_PP(1), TASKQ_MAX_ERROR);

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[1] = PG_ARGISNULL(2);

	TaskqSwitchToOwner(&cxt);
	if (!TaskqRequireJobPrivilege(values[0], TASKQ_PRIV_PULL))
		TaskqRaiseJobNotFound(values[0]);
	init_move_plans();
	if (TaskqExecute(&fail_lock_plan, values, nulls, false, 1) == 0)
		TaskqRaiseJobConflict(values[0], !nulls[1], values[1]);

	attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	max_attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 2, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	backoff = isnull ? NULL : DatumGetJsonbP(d);	/* NULL: the built-in policy */

	if (attempts < max_attempts)
	{
		values[1] = Int64GetDatum(TaskqBackoffDelay(backoff, attempts));
		values[2] = PointerGetDatum(error);
		TaskqExecute(&fail_retry_plan, values, NULL, false, 0);
		TaskqNoteDelayed(DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1, &isnull)));
		TaskqMetricsCountReturned(1, TASKQ_COUNT(TASKQ_METRIC_FAILED));
		TaskqNoteSlotsFreed(1);
		TaskqEmitEventOne("job.failed", values[0]);
		outcome = "delayed";
	}
	else
	{
		values[1] = PointerGetDatum(error);
		TaskqExecute(&fail_dead_plan, values, NULL, false, 0);
		TaskqMetricsCountReturned(1, TASKQ_COUNT_DEAD_KEPT);
		TaskqNoteSlotsFreed(1);
		TaskqEmitEventOne("job.dlq", values[0]);
		outcome = "dlq";
	}
	TaskqSwitchBack(&cxt);
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}

/* an active job back to waiting (or delayed), the attempt not counted */
static TaskqPlan release_plan = {
	"UPDATE taskq.jobs j SET"
	" state = CASE WHEN $3 > 0 THEN 'delayed' ELSE 'waiting' END::taskq.job_state,"
	" run_at = CASE WHEN $3 > 0 THEN now() + $3 * interval '1 millisecond' ELSE j.run_at END,"
	" attempts = greatest(j.attempts - 1, 0), lease = NULL, lease_expires_at = NULL"
	" WHERE " ACTIVE_UNDER_LEASE("$2::uuid")
	" RETURNING j.queue, j.priority, j.id, j.state = 'waiting'",
	3, {UUIDOID, UUIDOID, INT4OID}, true
};

/*
 * taskq.release(id uuid, lease uuid, delay_ms int) RETURNS text
 *
 * Hands an active job back without counting its attempt: a worker that
 * cannot run it (no handler for its engine, shutting down before it
 * started) gives it to another.  Waiting again at once, or delayed by
 * delay_ms; returns the new state.  Like ack and fail, a lease that is no
 * longer current is refused.
 */
PG_FUNCTION_INFO_V1(taskq_release);
Datum
taskq_release(PG_FUNCTION_ARGS)
{
	Datum		values[3];
	bool		nulls[3] = {0};
	int32		delay_ms = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2);
	bool		isnull;
	bool		waiting;
	text	   *queue;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "job id");
	if (delay_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delay_ms must not be negative, not %d", delay_ms)));
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1);
	values[2] = Int32GetDatum(delay_ms);

	TaskqSwitchToOwner(&cxt);
	if (!TaskqRequireJobPrivilege(values[0], TASKQ_PRIV_PULL))
		TaskqRaiseJobNotFound(values[0]);
	if (TaskqExecute(&release_plan, values, nulls, false, 0) == 0)
		TaskqRaiseJobConflict(values[0], !nulls[1], values[1]);
	waiting = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	queue = DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	TaskqNoteSlotsFreed(1);
	TaskqHeadLowerReturned(1, 1, 2, 3, 4);
	if (waiting)
		TaskqNoteWakeup(queue);
	else
		TaskqNoteDelayed(queue);
	TaskqSwitchBack(&cxt);
	PG_RETURN_TEXT_P(cstring_to_text(waiting ? "waiting" : "delayed"));
}

/*
 * taskq.heartbeat(id uuid, lease uuid) RETURNS timestamptz
 *
 * Extends the lease by the length it was granted for; returns the new
 * expiry.
 */
PG_FUNCTION_INFO_V1(taskq_heartbeat);
Datum
taskq_heartbeat(PG_FUNCTION_ARGS)
{
	Datum		values[2];
	bool		nulls[2] = {0};
	bool		isnull;
	TimestampTz expires;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "job id");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1);

	TaskqSwitchToOwner(&cxt);
	if (!TaskqRequireJobPrivilege(values[0], TASKQ_PRIV_PULL))
		TaskqRaiseJobNotFound(values[0]);
	if (TaskqExecute(&heartbeat_plan, values, nulls, false, 0) == 0)
		TaskqRaiseJobConflict(values[0], !nulls[1], values[1]);
	expires = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1,
												&isnull));
	TaskqSwitchBack(&cxt);
	PG_RETURN_TIMESTAMPTZ(expires);
}

/*
 * taskq.progress(id uuid, progress int, message text, lease uuid) RETURNS void
 *
 * Progress is clamped to 0..100; a message is appended to the job's log,
 * which keeps the last TASKQ_MAX_HISTORY entries, each cut to 10 kB.
 */
PG_FUNCTION_INFO_V1(taskq_progress);
Datum
taskq_progress(PG_FUNCTION_ARGS)
{
	Datum		values[4];
	bool		nulls[4] = {0};
	int32		progress;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "job id");
	TaskqRequireArg(fcinfo, 1, "progress");
	progress = Max(0, Min(100, PG_GETARG_INT32(1)));

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[1] = PG_ARGISNULL(3);
	values[2] = Int32GetDatum(progress);
	nulls[3] = PG_ARGISNULL(2);
	values[3] = nulls[3] ? (Datum) 0 :
		PointerGetDatum(TaskqClipText(PG_GETARG_TEXT_PP(2), TASKQ_MAX_ERROR));

	TaskqSwitchToOwner(&cxt);
	if (!TaskqRequireJobPrivilege(values[0], TASKQ_PRIV_PULL))
		TaskqRaiseJobNotFound(values[0]);
	if (TaskqExecute(&progress_plan, values, nulls, false, 0) == 0)
		TaskqRaiseJobConflict(values[0], !nulls[1], values[1]);
	TaskqEmitEventOne("job.progress", values[0]);
	TaskqSwitchBack(&cxt);
	PG_RETURN_VOID();
}

/*
 * taskq.cancel(id uuid) RETURNS boolean
 *
 * Waiting, delayed and blocked jobs become cancelled (true); an unknown id
 * yields false; a job in any other state is an error naming the state.
 */
PG_FUNCTION_INFO_V1(taskq_cancel);
Datum
taskq_cancel(PG_FUNCTION_ARGS)
{
	Datum		values[1];
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "job id");
	values[0] = PG_GETARG_DATUM(0);

	TaskqSwitchToOwner(&cxt);
	if (!TaskqRequireJobPrivilege(values[0], TASKQ_PRIV_PUSH))
	{
		TaskqSwitchBack(&cxt);
		PG_RETURN_BOOL(false);	/* as for an unknown id */
	}
	init_move_plans();
	if (TaskqExecute(&cancel_plan, values, NULL, false, 0) == 0)
	{
		char	   *state;

		if (TaskqExecute(&state_plan, values, NULL, false, 1) == 0)
		{
			TaskqSwitchBack(&cxt);
			PG_RETURN_BOOL(false);
		}
		state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot cancel job \"%s\" in state \"%s\"",
						TaskqUuidText(values[0]), state),
				 errdetail("Only waiting, delayed and blocked jobs can be cancelled."),
				 strcmp(state, "active") == 0 ?
				 errhint("An active job ends through taskq.ack() or taskq.fail().") : 0));
	}
	TaskqMetricsCountReturned(1, TASKQ_COUNT_CANCELLED_KEPT);
	TaskqEmitEventOne("job.cancelled", values[0]);
	TaskqSwitchBack(&cxt);
	PG_RETURN_BOOL(true);
}

/* what became of a dead job that was to be redriven */
typedef enum RedriveOutcome
{
	REDRIVEN,
	NOT_DEAD,					/* not in the dead-letter queue */
	KEY_HELD,					/* a live job holds its unique key */
	PARENT_DEAD,				/* a parent is dead or cancelled */
	PARENT_GONE					/* a parent whose outcome is unknown is gone */
} RedriveOutcome;

/*
 * Put one dead job back: waiting, or blocked when some of its parents have
 * not completed yet (with edges to them again).  Runs inside SPI_connect
 * after init_move_plans; *other is the live job holding the key or the
 * dead parent.
 */
static RedriveOutcome
redrive_one(Datum id, Datum *other, char **detail)
{
	Datum		values[2] = {id, (Datum) 0};
	bool		isnull;
	Datum		parents;
	int			ngone;
	pg_uuid_t  *gone = NULL;
	Datum		queue;
	int			nlive = 0;

	if (TaskqExecute(&redrive_conflict_plan, values, NULL, false, 1) > 0)
	{
		*other = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		*detail = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		return KEY_HELD;
	}
	if (TaskqExecute(&dead_parent_plan, values, NULL, false, 1) > 0)
	{
		*other = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		*detail = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		return PARENT_DEAD;
	}
	/*
	 * Parents that retention removed.  A job that died runnable
	 * (pending_parents 0) had seen every parent complete, so those count as
	 * completed; one that died blocked (a cascade) cannot tell whether a
	 * removed parent had completed or not, and stays.
	 */
	ngone = TaskqExecute(&gone_parents_plan, values, NULL, false, 0);
	if (ngone > 0)
	{
		if (DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 2, &isnull)) > 0)
		{
			*other = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			return PARENT_GONE;
		}
		gone = palloc(sizeof(pg_uuid_t) * ngone);
		for (int i = 0; i < ngone; i++)
			gone[i] = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i],
												   SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (TaskqExecute(&redrive_plan, values, NULL, false, 0) == 0)
		return NOT_DEAD;
	/* waiting again (or blocked, for which this is merely early) */
	TaskqHeadLowerReturned(1, 2, 3, 4, 0);

	queue = PointerGetDatum(DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 2,
															&isnull)));
	parents = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		ArrayType  *arr = DatumGetArrayTypeP(parents);
		int			nall = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
		pg_uuid_t  *all = (pg_uuid_t *) ARR_DATA_PTR(arr);
		pg_uuid_t  *ids = palloc(sizeof(pg_uuid_t) * Max(nall, 1));
		int			n = 0;
		pg_uuid_t  *live;
		int			depth;

		/* the parents still kept somewhere */
		for (int i = 0; i < nall; i++)
		{
			bool		removed = false;

			for (int j = 0; j < ngone && !removed; j++)
				removed = memcmp(&all[i], &gone[j], sizeof(pg_uuid_t)) == 0;
			if (!removed)
				ids[n++] = all[i];
		}
		nlive = n > 0 ? TaskqResolveParents(ids, n, &depth, &live) : 0;

		values[1] = Int32GetDatum(nlive);
		TaskqExecute(&rewire_plan, values, NULL, false, 0);
		if (nlive > 0)
			TaskqAddEdges(live, nlive, DatumGetUUIDP(id));
	}
	TaskqMetricsCount(DatumGetTextPP(queue), TASKQ_COUNT(TASKQ_METRIC_REDRIVEN), 1);
	TaskqEmitEventOne("job.redriven", id);
	/* back to waiting, not blocked: wake its queue's workers */
	if (nlive == 0)
		TaskqNoteWakeup(DatumGetTextPP(queue));
	return REDRIVEN;
}

/*
 * taskq.redrive(id uuid) RETURNS boolean
 *
 * Puts a dead job back with its attempts reset; false when the id is not
 * in the dead-letter queue.
 */
PG_FUNCTION_INFO_V1(taskq_redrive);
Datum
taskq_redrive(PG_FUNCTION_ARGS)
{
	Datum		id;
	Datum		other;
	char	   *detail;
	RedriveOutcome outcome;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "job id");
	id = PG_GETARG_DATUM(0);

	TaskqSwitchToOwner(&cxt);
	if (!TaskqRequireJobPrivilege(id, TASKQ_PRIV_ADMIN))
	{
		TaskqSwitchBack(&cxt);
		PG_RETURN_BOOL(false);	/* as for an unknown id */
	}
	init_move_plans();
	outcome = redrive_one(id, &other, &detail);
	if (outcome == KEY_HELD)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("cannot redrive job \"%s\": its unique key is held by live job \"%s\"",
						TaskqUuidText(id), TaskqUuidText(other)),
				 errdetail("Unique key: \"%s\".", detail)));
	if (outcome == PARENT_DEAD)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot redrive job \"%s\": its parent job \"%s\" is in state \"%s\"",
						TaskqUuidText(id), TaskqUuidText(other), detail),
				 errhint("Redrive the parent first.")));
	if (outcome == PARENT_GONE)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot redrive job \"%s\": its parent job \"%s\" no longer exists",
						TaskqUuidText(id), TaskqUuidText(other)),
				 errdetail("The job was moved to the dead-letter queue while it waited for its parents, and retention has since removed that parent, so whether it completed is not known."),
				 errhint("Push the job again, with the parents it needs.")));
	TaskqSwitchBack(&cxt);
	PG_RETURN_BOOL(outcome == REDRIVEN);
}

/*
 * taskq.retry_now(id uuid) RETURNS boolean
 *
 * A delayed job (a retry waiting out its backoff, or pushed to run later)
 * becomes waiting now, its attempts as they are; false when the id is not
 * a delayed job the caller administers.
 */
PG_FUNCTION_INFO_V1(taskq_retry_now);
Datum
taskq_retry_now(PG_FUNCTION_ARGS)
{
	Datum		id;
	bool		done = false;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "job id");
	id = PG_GETARG_DATUM(0);

	TaskqSwitchToOwner(&cxt);
	if (TaskqRequireJobPrivilege(id, TASKQ_PRIV_ADMIN) &&
		TaskqExecute(&retry_now_plan, &id, NULL, false, 0) == 1)
	{
		bool		isnull;

		TaskqHeadLowerReturned(1, 1, 2, 3, 0);
		TaskqNoteWakeup(DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull)));
		done = true;
	}
	TaskqSwitchBack(&cxt);
	PG_RETURN_BOOL(done);
}

/*
 * taskq.redrive_queue(queue text) RETURNS bigint
 *
 * Redrives the queue's dead jobs oldest first, so that a parent is back
 * before its children; jobs that redrive() would refuse stay in the DLQ.
 */
PG_FUNCTION_INFO_V1(taskq_redrive_queue);
Datum
taskq_redrive_queue(PG_FUNCTION_ARGS)
{
	Datum		values[1];
	SPITupleTable *ids;
	uint64		n;
	int64		count = 0;
	TaskqQueueInfo qi;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "queue name");
	values[0] = PG_GETARG_DATUM(0);

	TaskqSwitchToOwner(&cxt);
	TaskqRequireQueuePrivilege(TextDatumGetCString(values[0]), TASKQ_PRIV_ADMIN);
	if (!TaskqLookupQueue(values[0], false, &qi))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("queue \"%s\" does not exist", TextDatumGetCString(values[0]))));
	init_move_plans();
	n = TaskqExecute(&dead_ids_plan, values, NULL, false, 0);
	ids = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		other;
		char	   *detail;

		Datum		id = SPI_getbinval(ids->vals[i], ids->tupdesc, 1, &isnull);
		RedriveOutcome outcome;

		/* each job in an SPI level of its own: memory stays flat */
		SPI_connect();
		outcome = redrive_one(id, &other, &detail);
		SPI_finish();
		if (outcome == REDRIVEN)
			count++;
	}
	TaskqSwitchBack(&cxt);
	PG_RETURN_INT64(count);
}
