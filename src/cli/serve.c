/*-------------------------------------------------------------------------
 *
 * serve.c
 *		taskq serve: an HTTP gateway mapping REST calls onto the SQL API.
 *
 * taskq serve [--listen HOST:PORT] [--pool N] [--threads N]
 *		[--max-body BYTES] [--timeout SECONDS] [--statement-timeout MS]
 *		[--shutdown-timeout SECONDS] [--max-connections N]
 *		[--metrics-token TOKEN] [--quiet]
 *
 * HTTP is libmicrohttpd's (MHD): its internal threads (a pool of
 * --threads, default --pool) accept connections, parse requests and call
 * handle_request, first once the headers are in, then with each piece of
 * the body, then once more when the request is complete.  The body is
 * kept up to --max-body bytes: a Content-Length over it is answered 413
 * at once, without reading the body; a chunked body that grows over it
 * closes the connection.
 *
 * Database: a pool of --pool libpq connections, guarded by a mutex and a
 * condition variable.  A request takes one for the few statements it
 * runs and gives it back; a broken connection is reconnected by the next
 * request that takes it.  Every route is one statement, always with $n
 * parameters: request bodies go to the server as text and are parsed
 * there (as jsonb), and the server builds the response's JSON, so that
 * the gateway holds no JSON parser and pastes nothing into SQL.  The
 * connections serve every token's role in turn, so they run with
 * search_path pg_catalog, pg_temp: no role can put a function of its own
 * in the way of another role's statements.
 *
 * Authentication: "Authorization: Bearer <token>".  Per request, in one
 * transaction: BEGIN; the token's role from taskq.api_token_role (a
 * SECURITY DEFINER look-up by hash; no role: 401); set_config('role',
 * role, true), so that the role's own privileges apply to the call; the
 * route's statement; COMMIT.  The gateway's login role must be a member
 * of the token roles and have EXECUTE on taskq.api_token_role.
 * /healthz, and /metrics unless --metrics-token is given, need no token
 * and run as the gateway's own role.
 *
 * Errors: a JSON body {"error": {"code": SQLSTATE, "message", "detail"?,
 * "hint"?}} with the status http_status() picks for the SQLSTATE, built
 * here with append_json_string (the only JSON this file writes).
 *
 * Shutdown: SIGTERM or SIGINT (taken by sigwait in the main thread; every
 * thread blocks them) stops accepting connections, answers new requests
 * on open connections 503, and waits up to --shutdown-timeout seconds for
 * the requests in flight to be answered; then it closes the connections
 * and the pool and exits 0.  At the timeout, or on a second signal, it
 * cancels the queries still running and exits 1.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define DEFAULT_LISTEN		"127.0.0.1:8080"
#define DEFAULT_MAX_BODY	(1024 * 1024 + 64 * 1024)	/* a 1 MB job and
														 * its envelope */
#define POOL_WAIT_MS		10000	/* longest wait for a free connection */
#define MAX_ROUTE_PARAMS	3

/* configuration */
static const char *listen_addr = DEFAULT_LISTEN;
static int	pool_size = 4;
static int	thread_count = 0;	/* 0: pool_size */
static size_t max_body = DEFAULT_MAX_BODY;
static int	connection_timeout_s = 30;
static int	statement_timeout_ms = 30000;
static int	shutdown_timeout_s = 30;
static int	max_connections = 256;
static int	max_connections_per_ip = 64;
static int	request_deadline_s = 60;
static const char *metrics_token = NULL;
static bool quiet = false;

/* ---- the connection pool ---- */

typedef struct PoolConn
{
	PGconn	   *conn;			/* NULL: (re)connect when next taken */
	PGcancel   *cancel;			/* to cancel its query at a forced stop */
	bool		busy;
} PoolConn;

static PoolConn *pool;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;

/* ---- requests in flight, for the shutdown ---- */

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static int	inflight = 0;
static bool draining = false;

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
	SRC_ARG						/* a query argument (NULL when absent) */
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
	const char *args[3];		/* query arguments it takes (NULL-ended) */
	const char *not_found;		/* 404 message (%s: the path parameter)
								 * when the statement returns NULL */
	bool		push;			/* 55000 is 503 when the queue is paused */
	bool		metrics;		/* text/plain; no taskq.metrics() is 501 */
} Route;

#define P_PATH		{SRC_PATH, NULL}
#define P_BODY		{SRC_BODY, NULL}
#define P_ARG(name)	{SRC_ARG, name}

/*
 * Responses are JSON built by the server (jsonb: keys in jsonb's order, as
 * taskq.get and taskq.stats return them).  Lists keep the order the SQL
 * function returns (WITH ORDINALITY).  A single pushed job goes through
 * push_batch too, so that its keys are checked (name, data, options) as
 * for a batch.
 */
