/*-------------------------------------------------------------------------
 *
 * options.c
 *		Parsing and validation of the jsonb options of taskq.push and
 *		taskq.create_queue / taskq.alter_queue.
 *
 * Options are strict: an unknown key is an error, so a typo never passes
 * unnoticed, and each value is checked for its JSON type and range.  All
 * errors are SQLSTATE 22023 (invalid_parameter_value) and name the option,
 * except size limits, which are 54000 (program_limit_exceeded).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "taskq.h"

/* ten years: the longest delay or retention an option accepts, in ms */
#define TASKQ_MAX_INTERVAL_MS	(INT64CONST(10) * 366 * 24 * 3600 * 1000)

/*
 * The JSON type of a value, as named in error details.
 */
static const char *
json_type_name(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "an array";
	}
}

/*
 * Error for an option value of the wrong type or out of range.
 */
static void
bad_option(const char *option, const char *expected, const JsonbValue *v)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for option \"%s\"", option),
			 errdetail("Expected %s, got %s.", expected, json_type_name(v))));
}

/*
 * An integer option within [min, max].
 */
static int64
option_integer(const char *option, const JsonbValue *v, int64 min, int64 max)
{
	char	   *s;
	char	   *dot;
	char	   *end;
	int64		result;

	if (v->type != jbvNumeric)
		bad_option(option, "an integer", v);

	s = DatumGetCString(DirectFunctionCall1(numeric_out,
											NumericGetDatum(v->val.numeric)));
	/* numeric_out never uses exponents; "5.00" is integral, "5.5" is not */
	dot = strchr(s, '.');
	if (dot)
	{
		for (char *p = dot + 1; *p; p++)
			if (*p != '0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\"", option),
						 errdetail("Expected an integer, got %s.", s)));
		*dot = '\0';
	}
	errno = 0;
	result = strtoi64(s, &end, 10);
	if (errno != 0 || *end != '\0' || result < min || result > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value %s of option \"%s\" is out of range", s, option),
				 errdetail("Valid values are between " INT64_FORMAT " and " INT64_FORMAT ".",
						   min, max)));
	return result;
}

/*
 * A string option of 1 to maxbytes bytes.
 */
text *
TaskqOptionText(const char *option, const JsonbValue *v, int maxbytes)
{
	if (v->type != jbvString)
		bad_option(option, "a string", v);
	if (v->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must not be empty", option)));
	if (v->val.string.len > maxbytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("option \"%s\" is too long", option),
				 errdetail("The value is %d bytes; the limit is %d bytes.",
						   v->val.string.len, maxbytes)));
	return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
}

/*
 * Start iterating over the keys of a JSON object container; see
 * TaskqJsonKeyNext.
 */
JsonbIterator *
TaskqJsonKeys(JsonbContainer *object)
{
	JsonbIterator *it = JsonbIteratorInit(object);
	JsonbValue	tok;

	(void) JsonbIteratorNext(&it, &tok, true);	/* WJB_BEGIN_OBJECT */
	return it;
}

/*
 * Next key and value of an object; false at the end.  Nested containers
 * come back as jbvBinary.  The key is returned as a palloc'd C string.
 */
bool
TaskqJsonKeyNext(JsonbIterator **it, char **key, JsonbValue *val)
{
	JsonbValue	k;
	JsonbIteratorToken r;

	while ((r = JsonbIteratorNext(it, &k, true)) != WJB_DONE)
	{
		if (r == WJB_KEY)
		{
			*key = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(it, val, true);	/* WJB_VALUE */
			return true;
		}
	}
	return false;
}

/*
 * Start iterating over the keys of an options object; errors when the
 * value is not an object.
 */
static JsonbIterator *
option_object(const char *what, const JsonbValue *v)
{
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		bad_option(what, "an object", v);
	return TaskqJsonKeys(v->val.binary.data);
}

/*
 * Error for a key that is not a known option: message and hint are whole
 * (translatable) messages with a %s for the key and the valid keys.
 */
#define unknown_option(message, key, hint, valid) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg(message, key), \
			 errhint(hint, valid)))

/*
 * Start iterating over a whole options argument; NULL when it is SQL NULL
 * or JSON null, which mean no options.
 * what names the argument in the error when it is not an object.
 */
static JsonbIterator *
options_begin(Jsonb *options, const char *what)
{
	JsonbValue	root;

	if (options == NULL ||
		(JB_ROOT_IS_SCALAR(options) &&
		 getIthJsonbValueFromContainer(&options->root, 0)->type == jbvNull))
		return NULL;
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", what)));
	root.type = jbvBinary;
	root.val.binary.data = &options->root;
	root.val.binary.len = VARSIZE(options) - VARHDRSZ;
	return option_object(what, &root);
}

