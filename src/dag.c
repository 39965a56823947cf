/*-------------------------------------------------------------------------
 *
 * dag.c
 *		DAG flows: dependencies, promotion, cascades, follow-ups, replies
 *		and whole-flow submission.
 *
 * A job pushed with parents that are not all completed starts blocked,
 * with pending_parents counting its unfinished parents and one row in
 * taskq.job_edges per unfinished parent.  Each such parent gets
 * has_children = true.
 *
 * A job finishes by moving into taskq.finished_jobs (completed, cancelled)
 * or taskq.dead_jobs; an AFTER INSERT trigger on each runs
 * taskq_job_finished, with a WHEN clause so that jobs without children,
 * follow-ups or reply_to never call it.  Then, in the same transaction:
 *
 *	completed	each child's pending_parents drops by one, and the child
 *				becomes waiting (or delayed) when it reaches zero;
 *				metadata.follow_ups are pushed as children of the job;
 *				a result message goes to metadata.reply_to;
 *	dlq			blocked descendants move to the DLQ, an error message goes
 *				to metadata.reply_to;
 *	cancelled	blocked descendants are cancelled.
 *
 * A job that leaves while still blocked (cancelled, or dead by a cascade)
 * also loses its own edges from its other, unfinished parents.
 *
 * The trigger acts only on rows that taskq's own statements move
 * (taskq_statement_depth), so a pg_restore of the tables neither promotes,
 * cascades nor pushes anything twice.
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
 * Cycles: a pushed job gets a fresh id nobody can depend on yet, so only
 * push_flow, whose jobs name each other by key, can describe a cycle; it
 * is checked (Kahn's algorithm) before anything is written.  Depth: each
 * job stores its depth (1 + its deepest parent's), bounded by
 * taskq.max_dag_depth.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "taskq.h"

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
	" RETURNING j.queue, j.state = 'waiting'",
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
 * An array of uuids as a uuid[] Datum.
 */
Datum
TaskqUuidArray(const pg_uuid_t *ids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = UUIDPGetDatum(&ids[i]);
	return PointerGetDatum(construct_array(elems, n, UUIDOID, UUID_LEN,
										   false, TYPALIGN_CHAR));
}

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
				 errmsg("job would be at depth %d of its dependency graph, deeper than taskq.max_dag_depth (%d)",
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

/* error for a malformed entry of metadata.follow_ups */
static void
bad_follow_up(int n, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid follow-up %d in metadata.follow_ups: %s", n, problem),
			 errhint("A follow-up is an object with keys \"queue\", \"name\", \"data\", \"options\", \"metadata\" and \"flow_id\".")));
}

/* a text from a string JsonbValue */
static text *
jbv_text(const JsonbValue *v)
{
	return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
}

/* a Jsonb from a JsonbValue, NULL for JSON null */
static Jsonb *
jbv_jsonb(JsonbValue *v)
{
	return v->type == jbvNull ? NULL : JsonbValueToJsonb(v);
}

