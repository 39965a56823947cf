/*-------------------------------------------------------------------------
 *
 * events.c
 *		taskq-serve's live event stream, GET /api/v1/events: the hub that
 *		reads the database's job events and hands each client the ones it
 *		may see, as Server-Sent Events (here) or WebSocket messages
 *		(websocket.c).
 *
 * One thread, the pump, reads every event with taskq.read_events on a
 * connection of its own (not the pool's), while at least one client is
 * subscribed, in batches of up to PUMP_BATCH, waiting up to PUMP_WAIT_MS
 * for the next.  Each client (a Subscriber) has a cursor: the sequence
 * number of the last event it was given or skipped.  The pump reads from
 * the smallest cursor, so a client that resumes (Last-Event-ID) gets the
 * events the database still keeps after it, and the others are not given
 * them twice.
 *
 * What a client sees: the events of the queues its token's role may pull
 * or administer (has_queue_privilege(queue, 'pull')), asked as that role
 * in a transaction of its own (run_as) for each queue it has not asked
 * about in the last VISIBLE_TTL_MS.  So a revoke, or a revoked token,
 * takes effect on an open stream within that time; a revoked token ends
 * the stream.  Then its own filters: queues=a,b and events=e1,e2.
 *
 * Each client's events wait in a buffer of its own until its connection
 * takes them.  A client that lets more than --event-buffer bytes pile up
 * is cut off: its buffer is dropped and its stream ends with a close
 * reason (SSE: a last "close" event; WebSocket: close code 1008), so a
 * slow client costs at most that much memory.
 *
 * SSE: the response's content comes from sse_read, called by MHD's thread
 * when the socket can take more.  With nothing to send it suspends the
 * connection (MHD_suspend_connection) and the pump resumes it when it has
 * given the client something.  Both happen under hub_lock, so a resume
 * never misses a suspend.  MHD frees the response (sse_free) when the
 * connection is gone; sse_free only marks the subscriber gone, without
 * the lock (MHD may hold locks of its own then), and the pump frees it.
 * A comment line goes out after KEEPALIVE_MS without events, so that
 * proxies and --timeout do not close a quiet stream.
 *
 * At shutdown every stream is closed with the reason "server shutting
 * down" (SSE: the close event; WebSocket: 1001).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <pthread.h>

#include "serve.h"

#define PUMP_WAIT_MS		2000	/* the longest wait of one read */
#define PUMP_BATCH			256	/* events per read: about 64 kB */
#define VISIBLE_TTL_MS		2000	/* how long a privilege answer holds */
#define KEEPALIVE_MS		15000	/* an SSE comment after this long */
#define RETRY_MS			1000	/* after the database failed */
#define READER_FRESH_MS		50000	/* the database keeps events for the
									 * pump 60 s after its last read */
#define READY_WAIT_MS		10000	/* a new client waits this long for the
									 * pump to know where events begin */

/* which of the queues $1 (text[]) the role may see: a '1' or '0' each */
#define VISIBLE_SQL \
	"SELECT string_agg(CASE WHEN taskq.has_queue_privilege(q, 'pull')" \
	" THEN '1' ELSE '0' END, '' ORDER BY n)" \
	" FROM unnest($1::text[]) WITH ORDINALITY AS u(q, n)"

const char *const event_names[] = {
	"job.pushed", "job.completed", "job.failed", "job.dlq", "job.cancelled",
	"job.progress", "job.redriven", "job.promoted", NULL
};

typedef struct Visible
{
	char	   *queue;
	bool		allowed;
} Visible;

struct Subscriber
{
	uint64_t	id;
	SubscriberKind kind;
	char	   *token;
	char	  **queues;			/* the queues= filter, NULL: all */
	int			nqueues;
	uint32_t	events;			/* the events= filter, bits; 0: all */
	int64_t		cursor;			/* last seq given or skipped; -1: unset */

	/* under hub_lock */
	char	   *buf;			/* bytes not yet taken: buf[off..len) */
	size_t		off;
	size_t		len;
	size_t		cap;
	bool		closed;			/* nothing more: the buffer, then the end */
	int			close_code;		/* WebSocket close code */
	char	   *close_reason;
	int64_t		last_put;		/* when the buffer last got something */
	Visible    *visible;		/* the privilege answers */
	int			nvisible;
	int64_t		visible_at;		/* when they were asked */

