/*-------------------------------------------------------------------------
 *
 * delivery.c
 *		Webhook delivery from the outbox, with libcurl's multi interface,
 *		inside a database's background worker.
 *
 * Each round the worker (1) collects the transfers that finished and
 * records their outcome, counting the attempt, then (2) reads due
 * deliveries (pending, with next_attempt_at passed, not in flight) up to
 * taskq.webhook_concurrency in flight, and starts them.  The worker keeps
 * what it has in flight in its own memory: the outbox row is written
 * once more when its outcome is known, not also when it starts (that
 * update, with its new index entries, was a third of the outbox's writes
 * on the drain's hot pages).  A transfer still running after
 * taskq.webhook_mark_after is marked delivering in the table, its
 * attempt counted, so that a slow receiver shows.  There is one worker
 * per database (its slot in shared memory), so no other process starts
 * the same delivery.
 * The round is a short transaction; none is open while transfers run,
 * and the worker polls them between its other duties, so a slow or dead
 * receiver delays neither the reaper nor other receivers.
 *
 * A delivery that ends in a 2xx status succeeded.  Anything else (another
 * status, a timeout, a refused address) is retried after
 * base_delay_ms * 2^(attempts - 1) until the webhook's max_attempts, then
 * marked failed and kept.  A crash while delivering leaves rows pending
 * (or delivering, when marked): the worker puts them back to pending when
 * it starts, and sends them again (at least once).
 *
 * Format: Standard Webhooks.  webhook-id is the delivery's id, so it is
 * the same on every retry; webhook-timestamp is the send time in seconds;
 * webhook-signature is "v1," and the base64 of HMAC-SHA256 over
 * "id.timestamp.body", keyed by the base64-decoded part of a
 * "whsec_..." secret, or by the secret's own bytes otherwise.
 *
 * SSRF guard: unless taskq.webhook_allow_private is on, the connection is
 * refused when the resolved address is loopback, private, link-local,
 * CGNAT, unique-local or unspecified; the check is on the address curl is
 * about to connect to, so DNS tricks do not get around it, and again
 * before each request, so a pooled connection opened while private
 * addresses were allowed is not reused once they are not.  Redirects are
 * not followed, proxies from the environment are ignored, and only http
 * and https are allowed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/ilist.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "utils/guc.h"

#include "taskq.h"

/* settings */
bool		taskq_webhook_allow_private = false;
int			taskq_webhook_timeout = 10000;
int			taskq_webhook_concurrency = 16;
/*
 * taskq.webhook_mark_after: a transfer running this long is marked
 * delivering in the table (its attempt counted), so that a slow or silent
 * receiver shows there.
 */
int			taskq_webhook_mark_after = 1000;

/* one transfer in flight */
typedef struct Delivery
{
	dlist_node	node;			/* in flight */
	char		id[37];			/* the delivery's uuid, as text */
	char		webhook[37];	/* its webhook's, as text */
	Oid			owner;			/* the webhook's owner */
	TimestampTz started;
	bool		marked;			/* marked delivering in the table */
	MemoryContext cxt;			/* everything of this delivery but headers */
	CURL	   *curl;
	struct curl_slist *headers;
	char	   *body;
	char		refused[128];	/* why the SSRF guard refused, or "" */
	char		curl_error[CURL_ERROR_SIZE];
} Delivery;

static CURLM *multi = NULL;
static int	in_flight = 0;
/* the transfers in flight, oldest first */
static dlist_head flight = DLIST_STATIC_INIT(flight);

/*
 * While transfers are in flight, a round (a transaction recording what
 * finished and starting what is due) runs when one of them finished, and
 * otherwise (new outbox rows, a retry coming due) at most this often.
 * Under a backlog, every wake-up of the worker (each committing ack that
 * wrote outbox rows sets its latch) was a round of three statements, and
 * with the webhooks' slots taken the worker went round without pause,
 * starting nothing.
 */
#define DELIVERY_ROUND_MS	5
static TimestampTz last_round = 0;
/* new deliveries were committed since the last round */
static bool news_pending = false;
/* when the next pending delivery comes due, as the last round saw it */
static TimestampTz next_due = 0;

