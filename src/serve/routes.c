/*-------------------------------------------------------------------------
 *
 * routes.c
 *		taskq-serve's routes (see serve.h): the table of REST routes and
 *		the statement each runs, authentication by bearer token, and the
 *		HTTP status of each SQLSTATE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <pthread.h>

#include "serve.h"

#define MAX_ROUTE_PARAMS	10

/* ---- routes ---- */

typedef enum AuthKind
{
	AUTH_TOKEN,					/* an API token; runs as its role */
	AUTH_NONE,					/* no token; runs as the gateway's role */
	AUTH_METRICS				/* --metrics-token, when given */
} AuthKind;

typedef enum ParamSource
{
	SRC_PATH,					/* the path's {} segment (decoded) */
	SRC_BODY,					/* the request body, as text */
	SRC_ARG,					/* a query argument (NULL when absent) */
	SRC_MAX_WAIT,				/* --max-wait, the longest wait_ms */
	SRC_BODY_BYTEA,				/* the request body as it came, bytea's hex */
	SRC_HEADERS					/* the request headers, a JSON object with
								 * names in lower case */
} ParamSource;

typedef struct RouteParam
{
	ParamSource src;
	const char *arg;			/* SRC_ARG: its name */
} RouteParam;

typedef struct Route
{
	const char *method;
	const char *path;			/* "{}" matches any one segment */
	AuthKind	auth;
	int			ok_status;		/* status of a success */
	const char *sql;			/* returns one text value, or NULL / no row */
	const char *sql_array;		/* instead, when the body is a JSON array */
	int			nparams;
	RouteParam	params[MAX_ROUTE_PARAMS];
	const char *args[MAX_ROUTE_PARAMS];	/* query arguments it takes (NULL-ended) */
	const char *not_found;		/* 404 message (%s: the path parameter)
								 * when the statement returns NULL */
	bool		push;			/* 55000 is 503 when the queue is paused */
	bool		metrics;		/* text/plain; no taskq.metrics() is 501 */
	bool		trigger;		/* 55000 (a disabled trigger, a paused queue)
								 * is 400 */
	bool		events;			/* the live event stream (events.c) */
} Route;

#define P_PATH		{SRC_PATH, NULL}
#define P_BODY		{SRC_BODY, NULL}
#define P_ARG(name)	{SRC_ARG, name}
#define P_MAX_WAIT	{SRC_MAX_WAIT, NULL}
#define P_BODY_BYTEA {SRC_BODY_BYTEA, NULL}
#define P_HEADERS	{SRC_HEADERS, NULL}

/*
 * A job row (alias a, of a function called WITH ORDINALITY) as JSON:
 * taskq._job_json, which the TCP protocol's taskq.command uses too
 * ("group_key" as "group", no null "metadata").
 */
#define JOB_JSON(a) "taskq._job_json(to_jsonb(" a ") - 'ordinality')"

/* a push: one job, or a batch when the body is a JSON array */
#define PUSH_SQL \
	"SELECT jsonb_build_object('id', p.id)::text" \
	" FROM taskq.push_batch($1, jsonb_build_array($2::jsonb)) AS p(id)"
#define PUSH_ARRAY_SQL \
	"SELECT jsonb_build_object('ids', coalesce(jsonb_agg(p.id ORDER BY p.n), '[]'))::text" \
	" FROM taskq.push_batch($1, $2::jsonb) WITH ORDINALITY AS p(id, n)"

/*
 * Responses are JSON built by the server (jsonb: keys in jsonb's order, as
 * taskq.get and taskq.stats return them).  Lists keep the order the SQL
 * function returns (WITH ORDINALITY).  A single pushed job goes through
 * push_batch too, so that its keys are checked (name, data, options) as
 * for a batch.
 */
