/*-------------------------------------------------------------------------
 *
 * push.c
 *		taskq.push and taskq.push_batch: enqueue jobs.
 *
 * A push validates everything before it writes anything, creates the queue
 * on first use, and inserts the job.  A job that needs no statement of its
 * own (no unique_key, no parents) is written without one, as COPY writes
 * rows: into the heap, then its index entries (batch_insert); push_batch
 * validates each job the same way and writes such jobs up to 1000 at a
 * time with the heap's multi-insert (batch_flush).  The others, and all
 * when taskq.jobs has triggers, go in with kept INSERT plans.  With a unique_key,
 * the insert uses ON CONFLICT DO NOTHING against the partial unique index
 * on live jobs, so two concurrent pushes of the same key yield one job:
 * the second waits for the first to commit and then returns its id.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "taskq.h"

#define INSERT_COLUMNS \
	"INSERT INTO taskq.jobs (id, queue, name, state, priority, data, metadata," \
	" max_attempts, timeout_ms, backoff, unique_key, flow_id, run_at, created_at," \
	" pending_parents, depends_on, dag_depth, group_key)" \
	" VALUES ($1, $2, $3," \
	" CASE WHEN $13 > 0 THEN 'blocked' WHEN $12 > now() THEN 'delayed'" \
	" ELSE 'waiting' END::taskq.job_state," \
	" $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12, now()), now(), $13, $14, $15, $16)"

#define INSERT_ARGTYPES \
	{UUIDOID, TEXTOID, TEXTOID, INT4OID, JSONBOID, JSONBOID, INT4OID, \
	 INT4OID, JSONBOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT4OID, \
	 UUIDARRAYOID, INT4OID, TEXTOID}

static TaskqPlan insert_plan = {INSERT_COLUMNS, 16, INSERT_ARGTYPES};
static TaskqPlan insert_unique_plan = {
	INSERT_COLUMNS
	" ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL DO NOTHING",
	16, INSERT_ARGTYPES
};
static TaskqPlan find_unique_plan = {
	"SELECT id FROM taskq.jobs WHERE queue = $1 AND unique_key = $2",
	2, {TEXTOID, TEXTOID}
};

/*
 * push_batch inserts the jobs that need no statement of their own (no
 * unique_key, no parents) together: one INSERT over arrays per
 * BATCH_FLUSH of them.  The columns of each such job, in this order.
 */
#define BATCH_COLUMNS	11
#define BATCH_FLUSH		1000
static TaskqPlan insert_batch_plan = {
	"INSERT INTO taskq.jobs (id, queue, name, state, priority, data, metadata,"
	" max_attempts, timeout_ms, backoff, flow_id, run_at, created_at,"
	" pending_parents, dag_depth, group_key)"
	" SELECT u.id, $1, u.name,"
	" CASE WHEN u.run_at > now() THEN 'delayed' ELSE 'waiting' END::taskq.job_state,"
	" u.priority, u.data, u.metadata, u.max_attempts, u.timeout_ms, u.backoff,"
	" u.flow_id, coalesce(u.run_at, now()), now(), 0, 1, u.group_key"
	" FROM unnest($2::uuid[], $3::text[], $4::int4[], $5::jsonb[], $6::jsonb[],"
	" $7::int4[], $8::int4[], $9::jsonb[], $10::text[], $11::timestamptz[],"
	" $12::text[])"
	" AS u(id, name, priority, data, metadata, max_attempts, timeout_ms, backoff,"
	" flow_id, run_at, group_key)",
	12, {TEXTOID, UUIDARRAYOID, TEXTARRAYOID, INT4ARRAYOID, JSONBARRAYOID,
	JSONBARRAYOID, INT4ARRAYOID, INT4ARRAYOID, JSONBARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, TEXTARRAYOID}
};

/* the jobs of a push_batch waiting for insert_batch_plan */
typedef struct PushBatch
{
	MemoryContext cxt;			/* their values; reset at each flush */
	int			n;
	bool		wake;			/* one of them is runnable now */
	bool		delayed;		/* one of them is delayed */
	pg_uuid_t	ids[BATCH_FLUSH];
	Datum		values[BATCH_COLUMNS][BATCH_FLUSH];
	bool		nulls[BATCH_COLUMNS][BATCH_FLUSH];
} PushBatch;

/* element types of the batch columns, for construct_md_array */
static const Oid batch_types[BATCH_COLUMNS] = {
	UUIDOID, TEXTOID, INT4OID, JSONBOID, JSONBOID, INT4OID, INT4OID,
	JSONBOID, TEXTOID, TIMESTAMPTZOID, TEXTOID
};