static const Route routes[] = {
	{
		.method = "POST", .path = "/api/v1/queues/{}/jobs", .ok_status = 201,
		.sql = "SELECT jsonb_build_object('id', p.id)::text"
		" FROM taskq.push_batch($1, jsonb_build_array($2::jsonb)) AS p(id)",
		.sql_array = "SELECT jsonb_build_object('ids', coalesce(jsonb_agg(p.id ORDER BY p.n), '[]'))::text"
		" FROM taskq.push_batch($1, $2::jsonb) WITH ORDINALITY AS p(id, n)",
		.nparams = 2, .params = {P_PATH, P_BODY}, .push = true,
	},
	{
		/* the same as the above, for clients that want a verb */
		.method = "POST", .path = "/queues/{}/push", .ok_status = 201,
		.sql = "SELECT jsonb_build_object('id', p.id)::text"
		" FROM taskq.push_batch($1, jsonb_build_array($2::jsonb)) AS p(id)",
		.sql_array = "SELECT jsonb_build_object('ids', coalesce(jsonb_agg(p.id ORDER BY p.n), '[]'))::text"
		" FROM taskq.push_batch($1, $2::jsonb) WITH ORDINALITY AS p(id, n)",
		.nparams = 2, .params = {P_PATH, P_BODY}, .push = true,
	},
	{
		.method = "GET", .path = "/api/v1/queues/{}/jobs", .ok_status = 200,
		.sql = "SELECT coalesce(jsonb_agg(to_jsonb(j) - 'ordinality' ORDER BY j.ordinality), '[]')::text"
		" FROM taskq.pull($1, coalesce($2::int, 1), $3::int) WITH ORDINALITY AS j",
		.nparams = 3, .params = {P_PATH, P_ARG("count"), P_ARG("timeout_ms")},
		.args = {"count", "timeout_ms"},
	},
	{
		.method = "POST", .path = "/api/v1/jobs/ack-batch", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('acked', taskq.ack_batch($1::jsonb))::text",
		.nparams = 1, .params = {P_BODY},
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/ack", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'state', 'completed')::text"
		" FROM taskq.request_body($2, '{lease,result}') AS b,"
		" LATERAL taskq.ack($1::uuid, b->'result', (b->>'lease')::uuid) AS a",
		.nparams = 2, .params = {P_PATH, P_BODY},
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/fail", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'state', f)::text"
		" FROM taskq.request_body($2, '{lease,error}') AS b,"
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
		" FROM taskq.request_body($2, '{progress,message,lease}') AS b,"
		" LATERAL taskq.progress($1::uuid, (b->>'progress')::int, b->>'message',"
		" (b->>'lease')::uuid) AS p",
		.nparams = 2, .params = {P_PATH, P_BODY},
	},
	{
		.method = "POST", .path = "/api/v1/jobs/{}/heartbeat", .ok_status = 200,
		.sql = "SELECT jsonb_build_object('id', $1::uuid, 'lease_expires_at', h)::text"
		" FROM taskq.request_body($2, '{lease}') AS b,"
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
		.sql = "SELECT coalesce(jsonb_agg(to_jsonb(d) - 'ordinality' ORDER BY d.ordinality), '[]')::text"
		" FROM taskq.dlq($1, coalesce($2::int, 100)) WITH ORDINALITY AS d",
		.nparams = 2, .params = {P_PATH, P_ARG("count")},
		.args = {"count"},
	},
	{
		/* add_webhook's defaults (4 attempts, 1 s) when not given */
		.method = "POST", .path = "/api/v1/webhooks", .ok_status = 201,
		.sql = "SELECT jsonb_build_object('id', taskq.add_webhook(b->>'url',"
		" CASE WHEN coalesce(b->'events', 'null') <> 'null'"
		" THEN ARRAY(SELECT jsonb_array_elements_text(b->'events')) END,"
		" CASE WHEN coalesce(b->'queues', 'null') <> 'null'"
		" THEN ARRAY(SELECT jsonb_array_elements_text(b->'queues')) END,"
		" b->>'secret', coalesce((b->>'max_attempts')::int, 4),"
		" coalesce((b->>'base_delay_ms')::int, 1000)))::text"
		" FROM taskq.request_body($1, '{url,events,queues,secret,max_attempts,base_delay_ms}') AS b",
		.nparams = 1, .params = {P_BODY},
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
" FROM taskq.api_token_role($1) AS r WHERE r IS NOT NULL";

/* ---- one request ---- */

typedef struct Request
{
	struct MHD_Connection *connection;
	int64_t		started;
	char	   *method;
	char	   *path;
	char	   *body;			/* NUL-terminated */
	size_t		body_len;
	int			status;			/* of the response queued, 0 before */
	bool		close;			/* answered before its body: close after */
} Request;

/* what a failed statement said */
typedef struct SqlError
{
	char		code[6];
	char	   *message;
	char	   *detail;
	char	   *hint;
} SqlError;

/* ---- JSON and responses ---- */

/* a copy of s fit for a log line: control characters shown as '?' */
static char *
loggable(const char *s)
{
	char	   *copy = pg_strdup(s);
	char	   *p;

	for (p = copy; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = '?';
	return copy;
}

/*
 * Queue a response with a body and a content type; extra headers come in
 * name/value pairs ending with NULL.
 */
static void
respond(Request *req, int status, const char *content_type, const char *body,
		size_t len,...)
{
	struct MHD_Response *resp;
	va_list		ap;
	const char *name;

	resp = MHD_create_response_from_buffer(len, (void *) body,
										   MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return;					/* out of memory: MHD closes the connection */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	va_start(ap, len);
	while ((name = va_arg(ap, const char *)) != NULL)
		MHD_add_response_header(resp, name, va_arg(ap, const char *));
	va_end(ap);
	if (MHD_queue_response(req->connection, status, resp) == MHD_YES)
		req->status = status;
	MHD_destroy_response(resp);
}

static void
respond_json(Request *req, int status, const char *json)
{
	respond(req, status, "application/json", json, strlen(json), NULL);
}

/* the error body: {"error": {"code", "message", "detail"?, "hint"?}} */
static char *
error_body(const char *code, const char *message, const char *detail,
		   const char *hint)
{
	PQExpBufferData buf;

	initPQExpBuffer(&buf);
	appendPQExpBufferStr(&buf, "{\"error\": {\"code\": ");
	append_json_string(&buf, code);
	appendPQExpBufferStr(&buf, ", \"message\": ");
	append_json_string(&buf, message);
	if (detail)
	{
		appendPQExpBufferStr(&buf, ", \"detail\": ");
		append_json_string(&buf, detail);
	}
	if (hint)
	{
		appendPQExpBufferStr(&buf, ", \"hint\": ");
		append_json_string(&buf, hint);
	}
	appendPQExpBufferStr(&buf, "}}");
	return buf.data;
}

/*
 * Queue an error response, its message formatted from fmt; a 401 says
 * WWW-Authenticate, and a 413 or a 503 of a server shutting down closes
 * the connection.
 */
static void
respond_error(Request *req, int status, const char *code, const char *detail,
			  const char *hint, const char *fmt,...)
{
	char	   *message;
	char	   *body;
	va_list		ap;
	int			len;
	const char *h[4] = {NULL, NULL, NULL, NULL};
	int			n = 0;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	message = pg_malloc(len + 1);
	va_start(ap, fmt);
	vsnprintf(message, len + 1, fmt, ap);
	va_end(ap);
	body = error_body(code, message, detail, hint);
	free(message);
	if (status == MHD_HTTP_UNAUTHORIZED)
	{
		h[n++] = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
		h[n++] = strcmp(code, "28P01") == 0 ?
			"Bearer realm=\"taskq\", error=\"invalid_token\"" : "Bearer realm=\"taskq\"";
	}
	if (status == MHD_HTTP_CONTENT_TOO_LARGE || strcmp(code, "57P01") == 0 ||
		req->close)
	{
		/*
		 * the body may be unread (413, or a request refused on its
		 * headers); a server shutting down closes
		 */
		h[n++] = MHD_HTTP_HEADER_CONNECTION;
		h[n++] = "close";
	}
	respond(req, status, "application/json", body, strlen(body),
			h[0], h[1], h[2], h[3], NULL);
	free(body);
}

/*
 * The HTTP status for a SQLSTATE: the one table of the mapping (the README
 * shows it too).  The only exception, a push to a paused queue (55000 →
 * 503), is made by the caller.
 */
static int
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
		strcmp(code, "23505") == 0)		/* unique_violation */
		return MHD_HTTP_CONFLICT;
	if (strcmp(code, "42501") == 0)
		return MHD_HTTP_FORBIDDEN;	/* insufficient_privilege */
	if (strcmp(code, "57014") == 0)
		return MHD_HTTP_GATEWAY_TIMEOUT;	/* statement timeout */
	if (strncmp(code, "08", 2) == 0 ||	/* connection exception */
		strncmp(code, "53", 2) == 0 ||	/* insufficient resources */
		strncmp(code, "57P", 3) == 0)	/* the server shutting down */
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* ---- the pool ---- */

static void pool_release(PoolConn *pc);

/* a new connection for the pool, or NULL (the reason in *err, malloc'd) */
static PGconn *
pool_connect(char **err)
{
	/* UTF-8 whatever the environment says: responses are UTF-8 JSON */
	PGconn	   *conn = connect_params("taskq serve", "UTF8", err);

	if (conn == NULL)
	{
		if (*err == NULL)
			*err = pg_strdup("out of memory");
		return NULL;
	}

	/*
	 * The connection serves the requests of several roles: a search_path
	 * of pg_catalog only, so that no role can put a function of its own in
	 * the way of another role's statements.
	 */
	{
		char		ms[32];
		const char *params[1] = {ms};
		PGresult   *res;

		snprintf(ms, sizeof(ms), "%d", statement_timeout_ms);
		res = PQexecParams(conn,
						   "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false),"
						   " CASE WHEN $1 <> '0'"
						   " THEN pg_catalog.set_config('statement_timeout', $1, false) END",
						   1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			*err = connection_error(conn);
			PQclear(res);
			PQfinish(conn);
			return NULL;
		}
		PQclear(res);
	}
	return conn;
}

/* forget a pool slot's connection (it is reconnected when next taken) */
static void
pool_drop(PoolConn *pc)
{
	if (pc->cancel)
		PQfreeCancel(pc->cancel);
	pc->cancel = NULL;
	if (pc->conn)
		PQfinish(pc->conn);
	pc->conn = NULL;
}

/* (re)connect a pool slot the caller holds; false with *err set on failure */
static bool
pool_reconnect(PoolConn *pc, char **err)
{
	PGconn	   *conn;
	PGcancel   *cancel;

	pthread_mutex_lock(&pool_lock);
	pool_drop(pc);
	pthread_mutex_unlock(&pool_lock);
	conn = pool_connect(err);
	if (conn == NULL)
		return false;
	cancel = PQgetCancel(conn);
	pthread_mutex_lock(&pool_lock);
	pc->conn = conn;
	pc->cancel = cancel;
	pthread_mutex_unlock(&pool_lock);
	return true;
}

/*
 * Take a connection from the pool, waiting up to POOL_WAIT_MS for one to
 * be free, and connect it if it has none.  NULL with *code (a SQLSTATE)
 * and *err set when there is none.
 */
static PoolConn *
pool_acquire(const char **code, char **err)
{
	PoolConn   *pc = NULL;
	struct timespec deadline;
	int			i;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += POOL_WAIT_MS / 1000;

	pthread_mutex_lock(&pool_lock);
	for (;;)
	{
		for (i = 0; i < pool_size; i++)
			if (!pool[i].busy)
			{
				pc = &pool[i];
				break;
			}
		if (pc || pthread_cond_timedwait(&pool_cond, &pool_lock, &deadline) != 0)
			break;
	}
	if (pc)
		pc->busy = true;
	pthread_mutex_unlock(&pool_lock);

	if (pc == NULL)
	{
		*code = "53300";		/* too_many_connections */
		*err = psprintf("no database connection free after %d ms", POOL_WAIT_MS);
		return NULL;
	}
	if (pc->conn == NULL || PQstatus(pc->conn) != CONNECTION_OK)
	{
		char	   *why = NULL;

		if (!pool_reconnect(pc, &why))
		{
			log_message("could not connect to the database: %s", why);
			*code = "08006";	/* connection_failure */
			*err = psprintf("could not connect to the database: %s", why);
			free(why);
			pool_release(pc);
			return NULL;
		}
	}
	return pc;
}

/*
 * Give a connection back, out of any transaction; one that is broken or
 * stuck in a transaction is dropped (also a slot left without one).
 */
static void
pool_release(PoolConn *pc)
{
	bool		drop = PQstatus(pc->conn) != CONNECTION_OK;

	if (!drop && PQtransactionStatus(pc->conn) != PQTRANS_IDLE)
	{
		PQclear(PQexec(pc->conn, "ROLLBACK"));
		drop = PQtransactionStatus(pc->conn) != PQTRANS_IDLE;
	}
	pthread_mutex_lock(&pool_lock);
	if (drop)
		pool_drop(pc);
	pc->busy = false;
	pthread_cond_signal(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
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

static void
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
 * Run a route's statement for a request and queue the response: in a
 * transaction, as the token's role when token is not NULL.
 */
static void
run_route(Request *req, const Route *route, const char *sql,
		  const char *const *params, const char *token)
{
	PoolConn   *pc;
	PGresult   *res;
	SqlError	err = {{0}};
	char	   *value = NULL;
	int			status;
	char	   *why;
	const char *code;

	pc = pool_acquire(&code, &why);
	if (pc == NULL)
	{
		respond_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, code, NULL, NULL, "%s", why);
		free(why);
		return;
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
			respond_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "08006", NULL, NULL,
						  "could not connect to the database: %s", why);
			free(why);
			pool_release(pc);
			return;
		}
		res = PQexec(pc->conn, "BEGIN");
	}
	if (!result_ok(res))
	{
		take_error(res, pc->conn, &err);
		respond_error(req, http_status(err.code), err.code, err.detail, err.hint,
					  "%s", err.message);
		free_error(&err);
		pool_release(pc);
		return;
	}
	PQclear(res);

	if (token)
	{
		const char *auth_params[1] = {token};

		res = PQexecParams(pc->conn, auth_sql, 1, NULL, auth_params, NULL, NULL, 0);
		if (!result_ok(res))
		{
			/* the gateway's own set-up, not the client's doing */
			take_error(res, pc->conn, &err);
			log_message("could not look up an API token: %s (SQLSTATE %s)",
					  err.message, err.code);
			respond_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, err.code,
						  err.detail, err.hint, "%s", err.message);
			free_error(&err);
			pool_release(pc);
			return;
		}
		if (PQntuples(res) == 0)
		{
			PQclear(res);
			respond_error(req, MHD_HTTP_UNAUTHORIZED, "28P01", NULL,
						  "Create a token with taskq.create_api_token().",
						  "unknown or revoked API token");
			pool_release(pc);
			return;
		}
		PQclear(res);
	}

	res = PQexecParams(pc->conn, sql, route->nparams, NULL, params, NULL, NULL, 0);
	if (result_ok(res))
	{
		if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
			value = pg_strdup(PQgetvalue(res, 0, 0));
		PQclear(res);
		res = PQexec(pc->conn, "COMMIT");
		if (result_ok(res))
			PQclear(res);
		else
			take_error(res, pc->conn, &err);
	}
	else
		take_error(res, pc->conn, &err);

	if (err.message)
	{
		status = http_status(err.code);
		PQclear(PQexec(pc->conn, "ROLLBACK"));
		if (route->push && strcmp(err.code, "55000") == 0 &&
			queue_is_paused(pc->conn, token, params[0]))
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
		if (route->metrics && strcmp(err.code, "42883") == 0)
		{
			/* an older taskq, without taskq.metrics() */
			respond_error(req, MHD_HTTP_NOT_IMPLEMENTED, err.code, NULL, NULL,
						  "this database's taskq has no taskq.metrics()");
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
	pool_release(pc);
}

/* ---- routing ---- */

/*
 * Percent-decode a path segment or query value in place; false for a bad
 * escape or an encoded NUL, which no SQL text can hold.
 */
static bool
percent_decode(char *s)
{
	char	   *out = s;

	while (*s)
	{
		if (*s == '%')
		{
			int			hi,
						lo;

			if (!isxdigit((unsigned char) s[1]) || !isxdigit((unsigned char) s[2]))
				return false;
			hi = isdigit((unsigned char) s[1]) ? s[1] - '0' : (tolower((unsigned char) s[1]) - 'a' + 10);
			lo = isdigit((unsigned char) s[2]) ? s[2] - '0' : (tolower((unsigned char) s[2]) - 'a' + 10);
			if (hi == 0 && lo == 0)
				return false;
			*out++ = (char) (hi * 16 + lo);
			s += 3;
		}
		else
			*out++ = *s++;
	}
	*out = '\0';
	return true;
}

/*
 * MHD's unescape callback: leave everything as sent.  The path is split
 * on '/' first and each segment decoded then (so that a queue name may
 * hold an encoded '/'); query values are decoded when read.
 */
static size_t
keep_escaped(void *cls, struct MHD_Connection *connection, char *s)
{
	return strlen(s);
}

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

/*
 * The bearer token of the request: NULL when there is none, "" when it is
 * not printable ASCII (no token is; such bytes would not even reach the
 * look-up as valid text).
 */
static const char *
bearer_token(Request *req)
{
	const char *h = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
												MHD_HTTP_HEADER_AUTHORIZATION);
	const char *p;

	if (h == NULL || pg_strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	if (*h == '\0')
		return NULL;
	for (p = h; *p; p++)
		if ((unsigned char) *p < 0x21 || (unsigned char) *p > 0x7e)
			return "";
	return h;
}

/* whether two strings are equal, in a time that does not depend on where
 * they differ */
static bool
secrets_equal(const char *a, const char *b)
{
	size_t		la = strlen(a);
	size_t		lb = strlen(b);
	unsigned char diff = la != lb;
	size_t		i;

	for (i = 0; i < la; i++)
		diff |= (unsigned char) a[i] ^ (unsigned char) b[i % (lb ? lb : 1)];
	return diff == 0;
}

/* route a complete request and queue its response */
static void
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
		if (token == NULL)
		{
			respond_error(req, MHD_HTTP_UNAUTHORIZED, "28000", NULL,
						  "Send \"Authorization: Bearer <token>\".",
						  "missing bearer token");
			goto done;
		}
		if (token[0] == '\0')
		{
			respond_error(req, MHD_HTTP_UNAUTHORIZED, "28P01", NULL, NULL,
						  "unknown or revoked API token");
			goto done;
		}
	}
	else if (route->auth == AUTH_METRICS && metrics_token)
	{
		const char *t = bearer_token(req);

		if (t == NULL || !secrets_equal(t, metrics_token))
		{
			respond_error(req, MHD_HTTP_UNAUTHORIZED, t ? "28P01" : "28000",
						  NULL, NULL, t ? "wrong metrics token" : "missing bearer token");
			goto done;
		}
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
static bool
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

/* ---- MHD callbacks ---- */

/*
 * MHD_AccessHandlerCallback: called once the headers are in (a Request is
 * made), then with each piece of the body, then once the request is
 * complete, when it is dispatched.
 */
static enum MHD_Result
handle_request(void *cls, struct MHD_Connection *connection, const char *url,
			   const char *method, const char *version, const char *upload_data,
			   size_t *upload_data_size, void **con_cls)
{
	Request    *req = *con_cls;

	if (req == NULL)
	{
		const char *cl;
		bool		stopping;

		req = pg_malloc0(sizeof(Request));
		req->connection = connection;
		req->started = now_ms();
		req->method = pg_strdup(method);
		req->path = pg_strdup(url);
		*con_cls = req;

		pthread_mutex_lock(&state_lock);
		inflight++;
		stopping = draining;
		pthread_mutex_unlock(&state_lock);

		if (stopping)
		{
			respond_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "57P01", NULL, NULL,
						  "the server is shutting down");
			return MHD_YES;
		}
		cl = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
										 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > max_body)
		{
			char		detail[128];

			snprintf(detail, sizeof(detail), "The limit is %zu bytes.", max_body);
			respond_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "54000", detail, NULL,
						  "request body is too large");
		}
		else if (needs_token(method, url))
		{
			/*
			 * A route that needs a token is refused on its headers when
			 * there is none, before any body is read: a client without a
			 * token cannot hold a connection by trickling a body.
			 */
			const char *token = bearer_token(req);

			if (token == NULL || token[0] == '\0')
			{
				req->close = true;
				if (token == NULL)
					respond_error(req, MHD_HTTP_UNAUTHORIZED, "28000", NULL,
								  "Send \"Authorization: Bearer <token>\".",
								  "missing bearer token");
				else
					respond_error(req, MHD_HTTP_UNAUTHORIZED, "28P01", NULL, NULL,
								  "unknown or revoked API token");
			}
		}
		return MHD_YES;
	}

	if (req->status != 0)
	{
		/* answered already: drop whatever else comes */
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* an absolute deadline: a body trickled in forever is cut off */
	if (now_ms() - req->started > (int64_t) request_deadline_s * 1000)
		return MHD_NO;
	if (*upload_data_size > 0)
	{
		size_t		n = *upload_data_size;

		/* chunked, so not refused up front: close the connection */
		if (req->body_len + n > max_body)
			return MHD_NO;
		req->body = pg_realloc(req->body, req->body_len + n + 1);
		memcpy(req->body + req->body_len, upload_data, n);
		req->body_len += n;
		req->body[req->body_len] = '\0';
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->body && strlen(req->body) != req->body_len)
	{
		respond_error(req, MHD_HTTP_BAD_REQUEST, "22P02", NULL, NULL,
					  "request body contains a NUL byte");
		return MHD_YES;
	}
	dispatch(req);
	return req->status != 0 ? MHD_YES : MHD_NO;
}

/*
 * MHD_RequestCompletedCallback: the response went out (or the connection
 * failed): log the request and forget it.
 */
static void
request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
				  enum MHD_RequestTerminationCode toe)
{
	Request    *req = *con_cls;