	/* SSE */
	struct MHD_Connection *connection;
	bool		suspended;
	/* WebSocket */
	int			wake_fd;

	volatile int gone;			/* sse_free ran: free it (the pump) */
	Subscriber *next;
};

static pthread_mutex_t hub_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hub_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static int64_t pump_head = -1;	/* the last seq the pump read up to */
static int64_t pump_read_at = 0;	/* when it last read */
static Subscriber *subscribers = NULL;
static uint64_t next_id = 1;
static bool pump_running = false;
static bool hub_stopping = false;
static pthread_t pump_thread;

/* ---- subscribers ---- */

/* the event's bit for events= filters; 0 for an unknown name */
uint32_t
event_bit(const char *name)
{
	for (int i = 0; event_names[i]; i++)
		if (strcmp(event_names[i], name) == 0)
			return (uint32_t) 1 << i;
	return 0;
}

/* wake whoever takes the subscriber's bytes; under hub_lock */
static void
wake(Subscriber *s)
{
	if (s->kind == SUB_SSE)
	{
		if (s->suspended)
		{
			s->suspended = false;
			MHD_resume_connection(s->connection);
		}
	}
	else if (s->wake_fd >= 0)
	{
		uint64_t	one = 1;

		if (write(s->wake_fd, &one, sizeof(one)) < 0)
		{
			/* the counter is full: it is awake anyway */
		}
	}
}

