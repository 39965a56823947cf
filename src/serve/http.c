/*-------------------------------------------------------------------------
 *
 * http.c
 *		taskq-serve's HTTP side (see serve.h): reading requests with their
 *		bodies, refusing early what can be refused on the headers, the
 *		responses and error bodies, and the requests in flight that a
 *		shutdown waits for.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <ctype.h>
#include <pthread.h>

#include "serve.h"

/* requests in flight, for the shutdown */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static int	inflight = 0;
static bool draining = false;

/* ---- responses ---- */

/* a copy of s fit for a log line: control characters shown as '?' */
char *
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
void
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

void
respond_json(Request *req, int status, const char *json)
{
	respond(req, status, "application/json", json, strlen(json), NULL);
}

/* the error body: {"error": {"code", "message", "detail"?, "hint"?}} */
char *
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
void
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

/* ---- reading requests ---- */

/*
 * Percent-decode a path segment or query value in place; false for a bad
 * escape or an encoded NUL, which no SQL text can hold.
 */
bool
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
size_t
keep_escaped(void *cls, struct MHD_Connection *connection, char *s)
{
	return strlen(s);
}

/*
 * The bearer token of the request: NULL when there is none, "" when it is
 * not printable ASCII (no token is; such bytes would not even reach the
 * look-up as valid text).
 */
const char *
bearer_token(Request *req)
{
	const char *h = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
												MHD_HTTP_HEADER_AUTHORIZATION);
	const char *p;

	if (h != NULL)
	{
		if (pg_strncasecmp(h, "Bearer ", 7) != 0)
			return NULL;
		h += 7;
		while (*h == ' ')
			h++;
	}
	else if (strcmp(req->method, "GET") == 0 &&
			 strcmp(req->path, "/api/v1/events") == 0)
	{
		/*
		 * A browser's EventSource and WebSocket cannot send headers: the
		 * event stream also takes the token as ?access_token= (RFC 6750,
		 * 2.3)
		 */
		h = MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND,
										"access_token");
	}
	if (h == NULL || *h == '\0')
		return NULL;
	for (p = h; *p; p++)
		if ((unsigned char) *p < 0x21 || (unsigned char) *p > 0x7e)
			return "";
	return h;
}

/*
 * Answer 401 to a request whose bearer_token is missing (NULL) or not
 * printable ASCII ("")
 */
void
refuse_token(Request *req, const char *token)
{
	if (token == NULL)
		respond_error(req, MHD_HTTP_UNAUTHORIZED, "28000", NULL,
					  "Send \"Authorization: Bearer <token>\".",
					  "missing bearer token");
	else
		respond_error(req, MHD_HTTP_UNAUTHORIZED, "28P01", NULL, NULL,
					  "unknown or revoked API token");
}

/* whether two strings are equal, in a time that does not depend on where
 * they differ */
bool
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

/* ---- MHD callbacks ---- */

/*
 * MHD_AccessHandlerCallback: called once the headers are in (a Request is
 * made), then with each piece of the body, then once the request is
 * complete, when it is dispatched.
 */
enum MHD_Result
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
		if (cl && strtoull(cl, NULL, 10) > config.max_body)
		{
			char		detail[128];

			snprintf(detail, sizeof(detail), "The limit is %zu bytes.", config.max_body);
			respond_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "54000", detail, NULL,
						  "request body is too large");
		}
		else if (needs_token(method, url))
		{
			/*
			 * A route that needs a token is refused on its headers when
			 * there is none, or an unknown one, before any body is read: a
			 * client without a valid token cannot hold a connection by
			 * trickling a body.
			 */
			const char *token = bearer_token(req);

			if (token == NULL || token[0] == '\0')
			{
				req->close = true;
				refuse_token(req, token);
			}
			else if (!token_known(token))
			{
				/* nor can one with a token that stands for no role */
				req->close = true;
				refuse_token(req, "");
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
	if (now_ms() - req->started > (int64_t) config.request_deadline_s * 1000)
		return MHD_NO;
	if (*upload_data_size > 0)
	{
		size_t		n = *upload_data_size;

		/* chunked, so not refused up front: close the connection */
		if (req->body_len + n > config.max_body)
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
void
request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
				  enum MHD_RequestTerminationCode toe)
{
	Request    *req = *con_cls;

	if (req == NULL)
		return;
	if (!config.quiet)
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
void
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

/* ---- the shutdown ---- */

/* from now on, new requests are answered 503 */
void
stop_taking_requests(void)
{
	pthread_mutex_lock(&state_lock);
	draining = true;
	pthread_mutex_unlock(&state_lock);
}

/* how many requests are in flight */
int
requests_in_flight(void)
{
	int			n;

	pthread_mutex_lock(&state_lock);
	n = inflight;
	pthread_mutex_unlock(&state_lock);
	return n;
}