	if (req == NULL)
		return;
	if (!quiet)
	{
		char	   *path = loggable(req->path);

		if (req->status != 0)
			log_message("%s %s %d %ldms", req->method, path, req->status,
					  (long) (now_ms() - req->started));
		else
			log_message("%s %s closed without a response %ldms", req->method, path,
					  (long) (now_ms() - req->started));
		free(path);
	}
	free(req->method);
	free(req->path);
	free(req->body);
	free(req);
	*con_cls = NULL;

	pthread_mutex_lock(&state_lock);
	inflight--;
	pthread_mutex_unlock(&state_lock);
}

/* MHD_LogCallback: MHD's own messages */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char		buf[1024];
	size_t		len;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	len = strlen(buf);
	while (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	log_message("http: %s", buf);
}

/* ---- start-up and shutdown ---- */

static void
serve_usage(void)
{
	printf("Serve the taskq SQL API over HTTP (REST and JSON).\n\n"
		   "Usage:\n  taskq serve [OPTIONS]\n\n"
		   "Options:\n"
		   "      --listen=HOST:PORT      address to listen on (default %s;\n"
		   "                              [::1]:PORT for IPv6, port 0 for any free port)\n"
		   "      --pool=N                database connections (default 4)\n"
		   "      --threads=N             HTTP threads (default: --pool)\n"
		   "      --max-body=BYTES        largest request body (default %d)\n"
		   "      --timeout=SECONDS       close idle or stalled connections (default 30)\n"
		   "      --statement-timeout=MS  statement_timeout of the connections (default\n"
		   "                              30000; 0: none)\n"
		   "      --shutdown-timeout=SECONDS  on SIGTERM, wait this long for requests in\n"
		   "                              flight (default 30)\n"
		   "      --max-connections=N     open HTTP connections at most (default 256)\n"
		   "      --max-connections-per-ip=N  open HTTP connections per client address\n"
		   "                              at most (default 64)\n"
		   "      --request-deadline=SECONDS  a request's headers and body must arrive\n"
		   "                              within this time (default 60)\n"
		   "      --metrics-token=TOKEN   require this bearer token for /metrics (default:\n"
		   "                              $TASKQ_METRICS_TOKEN; none: no token needed)\n"
		   "      --quiet                 no log line per request\n"
		   "  -d, --dbname=CONNSTR        database (conninfo string or URI; PG* variables apply)\n"
		   "  -h, --help                  show this help\n\n"
		   "Requests carry \"Authorization: Bearer <token>\", a token made by\n"
		   "taskq.create_api_token(role); they run as that role.  See the README,\n"
		   "section \"HTTP API\", for the routes.\n",
		   DEFAULT_LISTEN, DEFAULT_MAX_BODY);
}