/* append to the subscriber's buffer; under hub_lock */
static void
put(Subscriber *s, const char *data, size_t n)
{
	if (s->off > 0 && s->off == s->len)
		s->off = s->len = 0;
	if (s->len + n > s->cap)
	{
		if (s->off > 0)
		{
			memmove(s->buf, s->buf + s->off, s->len - s->off);
			s->len -= s->off;
			s->off = 0;
		}
		if (s->len + n > s->cap)
		{
			s->cap = Max(s->cap * 2, s->len + n);
			s->buf = pg_realloc(s->buf, s->cap);
		}
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->last_put = now_ms();
}

/*
 * End the subscriber's stream with a reason; under hub_lock.  drop: what
 * its buffer holds is dropped (a slow consumer, a revoked token).
 */
static void
close_subscriber(Subscriber *s, int code, const char *reason, bool drop)
{
	if (s->closed)
		return;
	s->closed = true;
	s->close_code = code;
	s->close_reason = pg_strdup(reason);
	if (drop)
		s->off = s->len = 0;
	if (s->kind == SUB_SSE)
	{
		PQExpBufferData b;

		initPQExpBuffer(&b);
		appendPQExpBufferStr(&b, "event: close\ndata: {\"code\": ");
		appendPQExpBuffer(&b, "%d, \"reason\": ", code);
		append_json_string(&b, reason);
		appendPQExpBufferStr(&b, "}\n\n");
		put(s, b.data, b.len);
		termPQExpBuffer(&b);
	}
	wake(s);
}

/* one event (SSE: a frame; WebSocket: a line) for the subscriber */
static void
give(Subscriber *s, int64_t seq, const char *event, const char *json)
{
	PQExpBufferData b;

	initPQExpBuffer(&b);
	if (s->kind == SUB_SSE)
		appendPQExpBuffer(&b, "id: %lld\nevent: %s\ndata: %s\n\n",
						  (long long) seq, event, json);
	else
		appendPQExpBuffer(&b, "%s\n", json);
	if (s->len - s->off + b.len > config.event_buffer)
	{
		char		reason[96];

		snprintf(reason, sizeof(reason),
				 "slow consumer: more than %zu bytes of events unread",
				 config.event_buffer);
		log_message("events: closing a stream: %s", reason);
		close_subscriber(s, 1008, reason, true);
	}
	else
	{
		put(s, b.data, b.len);
		wake(s);
	}
	termPQExpBuffer(&b);
}

static void
free_subscriber(Subscriber *s)
{
	free(s->token);
	for (int i = 0; i < s->nqueues; i++)
		free(s->queues[i]);
	free(s->queues);
	for (int i = 0; i < s->nvisible; i++)
		free(s->visible[i].queue);
	free(s->visible);
	free(s->buf);
	free(s->close_reason);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	free(s);
}

/* unlink and free the subscribers marked gone; under hub_lock */
static void
reap_gone(void)
{
	Subscriber **p = &subscribers;

	while (*p)
	{
		Subscriber *s = *p;

		if (__atomic_load_n(&s->gone, __ATOMIC_ACQUIRE))
		{
			*p = s->next;
			free_subscriber(s);
		}
		else
			p = &s->next;
	}
}

/*
 * A new subscriber: kind, the token (copied), the queues= filter (taken
 * over, may be NULL), the events= bits, and the cursor to resume from
 * (-1: the events from now on).
 */
Subscriber *
hub_subscribe(SubscriberKind kind, const char *token, char **queues,
			  int nqueues, uint32_t events, int64_t cursor)
{
	Subscriber *s = pg_malloc0(sizeof(Subscriber));

	s->kind = kind;
	s->token = pg_strdup(token);
	s->queues = queues;
	s->nqueues = nqueues;
	s->events = events;
	s->cursor = cursor;
	s->wake_fd = -1;
	s->last_put = now_ms();
	if (kind == SUB_SSE)
		put(s, "retry: 2000\n\n", 13);

	pthread_mutex_lock(&hub_lock);
	/*
	 * The events from now on: those after what the pump has read, while
	 * the database still keeps events for it; else the pump finds out
	 * (hub_wait_ready)
	 */
	if (s->cursor < 0 && pump_head >= 0 && now_ms() - pump_read_at < READER_FRESH_MS)
		s->cursor = pump_head;
	s->id = next_id++;
	s->next = subscribers;
	subscribers = s;
	if (hub_stopping)
		close_subscriber(s, 1001, "server shutting down", true);
	pthread_cond_signal(&hub_cond);
	pthread_mutex_unlock(&hub_lock);
	return s;
}

/*
 * Wait until the subscriber's stream has a beginning (its cursor), up to
 * READY_WAIT_MS; false when it has none (the pump cannot read events).
 */
bool
hub_wait_ready(Subscriber *s)
{
	struct timespec until;
	bool		ready;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += READY_WAIT_MS / 1000;
	pthread_mutex_lock(&hub_lock);
	while (s->cursor < 0 && !s->closed)
		if (pthread_cond_timedwait(&ready_cond, &hub_lock, &until) != 0)
			break;
	ready = s->cursor >= 0 && !s->closed;
	pthread_mutex_unlock(&hub_lock);
	return ready;
}

/* the WebSocket side's wake-up descriptor (an eventfd) */
void
hub_set_wake_fd(Subscriber *s, int fd)
{
	pthread_mutex_lock(&hub_lock);
	s->wake_fd = fd;
	pthread_mutex_unlock(&hub_lock);
}

/*
 * Take up to max bytes of the subscriber's buffer into out.  Returns how
 * many; 0 with *closed set when the stream is over (and *code, *reason
 * say why, reason owned by the subscriber).
 */
size_t
hub_take(Subscriber *s, char *out, size_t max, bool *closed, int *code,
		 const char **reason)
{
	size_t		n;

	pthread_mutex_lock(&hub_lock);
	n = Min(max, s->len - s->off);
	memcpy(out, s->buf + s->off, n);
	s->off += n;
	*closed = s->closed && s->off == s->len;
	*code = s->close_code;
	*reason = s->close_reason;
	pthread_mutex_unlock(&hub_lock);
	return n;
}

/* the WebSocket connection is over: forget the subscriber */
void
hub_unsubscribe(Subscriber *s)
{
	__atomic_store_n(&s->gone, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&hub_lock);
	pthread_cond_signal(&hub_cond);
	pthread_mutex_unlock(&hub_lock);
}

/* ---- SSE ---- */

/* MHD_ContentReaderCallback of an SSE response */
static ssize_t
sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	Subscriber *s = cls;
	ssize_t		n;

	pthread_mutex_lock(&hub_lock);
	n = (ssize_t) Min(max, s->len - s->off);
	if (n > 0)
	{
		memcpy(buf, s->buf + s->off, n);
		s->off += n;
	}
	else if (s->closed)
		n = MHD_CONTENT_READER_END_OF_STREAM;
	else
	{
		/* nothing to send: sleep until the pump gives it something */
		s->suspended = true;
		MHD_suspend_connection(s->connection);
	}
	pthread_mutex_unlock(&hub_lock);
	return n;
}

/* MHD_ContentReaderFreeCallback: the connection is gone */
static void
sse_free(void *cls)
{
	hub_unsubscribe((Subscriber *) cls);
}