/*
 * Validate a backoff object and return it as jsonb.  Keys left out are
 * taken from the queue's policy when the job is pushed.
 */
static Jsonb *
parse_backoff(const char *option, const JsonbValue *v)
{
	JsonbIterator *it = option_object(option, v);
	char	   *key;
	JsonbValue	val;

	while (TaskqJsonKeyNext(&it, &key, &val))
	{
		if (strcmp(key, "type") == 0)
		{
			if (val.type != jbvString)
				bad_option("backoff.type", "\"fixed\", \"linear\" or \"exponential\"", &val);
			if (!((val.val.string.len == 5 && strncmp(val.val.string.val, "fixed", 5) == 0) ||
				  (val.val.string.len == 6 && strncmp(val.val.string.val, "linear", 6) == 0) ||
				  (val.val.string.len == 11 && strncmp(val.val.string.val, "exponential", 11) == 0)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid backoff type \"%.*s\"",
								val.val.string.len, val.val.string.val),
						 errhint("Valid types are: fixed, linear, exponential.")));
		}
		else if (strcmp(key, "delay_ms") == 0)
			(void) option_integer("backoff.delay_ms", &val, 0, TASKQ_MAX_INTERVAL_MS);
		else if (strcmp(key, "max_delay_ms") == 0)
			(void) option_integer("backoff.max_delay_ms", &val, 0, TASKQ_MAX_INTERVAL_MS);
		else if (strcmp(key, "jitter") == 0)
		{
			if (val.type != jbvBool)
				bad_option("backoff.jitter", "a boolean", &val);
		}
		else
			unknown_option("unrecognized backoff option \"%s\"", key,
						   "Valid backoff options are: %s.",
						   "type, delay_ms, max_delay_ms, jitter");
	}
	return JsonbValueToJsonb((JsonbValue *) v);
}

/*
 * Parse depends_on: an array of job ids, at most TASKQ_MAX_PARENTS of them;
 * duplicates are dropped.
 */
static void
parse_depends_on(const JsonbValue *v, TaskqJobOptions *opts)
{
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken r;
	int			n;

	if (v->type == jbvNull)
		return;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		bad_option("depends_on", "an array of job ids", v);
	n = JsonContainerSize(v->val.binary.data);
	if (n > TASKQ_MAX_PARENTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("option \"depends_on\" lists too many jobs"),
				 errdetail("It lists %d jobs; the limit is %d.", n, TASKQ_MAX_PARENTS)));
	opts->depends_on = palloc(sizeof(pg_uuid_t) * Max(n, 1));
	opts->ndepends = 0;

	it = JsonbIteratorInit(v->val.binary.data);
	while ((r = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		pg_uuid_t  *id;
		bool		dup = false;

		if (r != WJB_ELEM)
			continue;
		if (elem.type != jbvString)
			bad_option("depends_on", "an array of job ids", &elem);
		id = DatumGetUUIDP(DirectFunctionCall1(uuid_in,
											   CStringGetDatum(pnstrdup(elem.val.string.val,
																		elem.val.string.len))));
		for (int i = 0; i < opts->ndepends && !dup; i++)
			dup = memcmp(&opts->depends_on[i], id, sizeof(pg_uuid_t)) == 0;
		if (!dup)
			opts->depends_on[opts->ndepends++] = *id;
	}
}

/*
 * Parse the options argument of taskq.push.
 */