/*
 * Resolve --listen (HOST:PORT, [IPV6]:PORT or :PORT for every IPv4
 * address) into *ss; exits with a usage error when it cannot.
 */
static void
resolve_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char	   *copy = pg_strdup(spec);
	char	   *host;
	char	   *port;
	struct addrinfo hints;
	struct addrinfo *ai;
	int			rc;

	if (copy[0] == '[')
	{
		host = copy + 1;
		port = strchr(host, ']');
		if (port == NULL || port[1] != ':')
			usage_error("serve", "invalid --listen \"%s\" (HOST:PORT or [IPV6]:PORT)", spec);
		*port = '\0';
		port += 2;
	}
	else
	{
		port = strrchr(copy, ':');
		if (port == NULL)
			usage_error("serve", "invalid --listen \"%s\" (HOST:PORT or [IPV6]:PORT)", spec);
		*port++ = '\0';
		host = copy[0] ? copy : "0.0.0.0";
	}
	(void) parse_int_option("serve", "port", port, 0, 65535);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0)
		usage_error("serve", "cannot resolve --listen host \"%s\": %s", host,
					gai_strerror(rc));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sslen = ai->ai_addrlen;
	freeaddrinfo(ai);
	free(copy);
}

/*
 * Check at start-up what every request needs: the extension with its API
 * tokens, and the right to run the token look-up.
 */