/* their length, passing and alignment (built-in types), looked up once */
static int16 batch_typlen[BATCH_COLUMNS];
static bool batch_typbyval[BATCH_COLUMNS];
static char batch_typalign[BATCH_COLUMNS];
static bool batch_types_known = false;

static void
batch_types_look_up(void)
{
	if (batch_types_known)
		return;
	for (int c = 0; c < BATCH_COLUMNS; c++)
		get_typlenbyvalalign(batch_types[c], &batch_typlen[c],
							 &batch_typbyval[c], &batch_typalign[c]);
	batch_types_known = true;
}

/*
 * Insert the jobs a batch holds with insert_batch_plan.
 */
static void
batch_insert_sql(Datum queue, PushBatch *b)
{
	Datum		args[1 + BATCH_COLUMNS];

	batch_types_look_up();
	args[0] = queue;
	for (int c = 0; c < BATCH_COLUMNS; c++)
	{
		int			dims[1] = {b->n};
		int			lbs[1] = {1};

		args[1 + c] = PointerGetDatum(construct_md_array(b->values[c], b->nulls[c],
														 1, dims, lbs, batch_types[c],
														 batch_typlen[c],
														 batch_typbyval[c],
														 batch_typalign[c]));
	}
	TaskqExecute(&insert_batch_plan, args, NULL, false, 0);
}

/* which of push_one's values each batch column is */
static const int batch_from[BATCH_COLUMNS] = {0, 2, 3, 4, 5, 6, 7, 8, 10, 11, 15};


/* the column of taskq.jobs each batch column goes into */
static const char *const batch_column_names[BATCH_COLUMNS] = {
	"id", "name", "priority", "data", "metadata", "max_attempts",
	"timeout_ms", "backoff", "flow_id", "run_at", "group_key"
};

/*
 * Insert the jobs of a batch into taskq.jobs as COPY does (rowinsert.c).
 * The rows and index entries are those the INSERT of insert_batch_plan
 * would write: the batch's columns, the queue, the state, run_at (now
 * when not given), created_at, and the defaults of the other NOT NULL
 * columns.  Returns false, having written nothing, when the table has
 * triggers or other columns than taskq's: then the INSERT does it.  The
 * value of batch column c of job i is values[c * stride + i].
 */
static bool
batch_insert(Relation rel, Datum queue, int n, const Datum *values,
			 const bool *nulls, int stride)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TupleDesc	copy = NULL;
	TupleTableSlot **slots;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int			state;
	int			run_at;
	int			from[BATCH_COLUMNS];
	static const char *const fixed_names[] = {
		"queue", "created_at", "attempts", "progress", "pending_parents",
		"has_children", "dag_depth"
	};
	Datum		fixed[] = {
		queue, TimestampTzGetDatum(now), Int32GetDatum(0), Int32GetDatum(0),
		Int32GetDatum(0), BoolGetDatum(false), Int32GetDatum(1)
	};
	int			fixed_at[lengthof(fixed_names)];
	Datum		waiting;
	Datum		delayed;

	if (!TaskqCanInsertRows(rel) || !TaskqIsJobTable(rel))
		return false;
	state = TaskqJobColumn("state");
	run_at = TaskqJobColumn("run_at");
	for (int c = 0; c < BATCH_COLUMNS; c++)
		from[c] = TaskqJobColumn(batch_column_names[c]);
	for (int k = 0; k < lengthof(fixed_names); k++)
		fixed_at[k] = TaskqJobColumn(fixed_names[k]);
	waiting = TaskqJobState(TupleDescAttr(desc, state)->atttypid, "waiting");
	delayed = TaskqJobState(TupleDescAttr(desc, state)->atttypid, "delayed");

	slots = palloc(sizeof(TupleTableSlot *) * n);
	for (int i = 0; i < n; i++)
	{
		TupleTableSlot *slot = TaskqRowSlot(rel, n, &copy);
		Datum	   *v = slot->tts_values;
		bool	   *isnull = slot->tts_isnull;

		memset(isnull, true, sizeof(bool) * desc->natts);
		for (int c = 0; c < BATCH_COLUMNS; c++)
		{
			v[from[c]] = values[c * stride + i];
			isnull[from[c]] = nulls[c * stride + i];
		}
		if (isnull[run_at])
			v[run_at] = TimestampTzGetDatum(now);
		isnull[run_at] = false;
		v[state] = DatumGetTimestampTz(v[run_at]) > now ? delayed : waiting;
		isnull[state] = false;
		for (int k = 0; k < lengthof(fixed); k++)
		{
			v[fixed_at[k]] = fixed[k];
			isnull[fixed_at[k]] = false;
		}
		ExecStoreVirtualTuple(slot);
		slots[i] = slot;
	}
	TaskqInsertRows(rel, slots, n);
	TaskqDropRowSlots(slots, n, copy);
	return true;
}