/* answer a subscription with an SSE stream */
void
serve_sse(Request *req, Subscriber *s)
{
	struct MHD_Response *resp;

	s->connection = req->connection;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
											 sse_read, s, sse_free);
	if (resp == NULL)
	{
		hub_unsubscribe(s);
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	if (MHD_queue_response(req->connection, MHD_HTTP_OK, resp) == MHD_YES)
		req->status = MHD_HTTP_OK;
	MHD_destroy_response(resp);
}

/* ---- the pump ---- */

/* one event read */
typedef struct Event
{
	int64_t		seq;
	const char *event;
	const char *queue;			/* NULL for events.lost */
	const char *json;
} Event;

/* whether the subscriber's queues= filter takes queue */
static bool
filter_takes(const Subscriber *s, const char *queue)
{
	if (s->queues == NULL)
		return true;
	for (int i = 0; i < s->nqueues; i++)
		if (strcmp(s->queues[i], queue) == 0)
			return true;
	return false;
}

/* the privilege answer for queue: 1, 0, or -1 when not known (fresh) */
static int
visible(const Subscriber *s, const char *queue)
{
	for (int i = 0; i < s->nvisible; i++)
		if (strcmp(s->visible[i].queue, queue) == 0)
			return s->visible[i].allowed;
	return -1;
}

/* append s as an element of a text[] literal */
static void
append_array_element(PQExpBuffer b, const char *s)
{
	appendPQExpBufferChar(b, b->len > 1 ? ',' : '{');
	appendPQExpBufferChar(b, '"');
	for (; *s; s++)
	{
		if (*s == '"' || *s == '\\')
			appendPQExpBufferChar(b, '\\');
		appendPQExpBufferChar(b, *s);
	}
	appendPQExpBufferChar(b, '"');
}

/*
 * Ask, as subscriber id's role, which of the batch's queues it may see
 * that it has no fresh answer for.  Called without hub_lock: the
 * subscriber may be gone meanwhile, so it is found again by id.
 */
static void
refresh_visible(uint64_t id, const Event *ev, int nev)
{
	Subscriber *s;
	PQExpBufferData arr;
	char	   *token = NULL;
	char	  **asked;
	int			nasked = 0;
	bool		stale;
	SqlError	err = {{0}};
	char	   *value = NULL;
	int			status;
	const char *params[1];

	pthread_mutex_lock(&hub_lock);
	for (s = subscribers; s && s->id != id; s = s->next)
		;
	if (s == NULL || s->closed)
	{
		pthread_mutex_unlock(&hub_lock);
		return;
	}
	stale = now_ms() - s->visible_at > VISIBLE_TTL_MS;
	asked = pg_malloc(sizeof(char *) * Max(nev, 1));
	initPQExpBuffer(&arr);
	for (int i = 0; i < nev; i++)
	{
		bool		dup = false;

		if (ev[i].queue == NULL || ev[i].seq <= s->cursor ||
			!filter_takes(s, ev[i].queue) ||
			(!stale && visible(s, ev[i].queue) >= 0))
			continue;
		for (int j = 0; j < nasked && !dup; j++)
			dup = strcmp(asked[j], ev[i].queue) == 0;
		if (dup)
			continue;
		asked[nasked++] = pg_strdup(ev[i].queue);
	}
	if (nasked > 0)
		token = pg_strdup(s->token);
	pthread_mutex_unlock(&hub_lock);
	if (nasked == 0)
	{
		free(asked);
		termPQExpBuffer(&arr);
		return;
	}

	for (int j = 0; j < nasked; j++)
		append_array_element(&arr, asked[j]);
	appendPQExpBufferChar(&arr, '}');
	params[0] = arr.data;
	status = run_as(token, VISIBLE_SQL, 1, params, 0, &value, &err, NULL);

	pthread_mutex_lock(&hub_lock);
	for (s = subscribers; s && s->id != id; s = s->next)
		;
	if (s != NULL && !s->closed)
	{
		if (err.message && status == MHD_HTTP_UNAUTHORIZED)
			close_subscriber(s, 1008, "API token revoked", true);
		else if (err.message)
		{
			/* not known: see nothing of these queues until asked again */
			log_message("events: could not check privileges: %s (SQLSTATE %s)",
						err.message, err.code);
		}
		else
		{
			if (stale)
			{
				for (int i = 0; i < s->nvisible; i++)
					free(s->visible[i].queue);
				s->nvisible = 0;
				s->visible_at = now_ms();
			}
			s->visible = pg_realloc(s->visible,
									sizeof(Visible) * (s->nvisible + nasked));
			for (int j = 0; j < nasked; j++)
			{
				s->visible[s->nvisible].queue = asked[j];
				s->visible[s->nvisible].allowed = value && value[j] == '1';
				s->nvisible++;
				asked[j] = NULL;
			}
		}
	}
	pthread_mutex_unlock(&hub_lock);
	for (int j = 0; j < nasked; j++)
		free(asked[j]);
	free(asked);
	free(value);
	free(token);
	free_error(&err);
	termPQExpBuffer(&arr);
}

