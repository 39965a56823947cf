/*-------------------------------------------------------------------------
 *
 * queue.c
 *		Queues: lookup for push and pull, taskq.create_queue and
 *		taskq.alter_queue.
 *
 * A queue is a row of taskq.queues holding its defaults (lease length,
 * attempts, backoff, retention) and whether it is paused.  Queues are
 * created on first push with the column defaults, or explicitly.  Jobs
 * refer to their queue by name without a foreign key: a foreign key would
 * make every push share-lock the queue row, which turns into MultiXact
 * traffic under concurrent producers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "taskq.h"

static TaskqPlan create_plan = {
	"INSERT INTO taskq.queues (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
	1, {TEXTOID}
};
static TaskqPlan alter_plan = {
	"UPDATE taskq.queues SET"
	" timeout_ms = CASE WHEN $2 THEN $3 ELSE timeout_ms END,"
	" max_attempts = coalesce($4, max_attempts),"
	" backoff = CASE WHEN $5 IS NULL THEN backoff ELSE backoff || $5 END,"
	" completed_retention_ms = coalesce($6, completed_retention_ms),"
	" cancelled_retention_ms = coalesce($7, cancelled_retention_ms),"
	" dlq_retention_ms = coalesce($8, dlq_retention_ms),"
	" notify_events = coalesce($9, notify_events),"
	" concurrency = CASE WHEN $10 THEN nullif($11, 0) ELSE concurrency END,"
	" group_concurrency = CASE WHEN $12 THEN nullif($13, 0) ELSE group_concurrency END,"
	" rate_limit = CASE WHEN $14 THEN nullif($15, 0) ELSE rate_limit END,"
	" rate_period_ms = CASE WHEN $14 THEN nullif($16, 0) ELSE rate_period_ms END,"
	" group_rate_limit = CASE WHEN $17 THEN nullif($18, 0) ELSE group_rate_limit END,"
	" group_rate_period_ms = CASE WHEN $17 THEN nullif($19, 0) ELSE group_rate_period_ms END,"
	" priority_aging_ms = coalesce($20, priority_aging_ms),"
	" fairness = coalesce($21, fairness)"
	" WHERE name = $1",
	21, {TEXTOID, BOOLOID, INT4OID, INT4OID, JSONBOID, INT8OID, INT8OID, INT8OID,
	BOOLOID, BOOLOID, INT4OID, BOOLOID, INT4OID, BOOLOID, INT4OID, INT4OID,
	BOOLOID, INT4OID, INT4OID, INT4OID, TEXTOID}
};

/*
 * Read a queue's settings into *qi (from this backend's queue cache, see
 * acl.c); false when it does not exist, unless create is set, in which
 * case it is created with the defaults.  Runs inside TaskqSwitchToOwner.
 */
bool
TaskqLookupQueue(Datum queue, bool create, TaskqQueueInfo *qi)
{
	char	   *name = TextDatumGetCString(queue);
	Datum		values[1] = {queue};

	if (TaskqCachedQueue(name, false, qi))
		return true;
	if (!create)
		return false;
	TaskqExecute(&create_plan, values, NULL, false, 0);
	if (!TaskqCachedQueue(name, true, qi))
		elog(ERROR, "taskq: queue vanished right after its creation");
	return true;
}

/* apply parsed options to an existing queue; false when it does not exist */
static bool
apply_queue_options(Datum queue, const TaskqQueueOptions *o)
{
	Datum		values[21];
	bool		nulls[21] = {0};

	values[0] = queue;
	values[1] = BoolGetDatum(o->has_timeout);
	values[2] = Int32GetDatum(o->timeout_ms);
	nulls[2] = !o->has_timeout || o->timeout_null;
	values[3] = Int32GetDatum(o->max_attempts);
	nulls[3] = !o->has_max_attempts;
	values[4] = PointerGetDatum(o->backoff);
	nulls[4] = o->backoff == NULL;
	values[5] = Int64GetDatum(o->completed_retention_ms);
	nulls[5] = !o->has_completed_retention;
	values[6] = Int64GetDatum(o->cancelled_retention_ms);
	nulls[6] = !o->has_cancelled_retention;
	values[7] = Int64GetDatum(o->dlq_retention_ms);
	nulls[7] = !o->has_dlq_retention;
	values[8] = BoolGetDatum(o->notify_events);
	nulls[8] = !o->has_notify_events;
	values[9] = BoolGetDatum(o->has_concurrency);
	values[10] = Int32GetDatum(o->concurrency);
	values[11] = BoolGetDatum(o->has_group_concurrency);
	values[12] = Int32GetDatum(o->group_concurrency);
	values[13] = BoolGetDatum(o->has_rate_limit);
	values[14] = Int32GetDatum(o->rate_limit);
	values[15] = Int32GetDatum(o->rate_period_ms);
	values[16] = BoolGetDatum(o->has_group_rate_limit);
	values[17] = Int32GetDatum(o->group_rate_limit);
	values[18] = Int32GetDatum(o->group_rate_period_ms);
	values[19] = Int32GetDatum(o->priority_aging_ms);
	nulls[19] = !o->has_priority_aging;
	values[20] = o->fairness ? CStringGetTextDatum(o->fairness) : (Datum) 0;
	nulls[20] = o->fairness == NULL;
	if (o->has_notify_events)
		TaskqSubscribersChanged();
	/* a rate limit set counts from now */
	if (o->has_rate_limit || o->has_group_rate_limit)
		TaskqRateReset(DatumGetTextPP(queue));
	return TaskqExecute(&alter_plan, values, nulls, false, 0) > 0;
}

/*
 * taskq.create_queue(queue text, options jsonb) RETURNS void
 */
PG_FUNCTION_INFO_V1(taskq_create_queue);
Datum
taskq_create_queue(PG_FUNCTION_ARGS)
{
	TaskqQueueOptions opts;
	Datum		values[1];
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "queue name");
	TaskqCheckQueueName(PG_GETARG_TEXT_PP(0));
	TaskqParseQueueOptions(PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1), &opts);
	values[0] = PG_GETARG_DATUM(0);

	TaskqSwitchToOwner(&cxt);
	TaskqRequireQueuePrivilege(TextDatumGetCString(values[0]), TASKQ_PRIV_ADMIN);
	if (TaskqExecute(&create_plan, values, NULL, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("queue \"%s\" already exists", TextDatumGetCString(values[0])),
				 errhint("Use taskq.alter_queue() to change its options.")));
	(void) apply_queue_options(values[0], &opts);
	TaskqSwitchBack(&cxt);
	PG_RETURN_VOID();
}

/*
 * taskq.alter_queue(queue text, options jsonb) RETURNS void
 *
 * Changes the given options and leaves the others; "timeout_ms": null
 * goes back to taskq.default_timeout.
 */
PG_FUNCTION_INFO_V1(taskq_alter_queue);
Datum
taskq_alter_queue(PG_FUNCTION_ARGS)
{
	TaskqQueueOptions opts;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "queue name");
	TaskqRequireArg(fcinfo, 1, "options");
	TaskqParseQueueOptions(PG_GETARG_JSONB_P(1), &opts);

	TaskqSwitchToOwner(&cxt);
	TaskqRequireQueuePrivilege(text_to_cstring(PG_GETARG_TEXT_PP(0)), TASKQ_PRIV_ADMIN);
	if (!apply_queue_options(PG_GETARG_DATUM(0), &opts))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("queue \"%s\" does not exist", text_to_cstring(PG_GETARG_TEXT_PP(0)))));
	TaskqSwitchBack(&cxt);
	PG_RETURN_VOID();
}
