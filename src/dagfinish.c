/*-------------------------------------------------------------------------
 *
 * dagfinish.c
 *		What happens when a job finishes: the trigger on finished_jobs and
 *		dead_jobs, which promotes or cascades to the job's children
 *		(dag.c), pushes its follow-ups and sends its reply.
 *
 * A job finishes by moving into taskq.finished_jobs (completed, cancelled)
 * or taskq.dead_jobs; an AFTER INSERT trigger on each runs
 * taskq_job_finished, with a WHEN clause so that jobs without children,
 * follow-ups or reply_to never call it.  Then, in the same transaction:
 *
 *	completed	children are promoted; metadata.follow_ups are pushed as
 *				children of the job; a result message goes to
 *				metadata.reply_to;
 *	dlq			blocked descendants move to the DLQ, an error message goes
 *				to metadata.reply_to;
 *	cancelled	blocked descendants are cancelled.
 *
 * The trigger acts only on rows that taskq's own statements move
 * (taskq_statement_depth), so a pg_restore of the tables neither promotes,
 * cascades nor pushes anything twice.
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
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
 * Trigger function taskq._job_finished(): AFTER INSERT FOR EACH ROW on
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
				 errmsg("taskq._job_finished() must be an AFTER INSERT row trigger")));

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
			TaskqPromoteChildren(id);
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
			TaskqDropChildEdges(id);
		if (has_children)
			TaskqCascade(id, name, dead);
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