/* hand the batch to every subscriber; under hub_lock */
static void
distribute(const Event *ev, int nev, int64_t from, int64_t head)
{
	for (Subscriber *s = subscribers; s; s = s->next)
	{
		/*
		 * A client that came with an older cursor (resuming) while the read
		 * ran, or a new one (-1), was not read for: the next read is
		 */
		if (s->closed || __atomic_load_n(&s->gone, __ATOMIC_ACQUIRE) ||
			s->cursor < from)
			continue;
		for (int i = 0; i < nev && !s->closed; i++)
		{
			if (ev[i].queue == NULL)
			{
				/*
				 * events.lost: for the clients that missed events (only a
				 * resuming one can), and for those the read was made for
				 * when their cursor was ahead of every event
				 */
				if (ev[i].seq > s->cursor || s->cursor == from)
				{
					s->cursor = ev[i].seq;
					give(s, ev[i].seq, ev[i].event, ev[i].json);
				}
				continue;
			}
			if (ev[i].seq <= s->cursor)
				continue;
			s->cursor = ev[i].seq;
			if (s->events != 0 && (s->events & event_bit(ev[i].event)) == 0)
				continue;
			if (!filter_takes(s, ev[i].queue) || visible(s, ev[i].queue) != 1)
				continue;
			give(s, ev[i].seq, ev[i].event, ev[i].json);
		}
		if (head > s->cursor)
			s->cursor = head;
		/* a quiet SSE stream gets a comment now and then */
		if (s->kind == SUB_SSE && !s->closed &&
			now_ms() - s->last_put > KEEPALIVE_MS)
		{
			put(s, ": keepalive\n\n", 13);
			wake(s);
		}
	}
}

/* close every stream: the gateway cannot read events */
static void
close_all(const char *reason)
{
	pthread_mutex_lock(&hub_lock);
	for (Subscriber *s = subscribers; s; s = s->next)
		close_subscriber(s, 1011, reason, false);
	pthread_cond_broadcast(&ready_cond);
	pthread_mutex_unlock(&hub_lock);
}