/*
 * Insert the jobs a batch holds (batch_insert, or one INSERT over arrays
 * when it cannot), and count them, emit their events and wake their
 * queue's workers as push_one does for one.  Runs inside
 * TaskqSwitchToOwner.
 */
static void
batch_flush(Datum queue, PushBatch *b)
{
	Relation	rel;

	if (b->n == 0)
		return;
	SPI_connect();
	rel = table_open(TaskqTableOid("jobs"), RowExclusiveLock);
	if (!batch_insert(rel, queue, b->n, &b->values[0][0], &b->nulls[0][0],
					  BATCH_FLUSH))
		batch_insert_sql(queue, b);
	table_close(rel, NoLock);
	TaskqMetricsCount(DatumGetTextPP(queue), TASKQ_COUNT(TASKQ_METRIC_PUSHED), b->n);
	TaskqEmitEvent("job.pushed", TaskqUuidArray(b->ids, b->n));
	if (b->wake)
		TaskqNoteWakeup(DatumGetTextPP(queue));
	if (b->delayed)
		TaskqNoteDelayed(DatumGetTextPP(queue));
	SPI_finish();
	MemoryContextReset(b->cxt);
	b->n = 0;
	b->wake = false;
	b->delayed = false;
}

/*
 * Insert one job that needs no statement of its own (no unique_key, no
 * parents) with batch_insert; false when it cannot.  values and nulls are
 * push_one's.
 */
static bool
insert_direct(Datum queue, const Datum *values, const bool *nulls)
{
	Datum		v[BATCH_COLUMNS];
	bool		n[BATCH_COLUMNS];
	Relation	rel;
	bool		done;

	for (int c = 0; c < BATCH_COLUMNS; c++)
	{
		v[c] = values[batch_from[c]];
		n[c] = nulls[batch_from[c]];
	}
	rel = table_open(TaskqTableOid("jobs"), RowExclusiveLock);
	done = batch_insert(rel, queue, 1, v, n, 1);
	table_close(rel, NoLock);
	return done;
}

/* keep a value for the batch, in its memory */
static void
batch_put(PushBatch *b, int column, Datum value, bool isnull)
{
	batch_types_look_up();
	b->nulls[column][b->n] = isnull;
	b->values[column][b->n] = isnull ? (Datum) 0 :
		datumCopy(value, batch_typbyval[column], batch_typlen[column]);
}

/*
 * The parents of a job: its depends_on option and, for flows and
 * follow-ups, extra parents, without duplicates.
 */
static pg_uuid_t *
job_parents(const TaskqJobOptions *opts, const pg_uuid_t *extra, int nextra,
			int *n)
{
	pg_uuid_t  *all = palloc(sizeof(pg_uuid_t) * Max(opts->ndepends + nextra, 1));

	*n = opts->ndepends;
	if (opts->ndepends > 0)
		memcpy(all, opts->depends_on, sizeof(pg_uuid_t) * opts->ndepends);
	for (int i = 0; i < nextra; i++)
	{
		bool		dup = false;

		for (int j = 0; j < *n && !dup; j++)
			dup = memcmp(&all[j], &extra[i], sizeof(pg_uuid_t)) == 0;
		if (!dup)
			all[(*n)++] = extra[i];
	}
	return all;
}

/*
 * Validate and insert one job; returns its id, or the id of the live job
 * that already holds its unique key.  Runs inside TaskqSwitchToOwner.
 *
 * A job with parents that are not all completed starts blocked, with an
 * edge from each unfinished parent (dag.c).
 */