void
TaskqParseJobOptions(Jsonb *options, TaskqJobOptions *opts)
{
	JsonbIterator *it;
	char	   *key;
	JsonbValue	val;

	memset(opts, 0, sizeof(*opts));
	it = options_begin(options, "job options");
	while (it != NULL && TaskqJsonKeyNext(&it, &key, &val))
	{
		if (strcmp(key, "metadata") == 0)
		{
			if (val.type == jbvNull)
				continue;
			if (val.type != jbvBinary || !JsonContainerIsObject(val.val.binary.data))
				bad_option("metadata", "an object", &val);
			opts->metadata = JsonbValueToJsonb(&val);
			if (TaskqJsonbSize(opts->metadata) > TASKQ_MAX_METADATA)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("job metadata is too large"),
						 errdetail("The metadata is %d bytes; the limit is %d bytes (64 kB).",
								   TaskqJsonbSize(opts->metadata), TASKQ_MAX_METADATA)));
		}
		else if (strcmp(key, "priority") == 0)
			opts->priority = (int32) option_integer("priority", &val, PG_INT32_MIN, PG_INT32_MAX);
		else if (strcmp(key, "delay_ms") == 0 || strcmp(key, "run_at") == 0)
		{
			if (opts->has_run_at)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options \"delay_ms\" and \"run_at\" cannot be used together")));
			opts->has_run_at = true;
			if (key[0] == 'd')
			{
				int64		ms = option_integer("delay_ms", &val, 0, TASKQ_MAX_INTERVAL_MS);

				opts->run_at = GetCurrentTransactionStartTimestamp() + ms * 1000;
			}
			else
			{
				char	   *s;

				if (val.type != jbvString)
					bad_option("run_at", "a timestamp string", &val);
				s = pnstrdup(val.val.string.val, val.val.string.len);
				opts->run_at = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
																	   CStringGetDatum(s),
																	   ObjectIdGetDatum(InvalidOid),
																	   Int32GetDatum(-1)));
				if (TIMESTAMP_NOT_FINITE(opts->run_at))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option \"run_at\" must be a finite timestamp")));
			}
		}
		else if (strcmp(key, "timeout_ms") == 0)
		{
			opts->has_timeout = true;
			opts->timeout_ms = (int32) option_integer("timeout_ms", &val, 1, PG_INT32_MAX);
		}
		else if (strcmp(key, "max_attempts") == 0)
		{
			opts->has_max_attempts = true;
			opts->max_attempts = (int32) option_integer("max_attempts", &val, 1, TASKQ_MAX_MAX_ATTEMPTS);
		}
		else if (strcmp(key, "backoff") == 0)
			opts->backoff = parse_backoff("backoff", &val);
		else if (strcmp(key, "unique_key") == 0)
			opts->unique_key = TaskqOptionText("unique_key", &val, TASKQ_MAX_UNIQUE_KEY);
		else if (strcmp(key, "flow_id") == 0)
			opts->flow_id = TaskqOptionText("flow_id", &val, TASKQ_MAX_FLOW_ID);
		else if (strcmp(key, "depends_on") == 0)
			parse_depends_on(&val, opts);
		else if (strcmp(key, "group") == 0)
		{
			if (val.type != jbvNull)
				opts->group_key = TaskqOptionText("group", &val, TASKQ_MAX_GROUP_KEY);
		}
		else
			unknown_option("unrecognized option \"%s\"", key,
						   "Valid options are: %s.",
						   "metadata, priority, delay_ms, run_at, timeout_ms, max_attempts, backoff, unique_key, flow_id, depends_on, group");
	}
}

/* a concurrency limit: an integer of at least 1, or null (none: 0) */
static int32
option_limit(const char *option, const JsonbValue *v)
{
	if (v->type == jbvNull)
		return 0;
	return (int32) option_integer(option, v, 1, PG_INT32_MAX);
}

/*
 * A rate limit: {"limit": N, "period_ms": P}, both required, or null (no
 * limit: *limit 0).
 */
static void
parse_rate_limit(const char *option, const JsonbValue *v, int32 *limit, int32 *period_ms)
{
	JsonbIterator *it;
	char	   *key;
	JsonbValue	val;
	char		name[64];

	*limit = 0;
	*period_ms = 0;
	if (v->type == jbvNull)
		return;
	it = option_object(option, v);
	while (TaskqJsonKeyNext(&it, &key, &val))
	{
		if (strcmp(key, "limit") == 0)
		{
			snprintf(name, sizeof(name), "%s.limit", option);
			*limit = (int32) option_integer(name, &val, 1, PG_INT32_MAX);
		}
		else if (strcmp(key, "period_ms") == 0)
		{
			snprintf(name, sizeof(name), "%s.period_ms", option);
			*period_ms = (int32) option_integer(name, &val, 1, PG_INT32_MAX);
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized key \"%s\" in option \"%s\"", key, option),
					 errhint("Valid keys are limit and period_ms.")));
	}
	if (*limit == 0 || *period_ms == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" needs both \"limit\" and \"period_ms\"", option),
				 errhint("For example {\"%s\": {\"limit\": 100, \"period_ms\": 60000}}, or null for no limit.",
						 option)));
	if (!TaskqRateLimitsAvailable())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("option \"%s\" needs taskq in shared_preload_libraries", option),
				 errdetail("Rate limits are counted in shared memory.")));
}

/*
 * Parse the options argument of taskq.create_queue and taskq.alter_queue.
 */