static void *
pump_main(void *arg)
{
	PGconn	   *conn = NULL;
	int64_t		head = -1;		/* the last seq read (or the cursor) */

	for (;;)
	{
		int64_t		from = -1;
		bool		any = false;
		PGresult   *res;
		char		after[32];
		char		wait[16];
		const char *params[2] = {after, wait};
		Event	   *ev;
		int			nev;

		pthread_mutex_lock(&hub_lock);
		for (;;)
		{
			reap_gone();
			any = false;
			for (Subscriber *s = subscribers; s; s = s->next)
				if (!s->closed)
					any = true;
			if (hub_stopping || any)
				break;
			pthread_cond_wait(&hub_cond, &hub_lock);
		}
		if (hub_stopping)
		{
			pthread_mutex_unlock(&hub_lock);
			break;
		}
		pthread_mutex_unlock(&hub_lock);

		if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
		{
			char	   *why = NULL;

			if (conn)
				PQfinish(conn);
			conn = pool_connect(&why);
			if (conn == NULL)
			{
				log_message("events: could not connect to the database: %s", why);
				free(why);
				pg_usleep(RETRY_MS * 1000L);
				continue;
			}
			head = -1;
		}
		if (head < 0 || now_ms() - pump_read_at >= READER_FRESH_MS)
		{
			/* (re)start reading: the events from now on are kept */
			res = PQexec(conn, "SELECT taskq.events_cursor()");
			if (PQresultStatus(res) != PGRES_TUPLES_OK)
			{
				char	   *msg = psprintf("the gateway cannot read events: %s",
										   PQresultErrorMessage(res));

				msg[strcspn(msg, "\n")] = '\0';
				log_message("events: %s", msg);
				close_all(msg);
				free(msg);
				PQclear(res);
				pg_usleep(RETRY_MS * 1000L);
				continue;
			}
			head = Max(head, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
			PQclear(res);
		}

		/* from the oldest cursor; new subscribers start at the head */
		pthread_mutex_lock(&hub_lock);
		pump_head = head;
		for (Subscriber *s = subscribers; s; s = s->next)
		{
			if (s->cursor < 0)
				s->cursor = head;
			if (!s->closed && (from < 0 || s->cursor < from))
				from = s->cursor;
		}
		pump_read_at = now_ms();
		pthread_cond_broadcast(&ready_cond);
		pthread_mutex_unlock(&hub_lock);
		if (from < 0)
			from = head;

		snprintf(after, sizeof(after), "%lld", (long long) from);
		snprintf(wait, sizeof(wait), "%d", PUMP_WAIT_MS);
		res = PQexecParams(conn,
						   "SELECT seq, event, queue,"
						   " json_strip_nulls(json_build_object('event', event,"
						   " 'job_id', job_id, 'queue', queue, 'timestamp', \"timestamp\","
						   " 'seq', seq))::text"
						   " FROM taskq.read_events($1::bigint, $2::int, " CppAsString2(PUMP_BATCH) ")",
						   2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			char	   *msg = psprintf("the gateway cannot read events: %s",
									   PQresultErrorMessage(res));

			msg[strcspn(msg, "\n")] = '\0';
			log_message("events: %s", msg);
			if (PQstatus(conn) == CONNECTION_OK)
				close_all(msg);
			free(msg);
			PQclear(res);
			pg_usleep(RETRY_MS * 1000L);
			continue;
		}
		nev = PQntuples(res);
		ev = pg_malloc(sizeof(Event) * Max(nev, 1));
		for (int i = 0; i < nev; i++)
		{
			ev[i].seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
			ev[i].event = PQgetvalue(res, i, 1);
			ev[i].queue = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
			ev[i].json = PQgetvalue(res, i, 3);
		}
		if (nev > 0)
		{
			uint64_t   *ids;
			int			nids = 0;

			head = Max(head, ev[nev - 1].seq);
			/* the privileges, as each subscriber's role */
			pthread_mutex_lock(&hub_lock);
			for (Subscriber *s = subscribers; s; s = s->next)
				nids++;
			ids = pg_malloc(sizeof(uint64_t) * Max(nids, 1));
			nids = 0;
			for (Subscriber *s = subscribers; s; s = s->next)
				if (!s->closed)
					ids[nids++] = s->id;
			pthread_mutex_unlock(&hub_lock);
			for (int i = 0; i < nids; i++)
				refresh_visible(ids[i], ev, nev);
			free(ids);
		}
		pthread_mutex_lock(&hub_lock);
		distribute(ev, nev, from, nev > 0 ? head : from);
		pump_head = head;
		pthread_mutex_unlock(&hub_lock);
		free(ev);
		PQclear(res);
	}
	if (conn)
		PQfinish(conn);
	return NULL;
}

/* start the pump (at start-up) */
void
hub_start(void)
{
	if (pthread_create(&pump_thread, NULL, pump_main, NULL) != 0)
		fatal("could not start the event thread");
	pump_running = true;
}

/*
 * At shutdown: every stream ends with "server shutting down", and the
 * pump stops.
 */
void
hub_stop(void)
{
	pthread_mutex_lock(&hub_lock);
	hub_stopping = true;
	for (Subscriber *s = subscribers; s; s = s->next)
		close_subscriber(s, 1001, "server shutting down", false);
	pthread_cond_signal(&hub_cond);
	pthread_cond_broadcast(&ready_cond);
	pthread_mutex_unlock(&hub_lock);
	if (pump_running)
		pthread_join(pump_thread, NULL);
	pump_running = false;
}

/* ---- the route ---- */

/*
 * Split a comma-separated query value into names (malloc'd, decoded);
 * NULL when absent.  False when a piece is badly encoded or empty.
 */
static bool
split_list(const char *value, char ***out, int *n)
{
	char	   *copy;
	char	   *p;
	char	   *save = NULL;

	*out = NULL;
	*n = 0;
	if (value == NULL)
		return true;
	copy = pg_strdup(value);
	*out = pg_malloc(sizeof(char *) * (strlen(value) / 2 + 2));
	for (p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save))
	{
		char	   *name = pg_strdup(p);

		if (!percent_decode(name) || name[0] == '\0')
		{
			free(name);
			free(copy);
			return false;
		}
		(*out)[(*n)++] = name;
	}
	free(copy);
	return *n > 0;
}