static void
push_one(Datum queue, const TaskqQueueInfo *qi, text *name, Jsonb *data,
		 Jsonb *options, const pg_uuid_t *extra_parents, int nextra,
		 bool internal, pg_uuid_t *id, PushBatch *batch)
{
	TaskqJobOptions opts;
	Datum		values[16];
	bool		nulls[16] = {0};
	pg_uuid_t  *parents;
	int			nparents;
	pg_uuid_t  *live = NULL;
	int			nlive = 0;
	int			depth = 1;
	bool		has_follow_ups;

	TaskqCheckJobName(name);
	data = TaskqCheckJobData(data, !internal);
	TaskqParseJobOptions(options, &opts);
	has_follow_ups = TaskqCheckMetadata(opts.metadata, !internal);
	parents = job_parents(&opts, extra_parents, nextra, &nparents);
	if (nparents > 0)
		nlive = TaskqResolveParents(parents, nparents, &depth, &live);
	if (has_follow_ups && depth >= taskq_max_dag_depth)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("dependency graph is too deep for follow-ups"),
				 errdetail("The job is at depth %d, so its follow-ups would be deeper than taskq.max_dag_depth (%d).",
						   depth, taskq_max_dag_depth)));
	/* before the id's clock is read: see pullhead.c */
	TaskqHeadPushing();
	TaskqUuid7(id);

	values[0] = UUIDPGetDatum(id);
	values[1] = queue;
	values[2] = PointerGetDatum(name);
	values[3] = Int32GetDatum(opts.priority);
	values[4] = JsonbPGetDatum(data);
	values[5] = PointerGetDatum(opts.metadata);
	nulls[5] = opts.metadata == NULL;
	values[6] = Int32GetDatum(opts.has_max_attempts ? opts.max_attempts : qi->max_attempts);
	values[7] = Int32GetDatum(opts.timeout_ms);
	nulls[7] = !opts.has_timeout;
	values[8] = JsonbPGetDatum(TaskqMergeBackoff(qi->backoff, opts.backoff));
	/* NULL: the built-in policy (most jobs), to keep rows narrow */
	nulls[8] = opts.backoff == NULL ? qi->backoff_default :
		TaskqBackoffIsDefault(DatumGetJsonbP(values[8]));
	values[9] = PointerGetDatum(opts.unique_key);
	nulls[9] = opts.unique_key == NULL;
	values[10] = PointerGetDatum(opts.flow_id);
	nulls[10] = opts.flow_id == NULL;
	values[11] = TimestampTzGetDatum(opts.run_at);
	nulls[11] = !opts.has_run_at;
	values[12] = Int32GetDatum(nlive);
	values[13] = nparents > 0 ? TaskqUuidArray(parents, nparents) : (Datum) 0;
	nulls[13] = nparents == 0;
	values[14] = Int32GetDatum(depth);
	values[15] = PointerGetDatum(opts.group_key);
	nulls[15] = opts.group_key == NULL;
	TaskqHeadNoteLevel(DatumGetTextPP(queue), opts.priority, id);

	if (batch != NULL && opts.unique_key == NULL && nparents == 0)
	{
		/* inserted with others by batch_flush */
		MemoryContext old;

		if (batch->n == BATCH_FLUSH)
			batch_flush(queue, batch);
		old = MemoryContextSwitchTo(batch->cxt);
		batch->ids[batch->n] = *id;
		for (int c = 0; c < BATCH_COLUMNS; c++)
			batch_put(batch, c, values[batch_from[c]], nulls[batch_from[c]]);
		batch->values[0][batch->n] = UUIDPGetDatum(&batch->ids[batch->n]);
		MemoryContextSwitchTo(old);
		if (!opts.has_run_at || opts.run_at <= GetCurrentTransactionStartTimestamp())
			batch->wake = true;
		else
			batch->delayed = true;
		batch->n++;
		return;
	}
	/* the batch's jobs first, in order */
	if (batch != NULL)
		batch_flush(queue, batch);

	if (opts.unique_key == NULL && nparents == 0 &&
		insert_direct(queue, values, nulls))
		 /* written */ ;
	else if (opts.unique_key == NULL)
		TaskqExecute(&insert_plan, values, nulls, false, 0);
	else
	{
		/*
		 * ON CONFLICT DO NOTHING waited for any concurrent holder of the
		 * key; if the holder finished before we could read it, try again.
		 */
		for (;;)
		{
			Datum		keyvals[2] = {queue, PointerGetDatum(opts.unique_key)};
			bool		isnull;

			if (TaskqExecute(&insert_unique_plan, values, nulls, false, 0) > 0)
				break;
			if (TaskqExecute(&find_unique_plan, keyvals, NULL, false, 1) > 0)
			{
				Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull);

				memcpy(id, DatumGetUUIDP(d), sizeof(pg_uuid_t));
				return;
			}
			CHECK_FOR_INTERRUPTS();
		}
	}
	if (nlive > 0)
		TaskqAddEdges(live, nlive, id);
	TaskqMetricsCount(DatumGetTextPP(queue), TASKQ_COUNT(TASKQ_METRIC_PUSHED), 1);
	TaskqEmitEventOne("job.pushed", UUIDPGetDatum(id));
	if (nlive == 0 && (!opts.has_run_at ||
					   opts.run_at <= GetCurrentTransactionStartTimestamp()))
		TaskqNoteWakeup(DatumGetTextPP(queue));
	else if (nlive == 0)
		TaskqNoteDelayed(DatumGetTextPP(queue));
}