static const Route routes[] = {
	{
		/* the dashboard's look-ups (src/serve/ui) */
		.method = "GET", .path = "/api/v1/whoami", .ok_status = 200,
		.sql = "SELECT taskq.whoami()::text",
	},
	{
		.method = "GET", .path = "/api/v1/jobs/{}/errors", .ok_status = 200,
		.sql = "SELECT taskq.job_errors($1::uuid)::text",
		.nparams = 1, .params = {P_PATH},
		.not_found = "job \"%s\" does not exist",
	},
	{
		.method = "GET", .path = "/api/v1/throughput", .ok_status = 200,
		.sql = "SELECT taskq.throughput(coalesce($1::int, 30))::text",
		.nparams = 1, .params = {P_ARG("minutes")}, .args = {"minutes"},
	},
	{
		.method = "GET", .path = "/api/v1/queues/{}/list", .ok_status = 200,
		.sql = "SELECT taskq.list_jobs($1, coalesce($2, 'waiting'), jsonb_strip_nulls(jsonb_build_object("
		"'count', $3::int, 'after', $4::text, 'name', $5::text, 'group', $6::text,"
		" 'flow_id', $7::text, 'search', $8::text, 'since', $9::text, 'until', $10::text)))::text",
		.nparams = 10,
		.params = {P_PATH, P_ARG("state"), P_ARG("count"), P_ARG("after"), P_ARG("name"),
		P_ARG("group"), P_ARG("flow_id"), P_ARG("search"), P_ARG("since"), P_ARG("until")},
		.args = {"state", "count", "after", "name", "group", "flow_id", "search", "since", "until"},
	},
	{
		/* SSE, or a WebSocket upgrade; no statement: events.c */
		.method = "GET", .path = "/api/v1/events", .ok_status = 200,
		.args = {"queues", "events", "last_event_id", "access_token"}, .events = true,
	},
	{
		.method = "POST", .path = "/api/v1/queues/{}/jobs", .ok_status = 201,
		.sql = PUSH_SQL, .sql_array = PUSH_ARRAY_SQL,
		.nparams = 2, .params = {P_PATH, P_BODY}, .push = true,
	},
	{
		/* the same as the above, for clients that want a verb */
		.method = "POST", .path = "/queues/{}/push", .ok_status = 201,
		.sql = PUSH_SQL, .sql_array = PUSH_ARRAY_SQL,
		.nparams = 2, .params = {P_PATH, P_BODY}, .push = true,
	},
	{
		.method = "GET", .path = "/api/v1/queues/{}/jobs", .ok_status = 200,
		/* wait_ms: long polling, up to --max-wait */
		.sql = "SELECT coalesce(jsonb_agg(" JOB_JSON("j") " ORDER BY j.ordinality), '[]')::text"
		" FROM taskq.pull($1, coalesce($2::int, 1), $3::int, NULL,"
		" least(coalesce($4::int, 0), $5::int)) WITH ORDINALITY AS j",
		.nparams = 5, .params = {P_PATH, P_ARG("count"), P_ARG("timeout_ms"), P_ARG("wait_ms"), P_MAX_WAIT},
		.args = {"count", "timeout_ms", "wait_ms"},
	},
	{
		/* a pull that first acks what the worker finished (bundled acking) */
		.method = "POST", .path = "/api/v1/queues/{}/pull", .ok_status = 200,
		.sql = "SELECT coalesce(jsonb_agg(" JOB_JSON("j") " ORDER BY j.ordinality), '[]')::text"
		" FROM taskq._request_body($2, '{count,timeout_ms,acks,wait_ms}') AS b"
		" CROSS JOIN LATERAL taskq.pull($1, coalesce((b->>'count')::int, 1),"
		" (b->>'timeout_ms')::int, b->'acks',"
		" least(coalesce((b->>'wait_ms')::int, 0), $3::int)) WITH ORDINALITY AS j",
		.nparams = 3, .params = {P_PATH, P_BODY, P_MAX_WAIT},
	},
	{
		.method = "POST", .path = "/api/v1/jobs/ack-batch", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('acked', taskq.ack_batch($1::jsonb))::text",
		.nparams = 1, .params = {P_BODY},
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/ack", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'state', 'completed')::text"
		" FROM taskq._request_body($2, '{lease,result}') AS b,"
		" LATERAL taskq.ack($1::uuid, b->'result', (b->>'lease')::uuid) AS a",
		.nparams = 2, .params = {P_PATH, P_BODY},
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/fail", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'state', f)::text"
		" FROM taskq._request_body($2, '{lease,error}') AS b,"
		" LATERAL taskq.fail($1::uuid, b->>'error', (b->>'lease')::uuid) AS f",
		.nparams = 2, .params = {P_PATH, P_BODY},
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/cancel", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'state', 'cancelled')::text"
		" FROM taskq.cancel($1::uuid) AS c WHERE c",
		.nparams = 1, .params = {P_PATH},
		.not_found = "job \"%s\" does not exist",
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/progress", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid)::text"
		" FROM taskq._request_body($2, '{progress,message,lease}') AS b,"
		" LATERAL taskq.progress($1::uuid, (b->>'progress')::int, b->>'message',"
		" (b->>'lease')::uuid) AS p",
		.nparams = 2, .params = {P_PATH, P_BODY},
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/release", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'state', r)::text"
		" FROM taskq._request_body($2, '{lease,delay_ms}') AS b,"
		" LATERAL taskq.release($1::uuid, (b->>'lease')::uuid,"
		" coalesce((b->>'delay_ms')::int, 0)) AS r",
		.nparams = 2, .params = {P_PATH, P_BODY},
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/heartbeat", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'lease_expires_at', h)::text"
		" FROM taskq._request_body($2, '{lease}') AS b,"
		" LATERAL taskq.heartbeat($1::uuid, (b->>'lease')::uuid) AS h",
		.nparams = 2, .params = {P_PATH, P_BODY},
	},
	{
		.method = "GET", .path = "/api/v1/jobs/{}", .ok_status = 200,
		.sql = "SELECT taskq.get($1::uuid)::text",
		.nparams = 1, .params = {P_PATH},
		.not_found = "job \"%s\" does not exist",
	},
	{
		.method = "GET", .path = "/api/v1/flows/{}", .ok_status = 200,
		.sql = "SELECT taskq.flow($1)::text",
		.nparams = 1, .params = {P_PATH},
		.not_found = "flow \"%s\" does not exist",
	},
	{
		.method = "GET", .path = "/api/v1/queues", .ok_status = 200,
		.sql = "SELECT coalesce(jsonb_agg(to_jsonb(q) - 'ordinality' ORDER BY q.ordinality), '[]')::text"
		" FROM taskq.queues() WITH ORDINALITY AS q",
	},
	{
		.method = "GET", .path = "/api/v1/queues/{}/stats", .ok_status = 200,
		.sql = "SELECT taskq.stats($1)::text",
		.nparams = 1, .params = {P_PATH},
	},
	{
		.method = "POST", .path = "/api/v1/queues/{}/pause", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('queue', $1::text, 'paused', true)::text"
		" FROM taskq.pause($1) AS p",
		.nparams = 1, .params = {P_PATH},
	},
	{
		.method = "POST", .path = "/api/v1/queues/{}/resume", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('queue', $1::text, 'paused', false)::text"
		" FROM taskq.resume($1) AS r",
		.nparams = 1, .params = {P_PATH},
	},
	{
		.method = "GET", .path = "/api/v1/queues/{}/dlq", .ok_status = 200,
		.sql = "SELECT coalesce(jsonb_agg(" JOB_JSON("d") " ORDER BY d.ordinality), '[]')::text"
		" FROM taskq.dlq($1, coalesce($2::int, 100)) WITH ORDINALITY AS d",
		.nparams = 2, .params = {P_PATH, P_ARG("count")},
		.args = {"count"},
	},
	{
		/* add_webhook's defaults (4 attempts, 1 s) when not given */
		.method = "POST", .path = "/api/v1/webhooks", .ok_status = 201,
		/* the secret, generated here when not given, is answered once */
		.sql = "SELECT jsonb_build_object('id', taskq.add_webhook(b->>'url',"
		" CASE WHEN coalesce(b->'events', 'null') <> 'null'"
		" THEN ARRAY(SELECT jsonb_array_elements_text(b->'events')) END,"
		" CASE WHEN coalesce(b->'queues', 'null') <> 'null'"
		" THEN ARRAY(SELECT jsonb_array_elements_text(b->'queues')) END,"
		" k.secret, coalesce((b->>'max_attempts')::int, 4),"
		" coalesce((b->>'base_delay_ms')::int, 1000)), 'secret', k.secret)::text"
		" FROM taskq._request_body($1, '{url,events,queues,secret,max_attempts,base_delay_ms}') AS b,"
		" LATERAL (SELECT coalesce(b->>'secret', 'whsec_' || encode(decode(replace("
		"  gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'), 'base64'))"
		"  AS secret) k",
		.nparams = 1, .params = {P_BODY},
	},
	{
		/* the role's webhooks; their secrets only at creation */
		.method = "GET", .path = "/api/v1/webhooks", .ok_status = 200,
		.sql = "SELECT coalesce(jsonb_agg(to_jsonb(w) - 'ordinality' - 'secret' ORDER BY w.ordinality), '[]')::text"
		" FROM taskq.webhooks() WITH ORDINALITY AS w",
	},
	{
		.method = "GET", .path = "/api/v1/webhooks/{}", .ok_status = 200,
		.sql = "SELECT (to_jsonb(w) - 'secret')::text FROM taskq.webhooks() w WHERE w.id = $1::uuid",
		.nparams = 1, .params = {P_PATH},
		.not_found = "webhook \"%s\" does not exist",
	},
	{
		.method = "DELETE", .path = "/api/v1/webhooks/{}", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'removed', true)::text"
		" FROM taskq.remove_webhook($1::uuid) AS r WHERE r",
		.nparams = 1, .params = {P_PATH},
		.not_found = "webhook \"%s\" does not exist",
	},
	{
		.method = "GET", .path = "/api/v1/webhooks/{}/deliveries", .ok_status = 200,
		.sql = "SELECT coalesce(jsonb_agg(to_jsonb(d) - 'ordinality' ORDER BY d.ordinality), '[]')::text"
		" FROM taskq.deliveries($1::uuid, coalesce($2::int, 100)) WITH ORDINALITY AS d",
		.nparams = 2, .params = {P_PATH, P_ARG("count")},
		.args = {"count"},
	},
	{
		.method = "POST", .path = "/api/v1/deliveries/{}/redeliver", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'status', 'pending')::text"
		" FROM taskq.redeliver($1::uuid) AS r WHERE r",
		.nparams = 1, .params = {P_PATH},
		.not_found = "delivery \"%s\" does not exist",
	},
	{
		.method = "POST", .path = "/api/v1/flows", .ok_status = 201,
		.sql = "SELECT taskq.push_flow($1::jsonb)::text",
		.nparams = 1, .params = {P_BODY}, .push = true,
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/retry", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'state', 'waiting')::text"
		" FROM taskq.retry_now($1::uuid) AS r WHERE r",
		.nparams = 1, .params = {P_PATH},
		.not_found = "delayed job \"%s\" does not exist",
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/redrive", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'state', 'waiting')::text"
		" FROM taskq.redrive($1::uuid) AS r WHERE r",
		.nparams = 1, .params = {P_PATH},
		.not_found = "dead job \"%s\" does not exist",
	},
	{
		.method = "POST", .path = "/api/v1/queues/{}/redrive", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('queue', $1::text, 'redriven', n)::text"
		" FROM taskq.redrive_queue($1) AS n",
		.nparams = 1, .params = {P_PATH},
	},
	{
		.method = "POST", .path = "/api/v1/queues/{}/purge", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('queue', $1::text, 'purged', n)::text"
		" FROM taskq.purge($1) AS n",
		.nparams = 1, .params = {P_PATH},
	},
	{
		/* create a queue (409 when it exists); the body is its options */
		.method = "PUT", .path = "/api/v1/queues/{}", .ok_status = 201,
		.sql = "SELECT jsonb_build_object('queue', $1::text, 'created', true,"
		" 'options', o)::text FROM coalesce(nullif($2, '')::jsonb, '{}') AS o,"
		" LATERAL taskq.create_queue($1, o) AS c",
		.nparams = 2, .params = {P_PATH, P_BODY},
	},
	{
		/* change some settings of a queue */
		.method = "PATCH", .path = "/api/v1/queues/{}", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('queue', $1::text, 'altered', true,"
		" 'options', o)::text FROM coalesce(nullif($2, '')::jsonb, '{}') AS o,"
		" LATERAL taskq.alter_queue($1, o) AS a",
		.nparams = 2, .params = {P_PATH, P_BODY},
	},
	{
		.method = "DELETE", .path = "/api/v1/queues/{}", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('queue', $1::text, 'dropped', true)::text"
		" FROM taskq.drop_queue($1) AS d",
		.nparams = 1, .params = {P_PATH},
	},
	{
		.method = "GET", .path = "/api/v1/queues/{}/peek", .ok_status = 200,
		.sql = "SELECT coalesce(jsonb_agg(" JOB_JSON("p") " ORDER BY p.ordinality), '[]')::text"
		" FROM taskq.peek($1, coalesce($2::int, 10)) WITH ORDINALITY AS p",
		.nparams = 2, .params = {P_PATH, P_ARG("count")},
		.args = {"count"},
	},
	{
		.method = "GET", .path = "/api/v1/schedules", .ok_status = 200,
		.sql = "SELECT coalesce(jsonb_agg(to_jsonb(s) - 'ordinality' ORDER BY s.ordinality), '[]')::text"
		" FROM taskq.schedules() WITH ORDINALITY AS s",
	},
	{
		.method = "POST", .path = "/api/v1/schedules", .ok_status = 201,
		.sql = "SELECT jsonb_build_object('name', b->>'name', 'jobid',"
		" taskq.schedule(b->>'name', b->>'cron', b->>'queue', b->>'job_name',"
		" coalesce(b->'data', '{}'), coalesce(b->'options', '{}')))::text"
		" FROM taskq._request_body($1, '{name,cron,queue,job_name,data,options}') AS b",
		.nparams = 1, .params = {P_BODY},
	},
	{
		.method = "DELETE", .path = "/api/v1/schedules/{}", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('name', $1::text, 'removed', true)::text"
		" FROM taskq.unschedule($1) AS r WHERE r",
		.nparams = 1, .params = {P_PATH},
		.not_found = "schedule \"%s\" does not exist",
	},
	{
		.method = "GET", .path = "/api/v1/triggers", .ok_status = 200,
		.sql = "SELECT coalesce(jsonb_agg(t ORDER BY t->>'name'), '[]')::text FROM taskq.triggers() t",
	},
	{
		/* the trigger, with its secret this once */
		.method = "POST", .path = "/api/v1/triggers", .ok_status = 201,
		.sql = "SELECT taskq.create_trigger(b->>'name', b->>'queue', b->>'job_name',"
		" coalesce(b->'options', '{}'))::text"
		" FROM taskq._request_body($1, '{name,queue,job_name,options}') AS b",
		.nparams = 1, .params = {P_BODY},
	},
	{
		/* the body is the options to change */
		.method = "PATCH", .path = "/api/v1/triggers/{}", .ok_status = 200,
		.sql = "SELECT taskq.alter_trigger($1, coalesce(nullif($2, '')::jsonb, '{}'))::text",
		.nparams = 2, .params = {P_PATH, P_BODY},
	},
	{
		.method = "DELETE", .path = "/api/v1/triggers/{}", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('name', $1::text, 'dropped', true)::text"
		" FROM taskq.drop_trigger($1) AS d WHERE d",
		.nparams = 1, .params = {P_PATH},
		.not_found = "trigger \"%s\" does not exist",
	},
	{
		/*
		 * An inbound webhook: no API token, the trigger's own verification
		 * (receive_webhook), as the gateway's role
		 */
		.method = "POST", .path = "/webhook/{}", .auth = AUTH_NONE, .ok_status = 202,
		.sql = "SELECT taskq.receive_webhook($1, $2::bytea, $3::jsonb)::text",
		.nparams = 3, .params = {P_PATH, P_BODY_BYTEA, P_HEADERS},
		.trigger = true,
	},
	{
		/* job-system compatibility: the state of a job, as GET /api/v1/jobs/{id} */
		.method = "GET", .path = "/jobs/{}/status", .ok_status = 200,
		.sql = "SELECT taskq.get($1::uuid)::text",
		.nparams = 1, .params = {P_PATH},
		.not_found = "job \"%s\" does not exist",
	},
	{
		/* job-system compatibility: counts by state of every queue */
		.method = "GET", .path = "/queue/info", .ok_status = 200,
		.sql = "SELECT coalesce(jsonb_agg(to_jsonb(q) - 'ordinality' ORDER BY q.ordinality), '[]')::text"
		" FROM taskq.queues() WITH ORDINALITY AS q",
	},
	{
		.method = "GET", .path = "/healthz", .auth = AUTH_NONE, .ok_status = 200,
		.sql = "SELECT '{\"status\": \"ok\"}'",
	},
	{
		.method = "GET", .path = "/metrics", .auth = AUTH_METRICS, .ok_status = 200,
		.sql = "SELECT taskq.metrics()::text",
		.metrics = true,
	},
	{NULL}
};