/* a key of an object container, or NULL */
static JsonbValue *
jb_key(JsonbContainer *c, const char *key)
{
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

/*
 * A follow-up, as found in metadata.follow_ups: checked at push time of
 * its parent, pushed when the parent completes.
 */
typedef struct FollowUp
{
	text	   *queue;
	text	   *name;
	Jsonb	   *data;
	Jsonb	   *options;
	Jsonb	   *metadata;
	text	   *flow_id;
} FollowUp;

/*
 * Read follow-up number n (1-based) of metadata.follow_ups, checking its
 * shape and options.
 */
static void
read_follow_up(int n, JsonbValue *v, FollowUp *fu)
{
	JsonbIterator *it;
	JsonbValue	val;
	char	   *key;

	memset(fu, 0, sizeof(*fu));
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		bad_follow_up(n, "not an object");

	it = TaskqJsonKeys(v->val.binary.data);
	while (TaskqJsonKeyNext(&it, &key, &val))
	{
		if (strcmp(key, "queue") == 0 || strcmp(key, "name") == 0)
		{
			if (val.type != jbvString)
				bad_follow_up(n, psprintf("\"%s\" is not a string", key));
			if (key[0] == 'q')
				fu->queue = jbv_text(&val);
			else
				fu->name = jbv_text(&val);
		}
		else if (strcmp(key, "flow_id") == 0)
		{
			if (val.type != jbvNull)
				fu->flow_id = TaskqOptionText("flow_id", &val, TASKQ_MAX_FLOW_ID);
		}
		else if (strcmp(key, "data") == 0 || strcmp(key, "options") == 0 ||
				 strcmp(key, "metadata") == 0)
		{
			Jsonb	   *jb = jbv_jsonb(&val);

			if (jb != NULL && !JB_ROOT_IS_OBJECT(jb))
				bad_follow_up(n, psprintf("\"%s\" is not an object", key));
			if (key[0] == 'd')
				fu->data = jb;
			else if (key[0] == 'o')
				fu->options = jb;
			else
				fu->metadata = jb;
		}
		else
			bad_follow_up(n, psprintf("unrecognized key \"%s\"", key));
	}
	if (fu->queue == NULL || fu->name == NULL)
		bad_follow_up(n, "\"queue\" and \"name\" are required");
	TaskqCheckQueueName(fu->queue);
	TaskqCheckJobName(fu->name);
	fu->data = TaskqCheckJobData(fu->data, true);
}

/*
 * Check the orchestration keys of job metadata when a job is pushed, so
 * that a bad follow-up or reply_to fails the push, not the later ack.
 * Follow-ups are checked as the pushes they will be, their own metadata
 * included; with privileges set, the caller needs push on the queues of
 * follow-ups and replies (they are pushed later by whoever completes the
 * job).  Runs inside TaskqConnect when privileges is set.  Returns whether
 * there are follow-ups.
 */
bool
TaskqCheckMetadata(Jsonb *metadata, bool privileges)
{
	JsonbValue *v;
	int			n = 0;

	if (metadata == NULL)
		return false;

	v = jb_key(&metadata->root, "follow_ups");
	if (v != NULL && v->type != jbvNull)
	{
		JsonbIterator *it;
		JsonbValue	elem;
		JsonbIteratorToken r;

		if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("metadata.follow_ups must be an array")));
		it = JsonbIteratorInit(v->val.binary.data);
		while ((r = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		{
			FollowUp	fu;
			TaskqJobOptions opts;

			if (r != WJB_ELEM)
				continue;
			read_follow_up(++n, &elem, &fu);
			if (privileges)
				TaskqRequireQueuePrivilege(text_to_cstring(fu.queue), TASKQ_PRIV_PUSH);
			TaskqParseJobOptions(fu.options, &opts);
			(void) TaskqCheckMetadata(fu.metadata != NULL ? fu.metadata : opts.metadata,
									  privileges);
		}
	}

	v = jb_key(&metadata->root, "reply_to");
	if (v != NULL && v->type != jbvNull)
	{
		if (v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("metadata.reply_to must be a queue name")));
		TaskqCheckQueueName(jbv_text(v));
		if (privileges)
			TaskqRequireQueuePrivilege(text_to_cstring(jbv_text(v)), TASKQ_PRIV_PUSH);
	}
	return n > 0;
}

/* the JsonbValue of a whole jsonb document, for pushJsonbValue */
static void
jsonb_as_value(Jsonb *jb, JsonbValue *v)
{
	v->type = jbvBinary;
	v->val.binary.data = &jb->root;
	v->val.binary.len = VARSIZE(jb) - VARHDRSZ;
}

/* add "key": value (a jsonb document, or JSON null for NULL) to an object */
static void
push_key(JsonbParseState **st, const char *key, Jsonb *value)
{
	JsonbValue	k;
	JsonbValue	v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	(void) pushJsonbValue(st, WJB_KEY, &k);
	if (value == NULL)
		v.type = jbvNull;
	else
		jsonb_as_value(value, &v);
	(void) pushJsonbValue(st, WJB_VALUE, &v);
}

/* add "key": "string" to an object */
static void
push_string(JsonbParseState **st, const char *key, const char *s)
{
	JsonbValue	k;
	JsonbValue	v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	(void) pushJsonbValue(st, WJB_KEY, &k);
	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	(void) pushJsonbValue(st, WJB_VALUE, &v);
}

/* a string as a jsonb document */
static Jsonb *
string_jsonb(text *t)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = VARDATA_ANY(t);
	v.val.string.len = VARSIZE_ANY_EXHDR(t);
	return JsonbValueToJsonb(&v);
}

/*
 * Push the follow-ups of a completed job, each as a child of the job, with
 * the job's flow_id and metadata (without follow_ups) unless it gives its
 * own.
 */