/* push_queue, for a caller that may push there */
static void
push_queue_open(Datum queue, TaskqQueueInfo *qi, bool internal)
{
	(void) TaskqLookupQueue(queue, true, qi);
	if (qi->paused && !internal)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("queue \"%s\" is paused", TextDatumGetCString(queue)),
				 errdetail("A paused queue accepts no new jobs."),
				 errhint("Resume it with taskq.resume().")));
}

/*
 * Look the queue up for a push, creating it on first use; a paused queue
 * refuses pushes, except those of taskq itself (follow-ups, replies): a
 * paused queue keeps what it is sent and delivers nothing.  Pushes from
 * callers need the push privilege on the queue (then it may be created).
 */
static void
push_queue(Datum queue, TaskqQueueInfo *qi, bool internal)
{
	TaskqCheckQueueName(DatumGetTextPP(queue));
	if (!internal)
		TaskqRequireQueuePrivilege(TextDatumGetCString(queue), TASKQ_PRIV_PUSH);
	push_queue_open(queue, qi, internal);
}

/*
 * Push one job from C (flows, follow-ups, replies), with parents beyond
 * those of its options.  Internal pushes (follow-ups, replies) go to
 * paused queues too and have no data size limit.  Runs inside TaskqSwitchToOwner.
 */
void
TaskqPushJob(Datum queue, text *name, Jsonb *data, Jsonb *options,
			 const pg_uuid_t *extra_parents, int nextra, bool internal,
			 pg_uuid_t *id)
{
	TaskqQueueInfo qi;

	push_queue(queue, &qi, internal);
	push_one(queue, &qi, name, data, options, extra_parents, nextra,
			 internal, id, NULL);
}

/*
 * taskq.check_job(queue text, name text, data jsonb, options jsonb)
 * RETURNS jsonb
 *
 * Every check a push makes of its arguments, without pushing (for pushes
 * that run later, such as schedules); returns the data as push would store
 * it ({} for NULL or JSON null).
 */
PG_FUNCTION_INFO_V1(taskq_check_job);
Datum
taskq_check_job(PG_FUNCTION_ARGS)
{
	TaskqJobOptions opts;
	Jsonb	   *data;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "queue name");
	TaskqRequireArg(fcinfo, 1, "job name");
	TaskqCheckQueueName(PG_GETARG_TEXT_PP(0));
	TaskqCheckJobName(PG_GETARG_TEXT_PP(1));
	data = TaskqCheckJobData(PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), true);
	TaskqParseJobOptions(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &opts);
	TaskqSwitchToOwner(&cxt);
	(void) TaskqCheckMetadata(opts.metadata, true);
	TaskqSwitchBack(&cxt);
	PG_RETURN_JSONB_P(data);
}

/*
 * taskq.push(queue text, name text, data jsonb, options jsonb) RETURNS uuid
 */
PG_FUNCTION_INFO_V1(taskq_push);
Datum
taskq_push(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	TaskqQueueInfo qi;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "queue name");
	TaskqRequireArg(fcinfo, 1, "job name");

	TaskqSwitchToOwner(&cxt);
	push_queue(PG_GETARG_DATUM(0), &qi, false);
	push_one(PG_GETARG_DATUM(0), &qi, PG_GETARG_TEXT_PP(1),
			 PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2),
			 PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), NULL, 0, false, id,
			 NULL);
	TaskqSwitchBack(&cxt);

	PG_RETURN_UUID_P(id);
}

/*
 * taskq._trigger_push(trigger text, data jsonb, options jsonb) RETURNS uuid
 *
 * The push of an inbound webhook (receive_webhook): the job of a trigger,
 * to the trigger's queue.  Who may create a trigger on a queue (its
 * administrators) decides what it pushes there, so the push privilege of
 * the caller (the gateway's role) is not asked for; a paused queue refuses
 * it as any push.  Internal: only receive_webhook calls it.
 */
