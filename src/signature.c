/*-------------------------------------------------------------------------
 *
 * signature.c
 *		Webhook signatures: HMAC-SHA256 with the secrets of Standard
 *		Webhooks, for the deliveries taskq signs (delivery.c) and the
 *		requests its triggers verify (taskq._webhook_signature_check).
 *
 * The HMAC is PostgreSQL's own (common/hmac.h), and comparisons of a
 * signature with the expected one take the same time whatever they hold
 * (timingsafe_bcmp).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "taskq.h"

/* how far a Standard Webhooks timestamp may be from the clock (s) */
#define TIMESTAMP_TOLERANCE_S	300

/*
 * The key of a secret: the decoded bytes of "whsec_<base64>" as the
 * Standard Webhooks specification says, else the secret's own bytes.
 */
static char *
signing_key(const char *secret, int *keylen)
{
	if (strncmp(secret, "whsec_", 6) == 0)
	{
		const char *b64 = secret + 6;
		int			len = strlen(b64);
		char	   *key = palloc(pg_b64_dec_len(len) + 1);

		*keylen = pg_b64_decode(b64, len, key, pg_b64_dec_len(len));
		if (*keylen >= 0)
			return key;
	}
	*keylen = strlen(secret);
	return pstrdup(secret);
}

/*
 * HMAC-SHA256 with key of the concatenation of n parts into mac (32
 * bytes).
 */
void
TaskqHmacSha256(const char *key, int keylen, const char *const *parts,
				const size_t *lens, int n, uint8 *mac)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	bool		ok = ctx != NULL &&
		pg_hmac_init(ctx, (const uint8 *) key, keylen) >= 0;

	for (int i = 0; i < n && ok; i++)
		ok = pg_hmac_update(ctx, (const uint8 *) parts[i], lens[i]) >= 0;
	if (!ok || pg_hmac_final(ctx, mac, PG_SHA256_DIGEST_LENGTH) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute an HMAC-SHA256: %s",
						ctx ? pg_hmac_error(ctx) : "out of memory")));
	pg_hmac_free(ctx);
}

/* the Standard Webhooks signature of "id.timestamp.body", base64 */
char *
TaskqStandardSignature(const char *secret, const char *id,
					   const char *timestamp, const char *body, size_t bodylen)
{
	int			keylen;
	char	   *key = signing_key(secret, &keylen);
	const char *parts[5] = {id, ".", timestamp, ".", body};
	size_t		lens[5] = {strlen(id), 1, strlen(timestamp), 1, bodylen};
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	char	   *b64 = palloc(pg_b64_enc_len(sizeof(mac)) + 1);
	int			len;

	TaskqHmacSha256(key, keylen, parts, lens, 5, mac);
	len = pg_b64_encode((char *) mac, sizeof(mac), b64, pg_b64_enc_len(sizeof(mac)));
	b64[len] = '\0';
	return b64;
}

/* a and b equal, compared in a time that does not depend on where they differ */
static bool
equal_in_constant_time(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && timingsafe_bcmp(a, b, alen) == 0;
}

/* GitHub's X-Hub-Signature-256: "sha256=" and the hex HMAC of the body */
static const char *
check_hmac_sha256(const char *secret, const char *body, size_t bodylen,
				  const char *signature)
{
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	char		hex[2 * PG_SHA256_DIGEST_LENGTH + 1];
	const char *parts[1] = {body};
	size_t		lens[1] = {bodylen};

	if (strncmp(signature, "sha256=", 7) != 0)
		return "The signature does not start with \"sha256=\"";
	TaskqHmacSha256(secret, strlen(secret), parts, lens, 1, mac);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	if (!equal_in_constant_time(signature + 7, strlen(signature + 7), hex, strlen(hex)))
		return "The signature does not match the body";
	return NULL;
}

/*
 * Standard Webhooks: webhook-signature holds space-separated "v1,<base64>"
 * signatures of "id.timestamp.body" (several while a secret is rotated);
 * one must match, and the timestamp must be within the tolerance.
 */
static const char *
check_standard(const char *secret, const char *body, size_t bodylen,
			   const char *signature, const char *id, const char *timestamp)
{
	char	   *expected;
	char	   *end;
	long		ts;
	int64		now = (int64) (GetCurrentTimestamp() / USECS_PER_SEC) +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
	char	   *copy;
	char	   *tok;
	char	   *save = NULL;

	if (id == NULL || id[0] == '\0')
		return "The webhook-id header is missing";
	if (timestamp == NULL || timestamp[0] == '\0')
		return "The webhook-timestamp header is missing";
	errno = 0;
	ts = strtol(timestamp, &end, 10);
	if (errno != 0 || *end != '\0' || end == timestamp)
		return "The webhook-timestamp header is not a number of seconds";
	if (ts < now - TIMESTAMP_TOLERANCE_S || ts > now + TIMESTAMP_TOLERANCE_S)
		return "The webhook-timestamp is more than 5 minutes away from the server's clock";
	expected = TaskqStandardSignature(secret, id, timestamp, body, bodylen);
	copy = pstrdup(signature);
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		if (strncmp(tok, "v1,", 3) == 0 &&
			equal_in_constant_time(tok + 3, strlen(tok + 3), expected, strlen(expected)))
			return NULL;
	return "No v1 signature matches the request";
}

/*
 * taskq._webhook_signature_check(mode text, secret text, body bytea,
 *		signature text, id text, ts text) RETURNS text
 *
 * Whether a request to a trigger carries a valid signature: NULL when it
 * does, else why not.  mode: "hmac_sha256" (signature: GitHub's
 * X-Hub-Signature-256), "standard_webhooks" (signature: webhook-signature,
 * id: webhook-id, ts: webhook-timestamp) or "bearer" (signature: the
 * Authorization header).
 */
PG_FUNCTION_INFO_V1(taskq_webhook_signature_check);
Datum
taskq_webhook_signature_check(PG_FUNCTION_ARGS)
{
	char	   *mode;
	char	   *secret;
	bytea	   *body;
	char	   *signature;
	const char *why = NULL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("mode, secret and body must not be null")));
	mode = text_to_cstring(PG_GETARG_TEXT_PP(0));
	secret = text_to_cstring(PG_GETARG_TEXT_PP(1));
	body = PG_GETARG_BYTEA_PP(2);
	if (PG_ARGISNULL(3))
		PG_RETURN_TEXT_P(cstring_to_text(strcmp(mode, "bearer") == 0 ?
										 "The Authorization header is missing" :
										 "The signature header is missing"));
	signature = text_to_cstring(PG_GETARG_TEXT_PP(3));

	if (strcmp(mode, "hmac_sha256") == 0)
		why = check_hmac_sha256(secret, VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
								signature);
	else if (strcmp(mode, "standard_webhooks") == 0)
		why = check_standard(secret, VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
							 signature,
							 PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4)),
							 PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5)));
	else if (strcmp(mode, "bearer") == 0)
	{
		if (pg_strncasecmp(signature, "Bearer ", 7) != 0)
			why = "The Authorization header is not \"Bearer <token>\"";
		else if (!equal_in_constant_time(signature + 7, strlen(signature + 7),
										 secret, strlen(secret)))
			why = "The bearer token is wrong";
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown verification \"%s\"", mode),
				 errhint("Valid verifications are hmac_sha256, standard_webhooks and bearer.")));
	if (why == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(why));
}