static void
push_follow_ups(pg_uuid_t *parent, Jsonb *metadata, text *flow_id)
{
	JsonbValue *v = jb_key(&metadata->root, "follow_ups");
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken r;
	Jsonb	   *inherited;
	int			n = 0;

	if (v == NULL || v->type != jbvBinary)
		return;
	inherited = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete,
												   JsonbPGetDatum(metadata),
												   CStringGetTextDatum("follow_ups")));

	it = JsonbIteratorInit(v->val.binary.data);
	while ((r = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		FollowUp	fu;
		JsonbParseState *st = NULL;
		Jsonb	   *overlay;
		Jsonb	   *options;
		text	   *fu_flow;
		pg_uuid_t	id;

		if (r != WJB_ELEM)
			continue;
		read_follow_up(++n, &elem, &fu);

		/* metadata and flow_id: the follow-up's, else its options', else ours */
		(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		if (fu.metadata != NULL)
			push_key(&st, "metadata", fu.metadata);
		else if (fu.options == NULL || jb_key(&fu.options->root, "metadata") == NULL)
			push_key(&st, "metadata", inherited);
		fu_flow = fu.flow_id;
		if (fu_flow == NULL &&
			(fu.options == NULL || jb_key(&fu.options->root, "flow_id") == NULL))
			fu_flow = flow_id;
		if (fu_flow != NULL)
			push_key(&st, "flow_id", string_jsonb(fu_flow));
		overlay = JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));

		options = fu.options == NULL ? overlay :
			DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
											   JsonbPGetDatum(fu.options),
											   JsonbPGetDatum(overlay)));
		TaskqPushJob(PointerGetDatum(fu.queue), fu.name, fu.data, options,
					 parent, 1, true, &id);
	}
}

/*
 * Push the reply message of a finished job to metadata.reply_to:
 * {"job_id", "name", "result" | "error", "correlation_id"?}.
 */
static void
push_reply(Datum id, text *name, Jsonb *metadata, bool ok, Jsonb *result,
		   text *error)
{
	JsonbValue *reply_to = jb_key(&metadata->root, "reply_to");
	JsonbValue *correlation = jb_key(&metadata->root, "correlation_id");
	JsonbParseState *st = NULL;
	Jsonb	   *data;
	pg_uuid_t	reply_id;

	if (reply_to == NULL || reply_to->type != jbvString)
		return;

	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_string(&st, "job_id", TaskqUuidText(id));
	push_key(&st, "name", string_jsonb(name));
	if (ok)
		push_key(&st, "result", result);
	else
		push_key(&st, "error", error ? string_jsonb(error) : NULL);
	if (correlation != NULL)
	{
		JsonbValue	k;

		k.type = jbvString;
		k.val.string.val = "correlation_id";
		k.val.string.len = strlen("correlation_id");
		(void) pushJsonbValue(&st, WJB_KEY, &k);
		(void) pushJsonbValue(&st, WJB_VALUE, correlation);
	}
	data = JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));

	TaskqPushJob(PointerGetDatum(jbv_text(reply_to)), name, data, NULL,
				 NULL, 0, true, &reply_id);
}

/*
 * Move the blocked children of a dead or cancelled job the same way, with
 * an error naming the job the cascade started from.  Grandchildren follow
 * through the trigger that the children's move fires.
 */
static void
cascade(Datum id, text *name, bool dead)
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
								 "id, queue");
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

/* a column of the trigger's new row */
static Datum
new_column(TriggerData *trig, const char *column, bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(trig->tg_relation);
	int			attnum = SPI_fnumber(desc, column);

	if (attnum <= 0)
		elog(ERROR, "taskq: column \"%s\" not found in %s", column,
			 RelationGetRelationName(trig->tg_relation));
	return heap_getattr(trig->tg_trigtuple, attnum, desc, isnull);
}

/*
 * Trigger function taskq.job_finished(): AFTER INSERT FOR EACH ROW on
 * taskq.finished_jobs and taskq.dead_jobs.
 */