PG_FUNCTION_INFO_V1(taskq_trigger_push);
Datum
taskq_trigger_push(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	TaskqQueueInfo qi;
	TaskqContext cxt;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	Datum		queue;
	text	   *name;
	bool		isnull;

	TaskqRequireArg(fcinfo, 0, "trigger name");
	args[0] = PG_GETARG_DATUM(0);
	TaskqSwitchToOwner(&cxt);
	if (SPI_execute_with_args("SELECT t.queue, t.job_name FROM taskq.triggers t WHERE t.name = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("trigger \"%s\" does not exist",
						TextDatumGetCString(PG_GETARG_DATUM(0)))));
	queue = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	name = DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	push_queue_open(queue, &qi, false);
	push_one(queue, &qi, name, PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1),
			 PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), NULL, 0, false, id,
			 NULL);
	TaskqSwitchBack(&cxt);

	PG_RETURN_UUID_P(id);
}

/* error context of push_batch: which job of the batch failed */
static void
push_batch_context(void *arg)
{
	errcontext("job %d of the batch", *(int *) arg);
}

/*
 * taskq.push_batch(queue text, jobs jsonb) RETURNS SETOF uuid
 *
 * All or nothing: any bad job fails the whole call, and so the whole
 * transaction.  Ids come back in input order.
 */
PG_FUNCTION_INFO_V1(taskq_push_batch);
Datum
taskq_push_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *jobs;
	TaskqQueueInfo qi;
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken r;
	int			n = 0;
	ErrorContextCallback errcallback;
	TaskqContext cxt;
	PushBatch  *batch;

	TaskqRequireArg(fcinfo, 0, "queue name");
	TaskqRequireArg(fcinfo, 1, "jobs");
	jobs = PG_GETARG_JSONB_P(1);
	if (!JB_ROOT_IS_ARRAY(jobs) || JB_ROOT_IS_SCALAR(jobs))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jobs must be a JSON array"),
				 errhint("Pass an array of objects with keys \"name\", \"data\" and \"options\".")));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	/* not zeroed: 115 kB, of which a batch of n jobs reads the first n */
	batch = palloc(sizeof(PushBatch));
	batch->n = 0;
	batch->wake = false;
	batch->delayed = false;
	batch->cxt = AllocSetContextCreate(CurrentMemoryContext, "taskq push_batch",
									   ALLOCSET_DEFAULT_SIZES);

	TaskqSwitchToOwner(&cxt);
	push_queue(PG_GETARG_DATUM(0), &qi, false);

	errcallback.callback = push_batch_context;
	errcallback.arg = &n;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	it = JsonbIteratorInit(&jobs->root);
	while ((r = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		JsonbIterator *jit;
		char	   *key;
		JsonbValue	v;
		text	   *name = NULL;
		Jsonb	   *data = NULL;
		Jsonb	   *options = NULL;
		pg_uuid_t	id;
		Datum		value;
		bool		isnull = false;

		if (r != WJB_ELEM)
			continue;
		n++;

		/*
		 * Each job in an SPI level of its own: what it allocates and the
		 * results of its statements go at its SPI_finish, so that memory
		 * does not grow with the batch.
		 */
		SPI_connect();
		if (elem.type != jbvBinary || !JsonContainerIsObject(elem.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("each job of a batch must be a JSON object")));

		jit = TaskqJsonKeys(elem.val.binary.data);
		while (TaskqJsonKeyNext(&jit, &key, &v))
		{
			if (strcmp(key, "name") == 0)
			{
				if (v.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("job name must be a string")));
				name = cstring_to_text_with_len(v.val.string.val, v.val.string.len);
			}
			else if (strcmp(key, "data") == 0)
				data = v.type == jbvNull ? NULL : JsonbValueToJsonb(&v);
			else if (strcmp(key, "options") == 0)
				options = v.type == jbvNull ? NULL : JsonbValueToJsonb(&v);
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unrecognized job key \"%s\"", key),
						 errhint("Valid keys are: name, data, options.")));
		}
		if (name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("job has no \"name\"")));

		push_one(PG_GETARG_DATUM(0), &qi, name, data, options, NULL, 0, false, &id,
				 batch);
		SPI_finish();
		value = UUIDPGetDatum(&id);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}

	error_context_stack = errcallback.previous;
	batch_flush(PG_GETARG_DATUM(0), batch);
	TaskqSwitchBack(&cxt);
	return (Datum) 0;
}