void
TaskqParseQueueOptions(Jsonb *options, TaskqQueueOptions *opts)
{
	JsonbIterator *it;
	char	   *key;
	JsonbValue	val;

	memset(opts, 0, sizeof(*opts));
	it = options_begin(options, "queue options");
	while (it != NULL && TaskqJsonKeyNext(&it, &key, &val))
	{
		if (strcmp(key, "timeout_ms") == 0)
		{
			opts->has_timeout = true;
			if (val.type == jbvNull)
				opts->timeout_null = true;
			else
				opts->timeout_ms = (int32) option_integer("timeout_ms", &val, 1, PG_INT32_MAX);
		}
		else if (strcmp(key, "max_attempts") == 0)
		{
			opts->has_max_attempts = true;
			opts->max_attempts = (int32) option_integer("max_attempts", &val, 1, TASKQ_MAX_MAX_ATTEMPTS);
		}
		else if (strcmp(key, "backoff") == 0)
			opts->backoff = parse_backoff("backoff", &val);
		else if (strcmp(key, "retention") == 0)
		{
			JsonbIterator *rit = option_object("retention", &val);
			char	   *rkey;
			JsonbValue	rval;

			while (TaskqJsonKeyNext(&rit, &rkey, &rval))
			{
				if (strcmp(rkey, "completed_ms") == 0)
				{
					opts->has_completed_retention = true;
					opts->completed_retention_ms = option_integer("retention.completed_ms", &rval, 0, TASKQ_MAX_INTERVAL_MS);
				}
				else if (strcmp(rkey, "cancelled_ms") == 0)
				{
					opts->has_cancelled_retention = true;
					opts->cancelled_retention_ms = option_integer("retention.cancelled_ms", &rval, 0, TASKQ_MAX_INTERVAL_MS);
				}
				else if (strcmp(rkey, "dlq_ms") == 0)
				{
					opts->has_dlq_retention = true;
					opts->dlq_retention_ms = option_integer("retention.dlq_ms", &rval, 0, TASKQ_MAX_INTERVAL_MS);
				}
				else
					unknown_option("unrecognized retention option \"%s\"", rkey,
								   "Valid retention options are: %s.",
								   "completed_ms, cancelled_ms, dlq_ms");
			}
		}
		else if (strcmp(key, "notify_events") == 0)
		{
			if (val.type != jbvBool)
				bad_option("notify_events", "a boolean", &val);
			opts->has_notify_events = true;
			opts->notify_events = val.val.boolean;
		}
		else if (strcmp(key, "concurrency") == 0)
		{
			opts->has_concurrency = true;
			opts->concurrency = option_limit("concurrency", &val);
		}
		else if (strcmp(key, "group_concurrency") == 0)
		{
			opts->has_group_concurrency = true;
			opts->group_concurrency = option_limit("group_concurrency", &val);
		}
		else if (strcmp(key, "fairness") == 0)
		{
			if (val.type != jbvString)
				bad_option("fairness", "a string", &val);
			if (val.val.string.len == 8 && strncmp(val.val.string.val, "priority", 8) == 0)
				opts->fairness = "priority";
			else if (val.val.string.len == 11 &&
					 strncmp(val.val.string.val, "round_robin", 11) == 0)
				opts->fairness = "round_robin";
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"fairness\": \"%.*s\"",
								val.val.string.len, val.val.string.val),
						 errhint("Valid values are \"priority\" and \"round_robin\".")));
		}
		else if (strcmp(key, "priority_aging_ms") == 0)
		{
			opts->has_priority_aging = true;
			opts->priority_aging_ms = (int32) option_integer("priority_aging_ms", &val, 0, PG_INT32_MAX);
		}
		else if (strcmp(key, "rate_limit") == 0)
		{
			opts->has_rate_limit = true;
			parse_rate_limit("rate_limit", &val, &opts->rate_limit, &opts->rate_period_ms);
		}
		else if (strcmp(key, "group_rate_limit") == 0)
		{
			opts->has_group_rate_limit = true;
			parse_rate_limit("group_rate_limit", &val, &opts->group_rate_limit,
							 &opts->group_rate_period_ms);
		}
		else
			unknown_option("unrecognized queue option \"%s\"", key,
						   "Valid queue options are: %s.",
						   "timeout_ms, max_attempts, backoff, retention, notify_events, concurrency, group_concurrency, rate_limit, group_rate_limit, fairness, priority_aging_ms");
	}
}

/*
 * A job name is 1 to TASKQ_MAX_JOB_NAME bytes.
 */
void
TaskqCheckJobName(text *name)
{
	int			len = VARSIZE_ANY_EXHDR(name);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job name must not be empty")));
	if (len > TASKQ_MAX_JOB_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("job name is too long"),
				 errdetail("The name is %d bytes; the limit is %d bytes.",
						   len, TASKQ_MAX_JOB_NAME)));
}