PG_FUNCTION_INFO_V1(taskq_job_finished);
Datum
taskq_job_finished(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;
	bool		isnull;
	Datum		value;
	Datum		id;
	text	   *name;
	char	   *state;
	bool		has_children;
	Jsonb	   *metadata;
	text	   *flow_id;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trig->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trig->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("taskq.job_finished() must be an AFTER INSERT row trigger")));

	/* rows restored by pg_restore or inserted by hand are left alone */
	if (taskq_statement_depth == 0)
		return PointerGetDatum(NULL);

	id = new_column(trig, "id", &isnull);
	name = DatumGetTextPP(new_column(trig, "name", &isnull));
	state = DatumGetCString(DirectFunctionCall1(enum_out, new_column(trig, "state", &isnull)));
	has_children = DatumGetBool(new_column(trig, "has_children", &isnull));
	value = new_column(trig, "metadata", &isnull);
	metadata = isnull ? NULL : DatumGetJsonbP(value);
	value = new_column(trig, "flow_id", &isnull);
	flow_id = isnull ? NULL : DatumGetTextPP(value);

	SPI_connect();
	if (strcmp(state, "completed") == 0)
	{
		if (has_children)
		{
			int			n = TaskqExecute(&promote_plan, &id, NULL, false, 0);

			/* children that became runnable wake their queues' workers */
			for (int i = 0; i < n; i++)
				if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
											   SPI_tuptable->tupdesc, 2, &isnull)))
					TaskqNoteWakeup(DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[i],
																 SPI_tuptable->tupdesc,
																 1, &isnull)));
		}
		if (metadata != NULL)
		{
			Datum		result = new_column(trig, "result", &isnull);

			push_follow_ups(DatumGetUUIDP(id), metadata, flow_id);
			push_reply(id, name, metadata, true,
					   isnull ? NULL : DatumGetJsonbP(result), NULL);
		}
	}
	else
	{
		bool		dead = strcmp(state, "dlq") == 0;

		/* a blocked job that gave up waits for its parents no more */
		if (DatumGetInt32(new_column(trig, "pending_parents", &isnull)) > 0)
			TaskqExecute(&drop_child_edges_plan, &id, NULL, false, 0);
		if (has_children)
			cascade(id, name, dead);
		if (dead && metadata != NULL)
		{
			Datum		error = new_column(trig, "error", &isnull);

			push_reply(id, name, metadata, false, NULL,
					   isnull ? NULL : DatumGetTextPP(error));
		}
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}

/* one job of a flow submitted with push_flow */
typedef struct FlowJob
{
	char	   *key;
	text	   *queue;
	text	   *name;
	Jsonb	   *data;
	Jsonb	   *options;
	JsonbValue	depends_on;		/* array of keys, or jbvNull */
	int		   *parents;		/* indexes into the flow's jobs */
	int			nparents;
	int		   *children;
	int			nchildren;
	int			waiting_for;	/* parents not yet ordered (Kahn) */
	pg_uuid_t	id;
} FlowJob;

/* key -> index of a flow's job */
typedef struct FlowKey
{
	char		key[TASKQ_MAX_FLOW_KEY + 1];
	int			index;
} FlowKey;

/* error for a malformed flow */
static void
bad_flow(const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid flow: %s", problem)));
}

/* read job number n (1-based) of a flow */
static void
read_flow_job(int n, JsonbValue *v, FlowJob *job)
{
	JsonbIterator *it;
	JsonbValue	val;
	char	   *key;

	memset(job, 0, sizeof(*job));
	job->depends_on.type = jbvNull;
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		bad_flow(psprintf("job %d is not an object", n));

	it = TaskqJsonKeys(v->val.binary.data);
	while (TaskqJsonKeyNext(&it, &key, &val))
	{
		if (strcmp(key, "key") == 0 || strcmp(key, "queue") == 0 ||
			strcmp(key, "name") == 0)
		{
			if (val.type != jbvString)
				bad_flow(psprintf("\"%s\" of job %d is not a string", key, n));
			if (key[0] == 'k')
			{
				if (val.val.string.len < 1 || val.val.string.len > TASKQ_MAX_FLOW_KEY)
					bad_flow(psprintf("\"key\" of job %d must be 1 to %d bytes",
									  n, TASKQ_MAX_FLOW_KEY));
				job->key = pnstrdup(val.val.string.val, val.val.string.len);
			}
			else if (key[0] == 'q')
				job->queue = jbv_text(&val);
			else
				job->name = jbv_text(&val);
		}
		else if (strcmp(key, "data") == 0)
			job->data = jbv_jsonb(&val);
		else if (strcmp(key, "options") == 0)
		{
			job->options = jbv_jsonb(&val);
			if (job->options != NULL && !JB_ROOT_IS_OBJECT(job->options))
				bad_flow(psprintf("\"options\" of job %d is not an object", n));
		}
		else if (strcmp(key, "depends_on") == 0)
		{
			if (val.type != jbvNull &&
				(val.type != jbvBinary || !JsonContainerIsArray(val.val.binary.data)))
				bad_flow(psprintf("\"depends_on\" of job %d is not an array of keys", n));
			job->depends_on = val;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid flow: unrecognized key \"%s\" in job %d", key, n),
					 errhint("Valid keys are: key, queue, name, data, options, depends_on.")));
	}
	if (job->key == NULL || job->queue == NULL || job->name == NULL)
		bad_flow(psprintf("job %d needs \"key\", \"queue\" and \"name\"", n));
}