/* the token's role for the transaction; no row for an unknown token */
static const char *const auth_sql =
"SELECT pg_catalog.set_config('role', r, true)"
" FROM taskq._api_token_role($1) AS r WHERE r IS NOT NULL";

/*
 * Tokens found valid lately, so that the check on the headers
 * (token_known) costs a round trip only now and then; dispatch checks the
 * token again in the request's own transaction, so a token revoked
 * meanwhile is still refused there.
 */
#define KNOWN_TOKENS		64
#define KNOWN_TOKEN_MS		10000
static struct
{
	char	   *token;
	int64_t		until;
}			known_tokens[KNOWN_TOKENS];
static int	known_next = 0;
static pthread_mutex_t known_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Whether a well-formed token stands for a role, asked before the body
 * is read; true as well when the database cannot be asked now (dispatch
 * then answers what is wrong).
 */
bool
token_known(const char *token)
{
	int64_t		now = now_ms();
	const char *code;
	char	   *err = NULL;
	PoolConn   *pc;
	PGresult   *res;
	bool		known = true;

	pthread_mutex_lock(&known_lock);
	for (int i = 0; i < KNOWN_TOKENS; i++)
		if (known_tokens[i].token && known_tokens[i].until > now &&
			secrets_equal(known_tokens[i].token, token))
		{
			pthread_mutex_unlock(&known_lock);
			return true;
		}
	pthread_mutex_unlock(&known_lock);

	pc = pool_acquire(&code, &err);
	if (pc == NULL)
	{
		free(err);
		return true;
	}
	res = PQexecParams(pc->conn,
					   "SELECT 1 FROM taskq._api_token_role($1) AS r WHERE r IS NOT NULL",
					   1, NULL, &token, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		known = PQntuples(res) == 1;
	PQclear(res);
	pool_release(pc);

	if (known)
	{
		pthread_mutex_lock(&known_lock);
		free(known_tokens[known_next].token);
		known_tokens[known_next].token = pg_strdup(token);
		known_tokens[known_next].until = now + KNOWN_TOKEN_MS;
		known_next = (known_next + 1) % KNOWN_TOKENS;
		pthread_mutex_unlock(&known_lock);
	}
	return known;
}


/*
 * The HTTP status for a SQLSTATE: the one table of the mapping (the README
 * shows it too).  The only exception, a push to a paused queue (55000 →
 * 503), is made by the caller.
 */
int
http_status(const char *code)
{
	/*
	 * program_limit_exceeded from the database: a name or payload over its
	 * limit, a DAG too deep, too many parents, a pull over its count.  The
	 * request was well-formed and not too large for the gateway (a body
	 * over --max-body is answered 413 before it is read), so 422.
	 */
	if (strcmp(code, "54000") == 0)
		return MHD_HTTP_UNPROCESSABLE_CONTENT;
	if (strncmp(code, "22", 2) == 0)
		return MHD_HTTP_BAD_REQUEST;	/* data exception: bad input */
	if (strcmp(code, "42704") == 0)
		return MHD_HTTP_NOT_FOUND;	/* undefined_object: job, queue */
	if (strcmp(code, "55000") == 0 ||	/* object_not_in_prerequisite_state */
		strcmp(code, "23505") == 0 ||	/* unique_violation */
		strcmp(code, "42710") == 0)		/* duplicate_object: queue, trigger */
		return MHD_HTTP_CONFLICT;
	if (strcmp(code, "42501") == 0)
		return MHD_HTTP_FORBIDDEN;	/* insufficient_privilege */
	if (strncmp(code, "28", 2) == 0)
		return MHD_HTTP_UNAUTHORIZED;	/* invalid authorization: a
										 * trigger's signature */
	if (strcmp(code, "57014") == 0)
		return MHD_HTTP_GATEWAY_TIMEOUT;	/* statement timeout */
	if (strncmp(code, "08", 2) == 0 ||	/* connection exception */
		strncmp(code, "53", 2) == 0 ||	/* insufficient resources */
		strncmp(code, "57P", 3) == 0)	/* the server shutting down */
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* ---- running a route ---- */

static bool
result_ok(const PGresult *res)
{
	return PQresultStatus(res) == PGRES_TUPLES_OK ||
		PQresultStatus(res) == PGRES_COMMAND_OK;
}

/* take a failed statement's SQLSTATE and messages, then free it */
static void
take_error(PGresult *res, PGconn *conn, SqlError *e)
{
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);

	/* no SQLSTATE: the connection failed (libpq's own message) */
	strlcpy(e->code, code ? code : "08006", sizeof(e->code));
	e->message = msg ? pg_strdup(msg) : connection_error(conn);
	/*
	 * The server's own resource and internal errors (stack depth, out of
	 * memory, disk full, crashes: classes 53, 54001, 57, 58 and XX) carry
	 * details and hints about its settings (max_stack_depth, ...), which
	 * are for its administrator, not for HTTP clients: only the SQLSTATE
	 * and the primary message are passed on.  taskq's own errors keep
	 * theirs.
	 */
	if (strncmp(e->code, "53", 2) == 0 || strcmp(e->code, "54001") == 0 ||
		strncmp(e->code, "57", 2) == 0 || strncmp(e->code, "58", 2) == 0 ||
		strncmp(e->code, "XX", 2) == 0)
		detail = hint = NULL;
	e->detail = detail ? pg_strdup(detail) : NULL;
	e->hint = hint ? pg_strdup(hint) : NULL;
	PQclear(res);
}

void
free_error(SqlError *e)
{
	free(e->message);
	free(e->detail);
	free(e->hint);
}

/*
 * Whether a queue is paused, asked after a push failed with 55000 (which
 * is also the error of a dead or cancelled parent), in a transaction of
 * its own as the token's role (a role that may push to a queue may see
 * it).  False when that cannot be told.
 */
static bool
queue_is_paused(PGconn *conn, const char *token, const char *queue)
{
	const char *auth_params[1] = {token};
	const char *params[1] = {queue};
	PGresult   *res;
	bool		paused = false;

	res = PQexec(conn, "BEGIN");
	if (result_ok(res))
	{
		PQclear(res);
		res = PQexecParams(conn, auth_sql, 1, NULL, auth_params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		{
			PQclear(res);
			res = PQexecParams(conn, "SELECT (taskq.stats($1)->>'paused')::boolean",
							   1, NULL, params, NULL, NULL, 0);
			paused = PQresultStatus(res) == PGRES_TUPLES_OK &&
				PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		}
	}
	PQclear(res);
	PQclear(PQexec(conn, "ROLLBACK"));
	return paused;
}

/*
 * Run a statement in a transaction of its own, as the token's role when
 * token is not NULL: its one text value (NULL for none) into *value, or
 * its error into *err (err->message set).  A value over max_response
 * (0: no limit) is rolled back and answered as 54000.  Returns the HTTP
 * status of an error the gateway found itself (no connection, an unknown
 * token), else 0: the caller maps err->code.  On error the transaction is
 * rolled back, and *conn_out (when not NULL) keeps the connection for the
 * caller's own look-ups, to be given back with pool_release.
 */
int
run_as(const char *token, const char *sql, int nparams,
	   const char *const *params, size_t max_response, char **value,
	   SqlError *err, PoolConn **conn_out)
{
	PoolConn   *pc;
	PGresult   *res;
	char	   *why;
	const char *code;

	*value = NULL;
	if (conn_out)
		*conn_out = NULL;
	pc = pool_acquire(&code, &why);
	if (pc == NULL)
	{
		strlcpy(err->code, code, sizeof(err->code));
		err->message = why;
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	}

	/*
	 * A connection broken while it sat in the pool (a server restart)
	 * fails at BEGIN, before anything ran: reconnect and go on, once.
	 */
	res = PQexec(pc->conn, "BEGIN");
	if (!result_ok(res) && PQstatus(pc->conn) != CONNECTION_OK)
	{
		PQclear(res);
		log_message("lost a database connection; reconnecting");
		if (!pool_reconnect(pc, &why))
		{
			log_message("could not connect to the database: %s", why);
			strlcpy(err->code, "08006", sizeof(err->code));
			err->message = psprintf("could not connect to the database: %s", why);
			free(why);
			pool_release(pc);
			return MHD_HTTP_SERVICE_UNAVAILABLE;
		}
		res = PQexec(pc->conn, "BEGIN");
	}
	if (!result_ok(res))
	{
		take_error(res, pc->conn, err);
		pool_release(pc);
		return 0;
	}
	PQclear(res);

	if (token)
	{
		const char *auth_params[1] = {token};

		res = PQexecParams(pc->conn, auth_sql, 1, NULL, auth_params, NULL, NULL, 0);
		if (!result_ok(res))
		{
			/* the gateway's own set-up, not the client's doing */
			take_error(res, pc->conn, err);
			log_message("could not look up an API token: %s (SQLSTATE %s)",
						err->message, err->code);
			PQclear(PQexec(pc->conn, "ROLLBACK"));
			pool_release(pc);
			return MHD_HTTP_INTERNAL_SERVER_ERROR;
		}
		if (PQntuples(res) == 0)
		{
			PQclear(res);
			PQclear(PQexec(pc->conn, "ROLLBACK"));
			strlcpy(err->code, "28P01", sizeof(err->code));
			err->message = pg_strdup("unknown or revoked API token");
			err->hint = pg_strdup("Create a token with taskq.create_api_token().");
			pool_release(pc);
			return MHD_HTTP_UNAUTHORIZED;
		}
		PQclear(res);
	}

	res = PQexecParams(pc->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (result_ok(res))
	{
		if (max_response > 0 &&
			PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0) &&
			(size_t) PQgetlength(res, 0, 0) > max_response)
		{
			/* too large to send: undone (a pull leases nothing), and said */
			strlcpy(err->code, "54000", sizeof(err->code));
			err->message = psprintf("response is too large");
			err->detail = psprintf("The response would be %d bytes; the limit is %zu bytes (--max-response).",
								   PQgetlength(res, 0, 0), max_response);
			err->hint = psprintf("Ask for fewer jobs at a time.");
			PQclear(res);
		}
		else
		{
			if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
				*value = pg_strdup(PQgetvalue(res, 0, 0));
			PQclear(res);
			res = PQexec(pc->conn, "COMMIT");
			if (result_ok(res))
				PQclear(res);
			else
				take_error(res, pc->conn, err);
		}
	}
	else
		take_error(res, pc->conn, err);

	if (err->message)
	{
		free(*value);
		*value = NULL;
		PQclear(PQexec(pc->conn, "ROLLBACK"));
		if (conn_out)
		{
			*conn_out = pc;
			return 0;
		}
	}
	pool_release(pc);
	return 0;
}

/*
 * Run a route's statement for a request and queue the response: in a
 * transaction, as the token's role when token is not NULL.
 */
static void
run_route(Request *req, const Route *route, const char *sql,
		  const char *const *params, const char *token)
{
	PoolConn   *pc;
	SqlError	err = {{0}};
	char	   *value = NULL;
	int			status;

	status = run_as(token, sql, route->nparams, params,
					route->metrics ? 0 : config.max_response, &value, &err, &pc);
	if (err.message)
	{
		if (status == 0)
			status = http_status(err.code);
		if (pc && route->push && strcmp(err.code, "55000") == 0 &&
			queue_is_paused(pc->conn, token, params[0]))
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
		if (pc)
			pool_release(pc);
		if (route->trigger && strcmp(err.code, "55000") == 0)
			status = MHD_HTTP_BAD_REQUEST;
		if (route->metrics && strcmp(err.code, "42883") == 0)
		{
			/* an older taskq, without taskq.metrics() */
			respond_error(req, MHD_HTTP_NOT_IMPLEMENTED, err.code, NULL, NULL,
						  "this database's taskq has no taskq.metrics()");
		}
		else if (strcmp(err.code, "42883") == 0)
		{
			/* e.g. a taskq_router database, which has the job API only */
			respond_error(req, MHD_HTTP_NOT_IMPLEMENTED, err.code, NULL,
						  "The database of this taskq serve lacks this part of the taskq API:"
						  " a taskq_router database serves jobs, queues and metrics;"
						  " point a taskq serve at a shard for the rest.",
						  "%s", err.message);
		}
		else
			respond_error(req, status, err.code, err.detail, err.hint, "%s",
						  err.message);
		free_error(&err);
	}
	else if (value == NULL)
	{
		if (route->not_found)
			respond_error(req, MHD_HTTP_NOT_FOUND, "42704", NULL, NULL,
						  route->not_found, params[0]);
		else
			respond_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "XX000", NULL,
						  NULL, "the statement returned no result");
	}
	else if (route->metrics)
		respond(req, route->ok_status, "text/plain; version=0.0.4; charset=utf-8",
				value, strlen(value), NULL);
	else
		respond_json(req, route->ok_status, value);
	free(value);
}

/* ---- routing ---- */

/*
 * Whether path (raw, as sent) matches a route's pattern; the segment that
 * matched "{}" (still encoded) goes to *param.
 */
static bool
path_matches(const char *pattern, const char *path, char **param)
{
	const char *p = pattern;
	const char *s = path;

	*param = NULL;
	while (*p && *s)
	{
		if (p[0] == '{' && p[1] == '}')
		{
			const char *end = strchr(s, '/');
			size_t		len = end ? (size_t) (end - s) : strlen(s);

			free(*param);
			*param = pnstrdup(s, len);
			p += 2;
			s += len;
		}
		else if (*p == *s)
		{
			p++;
			s++;
		}
		else
			break;
	}
	if (*p == '\0' && *s == '\0')
		return true;
	free(*param);
	*param = NULL;
	return false;
}

typedef struct ArgCheck
{
	const Route *route;
	char	   *unknown;		/* the first argument not taken, if any */
} ArgCheck;

/* MHD_KeyValueIterator: note a query argument the route does not take */
static enum MHD_Result
check_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	ArgCheck   *ac = cls;
	int			i;

	for (i = 0; ac->route->args[i]; i++)
		if (strcmp(ac->route->args[i], key) == 0)
			return MHD_YES;
	ac->unknown = pg_strdup(key);
	return MHD_NO;
}

