/*-------------------------------------------------------------------------
 *
 * dagflow.c
 *		taskq.push_flow: a whole DAG submitted at once, its jobs naming
 *		each other by key.
 *
 * The flow is read and checked whole before anything is written: its
 * shape, unique keys, dependencies on keys of the flow only, and no cycle
 * (Kahn's algorithm, which also gives the order in which the jobs are
 * pushed, parents first).  A pushed job gets a fresh id nobody can depend
 * on yet, so only a flow can describe a cycle.
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"

#include "taskq.h"

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

/* error for a malformed flow: detail, a sentence, says what is wrong */
#define bad_flow(...) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg("invalid flow"), \
			 errdetail(__VA_ARGS__)))

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
		bad_flow("Job %d is not an object.", n);

	it = TaskqJsonKeys(v->val.binary.data);
	while (TaskqJsonKeyNext(&it, &key, &val))
	{
		if (strcmp(key, "key") == 0 || strcmp(key, "queue") == 0 ||
			strcmp(key, "name") == 0)
		{
			if (val.type != jbvString)
				bad_flow("\"%s\" of job %d is not a string.", key, n);
			if (key[0] == 'k')
			{
				if (val.val.string.len < 1)
					bad_flow("\"key\" of job %d is empty.", n);
				if (val.val.string.len > TASKQ_MAX_FLOW_KEY)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("flow key is too long"),
							 errdetail("The key of job %d is %d bytes; the limit is %d bytes.",
									   n, val.val.string.len, TASKQ_MAX_FLOW_KEY)));
				job->key = pnstrdup(val.val.string.val, val.val.string.len);
			}
			else if (key[0] == 'q')
				job->queue = TaskqJbvText(&val);
			else
				job->name = TaskqJbvText(&val);
		}
		else if (strcmp(key, "data") == 0)
			job->data = TaskqJbvJsonb(&val);
		else if (strcmp(key, "options") == 0)
		{
			job->options = TaskqJbvJsonb(&val);
			if (job->options != NULL && !JB_ROOT_IS_OBJECT(job->options))
				bad_flow("\"options\" of job %d is not an object.", n);
		}
		else if (strcmp(key, "depends_on") == 0)
		{
			if (val.type != jbvNull &&
				(val.type != jbvBinary || !JsonContainerIsArray(val.val.binary.data)))
				bad_flow("\"depends_on\" of job %d is not an array of keys.", n);
			job->depends_on = val;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid flow"),
					 errdetail("Job %d has an unrecognized key \"%s\".", n, key),
					 errhint("Valid keys are: key, queue, name, data, options, depends_on.")));
	}
	if (job->key == NULL || job->queue == NULL || job->name == NULL)
		bad_flow("Job %d needs \"key\", \"queue\" and \"name\".", n);
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
			bad_flow("Key \"%s\" is used by jobs %d and %d.",
					 jobs[i].key, e->index + 1, i + 1);
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
				bad_flow("\"depends_on\" of job \"%s\" holds a non-string.", jobs[i].key);
			key = pnstrdup(elem.val.string.val, elem.val.string.len);
			e = strlen(key) <= TASKQ_MAX_FLOW_KEY ?
				hash_search(keys, key, HASH_FIND, NULL) : NULL;
			if (e == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid flow"),
						 errdetail("Job \"%s\" depends on key \"%s\", which no job of the flow has.",
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
				 errmsg("invalid flow"),
				 errdetail("The dependencies form a cycle; jobs on or behind it: %s.", cycle.data)));
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
		bad_flow("The flow is not a JSON object.");

	it = TaskqJsonKeys(&flow->root);
	while (TaskqJsonKeyNext(&it, &key, &val))
	{
		if (strcmp(key, "flow_id") == 0)
		{
			if (val.type == jbvNull)
				continue;
			/* as the push option flow_id */
			flow_id = TaskqOptionText("flow_id", &val, TASKQ_MAX_FLOW_ID);
		}
		else if (strcmp(key, "jobs") == 0)
		{
			if (val.type != jbvBinary || !JsonContainerIsArray(val.val.binary.data))
				bad_flow("\"jobs\" is not an array.");
			jobsval = palloc(sizeof(JsonbValue));
			*jobsval = val;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid flow"),
					 errdetail("The flow has an unrecognized key \"%s\".", key),
					 errhint("Valid keys are: flow_id, jobs.")));
	}
	if (jobsval == NULL || JsonContainerSize(jobsval->val.binary.data) == 0)
		bad_flow("\"jobs\" lists no job.");
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
			TaskqJsonbKey(&jobs[j].options->root, "flow_id");

		if (own != NULL && flow_id == NULL)
			bad_flow("Job \"%s\" sets a flow_id; set it on the flow instead.", jobs[j].key);
		if (own != NULL && !(own->type == jbvString &&
							 own->val.string.len == VARSIZE_ANY_EXHDR(flow_id) &&
							 memcmp(own->val.string.val, VARDATA_ANY(flow_id),
									own->val.string.len) == 0))
			bad_flow("Job \"%s\" sets a flow_id other than the flow's.", jobs[j].key);
	}

	if (flow_id == NULL)
	{
		pg_uuid_t	fid;

		TaskqUuid7(&fid);
		flow_id = cstring_to_text(TaskqUuidText(UUIDPGetDatum(&fid)));
	}
	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	TaskqJsonbPushKey(&st, "flow_id", TaskqStringJsonb(flow_id));
	flow_overlay = JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));

	TaskqSwitchToOwner(&cxt);
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
	TaskqSwitchBack(&cxt);

	st = NULL;
	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	TaskqJsonbPushKey(&st, "flow_id", TaskqStringJsonb(flow_id));
	{
		JsonbValue	key;

		key.type = jbvString;
		key.val.string.val = "ids";
		key.val.string.len = 3;
		(void) pushJsonbValue(&st, WJB_KEY, &key);
		(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		for (int j = 0; j < n; j++)
			TaskqJsonbPushString(&st, jobs[j].key, TaskqUuidText(UUIDPGetDatum(&jobs[j].id)));
		(void) pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	}
	result = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}