/*
 * Check job data and return it; NULL or JSON null data becomes {}.  Data
 * that taskq builds itself (replies) is exempt from the size limit.
 */
Jsonb *
TaskqCheckJobData(Jsonb *data, bool limit_size)
{
	if (data == NULL || (JB_ROOT_IS_SCALAR(data) &&
						 JB_ROOT_COUNT(data) == 1 &&
						 getIthJsonbValueFromContainer(&data->root, 0)->type == jbvNull))
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	if (!JB_ROOT_IS_OBJECT(data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job data must be a JSON object"),
				 errhint("Wrap other values in an object, as in {\"value\": ...}.")));
	if (limit_size && TaskqJsonbSize(data) > TASKQ_MAX_DATA)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("job data is too large"),
				 errdetail("The data is %d bytes; the limit is %d bytes (1 MB).",
						   TaskqJsonbSize(data), TASKQ_MAX_DATA)));
	return data;
}

/* error for malformed entry n of metadata.follow_ups: detail says what */
#define bad_follow_up(n, ...) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg("invalid follow-up %d in metadata.follow_ups", (n)), \
			 errdetail(__VA_ARGS__), \
			 errhint("A follow-up is an object with keys \"queue\", \"name\", \"data\", \"options\", \"metadata\" and \"flow_id\".")))

/*
 * Read follow-up number n (1-based) of metadata.follow_ups, checking its
 * shape and options.
 */
void
TaskqReadFollowUp(int n, JsonbValue *v, TaskqFollowUp *fu)
{
	JsonbIterator *it;
	JsonbValue	val;
	char	   *key;

	memset(fu, 0, sizeof(*fu));
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		bad_follow_up(n, "It is not an object.");

	it = TaskqJsonKeys(v->val.binary.data);
	while (TaskqJsonKeyNext(&it, &key, &val))
	{
		if (strcmp(key, "queue") == 0 || strcmp(key, "name") == 0)
		{
			if (val.type != jbvString)
				bad_follow_up(n, "\"%s\" is not a string.", key);
			if (key[0] == 'q')
				fu->queue = TaskqJbvText(&val);
			else
				fu->name = TaskqJbvText(&val);
		}
		else if (strcmp(key, "flow_id") == 0)
		{
			if (val.type != jbvNull)
				fu->flow_id = TaskqOptionText("flow_id", &val, TASKQ_MAX_FLOW_ID);
		}
		else if (strcmp(key, "data") == 0 || strcmp(key, "options") == 0 ||
				 strcmp(key, "metadata") == 0)
		{
			Jsonb	   *jb = TaskqJbvJsonb(&val);

			if (jb != NULL && !JB_ROOT_IS_OBJECT(jb))
				bad_follow_up(n, "\"%s\" is not an object.", key);
			if (key[0] == 'd')
				fu->data = jb;
			else if (key[0] == 'o')
				fu->options = jb;
			else
				fu->metadata = jb;
		}
		else
			bad_follow_up(n, "It has an unrecognized key \"%s\".", key);
	}
	if (fu->queue == NULL || fu->name == NULL)
		bad_follow_up(n, "\"queue\" and \"name\" are required.");
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
 * job).  Runs inside TaskqSwitchToOwner when privileges is set.  Returns whether
 * there are follow-ups.
 */
bool
TaskqCheckMetadata(Jsonb *metadata, bool privileges)
{
	JsonbValue *v;
	int			n = 0;

	if (metadata == NULL)
		return false;

	v = TaskqJsonbKey(&metadata->root, "follow_ups");
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
			TaskqFollowUp	fu;
			TaskqJobOptions opts;

			if (r != WJB_ELEM)
				continue;
			TaskqReadFollowUp(++n, &elem, &fu);
			if (privileges)
				TaskqRequireQueuePrivilege(text_to_cstring(fu.queue), TASKQ_PRIV_PUSH);
			TaskqParseJobOptions(fu.options, &opts);
			(void) TaskqCheckMetadata(fu.metadata != NULL ? fu.metadata : opts.metadata,
									  privileges);
		}
	}

	v = TaskqJsonbKey(&metadata->root, "reply_to");
	if (v != NULL && v->type != jbvNull)
	{
		if (v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("metadata.reply_to must be a queue name")));
		TaskqCheckQueueName(TaskqJbvText(v));
		if (privileges)
			TaskqRequireQueuePrivilege(text_to_cstring(TaskqJbvText(v)), TASKQ_PRIV_PUSH);
	}
	return n > 0;
}
