/*-------------------------------------------------------------------------
 *
 * backoff.c
 *		Backoff policies: the delay before a failed job's retry.
 *
 * A policy is a jsonb object {"type", "delay_ms", "max_delay_ms",
 * "jitter"} (validated by options.c); keys left out take the built-in
 * values, and a job with the built-in policy stores NULL for it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "taskq.h"

/* the built-in backoff policy, also the column default of taskq.queues */
#define DEFAULT_BACKOFF_DELAY_MS	1000
#define DEFAULT_BACKOFF_MAX_MS		3600000

/*
 * A backoff policy with the keys of over replacing those of base.
 */
Jsonb *
TaskqMergeBackoff(Jsonb *base, Jsonb *over)
{
	if (over == NULL)
		return base;
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
											  JsonbPGetDatum(base),
											  JsonbPGetDatum(over)));
}

/* an integer key of a stored backoff policy, or its default */
static int64
backoff_key(Jsonb *backoff, const char *key, int64 dflt)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&backoff->root, key,
												 strlen(key), NULL);

	if (v == NULL || v->type != jbvNumeric)
		return dflt;
	return DatumGetInt64(DirectFunctionCall1(numeric_int8,
											 NumericGetDatum(v->val.numeric)));
}

/*
 * The policy a stored backoff object describes; keys left out (or a NULL
 * object: the column of a job with the built-in policy) take the built-in
 * values.
 */
static TaskqBackoffType
backoff_policy(Jsonb *backoff, double *delay, double *cap, bool *jitter)
{
	JsonbValue *type;
	JsonbValue *jit;
	TaskqBackoffType kind = TASKQ_BACKOFF_EXPONENTIAL;

	*delay = DEFAULT_BACKOFF_DELAY_MS;
	*cap = DEFAULT_BACKOFF_MAX_MS;
	*jitter = false;
	if (backoff == NULL)
		return kind;
	type = getKeyJsonValueFromContainer(&backoff->root, "type", 4, NULL);
	jit = getKeyJsonValueFromContainer(&backoff->root, "jitter", 6, NULL);
	*delay = (double) backoff_key(backoff, "delay_ms", DEFAULT_BACKOFF_DELAY_MS);
	*cap = (double) backoff_key(backoff, "max_delay_ms", DEFAULT_BACKOFF_MAX_MS);
	*jitter = jit != NULL && jit->type == jbvBool && jit->val.boolean;
	if (type != NULL && type->type == jbvString)
	{
		if (type->val.string.len == 5 &&
			strncmp(type->val.string.val, "fixed", 5) == 0)
			kind = TASKQ_BACKOFF_FIXED;
		else if (type->val.string.len == 6 &&
				 strncmp(type->val.string.val, "linear", 6) == 0)
			kind = TASKQ_BACKOFF_LINEAR;
	}
	return kind;
}

/*
 * Whether a backoff object is the built-in policy.  A job stores NULL for
 * it rather than the same ~100 bytes in every row.
 */
bool
TaskqBackoffIsDefault(Jsonb *backoff)
{
	double		delay;
	double		cap;
	bool		jitter;

	return backoff_policy(backoff, &delay, &cap, &jitter) == TASKQ_BACKOFF_EXPONENTIAL &&
		delay == DEFAULT_BACKOFF_DELAY_MS && cap == DEFAULT_BACKOFF_MAX_MS && !jitter;
}

/*
 * The delay in ms before the retry that follows failed attempt number
 * attempt (1-based): fixed d, linear d * attempt, exponential
 * d * 2^(attempt - 1), capped at max_delay_ms; with jitter, a uniformly
 * random delay between half of that and all of it.
 */
int64
TaskqBackoffDelay(Jsonb *backoff, int32 attempt)
{
	double		d;
	double		cap;
	bool		jitter;
	TaskqBackoffType kind = backoff_policy(backoff, &d, &cap, &jitter);

	if (attempt < 1)
		attempt = 1;
	if (kind == TASKQ_BACKOFF_LINEAR)
		d *= attempt;
	else if (kind == TASKQ_BACKOFF_EXPONENTIAL)
		d *= pow(2.0, Min(attempt - 1, 1000));
	if (d > cap)
		d = cap;
	if (jitter)
		d = d / 2.0 + pg_prng_double(&pg_global_prng_state) * (d / 2.0);
	return (int64) d;
}