/* outcomes waiting to be recorded */
typedef struct Outcome
{
	char		id[37];
	bool		ok;
	long		status;
	char	   *error;
} Outcome;

static TaskqPlan reset_plan = {
	"UPDATE taskq.webhook_deliveries SET status = 'pending'"
	" WHERE status = 'delivering'",
	0, {InvalidOid}
};
/*
 * The next deliveries to start, at most $1, fairly: each webhook has at
 * most $2 in flight and each owner at most $3, counting those in flight
 * already (the worker's own list: their webhooks $4, owners $5, ids $6),
 * and the free slots go round the owners (each owner's first due
 * delivery, then each one's second, ...), oldest due first within a
 * round.  So receivers that never answer hold at most their webhooks'
 * and owner's share of the slots, never another owner's.  The cost is
 * bounded by the number of webhooks with due deliveries times $2 (index
 * probes per webhook), not by the backlog.
 *
 * The deliveries' columns come out of the per-webhook read itself, with
 * no second read by id: the generic plan is made at the worker's first
 * round, in a fresh database on an empty outbox, and for such a read
 * ("id = ANY (ids) AND status = 'pending'") the planner preferred the
 * whole pending index, filtered, or a BitmapAnd with it, to the primary
 * key; kept as the outbox grew, the claim read every pending delivery at
 * each round (10,600 buffers a round with 40,000 pending, the worker a
 * core busy and 100 deliveries a second).  The per-webhook read has one
 * index that gives its order, so the plan cannot change with the size.
 * A read: the row is written when the outcome is known (above).
 */
static TaskqPlan claim_plan = {
	"SELECT c.id::text, c.body, c.url, c.secret, c.owner::oid,"
	" c.body::jsonb #>> '{data,queue}', c.webhook_id::text"
	" FROM ("
	"  SELECT p.id, p.body, p.next_attempt_at, hw.url, hw.secret, hw.owner,"
	"   hw.id AS webhook_id,"
	"   row_number() OVER (PARTITION BY hw.owner"
	"    ORDER BY p.wrank, p.next_attempt_at, p.id)"
	"   + (SELECT count(*) FROM unnest($5::oid[]) AS f(o) WHERE f.o = hw.owner::oid) AS orank"
	"  FROM taskq.webhooks hw"
	"  CROSS JOIN LATERAL ("
	"   SELECT x.id, x.body, x.next_attempt_at,"
	"    row_number() OVER (ORDER BY x.next_attempt_at, x.id)"
	"    + (SELECT count(*) FROM unnest($4::uuid[]) AS f(w) WHERE f.w = hw.id) AS wrank"
	"   FROM (SELECT id, body, next_attempt_at FROM taskq.webhook_deliveries"
	"    WHERE webhook_id = hw.id AND status = 'pending' AND next_attempt_at <= now()"
	"     AND id <> ALL ($6::uuid[])"
	"    ORDER BY next_attempt_at LIMIT $2) x) p"
	"  WHERE p.wrank <= $2) c"
	" WHERE c.orank <= $3"
	" ORDER BY c.orank, c.next_attempt_at, c.id LIMIT $1",
	6, {INT4OID, INT4OID, INT4OID, UUIDARRAYOID, OIDARRAYOID, UUIDARRAYOID}, true
};

/*
 * The statements below that write deliveries by id name no status that
 * implies a partial index's predicate ("status = 'pending'" would let the
 * planner, on the empty outbox of a fresh database, choose the whole
 * pending index with the ids as a filter, and keep that plan as the
 * outbox grows), and join no other table (the webhook's settings are read
 * by a subquery): the primary key is the only index with a condition on
 * them, whatever the statistics.  STILL_PENDING is "status = 'pending'"
 * so written (the CHECK on status allows four values).
 */
#define STILL_PENDING "status NOT IN ('delivering', 'succeeded', 'failed')"

/*
 * Transfers running for taskq.webhook_mark_after, $1: marked
 * delivering, their attempt counted.
 */
