/*-------------------------------------------------------------------------
 *
 * dagfinish.c
 *		What happens when a job finishes: its children are promoted or
 *		cascaded to (dag.c), its follow-ups pushed and its reply sent.
 *
 * A job finishes by moving into taskq.finished_jobs (completed, cancelled)
 * or taskq.dead_jobs, always with a statement of TaskqMoveSql, whose last
 * column names the moved jobs that have children, unfinished parents,
 * follow-ups or a reply_to; TaskqExecute hands those to TaskqFinishMoved
 * as soon as the statement ends.  Then, in the same transaction:
 *
 *	completed	children are promoted; metadata.follow_ups are pushed as
 *				children of the job; a result message goes to
 *				metadata.reply_to;
 *	dlq			blocked descendants move to the DLQ, an error message goes
 *				to metadata.reply_to;
 *	cancelled	blocked descendants are cancelled.
 *
 * Only rows that taskq's own statements move have these consequences, so
 * a pg_restore of the tables neither promotes, cascades nor pushes
 * anything twice.
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "taskq.h"

/* the keys of a job's metadata that its follow-ups do not inherit */
static const char *const not_inherited[] = {
	"follow_ups", "reply_to", "correlation_id", "engine"
};

/*
 * Push the follow-ups of a completed job, each as a child of the job, with
 * the job's flow_id and metadata (without not_inherited) unless it gives
 * its own.
 */