/*
 * Resolve the depends_on keys of every job of a flow into indexes and
 * order the jobs parents first (Kahn's algorithm); a cycle or an unknown
 * key is an error.  Returns the order.
 */
static int *
order_flow(FlowJob *jobs, int n)
{
	HASHCTL		ctl;
	HTAB	   *keys;
	int		   *order = palloc(sizeof(int) * n);
	int			head = 0;
	int			tail = 0;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = TASKQ_MAX_FLOW_KEY + 1;
	ctl.entrysize = sizeof(FlowKey);
	ctl.hcxt = CurrentMemoryContext;
	keys = hash_create("taskq flow keys", n, &ctl,
					   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (int i = 0; i < n; i++)
	{
		bool		found;
		FlowKey    *e = hash_search(keys, jobs[i].key, HASH_ENTER, &found);

		if (found)
			bad_flow(psprintf("key \"%s\" is used by jobs %d and %d",
							  jobs[i].key, e->index + 1, i + 1));
		e->index = i;
		jobs[i].children = palloc(sizeof(int) * n);
	}

	for (int i = 0; i < n; i++)
	{
		JsonbIterator *it;
		JsonbValue	elem;
		JsonbIteratorToken r;

		if (jobs[i].depends_on.type == jbvNull)
			continue;
		jobs[i].parents = palloc(sizeof(int) * n);
		it = JsonbIteratorInit(jobs[i].depends_on.val.binary.data);
		while ((r = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		{
			char	   *key;
			FlowKey    *e;
			bool		dup = false;

			if (r != WJB_ELEM)
				continue;
			if (elem.type != jbvString)
				bad_flow(psprintf("\"depends_on\" of job \"%s\" holds a non-string", jobs[i].key));
			key = pnstrdup(elem.val.string.val, elem.val.string.len);
			e = strlen(key) <= TASKQ_MAX_FLOW_KEY ?
				hash_search(keys, key, HASH_FIND, NULL) : NULL;
			if (e == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid flow: job \"%s\" depends on unknown key \"%s\"",
								jobs[i].key, key)));
			for (int j = 0; j < jobs[i].nparents && !dup; j++)
				dup = jobs[i].parents[j] == e->index;
			if (dup)
				continue;
			jobs[i].parents[jobs[i].nparents++] = e->index;
			jobs[e->index].children[jobs[e->index].nchildren++] = i;
		}
		jobs[i].waiting_for = jobs[i].nparents;
	}

	for (int i = 0; i < n; i++)
		if (jobs[i].waiting_for == 0)
			order[tail++] = i;
	while (head < tail)
	{
		FlowJob    *job = &jobs[order[head++]];

		for (int c = 0; c < job->nchildren; c++)
			if (--jobs[job->children[c]].waiting_for == 0)
				order[tail++] = job->children[c];
	}
	if (tail < n)
	{
		StringInfoData cycle;
		int			shown = 0;

		initStringInfo(&cycle);
		for (int i = 0; i < n && shown < 10; i++)
			if (jobs[i].waiting_for > 0)
				appendStringInfo(&cycle, "%s\"%s\"", shown++ ? ", " : "", jobs[i].key);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid flow: its dependencies form a cycle"),
				 errdetail("Jobs on or behind the cycle: %s.", cycle.data)));
	}
	return order;
}

/*
 * taskq.push_flow(flow jsonb) RETURNS jsonb
 *
 * {"flow_id"?, "jobs": [{"key", "queue", "name", "data", "options",
 * "depends_on": [keys]}]} -> {"flow_id", "ids": {key: id}}.  The whole
 * graph is checked before anything is written; then the jobs are pushed
 * parents first, all in the caller's transaction.
 */