static TaskqPlan mark_plan = {
	"UPDATE taskq.webhook_deliveries SET status = 'delivering',"
	" attempts = attempts + 1"
	" WHERE id = ANY ($1::uuid[]) AND " STILL_PENDING,
	1, {UUIDARRAYOID}, true
};

/*
 * A delivery whose webhook's owner may no longer see the job's queue (a
 * revoke, or the owner was dropped): failed for good, without a request.
 */
static TaskqPlan refuse_plan = {
	"UPDATE taskq.webhook_deliveries SET status = 'failed',"
	" attempts = attempts + 1, last_error = $2"
	" WHERE id = $1::uuid AND " STILL_PENDING " RETURNING status",
	2, {TEXTOID, TEXTOID}, true
};
/*
 * When the next pending delivery not in flight ($1) comes due, per
 * webhook by the pending index's order.
 */
static TaskqPlan next_due_plan = {
	"SELECT extract(epoch FROM min(n.t) - now()) * 1000"
	" FROM taskq.webhooks w CROSS JOIN LATERAL ("
	"  SELECT next_attempt_at AS t FROM taskq.webhook_deliveries"
	"  WHERE webhook_id = w.id AND status = 'pending' AND id <> ALL ($1::uuid[])"
	"  ORDER BY next_attempt_at LIMIT 1) n",
	1, {UUIDARRAYOID}, true
};
/*
 * The outcomes of a round's finished transfers, one statement for all:
 * arrays of delivery ids, success, HTTP status (NULL: none) and error.
 * The attempt is counted here, unless the mark counted it (delivering).
 * A row that is neither pending nor delivering any more, or whose
 * webhook is gone (removed by hand: remove_webhook removes its
 * deliveries), is left alone.
 */
#define ATTEMPTS "(d.attempts + CASE WHEN d.status = 'pending' THEN 1 ELSE 0 END)"
#define WEBHOOK(col) "(SELECT w." col " FROM taskq.webhooks w WHERE w.id = d.webhook_id)"
static TaskqPlan record_plan = {
	"UPDATE taskq.webhook_deliveries d SET"
	" status = CASE WHEN o.ok THEN 'succeeded'"
	"  WHEN " ATTEMPTS " >= " WEBHOOK("max_attempts") " THEN 'failed' ELSE 'pending' END,"
	" attempts = " ATTEMPTS ","
	" last_status = o.http_status, last_error = o.error,"
	" delivered_at = CASE WHEN o.ok THEN now() END,"
	" next_attempt_at = CASE WHEN o.ok OR " ATTEMPTS " >= " WEBHOOK("max_attempts")
	"  THEN d.next_attempt_at"
	"  ELSE now() + " WEBHOOK("base_delay_ms")
	"   * power(2, " ATTEMPTS " - 1) * interval '1 millisecond' END"
	" FROM unnest($1::uuid[], $2::boolean[], $3::integer[], $4::text[])"
	"  AS o(id, ok, http_status, error)"
	" WHERE d.id = ANY ($1::uuid[]) AND d.id = o.id"
	"  AND d.status IN ('pending', 'delivering')"
	/* a scalar subquery, which stays a filter: as EXISTS, a join */
	"  AND (SELECT true FROM taskq.webhooks w WHERE w.id = d.webhook_id)"
	" RETURNING d.status",
	4, {UUIDARRAYOID, BOOLARRAYOID, INT4ARRAYOID, TEXTARRAYOID}, true
};