/* bytes in bytea's text form, "\\x" and hex */
static char *
bytea_hex(const char *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char	   *out = pg_malloc(2 * len + 3);

	out[0] = '\\';
	out[1] = 'x';
	for (size_t i = 0; i < len; i++)
	{
		out[2 + 2 * i] = digits[(unsigned char) data[i] >> 4];
		out[3 + 2 * i] = digits[(unsigned char) data[i] & 15];
	}
	out[2 + 2 * len] = '\0';
	return out;
}

/* MHD_KeyValueIterator: a header into the JSON object being built */
static enum MHD_Result
add_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	PQExpBuffer buf = cls;
	char	   *name = pg_strdup(key);

	for (char *c = name; *c; c++)
		*c = pg_tolower((unsigned char) *c);
	appendPQExpBufferStr(buf, buf->len > 1 ? "," : "");
	append_json_string(buf, name);
	appendPQExpBufferChar(buf, ':');
	append_json_string(buf, value ? value : "");
	free(name);
	return MHD_YES;
}

/*
 * The request's headers as a JSON object, names in lower case (a header
 * sent twice: jsonb keeps the last).
 */
static char *
headers_json(Request *req)
{
	PQExpBufferData buf;

	initPQExpBuffer(&buf);
	appendPQExpBufferChar(&buf, '{');
	MHD_get_connection_values(req->connection, MHD_HEADER_KIND, add_header, &buf);
	appendPQExpBufferChar(&buf, '}');
	return buf.data;
}