PG_FUNCTION_INFO_V1(taskq_push_flow);
Datum
taskq_push_flow(PG_FUNCTION_ARGS)
{
	Jsonb	   *flow;
	JsonbIterator *it;
	JsonbValue	val;
	JsonbIteratorToken r;
	char	   *key;
	JsonbValue *jobsval = NULL;
	text	   *flow_id = NULL;
	FlowJob    *jobs;
	int			n;
	int			i = 0;
	int		   *order;
	Jsonb	   *flow_overlay;
	JsonbParseState *st = NULL;
	JsonbValue *result;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "flow");
	flow = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_OBJECT(flow))
		bad_flow("not a JSON object");

	it = TaskqJsonKeys(&flow->root);
	while (TaskqJsonKeyNext(&it, &key, &val))
	{
		if (strcmp(key, "flow_id") == 0)
		{
			if (val.type == jbvNull)
				continue;
			if (val.type != jbvString || val.val.string.len < 1 ||
				val.val.string.len > TASKQ_MAX_FLOW_ID)
				bad_flow(psprintf("\"flow_id\" must be a string of 1 to %d bytes",
								  TASKQ_MAX_FLOW_ID));
			flow_id = jbv_text(&val);
		}
		else if (strcmp(key, "jobs") == 0)
		{
			if (val.type != jbvBinary || !JsonContainerIsArray(val.val.binary.data))
				bad_flow("\"jobs\" must be an array");
			jobsval = palloc(sizeof(JsonbValue));
			*jobsval = val;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid flow: unrecognized key \"%s\"", key),
					 errhint("Valid keys are: flow_id, jobs.")));
	}
	if (jobsval == NULL || JsonContainerSize(jobsval->val.binary.data) == 0)
		bad_flow("\"jobs\" must list at least one job");
	n = JsonContainerSize(jobsval->val.binary.data);
	if (n > TASKQ_MAX_FLOW_JOBS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("flow has too many jobs"),
				 errdetail("It has %d jobs; the limit is %d.", n, TASKQ_MAX_FLOW_JOBS)));

	jobs = palloc0(sizeof(FlowJob) * n);
	it = JsonbIteratorInit(jobsval->val.binary.data);
	while ((r = JsonbIteratorNext(&it, &val, true)) != WJB_DONE)
		if (r == WJB_ELEM)
		{
			read_flow_job(i + 1, &val, &jobs[i]);
			i++;
		}
	order = order_flow(jobs, n);
	for (int j = 0; j < n; j++)
	{
		JsonbValue *own = jobs[j].options == NULL ? NULL :
			jb_key(&jobs[j].options->root, "flow_id");

		if (own != NULL && flow_id == NULL)
			bad_flow(psprintf("job \"%s\" sets a flow_id; set it on the flow instead", jobs[j].key));
		if (own != NULL && !(own->type == jbvString &&
							 own->val.string.len == VARSIZE_ANY_EXHDR(flow_id) &&
							 memcmp(own->val.string.val, VARDATA_ANY(flow_id),
									own->val.string.len) == 0))
			bad_flow(psprintf("job \"%s\" sets a flow_id other than the flow's", jobs[j].key));
	}

	if (flow_id == NULL)
	{
		pg_uuid_t	fid;

		TaskqUuid7(&fid);
		flow_id = cstring_to_text(TaskqUuidText(UUIDPGetDatum(&fid)));
	}
	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_key(&st, "flow_id", string_jsonb(flow_id));
	flow_overlay = JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));

	TaskqConnect(&cxt);
	for (int o = 0; o < n; o++)
	{
		FlowJob    *job = &jobs[order[o]];
		pg_uuid_t  *parents = palloc(sizeof(pg_uuid_t) * Max(job->nparents, 1));
		Jsonb	   *options = flow_overlay;

		if (job->options != NULL)
			options = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
														 JsonbPGetDatum(job->options),
														 JsonbPGetDatum(flow_overlay)));
		for (int p = 0; p < job->nparents; p++)
			parents[p] = jobs[job->parents[p]].id;
		TaskqPushJob(PointerGetDatum(job->queue), job->name, job->data, options,
					 parents, job->nparents, false, &job->id);
	}
	TaskqFinish(&cxt);

	st = NULL;
	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_key(&st, "flow_id", string_jsonb(flow_id));
	{
		JsonbValue	key;

		key.type = jbvString;
		key.val.string.val = "ids";
		key.val.string.len = 3;
		(void) pushJsonbValue(&st, WJB_KEY, &key);
		(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		for (int j = 0; j < n; j++)
			push_string(&st, jobs[j].key, TaskqUuidText(UUIDPGetDatum(&jobs[j].id)));
		(void) pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	}
	result = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}
