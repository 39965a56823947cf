/*-------------------------------------------------------------------------
 *
 * tcp.c
 *		taskq-serve's TCP protocol (--tcp-listen): newline-delimited JSON
 *		commands, one response line per command, in order.
 *
 * A connection first authenticates with {"cmd": "auth", "token": "…"} (an
 * API token, as the HTTP bearer token); then each line is a command that
 * taskq.command() runs in a transaction of its own as the token's role,
 * its answer the JSON the HTTP API gives, an error {"error": {"code",
 * "message", "detail"?, "hint"?}} as over HTTP.  A client may send many
 * lines without waiting (pipelining): they are answered in order.  A line
 * longer than --max-body, or a connection idle for --timeout seconds, is
 * closed (the first with an error line).  At shutdown, each connection
 * finishes the command it runs, then is closed.
 *
 * One thread accepts; each connection has a thread of its own (at most
 * --max-connections), which takes a pooled database connection per
 * command, as an HTTP request does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve.h"

static int	listen_fd = -1;
static volatile bool stopping = false;
static int	nconnections = 0;
static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t accept_thread;

/* write all of buf; false when the peer is gone */
static bool
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= n;
	}
	return true;
}

static bool
write_line(int fd, const char *json)
{
	return write_all(fd, json, strlen(json)) && write_all(fd, "\n", 1);
}

static bool
write_error(int fd, const char *code, const char *message, const char *detail,
			const char *hint)
{
	char	   *body = error_body(code, message, detail, hint);
	bool		ok = write_line(fd, body);

	free(body);
	return ok;
}

/*
 * The auth command: the token of {"cmd": "auth", "token": …}, checked.
 * Returns the token (malloc'd) or NULL, having answered the line.
 */
static char *
authenticate(int fd, const char *line)
{
	const char *params[1] = {line};
	char	   *value = NULL;
	SqlError	err = {{0}};
	char	   *token = NULL;

	/* the gateway's own role parses the line and looks the token up */
	run_as(NULL,
		   "SELECT CASE WHEN c->>'cmd' IS DISTINCT FROM 'auth' THEN 'first'"
		   " WHEN taskq._api_token_role(c->>'token') IS NULL THEN 'unknown'"
		   " ELSE 'ok:' || (c->>'token') END"
		   " FROM (SELECT $1::jsonb AS c) x WHERE jsonb_typeof(c) = 'object'",
		   1, params, 0, &value, &err, NULL);
	if (err.message)
		write_error(fd, err.code, err.message, err.detail, err.hint);
	else if (value == NULL || strcmp(value, "first") == 0)
		write_error(fd, "28000", "authenticate first", NULL,
					"Send {\"cmd\": \"auth\", \"token\": \"…\"} before any other command.");
	else if (strcmp(value, "unknown") == 0)
		write_error(fd, "28P01", "unknown or revoked API token", NULL,
					"Create a token with taskq.create_api_token().");
	else
	{
		token = pg_strdup(value + 3);
		write_line(fd, "{\"ok\": true}");
	}
	free(value);
	free_error(&err);
	return token;
}

/* run one command as the token's role and answer it */
static bool
run_command(int fd, const char *token, const char *line)
{
	char		max_wait[16];
	const char *params[2] = {line, max_wait};
	char	   *value = NULL;
	SqlError	err = {{0}};
	bool		ok;

	snprintf(max_wait, sizeof(max_wait), "%d", config.max_wait_ms);
	run_as(token, "SELECT taskq.command($1::jsonb, $2::int)::text", 2, params,
		   config.max_response, &value, &err, NULL);
	if (err.message)
		ok = write_error(fd, err.code, err.message, err.detail, err.hint);
	else
		ok = write_line(fd, value ? value : "null");
	free(value);
	free_error(&err);
	return ok;
}

