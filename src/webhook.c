/*-------------------------------------------------------------------------
 *
 * webhook.c
 *		Webhook registration: taskq.add_webhook, taskq.remove_webhook and
 *		taskq.redeliver.  Delivery is in delivery.c, the outbox in events.c.
 *
 * A webhook names a URL, the events it wants, optionally the queues, and
 * a signing secret.  Without a secret, one is generated in the Standard
 * Webhooks form "whsec_<base64 of 24 random bytes>" and shown by
 * taskq.webhooks() to the webhook's owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "miscadmin.h"

#include "taskq.h"

static const char *const event_names[] = {
	"job.pushed", "job.completed", "job.failed", "job.dlq", "job.cancelled",
	"job.progress", "job.redriven"
};

static TaskqPlan insert_plan = {
	"INSERT INTO taskq.webhooks (id, url, events, queues, secret, max_attempts,"
	" base_delay_ms, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
	8, {UUIDOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID, INT4OID, INT4OID,
	REGROLEOID}
};
static TaskqPlan remove_plan = {
	"WITH d AS (DELETE FROM taskq.webhook_deliveries WHERE webhook_id = $1)"
	" DELETE FROM taskq.webhooks WHERE id = $1",
	1, {UUIDOID}
};
static TaskqPlan webhook_owner_plan = {
	"SELECT owner::oid FROM taskq.webhooks WHERE id = $1",
	1, {UUIDOID}
};
static TaskqPlan delivery_owner_plan = {
	"SELECT w.owner::oid FROM taskq.webhook_deliveries d"
	" JOIN taskq.webhooks w ON w.id = d.webhook_id WHERE d.id = $1",
	1, {UUIDOID}
};
static TaskqPlan redeliver_plan = {
	"UPDATE taskq.webhook_deliveries SET status = 'pending', attempts = 0,"
	" next_attempt_at = now(), last_error = NULL, last_status = NULL,"
	" delivered_at = NULL"
	" WHERE id = $1 AND status <> 'delivering'",
	1, {UUIDOID}
};

/* check that url is an absolute http or https URL */
static void
check_url(const char *url)
{
	CURLU	   *h;
	char	   *scheme = NULL;
	CURLUcode	rc;

	if (strlen(url) > TASKQ_MAX_WEBHOOK_URL)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("webhook URL is too long"),
				 errdetail("The URL is %zu bytes; the limit is %d bytes.",
						   strlen(url), TASKQ_MAX_WEBHOOK_URL)));
	h = curl_url();
	rc = curl_url_set(h, CURLUPART_URL, url, 0);

	if (rc == CURLUE_OK)
		rc = curl_url_get(h, CURLUPART_SCHEME, &scheme, 0);
	if (rc != CURLUE_OK)
	{
		curl_url_cleanup(h);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook URL \"%s\"", url),
				 errdetail("%s.", curl_url_strerror(rc))));
	}
	if (pg_strcasecmp(scheme, "http") != 0 && pg_strcasecmp(scheme, "https") != 0)
	{
		curl_free(scheme);
		curl_url_cleanup(h);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook URL \"%s\"", url),
				 errdetail("Only http and https URLs can receive webhooks.")));
	}
	curl_free(scheme);
	curl_url_cleanup(h);
}

/* check that events is a non-empty array of known event names */
static void
check_events(ArrayType *events)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(events) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook events must be a one-dimensional array")));
	deconstruct_array(events, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a webhook needs at least one event")));
	for (int i = 0; i < n; i++)
	{
		char	   *e;
		bool		known = false;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("webhook events must not be null")));
		e = TextDatumGetCString(elems[i]);
		for (int j = 0; j < lengthof(event_names) && !known; j++)
			known = strcmp(e, event_names[j]) == 0;
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized webhook event \"%s\"", e),
					 errhint("Valid events are: job.pushed, job.completed, job.failed, job.dlq, job.cancelled, job.progress, job.redriven.")));
	}
}

/* check that queues is NULL or an array of valid queue names */
static void
check_queues(ArrayType *queues)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(queues) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook queues must be a one-dimensional array")));
	deconstruct_array(queues, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook queues must not be an empty array"),
				 errhint("Pass NULL for every queue.")));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("webhook queue names must not be null")));
		TaskqCheckQueueName(DatumGetTextPP(elems[i]));
	}
}