static void
push_follow_ups(pg_uuid_t *parent, Jsonb *metadata, text *flow_id)
{
	JsonbValue *v = TaskqJsonbKey(&metadata->root, "follow_ups");
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken r;
	Jsonb	   *inherited;
	int			n = 0;

	if (v == NULL || v->type != jbvBinary)
		return;
	/*
	 * What a follow-up inherits: the job's metadata without follow_ups and
	 * without what addresses the job itself (its reply, its correlation, the
	 * engine that ran it), which a follow-up has only when it names them.
	 */
	inherited = metadata;
	for (int k = 0; k < lengthof(not_inherited); k++)
		inherited = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete,
													   JsonbPGetDatum(inherited),
													   CStringGetTextDatum(not_inherited[k])));

	it = JsonbIteratorInit(v->val.binary.data);
	while ((r = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		TaskqFollowUp	fu;
		JsonbParseState *st = NULL;
		Jsonb	   *overlay;
		Jsonb	   *options;
		text	   *fu_flow;
		pg_uuid_t	id;

		if (r != WJB_ELEM)
			continue;
		TaskqReadFollowUp(++n, &elem, &fu);

		/* metadata and flow_id: the follow-up's, else its options', else ours */
		(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		if (fu.metadata != NULL)
			TaskqJsonbPushKey(&st, "metadata", fu.metadata);
		else if (fu.options == NULL || TaskqJsonbKey(&fu.options->root, "metadata") == NULL)
			TaskqJsonbPushKey(&st, "metadata", inherited);
		fu_flow = fu.flow_id;
		if (fu_flow == NULL &&
			(fu.options == NULL || TaskqJsonbKey(&fu.options->root, "flow_id") == NULL))
			fu_flow = flow_id;
		if (fu_flow != NULL)
			TaskqJsonbPushKey(&st, "flow_id", TaskqStringJsonb(fu_flow));
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
	JsonbValue *reply_to = TaskqJsonbKey(&metadata->root, "reply_to");
	JsonbValue *correlation = TaskqJsonbKey(&metadata->root, "correlation_id");
	JsonbParseState *st = NULL;
	Jsonb	   *data;
	pg_uuid_t	reply_id;

	if (reply_to == NULL || reply_to->type != jbvString)
		return;

	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	TaskqJsonbPushString(&st, "job_id", TaskqUuidText(id));
	TaskqJsonbPushKey(&st, "name", TaskqStringJsonb(name));
	if (ok)
		TaskqJsonbPushKey(&st, "result", result);
	else
		TaskqJsonbPushKey(&st, "error", error ? TaskqStringJsonb(error) : NULL);
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

	TaskqPushJob(PointerGetDatum(TaskqJbvText(reply_to)), name, data, NULL,
				 NULL, 0, true, &reply_id);
}

/* the columns of finished_row_plan */
enum
{
	FIN_NAME = 1, FIN_STATE, FIN_HAS_CHILDREN, FIN_METADATA, FIN_FLOW_ID,
	FIN_RESULT, FIN_ERROR, FIN_PENDING_PARENTS
};

/* a job that has just moved, from whichever table it moved to */
static TaskqPlan finished_row_plan = {
	"SELECT name, state::text, has_children, metadata, flow_id, result, error,"
	" pending_parents FROM taskq.finished_jobs WHERE id = $1"
	" UNION ALL SELECT name, state::text, has_children, metadata, flow_id,"
	" result, error, pending_parents FROM taskq.dead_jobs WHERE id = $1",
	1, {UUIDOID}
};

/* a column of the row finished_row_plan found */
static Datum
finished_column(int column, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column,
						 isnull);
}

/*
 * What follows the move of one job into finished_jobs or dead_jobs: its
 * children, follow-ups and reply.  Runs inside SPI_connect.
 */
static void
job_finished(Datum id)
{
	bool		isnull;
	Datum		value;
	text	   *name;
	char	   *state;
	bool		has_children;
	Jsonb	   *metadata;
	text	   *flow_id;

	if (TaskqExecute(&finished_row_plan, &id, NULL, false, 1) == 0)
		return;
	name = DatumGetTextPP(finished_column(FIN_NAME, &isnull));
	state = TextDatumGetCString(finished_column(FIN_STATE, &isnull));
	has_children = DatumGetBool(finished_column(FIN_HAS_CHILDREN, &isnull));
	value = finished_column(FIN_METADATA, &isnull);
	metadata = isnull ? NULL : DatumGetJsonbP(value);
	value = finished_column(FIN_FLOW_ID, &isnull);
	flow_id = isnull ? NULL : DatumGetTextPP(value);

	if (strcmp(state, "completed") == 0)
	{
		value = finished_column(FIN_RESULT, &isnull);
		if (has_children)
			TaskqPromoteChildren(id);
		if (metadata != NULL)
		{
			Jsonb	   *result = isnull ? NULL : DatumGetJsonbP(value);

			push_follow_ups(DatumGetUUIDP(id), metadata, flow_id);
			push_reply(id, name, metadata, true, result, NULL);
		}
	}
	else
	{
		bool		dead = strcmp(state, "dlq") == 0;
		text	   *error;

		value = finished_column(FIN_ERROR, &isnull);
		error = isnull ? NULL : DatumGetTextPP(value);
		/* a blocked job that gave up waits for its parents no more */
		if (DatumGetInt32(finished_column(FIN_PENDING_PARENTS, &isnull)) > 0)
			TaskqDropChildEdges(id);
		if (has_children)
			TaskqCascade(id, name, dead);
		if (dead && metadata != NULL)
			push_reply(id, name, metadata, false, NULL, error);
	}
}

/*
 * After a statement of TaskqMoveSql into finished_jobs or dead_jobs: the
 * jobs whose move has consequences (their id in the statement's column
 * TASKQ_FINISH_COLUMN; NULL for the others) get them now, in the
 * order they moved, before the caller goes on.  This was an AFTER INSERT
 * row trigger with a WHEN clause, which fired at the same point; but every
 * statement that inserted into the tables parsed and set up the WHEN
 * clause again, a fifth of the worker loop's time (test/bench/README.md).
 * Rows that a restore or a hand-written INSERT puts into the tables have
 * no consequences, as before.  SPI_tuptable and SPI_processed are the
 * statement's again when this returns.
 */
void
TaskqFinishMoved(void)
{
	SPITupleTable *moved = SPI_tuptable;
	uint64		n = SPI_processed;
	int			col = SPI_fnumber(moved->tupdesc, TASKQ_FINISH_COLUMN);
	Datum	   *ids = NULL;
	int			nids = 0;

	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(moved->vals[i], moved->tupdesc, col, &isnull);

		if (isnull)
			continue;
		if (ids == NULL)
			ids = palloc(sizeof(Datum) * n);
		ids[nids++] = id;
	}
	if (nids == 0)
		return;

	SPI_connect();
	for (int i = 0; i < nids; i++)
		job_finished(ids[i]);
	SPI_finish();
}

/* from _PG_init: TaskqExecute hands moves to TaskqFinishMoved */
void
TaskqDagFinishInit(void)
{
	taskq_moved_hook = TaskqFinishMoved;
}
