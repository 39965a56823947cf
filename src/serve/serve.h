/*-------------------------------------------------------------------------
 *
 * serve.h
 *		taskq-serve: an HTTP gateway mapping REST calls onto the SQL API.
 *
 * taskq-serve [--listen HOST:PORT] [--pool N] [--threads N]
 *		[--max-body BYTES] [--timeout SECONDS] [--statement-timeout MS]
 *		[--shutdown-timeout SECONDS] [--max-connections N]
 *		[--metrics-token TOKEN] [--quiet]
 *
 * The command-line tool's "taskq serve" runs this program in its place
 * (argv[0] SERVE_AS_SUBCOMMAND), which then speaks as that subcommand.
 *
 * The files:
 *
 *	main.c		options, start-up and shutdown.  SIGTERM or SIGINT (taken
 *				by sigwait in the main thread; every thread blocks them)
 *				stops accepting connections, answers new requests on open
 *				connections 503, and waits up to --shutdown-timeout seconds
 *				for the requests in flight to be answered; then it closes
 *				the connections and the pool and exits 0.  At the timeout,
 *				or on a second signal, it cancels the queries still running
 *				and exits 1.
 *
 *	http.c		HTTP, libmicrohttpd's (MHD): its internal threads (a pool
 *				of --threads, default --pool) accept connections, parse
 *				requests and call handle_request, first once the headers
 *				are in, then with each piece of the body, then once more
 *				when the request is complete.  The body is kept up to
 *				--max-body bytes: a Content-Length over it is answered 413
 *				at once, without reading the body; a chunked body that
 *				grows over it closes the connection.  Also the responses:
 *				errors are a JSON body {"error": {"code": SQLSTATE,
 *				"message", "detail"?, "hint"?}}, built with
 *				append_json_string (the only JSON the gateway writes).
 *
 *	pool.c		the database: a pool of --pool libpq connections, guarded
 *				by a mutex and a condition variable.  A request takes one
 *				for the few statements it runs and gives it back; a broken
 *				connection is reconnected by the next request that takes
 *				it.  The connections serve every token's role in turn, so
 *				they run with search_path pg_catalog, pg_temp: no role can
 *				put a function of its own in the way of another role's
 *				statements.
 *
 *	events.c	the live event stream (GET /api/v1/events): one thread reads
 *				the database's events and hands each client those its
 *				role may see, as Server-Sent Events, or as WebSocket
 *				messages (websocket.c: the handshake, then libwslay's
 *				frames on a thread per connection).
 *
 *	routes.c	the routes and what runs them.  Every route is one
 *				statement, always with $n parameters: request bodies go to
 *				the server as text and are parsed there (as jsonb), and the
 *				server builds the response's JSON, so that the gateway
 *				holds no JSON parser and pastes nothing into SQL.
 *				Authentication: "Authorization: Bearer <token>".  Per
 *				request, in one transaction: BEGIN; the token's role from
 *				taskq._api_token_role (a SECURITY DEFINER look-up by hash;
 *				no role: 401); set_config('role', role, true), so that the
 *				role's own privileges apply to the call; the route's
 *				statement; COMMIT.  The gateway's login role must be a
 *				member of the token roles and have EXECUTE on
 *				taskq._api_token_role.  /healthz, and /metrics unless
 *				--metrics-token is given, need no token and run as the
 *				gateway's own role.
 *
 * What the command-line tool needs too (messages, the connection, option
 * values, JSON strings, the clock) is in src/fe (fe.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TASKQ_SERVE_H
#define TASKQ_SERVE_H

#include <stdarg.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "fe.h"

#define DEFAULT_LISTEN		"127.0.0.1:8080"
#define DEFAULT_MAX_BODY	(1024 * 1024 + 64 * 1024)	/* a 1 MB job and
														 * its envelope */
#define DEFAULT_MAX_RESPONSE	(64 * 1024 * 1024)	/* a pull of 64 jobs of 1 MB */
#define DEFAULT_EVENT_BUFFER	(1024 * 1024)	/* unread events per client */

/* the options (main.c) */
typedef struct ServeConfig
{
	const char *listen_addr;	/* --listen */
	int			pool_size;		/* --pool */
	int			thread_count;	/* --threads (0: pool_size) */
	size_t		max_body;		/* --max-body */
	size_t		max_response;	/* --max-response */
	int			max_wait_ms;	/* --max-wait: the longest wait_ms of a pull */
	int			connection_timeout_s;	/* --timeout */
	int			statement_timeout_ms;	/* --statement-timeout */
	int			shutdown_timeout_s; /* --shutdown-timeout */
	int			max_connections;	/* --max-connections */
	int			max_connections_per_ip; /* --max-connections-per-ip */
	int			request_deadline_s; /* --request-deadline */
	const char *metrics_token;	/* --metrics-token, or NULL */
	const char *tcp_listen_addr;	/* --tcp-listen, or NULL */
	size_t		event_buffer;	/* --event-buffer */
	bool		quiet;			/* --quiet */
} ServeConfig;

