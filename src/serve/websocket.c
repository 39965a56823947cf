/*-------------------------------------------------------------------------
 *
 * websocket.c
 *		GET /api/v1/events as a WebSocket (RFC 6455): the handshake, then
 *		the frames by libwslay, one text message per event.
 *
 * The handshake is answered with MHD's connection upgrade (101, and
 * Sec-WebSocket-Accept: the base64 of the SHA-1 of the client's key and
 * the protocol's GUID, by PostgreSQL's own cryptohash and base64).  MHD
 * then hands the socket over; a thread of its own (at most one per
 * --max-connections) runs the connection with wslay: it moves the
 * subscriber's events (events.c) into wslay's queue while that queue is
 * short, so that a client that does not read lets its events pile up in
 * the subscriber's bounded buffer, not in wslay's; it answers pings
 * (wslay does), sends one every PING_MS, and ignores what the client
 * sends but close.  When the stream ends (shutdown, a slow consumer, a
 * revoked token) it sends a close frame with the code and reason, and
 * closes the socket once the client answers or after CLOSE_WAIT_MS.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/sha1.h"

#include "serve.h"

#define WS_GUID			"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define PING_MS			15000
#define CLOSE_WAIT_MS	10000
#define WSLAY_QUEUE_MAX	16		/* messages handed to wslay at a time */
#define MAX_CLIENT_MSG	4096	/* a longer client message closes (1009) */

typedef struct WsConn
{
	Subscriber *sub;
	int			fd;
	int			wake_fd;
	struct MHD_UpgradeResponseHandle *urh;
	char	   *extra;			/* bytes MHD read past the handshake */
	size_t		extra_len;
	size_t		extra_off;
	PQExpBufferData partial;	/* a line taken in part from the hub */
} WsConn;

static pthread_mutex_t ws_lock = PTHREAD_MUTEX_INITIALIZER;
static int	nws = 0;

/* whether a header's comma-separated value holds token (any case) */
static bool
header_has(Request *req, const char *header, const char *token)
{
	const char *v = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, header);
	size_t		tl = strlen(token);

	while (v && *v)
	{
		size_t		n;

		while (*v == ' ' || *v == ',' || *v == '\t')
			v++;
		n = strcspn(v, ",");
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n == tl && pg_strncasecmp(v, token, tl) == 0)
			return true;
		v += strcspn(v, ",");
	}
	return false;
}

/* whether the request asks for a WebSocket upgrade */
bool
websocket_requested(Request *req)
{
	return header_has(req, MHD_HTTP_HEADER_UPGRADE, "websocket");
}

/* ---- wslay's callbacks ---- */