/* whether an IPv4 address (host order) is one a webhook may not reach */
static bool
ipv4_is_private(uint32 a)
{
	return (a >> 24) == 0 ||	/* 0.0.0.0/8 */
		(a >> 24) == 10 ||		/* 10/8 */
		(a >> 24) == 127 ||		/* loopback */
		(a >> 16) == ((169 << 8) | 254) ||	/* link-local */
		(a >> 20) == ((172 << 4) | 1) ||	/* 172.16/12 */
		(a >> 16) == ((192 << 8) | 168) ||	/* 192.168/16 */
		(a >> 22) == ((100 << 2) | 1) ||	/* CGNAT 100.64/10 */
		(a >> 8) == ((192 << 16) | 0) ||	/* IETF 192.0.0/24 */
		(a >> 8) == ((192 << 16) | 2) ||	/* TEST-NET-1 192.0.2/24 */
		(a >> 8) == ((198 << 16) | (51 << 8) | 100) ||	/* TEST-NET-2 */
		(a >> 8) == ((203 << 16) | 113) ||	/* TEST-NET-3 203.0.113/24 */
		(a >> 17) == ((198 << 7) | (18 >> 1)) ||	/* benchmarking 198.18/15 */
		(a >> 28) >= 14;		/* multicast 224/4, reserved 240/4, broadcast */
}

/* the IPv4 address stored in four bytes, in host order */
static uint32
ipv4_at(const unsigned char *b)
{
	return ((uint32) b[0] << 24) | ((uint32) b[1] << 16) | ((uint32) b[2] << 8) | b[3];
}

/*
 * Is this address one the SSRF guard refuses?
 */
static bool
address_is_private(const struct sockaddr *sa, char *text, size_t textlen)
{
	if (sa->sa_family == AF_INET)
	{
		const struct sockaddr_in *in = (const struct sockaddr_in *) sa;

		inet_ntop(AF_INET, &in->sin_addr, text, textlen);
		return ipv4_is_private(ntohl(in->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6)
	{
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
		const unsigned char *b = in6->sin6_addr.s6_addr;
		static const unsigned char zero[12] = {0};
		static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};

		inet_ntop(AF_INET6, &in6->sin6_addr, text, textlen);

		/*
		 * Addresses that carry an IPv4 address are judged by it:
		 * IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, NAT64
		 * 64:ff9b::a.b.c.d and 6to4 2002:aabb:ccdd::/48.
		 */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) ||
			(memcmp(b, zero, 12) == 0 && !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) &&
			 !IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) ||
			memcmp(b, nat64, 12) == 0)
			return ipv4_is_private(ipv4_at(b + 12));
		if (b[0] == 0x20 && b[1] == 0x02)
			return ipv4_is_private(ipv4_at(b + 2));
		return IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) ||
			IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
			(b[0] & 0xFE) == 0xFC ||	/* unique-local fc00::/7 */
			(b[0] == 0xFE && (b[1] & 0xC0) == 0x80) ||	/* link-local fe80::/10 */
			(b[0] == 0xFE && (b[1] & 0xC0) == 0xC0) ||	/* site-local fec0::/10 */
			b[0] == 0xFF ||		/* multicast ff00::/8 */
			/* local-use NAT64 64:ff9b:1::/48 */
			(b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b &&
			 b[4] == 0x00 && b[5] == 0x01) ||
			/* documentation 2001:db8::/32 */
			(b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8);
	}
	strlcpy(text, "non-IP address", textlen);
	return true;
}