static void
check_database(PGconn *conn)
{
	PGresult   *res;

	res = PQexec(conn,
				 "SELECT p.oid IS NOT NULL,"
				 " p.oid IS NOT NULL"
				 " AND pg_catalog.has_schema_privilege(p.pronamespace, 'USAGE')"
				 " AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE'),"
				 " current_user, pg_catalog.quote_ident(current_user)"
				 " FROM (SELECT) AS one"
				 " LEFT JOIN pg_catalog.pg_proc p"
				 " ON p.proname = 'api_token_role'"
				 " AND p.pronamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n"
				 " WHERE n.nspname = 'taskq')");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		report_result_error(res, conn);
		exit(EXIT_ERROR);
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		fatal("extension taskq (with API tokens) is not installed in database \"%s\"",
			  PQdb(conn));
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
		fatal("role \"%s\" may not look up API tokens\n"
			  "HINT: GRANT USAGE ON SCHEMA taskq TO %s; "
			  "GRANT EXECUTE ON FUNCTION taskq.api_token_role(text) TO %s;",
			  PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 3));
	PQclear(res);
}

/* cancel the queries running on the pool's connections (forced stop) */
static void
cancel_queries(void)
{
	int			i;

	pthread_mutex_lock(&pool_lock);
	for (i = 0; i < pool_size; i++)
	{
		char		errbuf[256];

		if (pool[i].busy && pool[i].cancel)
			(void) PQcancel(pool[i].cancel, errbuf, sizeof(errbuf));
	}
	pthread_mutex_unlock(&pool_lock);
}