extern ServeConfig config;

/* one request (http.c makes it, routes.c answers it) */
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

/* pool.c */
typedef struct PoolConn
{
	PGconn	   *conn;			/* NULL: (re)connect when next taken */
	PGcancel   *cancel;			/* to cancel its query at a forced stop */
	bool		busy;
} PoolConn;

extern void pool_open(void);
extern PGconn *pool_connect(char **err);
extern PoolConn *pool_acquire(const char **code, char **err);
extern bool pool_reconnect(PoolConn *pc, char **err);
extern void pool_release(PoolConn *pc);
extern void pool_cancel_queries(void);
extern void pool_close(void);

/* http.c: responses */
extern void respond(Request *req, int status, const char *content_type,
					const char *body, size_t len,...);
extern void respond_json(Request *req, int status, const char *json);
extern char *error_body(const char *code, const char *message,
						const char *detail, const char *hint);
extern void respond_error(Request *req, int status, const char *code,
						  const char *detail, const char *hint,
						  const char *fmt,...) pg_attribute_printf(6, 7);

/* http.c: requests */
extern char *loggable(const char *s);
extern bool percent_decode(char *s);
extern const char *bearer_token(Request *req);
extern void refuse_token(Request *req, const char *token);
extern bool secrets_equal(const char *a, const char *b);

/* http.c: MHD's callbacks, and the requests in flight */
extern enum MHD_Result handle_request(void *cls, struct MHD_Connection *connection,
									  const char *url, const char *method,
									  const char *version, const char *upload_data,
									  size_t *upload_data_size, void **con_cls);
extern void request_completed(void *cls, struct MHD_Connection *connection,
							  void **con_cls, enum MHD_RequestTerminationCode toe);
extern size_t keep_escaped(void *cls, struct MHD_Connection *connection, char *s);
extern void mhd_log(void *cls, const char *fmt, va_list ap);
extern void stop_taking_requests(void);
extern int	requests_in_flight(void);

/* routes.c */
/* what a failed statement said */
typedef struct SqlError
{
	char		code[6];
	char	   *message;
	char	   *detail;
	char	   *hint;
} SqlError;

extern int	run_as(const char *token, const char *sql, int nparams,
				   const char *const *params, size_t max_response, char **value,
				   SqlError *err, PoolConn **conn_out);
extern void free_error(SqlError *e);
extern int	http_status(const char *code);

extern void dispatch(Request *req);

/* tcp.c */
extern void tcp_start(const struct sockaddr_storage *ss, socklen_t sslen);
extern void tcp_stop(void);
extern int	tcp_connections(void);
extern bool needs_token(const char *method, const char *path);
extern bool token_known(const char *token);

/* events.c: the live event stream */
typedef enum SubscriberKind
{
	SUB_SSE,
	SUB_WS
} SubscriberKind;
typedef struct Subscriber Subscriber;

extern const char *const event_names[];
extern uint32_t event_bit(const char *name);
extern Subscriber *hub_subscribe(SubscriberKind kind, const char *token,
								 char **queues, int nqueues, uint32_t events,
								 int64_t cursor);
extern bool hub_wait_ready(Subscriber *s);
extern void hub_set_wake_fd(Subscriber *s, int fd);
extern size_t hub_take(Subscriber *s, char *out, size_t max, bool *closed,
					   int *code, const char **reason);
extern void hub_unsubscribe(Subscriber *s);
extern void hub_start(void);
extern void hub_stop(void);
extern void serve_sse(Request *req, Subscriber *s);
extern void serve_events(Request *req, const char *token);

/* ui.c: the dashboard, its files from ui_assets.c (embed.pl) */
typedef struct UiAsset
{
	const char *path;
	const char *type;
	const unsigned char *data;
	size_t		len;
} UiAsset;

extern const UiAsset ui_assets[];
extern bool serve_ui(Request *req);

/* websocket.c */
extern bool websocket_requested(Request *req);
extern void serve_websocket(Request *req, Subscriber *s);
extern int	websocket_connections(void);

#endif							/* TASKQ_SERVE_H */