/*
 * Check a signing secret: a Standard Webhooks "whsec_" secret must be
 * valid base64 and decode to at least TASKQ_MIN_SECRET_BYTES bytes; any
 * other secret is used as the key as it is, and must be that long itself.
 * A short key makes signatures guessable: "whsec_" alone would sign with
 * an empty key.
 */
static void
check_secret(const char *secret)
{
	int			len = strlen(secret);
	int			keylen = len;

	if (len > TASKQ_MAX_SECRET)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("webhook secret is too long"),
				 errdetail("The secret is %d bytes; the limit is %d bytes.",
						   len, TASKQ_MAX_SECRET)));
	if (strncmp(secret, "whsec_", 6) == 0)
	{
		const char *b64 = secret + 6;
		int			b64len = len - 6;
		char	   *key = palloc(pg_b64_dec_len(b64len) + 1);

		keylen = b64len == 0 ? 0 : pg_b64_decode(b64, b64len, key,
												 pg_b64_dec_len(b64len));
		if (keylen < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid webhook secret"),
					 errdetail("The part after \"whsec_\" is not valid base64.")));
	}
	if (keylen < TASKQ_MIN_SECRET_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook secret is too short"),
				 errdetail("Its signing key is %d bytes; at least %d are required.",
						   keylen, TASKQ_MIN_SECRET_BYTES),
				 errhint("Omit the secret to have one generated, or use \"whsec_\" and the base64 of at least %d random bytes.",
						 TASKQ_MIN_SECRET_BYTES)));
}

/* a fresh secret: whsec_ and the base64 of 24 random bytes */
static text *
generate_secret(void)
{
	uint8		raw[24];
	char		b64[64];
	int			len;

	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a webhook secret")));
	len = pg_b64_encode((char *) raw, sizeof(raw), b64, sizeof(b64) - 1);
	b64[len] = '\0';
	return cstring_to_text(psprintf("whsec_%s", b64));
}

/*
 * A webhook sends the events of the queues it names, or of every queue:
 * the caller needs admin on each named queue, and taskq_admin for all.
 * Runs inside TaskqSwitchToOwner.
 */
static void
require_webhook_queues(ArrayType *queues)
{
	Datum	   *names;
	bool	   *nulls;
	int			n;

	if (queues == NULL)
	{
		TaskqRequireAdmin("add a webhook for every queue");
		return;
	}
	deconstruct_array(queues, TEXTOID, -1, false, TYPALIGN_INT, &names, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			TaskqRequireQueuePrivilege(TextDatumGetCString(names[i]), TASKQ_PRIV_ADMIN);
}

/*
 * Error unless the caller owns the webhook (of the delivery) that plan
 * finds for id, or is a taskq administrator; nothing for an unknown id.
 * Runs inside TaskqSwitchToOwner.
 */
static void
require_owner(TaskqPlan *plan, Datum id, const char *action)
{
	bool		isnull;

	if (TaskqExecute(plan, &id, NULL, false, 1) == 0)
		return;
	if (DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									   1, &isnull)) != GetOuterUserId())
		TaskqRequireAdmin(action);
}

/*
 * taskq.add_webhook(url text, events text[], queues text[], secret text,
 *                   max_attempts int, base_delay_ms int) RETURNS uuid
 */