static int
inflight_count(void)
{
	int			n;

	pthread_mutex_lock(&state_lock);
	n = inflight;
	pthread_mutex_unlock(&state_lock);
	return n;
}

int
cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONG_OPTIONS,
		{"listen", required_argument, NULL, 'l'},
		{"pool", required_argument, NULL, 'p'},
		{"threads", required_argument, NULL, 't'},
		{"max-body", required_argument, NULL, 'b'},
		{"timeout", required_argument, NULL, 'T'},
		{"statement-timeout", required_argument, NULL, 's'},
		{"shutdown-timeout", required_argument, NULL, 'S'},
		{"max-connections", required_argument, NULL, 'c'},
		{"max-connections-per-ip", required_argument, NULL, 'I'},
		{"request-deadline", required_argument, NULL, 'D'},
		{"metrics-token", required_argument, NULL, 'm'},
		{"quiet", no_argument, NULL, 'q'},
		{NULL, 0, NULL, 0}
	};
	struct sockaddr_storage ss;
	socklen_t	sslen;
	struct MHD_Daemon *daemon;
	const union MHD_DaemonInfo *info;
	char		host[NI_MAXHOST];
	sigset_t	sigs;
	int			sig;
	int			c,
				i;
	int64_t		deadline;
	bool		forced = false;
	unsigned int flags;

	while ((c = getopt_long(argc, argv, "+d:h", opts, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		switch (c)
		{
			case 'h':
				serve_usage();
				exit(EXIT_OK);
			case 'l':
				listen_addr = optarg;
				break;
			case 'p':
				pool_size = parse_int_option("serve", "pool size", optarg, 1, 1000);
				break;
			case 't':
				thread_count = parse_int_option("serve", "thread count", optarg, 1, 1000);
				break;
			case 'b':
				max_body = parse_int_option("serve", "body limit", optarg, 1, 1024 * 1024 * 1024);
				break;
			case 'T':
				connection_timeout_s = parse_int_option("serve", "timeout", optarg, 1, 86400);
				break;
			case 's':
				statement_timeout_ms = parse_int_option("serve", "statement timeout", optarg, 0, INT_MAX);
				break;
			case 'S':
				shutdown_timeout_s = parse_int_option("serve", "shutdown timeout", optarg, 0, 86400);
				break;
			case 'c':
				max_connections = parse_int_option("serve", "connection limit", optarg, 1, 100000);
				break;
			case 'I':
				max_connections_per_ip = parse_int_option("serve", "connection limit per address", optarg, 1, 100000);
				break;
			case 'D':
				request_deadline_s = parse_int_option("serve", "request deadline", optarg, 1, 86400);
				break;
			case 'm':
				if (optarg[0] == '\0')
					usage_error("serve", "empty metrics token");
				metrics_token = optarg;
				break;
			case 'q':
				quiet = true;
				break;
			default:
				usage_error("serve", "invalid option");
		}
	}
	if (optind < argc)
		usage_error("serve", "unexpected argument \"%s\"", argv[optind]);
	if (metrics_token == NULL && getenv("TASKQ_METRICS_TOKEN") &&
		getenv("TASKQ_METRICS_TOKEN")[0] != '\0')
		metrics_token = getenv("TASKQ_METRICS_TOKEN");
	if (thread_count == 0)
		thread_count = pool_size;
	resolve_listen(listen_addr, &ss, &sslen);

	/* every connection now: a wrong conninfo fails here, not per request */
	pool = pg_malloc0(sizeof(PoolConn) * pool_size);
	for (i = 0; i < pool_size; i++)
	{
		char	   *why = NULL;

		pool[i].conn = pool_connect(&why);
		if (pool[i].conn == NULL)
			fatal("could not connect to the database: %s", why);
		pool[i].cancel = PQgetCancel(pool[i].conn);
	}
	check_database(pool[0].conn);

	/*
	 * The signals are taken by sigwait below: block them before MHD starts
	 * its threads, which inherit the mask.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	pqsignal(SIGPIPE, SIG_IGN);

	flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle_request, NULL,
							  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
							  MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
							  MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) thread_count,
							  MHD_OPTION_CONNECTION_LIMIT, (unsigned int) max_connections,
							  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) max_connections_per_ip,
							  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) connection_timeout_s,
							  MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
							  MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
							  MHD_OPTION_END);
	if (daemon == NULL)
		fatal("could not listen on %s", listen_addr);
	info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (getnameinfo((struct sockaddr *) &ss, sslen, host, sizeof(host), NULL, 0,
					NI_NUMERICHOST) != 0)
		strlcpy(host, "?", sizeof(host));
	log_message("listening on http://%s%s%s:%u (pool %d, threads %d)",
			  ss.ss_family == AF_INET6 ? "[" : "", host,
			  ss.ss_family == AF_INET6 ? "]" : "",
			  info ? (unsigned int) info->port : 0, pool_size, thread_count);

	while (sigwait(&sigs, &sig) != 0)
		;

	/* no new connections; new requests on open ones are answered 503 */
	pthread_mutex_lock(&state_lock);
	draining = true;
	pthread_mutex_unlock(&state_lock);
	{
		MHD_socket	fd = MHD_quiesce_daemon(daemon);

		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	log_message("shutting down (%s): waiting up to %d s for %d request(s) in flight",
			  sig == SIGTERM ? "SIGTERM" : "SIGINT", shutdown_timeout_s,
			  inflight_count());

	deadline = now_ms() + (int64_t) shutdown_timeout_s * 1000;
	while (inflight_count() > 0)
	{
		struct timespec wait = {0, 50 * 1000 * 1000};
		int64_t		now = now_ms();

		if (now >= deadline)
		{
			log_message("shutdown timeout: cancelling %d request(s)", inflight_count());
			forced = true;
			break;
		}
		if (sigtimedwait(&sigs, NULL, &wait) > 0)
		{
			log_message("second signal: cancelling %d request(s)", inflight_count());
			forced = true;
			break;
		}
	}
	if (forced)
		cancel_queries();
	MHD_stop_daemon(daemon);
	for (i = 0; i < pool_size; i++)
		pool_drop(&pool[i]);
	log_message("stopped");
	return forced ? EXIT_ERROR : EXIT_OK;
}