/* route a complete request and queue its response */
void
dispatch(Request *req)
{
	const Route *route = NULL;
	const Route *r;
	char	   *param = NULL;
	PQExpBufferData allow;
	const char *params[MAX_ROUTE_PARAMS];
	char	   *arg_copies[MAX_ROUTE_PARAMS] = {NULL};
	const char *token = NULL;
	const char *sql;
	ArgCheck	ac = {NULL, NULL};
	int			i;

	if (serve_ui(req))
		return;
	initPQExpBuffer(&allow);
	for (r = routes; r->method; r++)
	{
		char	   *p;

		if (!path_matches(r->path, req->path, &p))
			continue;
		if (strcmp(r->method, req->method) == 0 && route == NULL)
		{
			route = r;
			param = p;
			continue;
		}
		free(p);
		if (strstr(allow.data, r->method) == NULL)
			appendPQExpBuffer(&allow, "%s%s", allow.len ? ", " : "", r->method);
	}
	if (route == NULL)
	{
		if (allow.len > 0)
		{
			char	   *msg = psprintf("method %s is not allowed here; allowed: %s",
									   req->method, allow.data);
			char	   *body = error_body("0A000", msg, NULL, NULL);

			respond(req, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json",
					body, strlen(body), MHD_HTTP_HEADER_ALLOW, allow.data, NULL);
			free(msg);
			free(body);
		}
		else
		{
			char	   *path = loggable(req->path);

			respond_error(req, MHD_HTTP_NOT_FOUND, "42883", NULL,
						  "The routes are listed in the README, section \"HTTP API\".",
						  "no route for %s %s", req->method, path);
			free(path);
		}
		termPQExpBuffer(&allow);
		return;
	}
	termPQExpBuffer(&allow);

	/* query arguments: only those the route takes */
	ac.route = route;
	MHD_get_connection_values(req->connection, MHD_GET_ARGUMENT_KIND, check_arg, &ac);
	if (ac.unknown)
	{
		char	   *name = loggable(ac.unknown);

		respond_error(req, MHD_HTTP_BAD_REQUEST, "22023", NULL, NULL,
					  "unrecognized query parameter \"%s\"", name);
		free(name);
		free(ac.unknown);
		goto done;
	}
	if (param && !percent_decode(param))
	{
		respond_error(req, MHD_HTTP_BAD_REQUEST, "22P02", NULL, NULL,
					  "invalid percent-encoding in the path");
		goto done;
	}

	/* authentication */
	if (route->auth == AUTH_TOKEN)
	{
		token = bearer_token(req);
		if (token == NULL || token[0] == '\0')
		{
			refuse_token(req, token);
			goto done;
		}
	}
	else if (route->auth == AUTH_METRICS && config.metrics_token)
	{
		const char *t = bearer_token(req);

		if (t == NULL || !secrets_equal(t, config.metrics_token))
		{
			respond_error(req, MHD_HTTP_UNAUTHORIZED, t ? "28P01" : "28000",
						  NULL, NULL, t ? "wrong metrics token" : "missing bearer token");
			goto done;
		}
	}

	if (route->events)
	{
		serve_events(req, token);
		goto done;
	}

	/* the statement's parameters */
	for (i = 0; i < route->nparams; i++)
	{
		const RouteParam *rp = &route->params[i];

		switch (rp->src)
		{
			case SRC_PATH:
				params[i] = param;
				break;
			case SRC_BODY:
				params[i] = req->body ? req->body : "";
				break;
			case SRC_MAX_WAIT:
				arg_copies[i] = psprintf("%d", config.max_wait_ms);
				params[i] = arg_copies[i];
				break;
			case SRC_BODY_BYTEA:
				arg_copies[i] = bytea_hex(req->body, req->body ? req->body_len : 0);
				params[i] = arg_copies[i];
				break;
			case SRC_HEADERS:
				arg_copies[i] = headers_json(req);
				params[i] = arg_copies[i];
				break;
			case SRC_ARG:
				{
					const char *v = MHD_lookup_connection_value(req->connection,
																MHD_GET_ARGUMENT_KIND,
																rp->arg);

					if (v)
					{
						arg_copies[i] = pg_strdup(v);
						if (!percent_decode(arg_copies[i]))
						{
							respond_error(req, MHD_HTTP_BAD_REQUEST, "22P02", NULL, NULL,
										  "invalid percent-encoding in query parameter \"%s\"",
										  rp->arg);
							goto done;
						}
					}
					params[i] = arg_copies[i];
					break;
				}
		}
	}

	/* a body that is a JSON array: the route's batch form */
	sql = route->sql;
	if (route->sql_array && req->body)
	{
		const char *b = req->body;

		while (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n')
			b++;
		if (*b == '[')
			sql = route->sql_array;
	}

	run_route(req, route, sql, params, token);

done:
	for (i = 0; i < MAX_ROUTE_PARAMS; i++)
		free(arg_copies[i]);
	free(param);
}

/* whether the route of a method and path needs a bearer token */
bool
needs_token(const char *method, const char *path)
{
	for (const Route *r = routes; r->method; r++)
	{
		char	   *p;

		if (strcmp(r->method, method) != 0 || !path_matches(r->path, path, &p))
			continue;
		free(p);
		return r->auth == AUTH_TOKEN;
	}
	return false;
}