PG_FUNCTION_INFO_V1(taskq_add_webhook);
Datum
taskq_add_webhook(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	Datum		values[8];
	bool		nulls[8] = {0};
	char	   *url;
	TaskqContext cxt;
	int32		max_attempts;
	int32		base_delay_ms;

	TaskqRequireArg(fcinfo, 0, "url");
	TaskqRequireArg(fcinfo, 1, "events");
	url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_url(url);
	check_events(PG_GETARG_ARRAYTYPE_P(1));
	if (!PG_ARGISNULL(2))
		check_queues(PG_GETARG_ARRAYTYPE_P(2));
	max_attempts = PG_ARGISNULL(4) ? 4 : PG_GETARG_INT32(4);
	base_delay_ms = PG_ARGISNULL(5) ? 1000 : PG_GETARG_INT32(5);
	if (max_attempts < 1 || max_attempts > 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts must be between 1 and 100, not %d", max_attempts)));
	if (base_delay_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("base_delay_ms must not be negative")));
	if (!PG_ARGISNULL(3))
		check_secret(text_to_cstring(PG_GETARG_TEXT_PP(3)));

	TaskqUuid7(id);
	values[0] = UUIDPGetDatum(id);
	values[1] = PG_GETARG_DATUM(0);
	values[2] = PG_GETARG_DATUM(1);
	values[3] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[3] = PG_ARGISNULL(2);
	values[4] = PG_ARGISNULL(3) ? PointerGetDatum(generate_secret()) : PG_GETARG_DATUM(3);
	values[5] = Int32GetDatum(max_attempts);
	values[6] = Int32GetDatum(base_delay_ms);
	values[7] = ObjectIdGetDatum(GetOuterUserId());

	TaskqSwitchToOwner(&cxt);
	require_webhook_queues(PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2));
	/* a role's webhooks are bounded, as each costs every event a probe */
	{
		static TaskqPlan count_plan = {
			"SELECT count(*) FROM taskq.webhooks WHERE owner = $1",
			1, {REGROLEOID}
		};
		Datum		owner = ObjectIdGetDatum(GetOuterUserId());
		bool		isnull;

		TaskqExecute(&count_plan, &owner, NULL, false, 1);
		if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										1, &isnull)) >= TASKQ_MAX_WEBHOOKS_PER_ROLE)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("role \"%s\" has too many webhooks",
							GetUserNameFromId(GetOuterUserId(), false)),
					 errdetail("A role may own at most %d webhooks.",
							   TASKQ_MAX_WEBHOOKS_PER_ROLE),
					 errhint("Remove webhooks it no longer needs, or let one webhook take several queues.")));
	}
	TaskqExecute(&insert_plan, values, nulls, false, 0);
	TaskqSwitchBack(&cxt);
	TaskqSubscribersChanged();
	PG_RETURN_UUID_P(id);
}

/*
 * taskq.remove_webhook(id uuid) RETURNS boolean
 *
 * Removes the webhook and its deliveries; false for an unknown id.
 */
PG_FUNCTION_INFO_V1(taskq_remove_webhook);
Datum
taskq_remove_webhook(PG_FUNCTION_ARGS)
{
	Datum		id;
	int			n;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "webhook id");
	id = PG_GETARG_DATUM(0);
	TaskqSwitchToOwner(&cxt);
	require_owner(&webhook_owner_plan, id, "remove another role's webhook");

	/*
	 * Wait for the transactions writing deliveries to end, and keep new
	 * ones out until this one ends: the background worker's round, which
	 * changes many deliveries in its own order (deleting them here as
	 * well could deadlock with it), and the commits whose events queued
	 * deliveries for this webhook (they would be left behind, for a
	 * webhook that no longer exists).
	 */
	LockRelationOid(TaskqTableOid("webhook_deliveries"), ShareRowExclusiveLock);
	n = TaskqExecute(&remove_plan, &id, NULL, false, 0);
	TaskqSwitchBack(&cxt);
	TaskqSubscribersChanged();
	PG_RETURN_BOOL(n > 0);
}

/*
 * taskq.redeliver(delivery_id uuid) RETURNS boolean
 *
 * Sends a delivery again from scratch (attempts reset); false for an
 * unknown id or one marked delivering (in flight for longer than
 * taskq.webhook_mark_after).  One whose attempt is in flight and not yet
 * marked reads pending and is reset: that attempt's outcome then counts
 * as its first.
 */
PG_FUNCTION_INFO_V1(taskq_redeliver);
Datum
taskq_redeliver(PG_FUNCTION_ARGS)
{
	Datum		id;
	int			n;
	TaskqContext cxt;

	TaskqRequireArg(fcinfo, 0, "delivery id");
	id = PG_GETARG_DATUM(0);
	TaskqSwitchToOwner(&cxt);
	require_owner(&delivery_owner_plan, id, "redeliver another role's webhook delivery");
	n = TaskqExecute(&redeliver_plan, &id, NULL, false, 0);
	TaskqSwitchBack(&cxt);
	if (n > 0)
		TaskqNoteWorkerWake();
	PG_RETURN_BOOL(n > 0);
}

/*
 * taskq._can_see_webhook_secret(owner regrole) RETURNS boolean
 *
 * Whether the role calling taskq.webhooks() may see the secret of a webhook
 * of that owner: the owner and superusers may.  It asks for the outer role
 * (the session's, after SET ROLE), not the one a SECURITY DEFINER function
 * runs as.
 */
PG_FUNCTION_INFO_V1(taskq_can_see_webhook_secret);
Datum
taskq_can_see_webhook_secret(PG_FUNCTION_ARGS)
{
	Oid			outer = GetOuterUserId();

	if (TaskqIsAdmin(outer))
		PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(PG_GETARG_OID(0) == outer);
}