/* a connection: lines in, lines out, until EOF, an error, idleness or shutdown */
static void *
connection_main(void *arg)
{
	int			fd = (int) (intptr_t) arg;
	size_t		cap = 8192;
	size_t		len = 0;
	char	   *buf = pg_malloc(cap);
	char	   *token = NULL;
	int64_t		idle_since = now_ms();

	for (;;)
	{
		char	   *nl;
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t		n;

		/* every complete line first, in order */
		while ((nl = memchr(buf, '\n', len)) != NULL)
		{
			size_t		linelen = nl - buf;
			bool		ok = true;

			*nl = '\0';
			if (linelen > 0 && buf[linelen - 1] == '\r')
				buf[linelen - 1] = '\0';
			if (buf[0] == '\0')
				;				/* an empty line: nothing */
			else if (token == NULL)
				token = authenticate(fd, buf);
			else
				ok = run_command(fd, token, buf);
			memmove(buf, nl + 1, len - linelen - 1);
			len -= linelen + 1;
			idle_since = now_ms();
			if (!ok)
				goto done;
		}
		if (stopping)
			break;
		if (len > config.max_body)
		{
			char		detail[128];

			snprintf(detail, sizeof(detail), "The limit is %zu bytes (--max-body).",
					 config.max_body);
			write_error(fd, "54000", "command line too long", detail, NULL);
			break;
		}
		if (now_ms() - idle_since > (int64_t) config.connection_timeout_s * 1000)
			break;
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		if (len + 4096 > cap)
		{
			cap *= 2;
			buf = pg_realloc(buf, cap);
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
done:
	close(fd);
	free(token);
	free(buf);
	pthread_mutex_lock(&conn_lock);
	nconnections--;
	pthread_mutex_unlock(&conn_lock);
	return NULL;
}

static void *
accept_main(void *arg)
{
	while (!stopping)
	{
		struct pollfd pfd = {listen_fd, POLLIN, 0};
		int			fd;
		pthread_t	t;
		bool		full;

		if (poll(&pfd, 1, 200) <= 0)
			continue;
		fd = accept(listen_fd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&conn_lock);
		full = nconnections >= config.max_connections;
		if (!full)
			nconnections++;
		pthread_mutex_unlock(&conn_lock);
		if (full)
		{
			write_error(fd, "53300", "too many connections", NULL, NULL);
			close(fd);
			continue;
		}
		if (pthread_create(&t, NULL, connection_main, (void *) (intptr_t) fd) != 0)
		{
			close(fd);
			pthread_mutex_lock(&conn_lock);
			nconnections--;
			pthread_mutex_unlock(&conn_lock);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

/* listen on ss for the TCP protocol; exits when it cannot */
void
tcp_start(const struct sockaddr_storage *ss, socklen_t sslen)
{
	int			one = 1;
	struct sockaddr_storage bound;
	socklen_t	blen = sizeof(bound);
	char		host[NI_MAXHOST];
	char		port[NI_MAXSERV];

	listen_fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 ||
		setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(listen_fd, (const struct sockaddr *) ss, sslen) != 0 ||
		listen(listen_fd, 128) != 0 ||
		getsockname(listen_fd, (struct sockaddr *) &bound, &blen) != 0)
		fatal("could not listen on %s for TCP: %m", config.tcp_listen_addr);
	if (getnameinfo((struct sockaddr *) &bound, blen, host, sizeof(host), port, sizeof(port),
					NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		strlcpy(host, "?", sizeof(host));
	log_message("listening on tcp://%s%s%s:%s (newline-delimited JSON)",
				bound.ss_family == AF_INET6 ? "[" : "", host,
				bound.ss_family == AF_INET6 ? "]" : "", port);
	if (pthread_create(&accept_thread, NULL, accept_main, NULL) != 0)
		fatal("could not start the TCP listener");
}

/*
 * At shutdown: accept no more; each connection finishes its command and
 * closes.  Returns the connections still open.
 */
void
tcp_stop(void)
{
	if (listen_fd < 0)
		return;
	stopping = true;
	pthread_join(accept_thread, NULL);
	close(listen_fd);
	listen_fd = -1;
}

int
tcp_connections(void)
{
	int			n;

	pthread_mutex_lock(&conn_lock);
	n = nconnections;
	pthread_mutex_unlock(&conn_lock);
	return n;
}