static ssize_t
ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		void *user_data)
{
	WsConn	   *c = user_data;
	ssize_t		n;

	if (c->extra_off < c->extra_len)
	{
		n = Min(len, c->extra_len - c->extra_off);
		memcpy(buf, c->extra + c->extra_off, n);
		c->extra_off += n;
		return n;
	}
	do
		n = recv(c->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
	{
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n <= 0)
	{
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return n;
}

static ssize_t
ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
		int flags, void *user_data)
{
	WsConn	   *c = user_data;
	ssize_t		n;

	do
		n = send(c->fd, data, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
	{
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n < 0)
	{
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return n;
}

/* what the client sends is not read: the stream goes one way */
static void
ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		  void *user_data)
{
}

/*
 * Move the subscriber's events into wslay's queue while it is short.
 * Returns false when the stream is over (*code and *reason set).
 */
static bool
feed(WsConn *c, wslay_event_context_ptr ctx, int *code, char **reason)
{
	char		chunk[8192];

	while (wslay_event_get_queued_msg_count(ctx) < WSLAY_QUEUE_MAX)
	{
		bool		closed;
		const char *why;
		size_t		n = hub_take(c->sub, chunk, sizeof(chunk), &closed, code, &why);
		size_t		start = 0;

		if (n == 0)
		{
			if (closed)
			{
				*reason = pg_strdup(why ? why : "");
				return false;
			}
			break;
		}
		for (size_t i = 0; i < n; i++)
		{
			struct wslay_event_msg msg;

			if (chunk[i] != '\n')
				continue;
			appendBinaryPQExpBuffer(&c->partial, chunk + start, i - start);
			msg.opcode = WSLAY_TEXT_FRAME;
			msg.msg = (const uint8_t *) c->partial.data;
			msg.msg_length = c->partial.len;
			(void) wslay_event_queue_msg(ctx, &msg);	/* copies it */
			resetPQExpBuffer(&c->partial);
			start = i + 1;
		}
		appendBinaryPQExpBuffer(&c->partial, chunk + start, n - start);
	}
	return true;
}

/* the connection is over: the subscriber, the socket, the count */
static void
ws_end(WsConn *c)
{
	hub_unsubscribe(c->sub);	/* the pump frees it, and c->wake_fd */
	MHD_upgrade_action(c->urh, MHD_UPGRADE_ACTION_CLOSE);
	termPQExpBuffer(&c->partial);
	free(c->extra);
	free(c);
	pthread_mutex_lock(&ws_lock);
	nws--;
	pthread_mutex_unlock(&ws_lock);
}

static void *
ws_main(void *arg)
{
	WsConn	   *c = arg;
	wslay_event_context_ptr ctx;
	struct wslay_event_callbacks callbacks = {
		ws_recv, ws_send, NULL, NULL, NULL, NULL, ws_on_msg
	};
	bool		closing = false;
	int64_t		close_deadline = 0;
	int64_t		next_ping = now_ms() + PING_MS;

	if (wslay_event_context_server_init(&ctx, &callbacks, c) != 0)
		goto out;
	wslay_event_config_set_max_recv_msg_length(ctx, MAX_CLIENT_MSG);

	for (;;)
	{
		struct pollfd fds[2];
		int64_t		now;
		int			timeout;

		if (!closing)
		{
			int			code = 1000;
			char	   *reason = NULL;

			if (!feed(c, ctx, &code, &reason))
			{
				(void) wslay_event_queue_close(ctx, (uint16_t) code,
											   (const uint8_t *) reason,
											   strlen(reason));
				free(reason);
				closing = true;
				close_deadline = now_ms() + CLOSE_WAIT_MS;
			}
		}
		if (!wslay_event_want_read(ctx) && !wslay_event_want_write(ctx))
			break;
		/* the client closed: nothing more for it */
		if (!closing && wslay_event_get_close_received(ctx))
		{
			closing = true;
			close_deadline = now_ms() + CLOSE_WAIT_MS;
		}

		now = now_ms();
		if (closing && now >= close_deadline)
			break;
		if (!closing && now >= next_ping)
		{
			struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};

			(void) wslay_event_queue_msg(ctx, &ping);
			next_ping = now + PING_MS;
		}
		timeout = (int) ((closing ? close_deadline : next_ping) - now);

		fds[0].fd = c->fd;
		fds[0].events = (wslay_event_want_read(ctx) ? POLLIN : 0) |
			(wslay_event_want_write(ctx) ? POLLOUT : 0);
		fds[1].fd = c->wake_fd;
		fds[1].events = POLLIN;
		fds[0].revents = fds[1].revents = 0;
		if (c->extra_off < c->extra_len)
			fds[0].revents = POLLIN;	/* bytes MHD read already */
		else if (poll(fds, 2, Max(timeout, 0)) < 0 && errno != EINTR)
			break;
		if (fds[1].revents & POLLIN)
		{
			uint64_t	n;

			if (read(c->wake_fd, &n, sizeof(n)) < 0)
			{
				/* nothing to read after all */
			}
		}
		if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && wslay_event_recv(ctx) != 0)
			break;
		if (wslay_event_want_write(ctx) && wslay_event_send(ctx) != 0)
			break;
	}
	wslay_event_context_free(ctx);
out:
	ws_end(c);
	return NULL;
}