static void
free_list(char **list, int n)
{
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/*
 * GET /api/v1/events: check the filters and the token (as its role: it
 * must see each queue named), then stream, as WebSocket when the request
 * asks for the upgrade, else as SSE.
 */
void
serve_events(Request *req, const char *token)
{
	const char *qv = MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, "queues");
	const char *ev = MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, "events");
	const char *last = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, "Last-Event-ID");
	const char *last_arg = MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, "last_event_id");
	char	  **queues = NULL;
	int			nqueues = 0;
	char	  **events = NULL;
	int			nevents = 0;
	uint32_t	bits = 0;
	int64_t		cursor = -1;
	bool		websocket;
	SqlError	err = {{0}};
	char	   *value = NULL;
	int			status;
	PQExpBufferData arr;
	const char *params[1];
	Subscriber *s;

	websocket = websocket_requested(req);
	if (!split_list(qv, &queues, &nqueues))
	{
		free_list(queues, nqueues);
		respond_error(req, MHD_HTTP_BAD_REQUEST, "22023", NULL,
					  "Name queues separated by commas: queues=a,b.",
					  "invalid queues filter");
		return;
	}
	if (!split_list(ev, &events, &nevents))
	{
		free_list(queues, nqueues);
		free_list(events, nevents);
		respond_error(req, MHD_HTTP_BAD_REQUEST, "22023", NULL,
					  "Name events separated by commas: events=job.completed,job.dlq.",
					  "invalid events filter");
		return;
	}
	for (int i = 0; i < nevents; i++)
	{
		uint32_t	b = event_bit(events[i]);

		if (b == 0)
		{
			char	   *name = loggable(events[i]);

			respond_error(req, MHD_HTTP_BAD_REQUEST, "22023", NULL,
						  "The events are job.pushed, job.completed, job.failed, job.dlq, job.cancelled, job.progress, job.redriven and job.promoted.",
						  "unknown event \"%s\"", name);
			free(name);
			free_list(queues, nqueues);
			free_list(events, nevents);
			return;
		}
		bits |= b;
	}
	free_list(events, nevents);
	if (last == NULL)
		last = last_arg;
	if (last != NULL)
	{
		char	   *end;

		errno = 0;
		cursor = strtoll(last, &end, 10);
		if (errno != 0 || end == last || *end != '\0' || cursor < 0)
		{
			free_list(queues, nqueues);
			respond_error(req, MHD_HTTP_BAD_REQUEST, "22023", NULL,
						  "It is the \"seq\" (the SSE \"id\") of the last event received.",
						  "invalid last event id");
			return;
		}
	}

	/* the token, and a privilege on every queue named */
	initPQExpBuffer(&arr);
	for (int i = 0; i < nqueues; i++)
		append_array_element(&arr, queues[i]);
	appendPQExpBufferStr(&arr, nqueues > 0 ? "}" : "{}");
	params[0] = arr.data;
	status = run_as(token, VISIBLE_SQL, 1, params, 0, &value, &err, NULL);
	termPQExpBuffer(&arr);
	if (err.message)
	{
		if (status == 0)
			status = http_status(err.code);
		respond_error(req, status, err.code, err.detail, err.hint, "%s", err.message);
		free_error(&err);
		free_list(queues, nqueues);
		return;
	}
	for (int i = 0; i < nqueues; i++)
	{
		if (value && value[i] == '1')
			continue;
		{
			char	   *name = loggable(queues[i]);

			respond_error(req, MHD_HTTP_FORBIDDEN, "42501", NULL,
						  "The token's role needs the pull or admin privilege on the queue (taskq.grant).",
						  "permission denied for queue \"%s\"", name);
			free(name);
		}
		free(value);
		free_list(queues, nqueues);
		return;
	}
	free(value);

	s = hub_subscribe(websocket ? SUB_WS : SUB_SSE, token, queues, nqueues, bits, cursor);
	if (!hub_wait_ready(s))
	{
		hub_unsubscribe(s);
		respond_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "55000", NULL,
					  "The gateway's log says why; its role needs EXECUTE on taskq.events_cursor() and taskq.read_events().",
					  "the event stream is not available");
		return;
	}
	if (websocket)
		serve_websocket(req, s);
	else
		serve_sse(req, s);
}