/* libcurl opensocket callback: the SSRF guard */
static curl_socket_t
open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	Delivery   *d = (Delivery *) clientp;
	char		text[INET6_ADDRSTRLEN];

	if (!taskq_webhook_allow_private &&
		address_is_private(&address->addr, text, sizeof(text)))
	{
		snprintf(d->refused, sizeof(d->refused),
				 "refused to connect to private address %s (taskq.webhook_allow_private is off)",
				 text);
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/*
 * libcurl pre-request callback: the SSRF guard again, for a connection
 * reused from the pool, which open_socket did not see (it may have been
 * opened while private addresses were allowed).
 */
static int
before_request(void *clientp, char *primary_ip, char *local_ip,
			   int primary_port, int local_port)
{
	Delivery   *d = (Delivery *) clientp;
	struct sockaddr_storage ss;
	char		text[INET6_ADDRSTRLEN];

	if (taskq_webhook_allow_private)
		return CURL_PREREQFUNC_OK;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, primary_ip, &((struct sockaddr_in *) &ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, primary_ip, &((struct sockaddr_in6 *) &ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	if (address_is_private((struct sockaddr *) &ss, text, sizeof(text)))
	{
		snprintf(d->refused, sizeof(d->refused),
				 "refused to connect to private address %s (taskq.webhook_allow_private is off)",
				 primary_ip);
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

/* libcurl write callback: the receiver's answer is not kept */
static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	return size * nmemb;
}

/*
 * The webhook-signature header value for a message.
 */
static char *
signature(const char *secret, const char *id, const char *timestamp,
		  const char *body)
{
	return psprintf("webhook-signature: v1,%s",
					TaskqStandardSignature(secret, id, timestamp, body, strlen(body)));
}

/* start one transfer */
static void
start_delivery(const char *id, const char *body, const char *url,
			   const char *secret, const char *webhook, Oid owner)
{
	/*
	 * A context of its own holds the delivery, its body and the header
	 * strings (libcurl copies those): deleted when the transfer ends, so a
	 * worker's memory does not grow with the deliveries it made.
	 */
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "taskq delivery",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Delivery   *d = palloc0(sizeof(Delivery));
	char		ts[32];

	d->cxt = cxt;
	strlcpy(d->id, id, sizeof(d->id));
	strlcpy(d->webhook, webhook, sizeof(d->webhook));
	d->owner = owner;
	d->started = GetCurrentTimestamp();
	d->body = pstrdup(body);
	snprintf(ts, sizeof(ts), INT64_FORMAT, (int64) time(NULL));

	d->headers = curl_slist_append(d->headers, "Content-Type: application/json");
	d->headers = curl_slist_append(d->headers, "User-Agent: taskq/" TASKQ_VERSION);
	d->headers = curl_slist_append(d->headers, psprintf("webhook-id: %s", id));
	d->headers = curl_slist_append(d->headers, psprintf("webhook-timestamp: %s", ts));
	d->headers = curl_slist_append(d->headers, signature(secret, id, ts, body));
	d->headers = curl_slist_append(d->headers, "Expect:");

	d->curl = curl_easy_init();
	curl_easy_setopt(d->curl, CURLOPT_URL, url);
	curl_easy_setopt(d->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS, d->body);
	curl_easy_setopt(d->curl, CURLOPT_POSTFIELDSIZE, (long) strlen(d->body));
	curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, d->headers);
	curl_easy_setopt(d->curl, CURLOPT_TIMEOUT_MS, (long) taskq_webhook_timeout);
	/* a receiver that does not even accept the connection gives up its slot soon */
	curl_easy_setopt(d->curl, CURLOPT_CONNECTTIMEOUT_MS,
					 (long) Min(taskq_webhook_timeout, TASKQ_WEBHOOK_CONNECT_TIMEOUT_MS));
	curl_easy_setopt(d->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(d->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(d->curl, CURLOPT_PROXY, "");
	curl_easy_setopt(d->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(d->curl, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(d->curl, CURLOPT_OPENSOCKETDATA, d);
	curl_easy_setopt(d->curl, CURLOPT_PREREQFUNCTION, before_request);
	curl_easy_setopt(d->curl, CURLOPT_PREREQDATA, d);
	curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(d->curl, CURLOPT_ERRORBUFFER, d->curl_error);
	curl_easy_setopt(d->curl, CURLOPT_PRIVATE, d);
	curl_multi_add_handle(multi, d->curl);
	dlist_push_tail(&flight, &d->node);
	in_flight++;
	MemoryContextSwitchTo(old);
}

/* collect the finished transfers */
static List *
finished_deliveries(void)
{
	CURLMsg    *msg;
	int			left;
	int			running;
	List	   *outcomes = NIL;

	curl_multi_perform(multi, &running);
	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		Delivery   *d;
		Outcome    *o = palloc0(sizeof(Outcome));
		long		status = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &d);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		strlcpy(o->id, d->id, sizeof(o->id));
		o->status = status;
		if (msg->data.result != CURLE_OK)
			o->error = pstrdup(d->refused[0] ? d->refused :
							   d->curl_error[0] ? d->curl_error :
							   curl_easy_strerror(msg->data.result));
		else if (status < 200 || status > 299)
			o->error = psprintf("HTTP status %ld", status);
		o->ok = o->error == NULL;
		outcomes = lappend(outcomes, o);

		dlist_delete(&d->node);
		curl_multi_remove_handle(multi, d->curl);
		curl_easy_cleanup(d->curl);
		curl_slist_free_all(d->headers);
		MemoryContextDelete(d->cxt);
		in_flight--;
	}
	return outcomes;
}

/* a uuid Datum from its text */
static Datum
uuid_datum(const char *text)
{
	return DirectFunctionCall1(uuid_in, CStringGetDatum(text));
}

/* an array of n uuids */
static Datum
uuid_array(Datum *uuids, int n)
{
	return PointerGetDatum(construct_array(uuids, n, UUIDOID, UUID_LEN, false,
										   TYPALIGN_CHAR));
}

/*
 * What is in flight, as the statements' parameters: the deliveries'
 * webhooks, their owners and their ids, one element per transfer.
 */
static void
flight_arrays(Datum *webhooks, Datum *owners, Datum *ids)
{
	Datum	   *w = palloc(sizeof(Datum) * Max(in_flight, 1));
	Datum	   *o = palloc(sizeof(Datum) * Max(in_flight, 1));
	Datum	   *d = palloc(sizeof(Datum) * Max(in_flight, 1));
	int			n = 0;
	dlist_iter	it;

	dlist_foreach(it, &flight)
	{
		Delivery   *x = dlist_container(Delivery, node, it.cur);

		w[n] = uuid_datum(x->webhook);
		o[n] = ObjectIdGetDatum(x->owner);
		d[n] = uuid_datum(x->id);
		n++;
	}
	if (webhooks != NULL)
		*webhooks = uuid_array(w, n);
	if (owners != NULL)
		*owners = PointerGetDatum(construct_array(o, n, OIDOID, sizeof(Oid), true,
												  TYPALIGN_INT));
	*ids = uuid_array(d, n);
}

/* whether a transfer in flight has run for taskq.webhook_mark_after */
static bool
is_slow(const Delivery *d, TimestampTz now)
{
	return !d->marked &&
		TimestampDifferenceExceeds(d->started, now, taskq_webhook_mark_after);
}

/*
 * Whether a transfer is due to be marked: the oldest one not marked yet
 * (the list is in start order, and marks go oldest first).
 */
static bool
mark_due(TimestampTz now)
{
	dlist_iter	it;

	dlist_foreach(it, &flight)
	{
		Delivery   *d = dlist_container(Delivery, node, it.cur);

		if (!d->marked)
			return is_slow(d, now);
	}
	return false;
}

/*
 * Mark the transfers that have run for taskq.webhook_mark_after
 * delivering (their attempt counted).
 */
static void
mark_slow(TimestampTz now)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(in_flight, 1));
	int			n = 0;
	dlist_iter	it;

	dlist_foreach(it, &flight)
	{
		Delivery   *d = dlist_container(Delivery, node, it.cur);

		if (is_slow(d, now))
		{
			ids[n++] = uuid_datum(d->id);
			d->marked = true;
		}
	}
	if (n > 0)
	{
		Datum		arg = uuid_array(ids, n);

		TaskqExecute(&mark_plan, &arg, NULL, false, 0);
	}
}

/*
 * Are transfers in flight?
 */
bool
TaskqDeliveriesInFlight(void)
{
	return in_flight > 0;
}

/*
 * Wait until a transfer in flight can move on (curl's sockets) or
 * timeout_ms passed, at most DELIVERY_ROUND_MS: the worker's latch is not
 * watched meanwhile, so its other duties wait no longer than that.
 */
void
TaskqDeliveriesWait(long timeout_ms)
{
	int			numfds;

	/* unlike curl_multi_wait, it waits so long when there is no socket */
	curl_multi_poll(multi, NULL, 0, (int) Max(0, Min(timeout_ms, DELIVERY_ROUND_MS)),
					&numfds);
}

/*
 * When a database worker starts: initialise libcurl, and put back the
 * deliveries a crash left in flight, in a transaction of the worker's
 * (begin, end); false when the extension is gone.
 */
bool
TaskqDeliveryStart(TaskqTxnBegin begin, TaskqTxnEnd end)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		elog(ERROR, "taskq: could not initialise libcurl");
	multi = curl_multi_init();

	if (!begin("taskq: resetting deliveries in flight"))
		return false;
	TaskqExecute(&reset_plan, NULL, NULL, false, 0);
	end();
	return true;
}

/*
 * One round of webhook delivery.  Returns how long the worker may sleep
 * before the next round (ms), or -1 when the extension is gone.
 */
long
TaskqDeliverWebhooks(TaskqTxnBegin begin, TaskqTxnEnd end, bool news)
{
	List	   *outcomes;
	ListCell   *lc;
	long		sleep_ms = 1000;
	bool		isnull;
	TimestampTz now = GetCurrentTimestamp();
	int			running;

	news_pending |= news;
	outcomes = finished_deliveries();

	/*
	 * Busy, and no transfer finished: a round only for new deliveries or
	 * one coming due, when a slot is free, and not sooner than
	 * DELIVERY_ROUND_MS after the last, or to mark a transfer running
	 * long; else wait for a transfer.
	 */
	if (outcomes == NIL && in_flight > 0 && !mark_due(now))
	{
		if (in_flight >= taskq_webhook_concurrency || (!news_pending && now < next_due))
			return DELIVERY_ROUND_MS;
		if (now < last_round + DELIVERY_ROUND_MS * 1000)
			return Max(1, (last_round + DELIVERY_ROUND_MS * 1000 - now) / 1000);
	}
	last_round = now;
	news_pending = false;

	if (!begin("taskq: delivering webhooks"))
		return -1;

	/*
	 * The lock the round's writes take, taken before its read: a
	 * remove_webhook in progress (which locks the table against writers)
	 * is waited for, so its deliveries are not started behind its back.
	 */
	LockRelationOid(TaskqTableOid("webhook_deliveries"), RowExclusiveLock);

	if (outcomes != NIL)
	{
		int			n = list_length(outcomes);
		Datum	   *ids = palloc(sizeof(Datum) * n);
		Datum	   *oks = palloc(sizeof(Datum) * n);
		Datum	   *statuses = palloc(sizeof(Datum) * n);
		bool	   *status_nulls = palloc(sizeof(bool) * n);
		Datum	   *errors = palloc(sizeof(Datum) * n);
		bool	   *error_nulls = palloc(sizeof(bool) * n);
		int			dims[1] = {n};
		int			lbs[1] = {1};
		Datum		values[4];
		int			i = 0;

		foreach(lc, outcomes)
		{
			Outcome    *o = lfirst(lc);

			ids[i] = uuid_datum(o->id);
			oks[i] = BoolGetDatum(o->ok);
			statuses[i] = Int32GetDatum((int32) o->status);
			status_nulls[i] = o->status == 0;
			errors[i] = o->error ? CStringGetTextDatum(o->error) : (Datum) 0;
			error_nulls[i] = o->error == NULL;
			i++;
		}
		values[0] = uuid_array(ids, n);
		values[1] = PointerGetDatum(construct_array(oks, n, BOOLOID, 1, true,
													TYPALIGN_CHAR));
		values[2] = PointerGetDatum(construct_md_array(statuses, status_nulls, 1, dims, lbs,
													   INT4OID, 4, true, TYPALIGN_INT));
		values[3] = PointerGetDatum(construct_md_array(errors, error_nulls, 1, dims, lbs,
													   TEXTOID, -1, false, TYPALIGN_INT));
		TaskqMetricsCountDeliveries(TaskqExecute(&record_plan, values, NULL, false, 0));
	}

	/* transfers running long: marked delivering */
	mark_slow(now);

	if (in_flight < taskq_webhook_concurrency)
	{
		Datum		args[6];
		int			n;
		SPITupleTable *claimed;

		args[0] = Int32GetDatum(taskq_webhook_concurrency - in_flight);
		args[1] = Int32GetDatum(TASKQ_WEBHOOK_IN_FLIGHT);
		/* an owner may take half the slots, so another always finds one */
		args[2] = Int32GetDatum(Max(1, taskq_webhook_concurrency / 2));
		flight_arrays(&args[3], &args[4], &args[5]);
		n = TaskqExecute(&claim_plan, args, NULL, false, 0);
		claimed = SPI_tuptable;

		for (int i = 0; i < n; i++)
		{
			HeapTuple	tup = claimed->vals[i];
			TupleDesc	desc = claimed->tupdesc;
			Oid			owner = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
			char	   *queue = SPI_getvalue(tup, desc, 6);

			if (queue != NULL && !TaskqRoleSeesQueue(owner, queue))
			{
				Datum		values[2];

				values[0] = CStringGetTextDatum(SPI_getvalue(tup, desc, 1));
				values[1] = CStringGetTextDatum(
					SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)) ?
					psprintf("not delivered: the webhook's owner may no longer see queue \"%s\"", queue) :
					"not delivered: the webhook's owner role no longer exists");
				TaskqMetricsCountDeliveries(TaskqExecute(&refuse_plan, values, NULL, false, 0));
				continue;
			}
			start_delivery(SPI_getvalue(tup, desc, 1), SPI_getvalue(tup, desc, 2),
						   SPI_getvalue(tup, desc, 3), SPI_getvalue(tup, desc, 4),
						   SPI_getvalue(tup, desc, 7), owner);
		}
	}

	/*
	 * Sleep until the next due delivery, or poll the ones in flight: with
	 * every slot taken, a transfer's end brings the next round.
	 */
	next_due = 0;
	/* not read-only: it must see the outcomes recorded just above */
	if (in_flight < taskq_webhook_concurrency)
	{
		Datum		d;
		Datum		ids;

		flight_arrays(NULL, NULL, &ids);
		TaskqExecute(&next_due_plan, &ids, NULL, false, 1);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			double		ms = DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));

			sleep_ms = ms <= 0 ? 0 : Min((long) ms + 1, 60000);
			/*
			 * Due, but not started: the slots it may take are taken, and
			 * only a transfer's end (or a new delivery) frees one.
			 */
			if (sleep_ms == 0 && in_flight > 0)
			{
				sleep_ms = DELIVERY_ROUND_MS;
				next_due = now + (TimestampTz) 60000 * 1000;
			}
			else
				next_due = now + (TimestampTz) sleep_ms * 1000;
		}
		else
		{
			sleep_ms = 60000;
			next_due = now + (TimestampTz) sleep_ms * 1000;
		}
	}
	end();

	if (in_flight > 0)
	{
		curl_multi_perform(multi, &running);
		sleep_ms = Min(sleep_ms, DELIVERY_ROUND_MS);
	}
	return sleep_ms;
}

/*
 * Define the settings of webhook delivery; from _PG_init.
 */
void
TaskqDeliveryInit(void)
{
	DefineCustomBoolVariable("taskq.webhook_allow_private",
							 "Sets whether webhooks may be delivered to private addresses.",
							 "Loopback, private, link-local, CGNAT and unique-local addresses are refused unless this is on.",
							 &taskq_webhook_allow_private,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("taskq.webhook_timeout",
							"Sets how long one webhook delivery attempt may take.",
							NULL,
							&taskq_webhook_timeout,
							10000,
							100,
							300 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("taskq.webhook_mark_after",
							"Sets how long a webhook delivery runs before it is marked delivering.",
							"Until then a delivery in flight stays pending in taskq.webhook_deliveries; its row is written when the outcome is known.",
							&taskq_webhook_mark_after,
							1000,
							0,
							300 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("taskq.webhook_concurrency",
							"Sets how many webhook deliveries a database's worker keeps in flight.",
							NULL,
							&taskq_webhook_concurrency,
							16,
							1,
							1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
}