/* MHD_UpgradeHandler: the socket is ours */
static void
ws_upgraded(void *cls, struct MHD_Connection *connection, void *con_cls,
			const char *extra_in, size_t extra_in_size, MHD_socket sock,
			struct MHD_UpgradeResponseHandle *urh)
{
	WsConn	   *c = pg_malloc0(sizeof(WsConn));
	pthread_t	thread;
	pthread_attr_t attr;
	int			flags;

	c->sub = cls;
	c->fd = sock;
	c->urh = urh;
	initPQExpBuffer(&c->partial);
	if (extra_in_size > 0)
	{
		c->extra = pg_malloc(extra_in_size);
		memcpy(c->extra, extra_in, extra_in_size);
		c->extra_len = extra_in_size;
	}
	flags = fcntl(sock, F_GETFL, 0);
	(void) fcntl(sock, F_SETFL, flags | O_NONBLOCK);
	c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	hub_set_wake_fd(c->sub, c->wake_fd);

	pthread_mutex_lock(&ws_lock);
	nws++;
	pthread_mutex_unlock(&ws_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (c->wake_fd < 0 || pthread_create(&thread, &attr, ws_main, c) != 0)
	{
		log_message("events: could not start a WebSocket thread");
		ws_end(c);
	}
	pthread_attr_destroy(&attr);
}

/* Sec-WebSocket-Accept for a key, into out (at least 29 bytes) */
static bool
accept_key(const char *key, char *out, size_t outlen)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA1);
	uint8		digest[SHA1_DIGEST_LENGTH];
	int			n;

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) key, strlen(key)) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) WS_GUID, strlen(WS_GUID)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
	{
		pg_cryptohash_free(ctx);
		return false;
	}
	pg_cryptohash_free(ctx);
	n = pg_b64_encode((const char *) digest, sizeof(digest), out, (int) outlen - 1);
	if (n < 0)
		return false;
	out[n] = '\0';
	return true;
}

/* answer the handshake; the subscriber is the connection's from now on */
void
serve_websocket(Request *req, Subscriber *s)
{
	const char *key = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
												  "Sec-WebSocket-Key");
	const char *version = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
													  "Sec-WebSocket-Version");
	char		accept[64];
	struct MHD_Response *resp;

	if (strcmp(req->method, "GET") != 0 ||
		!header_has(req, MHD_HTTP_HEADER_CONNECTION, "upgrade") ||
		key == NULL || strlen(key) != 24)
	{
		hub_unsubscribe(s);
		respond_error(req, MHD_HTTP_BAD_REQUEST, "08P01", NULL,
					  "Send Connection: Upgrade and a Sec-WebSocket-Key (RFC 6455).",
					  "invalid WebSocket handshake");
		return;
	}
	if (version == NULL || strcmp(version, "13") != 0)
	{
		char	   *body = error_body("08P01", "unsupported WebSocket version", NULL, NULL);

		hub_unsubscribe(s);
		respond(req, MHD_HTTP_UPGRADE_REQUIRED, "application/json", body, strlen(body),
				"Sec-WebSocket-Version", "13", NULL);
		free(body);
		return;
	}
	if (!accept_key(key, accept, sizeof(accept)) ||
		(resp = MHD_create_response_for_upgrade(ws_upgraded, s)) == NULL)
	{
		hub_unsubscribe(s);
		respond_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "53200", NULL, NULL,
					  "could not answer the WebSocket handshake");
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
	MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
	if (MHD_queue_response(req->connection, MHD_HTTP_SWITCHING_PROTOCOLS, resp) == MHD_YES)
		req->status = MHD_HTTP_SWITCHING_PROTOCOLS;
	else
		hub_unsubscribe(s);
	MHD_destroy_response(resp);
}

/* how many WebSocket connections are open (the shutdown waits for them) */
int
websocket_connections(void)
{
	int			n;

	pthread_mutex_lock(&ws_lock);
	n = nws;
	pthread_mutex_unlock(&ws_lock);
	return n;
}
