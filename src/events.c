/*-------------------------------------------------------------------------
 *
 * events.c
 *		Job events: the webhook outbox, the opt-in taskq_events stream, the
 *		live stream's ring (eventring.c, while somebody reads it), and the
 *		coalesced wake-ups, all tied to the committing transaction.
 *
 * Outbox: an event (job.pushed, job.completed, ...) becomes one row of
 * taskq.webhook_deliveries per matching webhook, written by the statement
 * that follows the job's change, in the same transaction: a crash or a
 * dead receiver loses nothing.  The payload is built then, so it shows the
 * job as the event left it.  An ack's job.completed runs no statement: the
 * ack has the finished rows, and the outbox rows are built from them and
 * written as COPY writes (TaskqEmitEventRows), the webhooks read from a
 * per-backend cache kept with the flags below.
 *
 * Stream: queues created or altered with "notify_events": true also get a
 * NOTIFY on channel taskq_events per event, payload
 * {"event", "job_id", "queue", "timestamp"}.  NOTIFY takes a cluster-wide
 * lock from the commit's start to its end, which serialises every
 * committing transaction that notifies: so the database worker sends them.
 * While it follows the stream (its slot says so), an event of such a
 * queue goes into the event ring (eventring.c) marked for it, and the
 * worker, woken by the commit, sends the marked events of many commits in
 * one transaction of its own.  Whether an event is streamed is decided by
 * the emitting transaction (its view of notify_events), as before.  The
 * stream is at most once: events the worker had not sent when it died, or
 * that the ring overwrote before it read them, are lost (the latter
 * announced by an "events.lost" notification).  Without the worker
 * (before it follows, or without shared_preload_libraries) the emitting
 * transaction notifies itself, as it did before.
 *
 * Most databases have neither webhooks nor such queues: a backend caches
 * whether any exist, so an event then costs a flag test.  add_webhook,
 * remove_webhook, create_queue and alter_queue send a relcache
 * invalidation for taskq.webhooks at commit, which resets every backend's
 * cache.
 *
 * Wake-ups: a push of a runnable job notes its queue; at commit the queue
 * names go to the database worker's slot and its latch is set.  The worker
 * sends one NOTIFY taskq_wakeup per queue for however many transactions
 * pushed to it, so producers never take NOTIFY's lock.  A transaction that
 * wrote outbox rows wakes the worker the same way, so deliveries start at
 * once rather than at its next poll.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "taskq.h"

/* -1: unknown, else whether webhooks / event-stream queues exist */
static int	webhooks_exist = -1;
static int	streams_exist = -1;
/* -1: unknown, else whether a queue keeps no completed jobs */
static int	no_history_exists = -1;

/*
 * The webhooks, as the outbox's rows for an ack's finished jobs are built
 * without a statement (TaskqEmitEventRows): loaded with webhooks_exist's
 * snapshot rule, forgotten with it.
 */
typedef struct CachedWebhook
{
	Datum		id;				/* uuid */
	int			nevents;
	char	  **events;
	int			nqueues;		/* -1: every queue */
	char	  **queues;
} CachedWebhook;
static MemoryContext webhooks_cxt = NULL;
static CachedWebhook *webhooks = NULL;
static int	nwebhooks = 0;			/* how many webhooks holds */
static bool webhooks_valid = false;	/* loaded, and no invalidation since */
/* counts invalidations, to tell whether one came while loading */
static uint64 events_invals = 0;

/* what to do at commit */
static bool wake_launcher = false;
static bool wake_worker = false;
static int	nwake = 0;
static bool wake_overflow = false;
static char wake_queues[TASKQ_WAKE_RING][TASKQ_MAX_QUEUE_NAME + 1];

/* queues that got delayed jobs: their waiting pulls must look at run_at */
static int	ndelayed = 0;
static bool delayed_overflow = false;
static char delayed_queues[TASKQ_WAKE_RING][TASKQ_MAX_QUEUE_NAME + 1];

/*
 * The statements per event are planned once (generic plans): each looks
 * up its jobs one by one (LATERAL), so the plan cannot turn into a scan
 * of the history however the tables grow.
 */
static TaskqPlan outbox_plan = {
	"INSERT INTO taskq.webhook_deliveries (id, webhook_id, event, job_id, body)"
	" SELECT taskq.uuid7(), w.id, $2, j.id,"
	"  jsonb_build_object('type', $2, 'timestamp', now(), 'data',"
	"   jsonb_build_object('job_id', j.id, 'queue', j.queue, 'name', j.name,"
	"    'state', j.state, 'flow_id', j.flow_id, 'metadata', j.metadata,"
	"    'attempts', j.attempts, 'progress', j.progress)"
	"   - CASE WHEN j.metadata IS NULL THEN 'metadata' ELSE '' END"
	"   || CASE WHEN $2 = 'job.completed' THEN jsonb_build_object('result', j.result)"
	"      WHEN $2 IN ('job.failed', 'job.dlq') THEN jsonb_build_object('error', j.error)"
	"      ELSE '{}'::jsonb END)::text"
	" FROM unnest($1::uuid[]) AS u(id)"
	" CROSS JOIN LATERAL (SELECT * FROM taskq.all_jobs a WHERE a.id = u.id) j"
	" JOIN taskq.webhooks w ON $2 = ANY (w.events)"
	"  AND (w.queues IS NULL OR j.queue = ANY (w.queues))",
	2, {UUIDARRAYOID, TEXTOID}, true
};
static TaskqPlan stream_plan = {
	"SELECT pg_notify('" TASKQ_EVENTS_CHANNEL "', jsonb_build_object('event', $2,"
	" 'job_id', j.id, 'queue', j.queue, 'timestamp', now())::text)"
	" FROM unnest($1::uuid[]) AS u(id)"
	" CROSS JOIN LATERAL (SELECT * FROM taskq.all_jobs a WHERE a.id = u.id) j"
	" JOIN taskq.queues q ON q.name = j.queue AND q.notify_events",
	2, {UUIDARRAYOID, TEXTOID}, true
};
static TaskqPlan webhooks_plan = {
	"SELECT id, events, queues FROM taskq.webhooks ORDER BY id",
	0, {InvalidOid}, true
};
static TaskqPlan webhooks_exist_plan = {
	"SELECT EXISTS (SELECT FROM taskq.webhooks),"
	" EXISTS (SELECT FROM taskq.queues WHERE notify_events),"
	" EXISTS (SELECT FROM taskq.queues WHERE completed_retention_ms = 0)",
	0, {InvalidOid}
};

/* relcache callback: forget the cache when webhooks or queues changed */
static void
events_relcache_callback(Datum arg, Oid relid)
{
	if (!TaskqCacheInvalidation(relid))
		return;
	webhooks_exist = -1;
	streams_exist = -1;
	no_history_exists = -1;
	webhooks_valid = false;
	events_invals++;
}

/* whether the database worker sends the taskq_events stream now */
static bool
worker_streams(void)
{
	TaskqDbSlot *slot;
	bool		streaming;

	if (taskq_shared == NULL)
		return false;
	LWLockAcquire(taskq_shared->lock, LW_SHARED);
	slot = TaskqFindSlot(MyDatabaseId);
	streaming = slot != NULL && slot->pid != 0 && slot->streaming;
	LWLockRelease(taskq_shared->lock);
	return streaming;
}

/* whether a worker's slot already holds a wake-up for the queue */
static bool
slot_knows(const TaskqDbSlot *slot, const char *queue)
{
	if (slot->wake_overflow)
		return true;
	for (int j = 0; j < slot->nwake; j++)
		if (strcmp(slot->wake[j], queue) == 0)
			return true;
	return false;
}

/*
 * Whether the database's worker already has every wake-up of this
 * transaction to send (or there is no worker): then the commit need not
 * take the lock exclusively.  Under a stream of pushes to a few queues
 * that is every commit but the first of each worker round, so committing
 * producers do not queue behind each other on the lock.
 */
static bool
wakeups_known(void)
{
	TaskqDbSlot *slot;
	bool		known = true;

	LWLockAcquire(taskq_shared->lock, LW_SHARED);
	slot = TaskqFindSlot(MyDatabaseId);
	if (slot != NULL && slot->pid != 0)
	{
		if (wake_worker && !slot->deliveries_pending)
			known = false;
		if (wake_overflow && !slot->wake_overflow)
			known = false;
		for (int i = 0; i < nwake && known; i++)
			known = slot_knows(slot, wake_queues[i]);
	}
	LWLockRelease(taskq_shared->lock);
	return known;
}

/*
 * The transaction is over: hand its wake-ups to the database's worker, or
 * forget them.  The worker's latch is set only when this transaction gave
 * it something it did not already have to do, so that under a stream of
 * commits the worker wakes once per round, not once per commit.
 */
static void
events_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && (wake_worker || nwake > 0) &&
		taskq_shared != NULL && !wakeups_known())
	{
		TaskqDbSlot *slot;
		bool		news = false;

		LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
		slot = TaskqFindSlot(MyDatabaseId);
		if (slot != NULL && slot->pid != 0)
		{
			for (int i = 0; i < nwake; i++)
			{
				if (slot_knows(slot, wake_queues[i]))
					continue;
				if (slot->nwake < TASKQ_WAKE_RING)
					strlcpy(slot->wake[slot->nwake++], wake_queues[i],
							TASKQ_MAX_QUEUE_NAME + 1);
				else
					slot->wake_overflow = true;
				news = true;
			}
			if (wake_overflow && !slot->wake_overflow)
			{
				slot->wake_overflow = true;
				news = true;
			}
			if (wake_worker && !slot->deliveries_pending)
			{
				slot->deliveries_pending = true;
				news = true;
			}
			if (news && slot->latch != NULL)
				SetLatch(slot->latch);
		}
		LWLockRelease(taskq_shared->lock);
	}
	/* pulls waiting on these queues (pullwait.c) */
	if (event == XACT_EVENT_COMMIT && (nwake > 0 || wake_overflow))
		TaskqWakeWaiters(wake_queues, nwake, wake_overflow);
	if (event == XACT_EVENT_COMMIT && (ndelayed > 0 || delayed_overflow))
		TaskqWakeWaiters(delayed_queues, ndelayed, delayed_overflow);
	if (event == XACT_EVENT_COMMIT && wake_launcher && taskq_shared != NULL)
	{
		LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
		taskq_shared->launcher_woken = true;
		if (taskq_shared->launcher_latch != NULL)
			SetLatch(taskq_shared->launcher_latch);
		LWLockRelease(taskq_shared->lock);
	}
	/*
	 * A prepared transaction's wake-ups are dropped: they cannot be kept
	 * for its COMMIT PREPARED (maybe in another session), and must not be
	 * sent at this backend's next, unrelated commit.  Its jobs are found
	 * by the next pull, or the workers' fallback poll.
	 */
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		wake_launcher = false;
		wake_worker = false;
		nwake = 0;
		wake_overflow = false;
		ndelayed = 0;
		delayed_overflow = false;
	}
}

/*
 * Register the callbacks; from _PG_init.
 */
void
TaskqEventsInit(void)
{
	CacheRegisterRelcacheCallback(events_relcache_callback, (Datum) 0);
	RegisterXactCallback(events_xact_callback, NULL);
}

/* add queue to a set of queue names (or note that the set overflowed) */
static void
note_queue(text *queue, char (*set)[TASKQ_MAX_QUEUE_NAME + 1], int *n,
		   bool *overflow)
{
	int			len = VARSIZE_ANY_EXHDR(queue);

	if (taskq_shared == NULL)
		return;
	for (int i = 0; i < *n; i++)
		if (strncmp(set[i], VARDATA_ANY(queue), len) == 0 && set[i][len] == '\0')
			return;
	if (*n == TASKQ_WAKE_RING)
	{
		*overflow = true;
		return;
	}
	memcpy(set[*n], VARDATA_ANY(queue), len);
	set[*n][len] = '\0';
	(*n)++;
}

/*
 * A runnable job was pushed to queue: wake its listeners after commit.
 */
void
TaskqNoteWakeup(text *queue)
{
	note_queue(queue, wake_queues, &nwake, &wake_overflow);
}

/*
 * A delayed job was pushed to queue (or a failed job will be retried
 * later, or a DAG child was promoted to delayed): no job is runnable yet,
 * so no worker is woken, but the pulls waiting on the queue are, after
 * commit, to sleep until its run_at rather than for their whole step
 * (pullwait.c).
 */
void
TaskqNoteDelayed(text *queue)
{
	note_queue(queue, delayed_queues, &ndelayed, &delayed_overflow);
	/* and its pulls probe for due jobs again (pullhead.c, "quiet") */
	TaskqQuietNote(text_to_cstring(queue), DT_NOBEGIN);
}

/*
 * Jobs the last statement returned became runnable: wake the workers of
 * their queues (column: the queue's column in SPI_tuptable).
 */
void
TaskqNoteWakeupReturned(int n, int column)
{
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		queue = SPI_getbinval(SPI_tuptable->vals[i],
										  SPI_tuptable->tupdesc, column, &isnull);

		if (!isnull)
			TaskqNoteWakeup(DatumGetTextPP(queue));
	}
}

/*
 * Wake the launcher after commit (CREATE EXTENSION taskq).
 */
void
TaskqNoteLauncherWake(void)
{
	wake_launcher = true;
}

/*
 * Wake the database's worker after commit (new outbox rows).
 */
void
TaskqNoteWorkerWake(void)
{
	wake_worker = true;
}

/*
 * Taskq's subscribers changed (a webhook or a queue's notify_events):
 * every backend forgets what it cached, at commit.
 */
void
TaskqSubscribersChanged(void)
{
	Oid			relid = TaskqTableOid("webhooks");

	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
}

/*
 * Fill the cache; runs inside SPI_connect.  It reads with the latest
 * snapshot, not the transaction's: a REPEATABLE READ transaction that
 * started before a webhook was added must not cache "no webhooks" for the
 * transactions that follow it.
 */
static void
load_cache(void)
{
	bool		isnull;
	int			rc;

	TaskqNoteCacheTables();
	rc = SPI_execute_snapshot(TaskqGetPlan(&webhooks_exist_plan), NULL, NULL,
							  GetLatestSnapshot(), InvalidSnapshot,
							  true, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "taskq: could not read the webhooks (%s)",
			 SPI_result_code_string(rc));
	webhooks_exist = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	streams_exist = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 2, &isnull));
	no_history_exists = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 3, &isnull));
}

/*
 * Whether an ack may delete its job without a trace: some queue keeps no
 * completed jobs (retention.completed_ms 0), and no webhook or event
 * stream could want the job.completed event, which is built from the job
 * as it is kept.  Runs inside SPI_connect.
 */
bool
TaskqAckMayForget(void)
{
	if (webhooks_exist < 0 || streams_exist < 0 || no_history_exists < 0)
		load_cache();
	return no_history_exists && !webhooks_exist && !streams_exist &&
		!TaskqEventRingWanted();
}

/*
 * Load the webhooks into the cache, with the latest snapshot (as
 * load_cache).  Runs inside SPI_connect.
 */
static void
load_webhooks(void)
{
	uint64		invals = events_invals;
	MemoryContext old;
	int			n;

	TaskqNoteCacheTables();
	PushActiveSnapshot(GetLatestSnapshot());
	n = TaskqExecute(&webhooks_plan, NULL, NULL, true, 0);
	PopActiveSnapshot();

	if (webhooks_cxt == NULL)
		webhooks_cxt = AllocSetContextCreate(CacheMemoryContext, "taskq webhooks",
											 ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(webhooks_cxt);
	old = MemoryContextSwitchTo(webhooks_cxt);
	webhooks = palloc0(sizeof(CachedWebhook) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		CachedWebhook *w = &webhooks[i];
		bool		isnull;
		Datum	   *elems;
		bool	   *enulls;
		int			ne;
		Datum		d;

		w->id = PointerGetDatum(palloc(UUID_LEN));
		memcpy(DatumGetPointer(w->id),
			   DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull)), UUID_LEN);
		for (int c = 2; c <= 3; c++)
		{
			char	  **names;
			int			k = 0;

			d = SPI_getbinval(tup, desc, c, &isnull);
			if (isnull)
			{
				w->nqueues = -1;	/* queues: every queue */
				continue;
			}
			deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false,
							  TYPALIGN_INT, &elems, &enulls, &ne);
			names = palloc(sizeof(char *) * Max(ne, 1));
			for (int j = 0; j < ne; j++)
				if (!enulls[j])
					names[k++] = TextDatumGetCString(elems[j]);
			if (c == 2)
			{
				w->events = names;
				w->nevents = k;
			}
			else
			{
				w->queues = names;
				w->nqueues = k;
			}
		}
	}
	MemoryContextSwitchTo(old);
	nwebhooks = n;
	/* an invalidation while loading: use them once, load them again next */
	webhooks_valid = invals == events_invals;
}

/* whether webhook w wants event for a job of queue (len bytes) */
static bool
webhook_wants(const CachedWebhook *w, const char *event, const char *queue, int len)
{
	bool		wanted = false;

	for (int i = 0; i < w->nevents && !wanted; i++)
		wanted = strcmp(w->events[i], event) == 0;
	if (!wanted || w->nqueues < 0)
		return wanted;
	for (int i = 0; i < w->nqueues; i++)
		if ((int) strlen(w->queues[i]) == len && memcmp(w->queues[i], queue, len) == 0)
			return true;
	return false;
}

/* push a string value (or key) */
static void
push_string(JsonbParseState **st, JsonbIteratorToken tok, const char *s, int len)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = len;
	pushJsonbValue(st, tok, &v);
}

static void
push_key(JsonbParseState **st, const char *key)
{
	push_string(st, WJB_KEY, key, strlen(key));
}

/* push a value of a text column, or null */
static void
push_text(JsonbParseState **st, Datum d, bool isnull)
{
	JsonbValue	v;

	if (isnull)
	{
		v.type = jbvNull;
		pushJsonbValue(st, WJB_VALUE, &v);
		return;
	}
	d = PointerGetDatum(PG_DETOAST_DATUM_PACKED(d));
	push_string(st, WJB_VALUE, VARDATA_ANY(DatumGetPointer(d)),
				VARSIZE_ANY_EXHDR(DatumGetPointer(d)));
}

/* push a value of a jsonb column, or null */
static void
push_jsonb(JsonbParseState **st, Datum d, bool isnull)
{
	JsonbValue	v;

	if (isnull)
		v.type = jbvNull;
	else
	{
		Jsonb	   *j = DatumGetJsonbP(d);

		v.type = jbvBinary;
		v.val.binary.data = &j->root;
		v.val.binary.len = VARSIZE(j) - VARHDRSZ;
	}
	pushJsonbValue(st, WJB_VALUE, &v);
}

static void
push_int(JsonbParseState **st, int32 i)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(i);
	pushJsonbValue(st, WJB_VALUE, &v);
}

/*
 * The body of an event's delivery, from the job's row (slot_getallattrs
 * done), as outbox_plan builds it: the same keys and values, so the same
 * text (jsonb orders the keys).
 */
static Datum
event_body(const char *event, TupleTableSlot *row, TimestampTz now)
{
	static int	cols[10] = {-1};
	const Datum *v = row->tts_values;
	const bool *n = row->tts_isnull;
	JsonbParseState *st = NULL;
	JsonbValue *res;
	Jsonb	   *body;
	char	   *s;

	if (cols[0] < 0)
	{
		const char *names[10] = {"id", "queue", "name", "state", "flow_id",
		"metadata", "attempts", "progress", "result", "error"};

		for (int i = 0; i < 10; i++)
			cols[i] = TaskqJobColumn(names[i]);
	}
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_key(&st, "type");
	push_string(&st, WJB_VALUE, event, strlen(event));
	push_key(&st, "timestamp");
	s = JsonEncodeDateTime(NULL, TimestampTzGetDatum(now), TIMESTAMPTZOID, NULL);
	push_string(&st, WJB_VALUE, s, strlen(s));
	push_key(&st, "data");
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_key(&st, "job_id");
	s = DatumGetCString(DirectFunctionCall1(uuid_out, v[cols[0]]));
	push_string(&st, WJB_VALUE, s, strlen(s));
	push_key(&st, "queue");
	push_text(&st, v[cols[1]], n[cols[1]]);
	push_key(&st, "name");
	push_text(&st, v[cols[2]], n[cols[2]]);
	push_key(&st, "state");
	s = DatumGetCString(DirectFunctionCall1(enum_out, v[cols[3]]));
	push_string(&st, WJB_VALUE, s, strlen(s));
	push_key(&st, "flow_id");
	push_text(&st, v[cols[4]], n[cols[4]]);
	if (!n[cols[5]])
	{
		push_key(&st, "metadata");
		push_jsonb(&st, v[cols[5]], false);
	}
	push_key(&st, "attempts");
	push_int(&st, DatumGetInt32(v[cols[6]]));
	push_key(&st, "progress");
	push_int(&st, DatumGetInt32(v[cols[7]]));
	if (strcmp(event, "job.completed") == 0)
	{
		push_key(&st, "result");
		push_jsonb(&st, v[cols[8]], n[cols[8]]);
	}
	else if (strcmp(event, "job.failed") == 0 || strcmp(event, "job.dlq") == 0)
	{
		push_key(&st, "error");
		push_text(&st, v[cols[9]], n[cols[9]]);
	}
	pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	body = JsonbValueToJsonb(res);
	return CStringGetTextDatum(JsonbToCString(NULL, &body->root, VARSIZE(body)));
}

/* the columns of a delivery that TaskqEmitEventRows gives, as outbox_plan */
#define NUM_DELIVERY_COLUMNS 5
static const char *const delivery_columns[NUM_DELIVERY_COLUMNS] = {
	"id", "webhook_id", "event", "job_id", "body"
};
static const Oid delivery_types[NUM_DELIVERY_COLUMNS] = {
	UUIDOID, UUIDOID, TEXTOID, UUIDOID, TEXTOID
};

/*
 * Map the outbox's attributes to delivery_columns (at[i]: the column of
 * attribute i, -1 for one that gets its default, as in outbox_plan's
 * INSERT, or is dropped); false when a column is missing or of another
 * type, or a column is generated (then the statement writes the rows).
 */
static bool
delivery_shape(TupleDesc desc, int *at)
{
	int			found = 0;

	if (desc->constr != NULL && desc->constr->has_generated_stored)
		return false;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		at[i] = -1;
		if (att->attisdropped)
			continue;
		for (int c = 0; c < NUM_DELIVERY_COLUMNS && at[i] < 0; c++)
			if (strcmp(NameStr(att->attname), delivery_columns[c]) == 0)
				at[i] = c;
		if (at[i] < 0)
			continue;
		if (att->atttypid != delivery_types[at[i]])
			return false;
		found++;
	}
	return found == NUM_DELIVERY_COLUMNS;
}

/*
 * The outbox rows of event for the jobs of rows (their ids and queues
 * given, as read from them), as outbox_plan writes
 * them (its five values, every other column its default, evaluated per
 * row as COPY does), written as COPY writes (rowinsert.c); false, having
 * written nothing, when the outbox cannot be written so (triggers,
 * row-level security, another shape: then the statement does it).
 * Returns through *written whether any row was written.
 *
 * The outbox is locked first, and the webhooks read after: remove_webhook
 * locks it against writers until it commits, so an ack that waited for it
 * sees the invalidation and reads the webhooks again, and writes nothing
 * for the removed one.
 */
static bool
outbox_rows(const char *event, TupleTableSlot **rows, const Datum *ids,
			text *const *queues, int n, bool *written)
{
	Relation	rel = table_open(TaskqTableOid("webhook_deliveries"), RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	int		   *at = palloc(sizeof(int) * desc->natts);
	ExprState **defaults = palloc0(sizeof(ExprState *) * desc->natts);
	Expr	  **planned;
	ExprContext *econtext;
	TupleTableSlot **out = NULL;
	TupleDesc	copy = NULL;
	int			nout = 0;
	int			maxout = 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Datum		event_text = CStringGetTextDatum(event);
	MemoryContext body_cxt;

	*written = false;
	if (!TaskqCanInsertRows(rel) || !delivery_shape(desc, at))
	{
		table_close(rel, NoLock);
		return false;
	}
	if (!webhooks_valid)
		load_webhooks();

	econtext = CreateStandaloneExprContext();
	planned = TaskqColumnDefaults(rel);
	for (int i = 0; i < desc->natts; i++)
		if (at[i] < 0 && planned[i] != NULL)
			defaults[i] = ExecInitExpr(planned[i], NULL);
	/* each body is built here, and only its text kept */
	body_cxt = AllocSetContextCreate(CurrentMemoryContext, "taskq event body",
									 ALLOCSET_DEFAULT_SIZES);
	for (int r = 0; r < n; r++)
	{
		text	   *queue = queues[r];
		Datum		body = (Datum) 0;

		for (int w = 0; w < nwebhooks; w++)
		{
			TupleTableSlot *slot;
			Datum		values[NUM_DELIVERY_COLUMNS];
			pg_uuid_t  *id;

			if (!webhook_wants(&webhooks[w], event, VARDATA_ANY(queue),
							   VARSIZE_ANY_EXHDR(queue)))
				continue;
			if (body == (Datum) 0)
			{
				MemoryContext old = MemoryContextSwitchTo(body_cxt);
				Datum		b = event_body(event, rows[r], now);

				MemoryContextSwitchTo(old);
				body = PointerGetDatum(DatumGetTextPCopy(b));
				MemoryContextReset(body_cxt);
			}
			id = palloc(sizeof(pg_uuid_t));
			TaskqUuid7(id);
			values[0] = UUIDPGetDatum(id);
			values[1] = webhooks[w].id;
			values[2] = event_text;
			values[3] = ids[r];
			values[4] = body;

			slot = TaskqRowSlot(rel, n * nwebhooks, &copy);
			for (int i = 0; i < desc->natts; i++)
			{
				slot->tts_isnull[i] = true;
				slot->tts_values[i] = (Datum) 0;
				if (at[i] >= 0)
				{
					slot->tts_values[i] = values[at[i]];
					slot->tts_isnull[i] = false;
				}
				else if (defaults[i] != NULL)
				{
					Form_pg_attribute att = TupleDescAttr(desc, i);
					Datum		d = ExecEvalExpr(defaults[i], econtext,
												 &slot->tts_isnull[i]);

					/* a copy that lives as long as the slot */
					slot->tts_values[i] = slot->tts_isnull[i] ? (Datum) 0 :
						datumCopy(d, att->attbyval, att->attlen);
				}
			}
			ResetExprContext(econtext);
			ExecStoreVirtualTuple(slot);
			if (nout == maxout)
			{
				maxout = Max(16, maxout * 2);
				out = out == NULL ? palloc(sizeof(TupleTableSlot *) * maxout) :
					repalloc(out, sizeof(TupleTableSlot *) * maxout);
			}
			out[nout++] = slot;
		}
	}
	if (nout > 0)
		TaskqInsertRows(rel, out, nout);
	TaskqDropRowSlots(out, nout, copy);
	MemoryContextDelete(body_cxt);
	FreeExprContext(econtext, true);
	table_close(rel, NoLock);
	*written = nout > 0;
	return true;
}

/*
 * An event happened to jobs: write the outbox rows of the webhooks that
 * want it, notify the streams and keep it for the live stream.  The jobs
 * are ids (a uuid[]), or, when rows is not NULL, the n rows of the jobs
 * as they are now (then the outbox rows and the live stream's entries are
 * written without a statement, and the uuid[] is made from them only for
 * a statement that still runs).  Runs inside SPI_connect, after the jobs' change.
 */
static void
emit_event(const char *event, Datum ids, TupleTableSlot **rows, int n)
{
	bool		live = TaskqEventRingWanted();
	bool		by_worker = false;
	bool		outbox_done = false;
	Datum	   *idv = NULL;
	text	  **queues = NULL;

	if (webhooks_exist < 0 || streams_exist < 0)
		load_cache();
	if (!webhooks_exist && !streams_exist && !live)
		return;

	if (rows != NULL)
	{
		int			id_col = TaskqJobColumn("id");
		int			queue_col = TaskqJobColumn("queue");

		idv = palloc(sizeof(Datum) * n);
		queues = palloc(sizeof(text *) * n);
		for (int i = 0; i < n; i++)
		{
			slot_getallattrs(rows[i]);
			idv[i] = rows[i]->tts_values[id_col];
			queues[i] = DatumGetTextPP(rows[i]->tts_values[queue_col]);
		}
		if (webhooks_exist)
		{
			bool		written;

			outbox_done = outbox_rows(event, rows, idv, queues, n, &written);
			if (written)
				TaskqNoteWorkerWake();
		}
	}
	if (streams_exist)
		by_worker = live && worker_streams();

	/* the statements: the outbox's when not written above, the stream's */
	if ((webhooks_exist && !outbox_done) || (streams_exist && !by_worker))
	{
		Datum		values[2];

		values[0] = rows == NULL ? ids :
			PointerGetDatum(construct_array(idv, n, UUIDOID, UUID_LEN, false,
											TYPALIGN_CHAR));
		values[1] = CStringGetTextDatum(event);
		if (webhooks_exist && !outbox_done &&
			TaskqExecute(&outbox_plan, values, NULL, false, 0) > 0)
			TaskqNoteWorkerWake();
		if (streams_exist && !by_worker)
			TaskqExecute(&stream_plan, values, NULL, false, 0);
	}
	if (live && rows != NULL)
		TaskqEventRingNoteJobs(event, idv, queues, n, by_worker);
	else if (live)
		TaskqEventRingNote(event, ids, by_worker);
}

/*
 * An event happened to the jobs of ids (a uuid[]): write the outbox rows
 * of the webhooks that want it, and notify the streams.  Runs inside
 * SPI_connect, after the jobs' change.
 */
void
TaskqEmitEvent(const char *event, Datum ids)
{
	emit_event(event, ids, NULL, 0);
}

/*
 * An event happened to the jobs whose rows (as they are now, with the
 * columns of taskq.jobs) the caller has: TaskqEmitEvent without the
 * statements that would read them again.  Runs inside SPI_connect, after
 * the jobs' change.
 */
void
TaskqEmitEventRows(const char *event, TupleTableSlot **rows, int n)
{
	if (n > 0)
		emit_event(event, (Datum) 0, rows, n);
}

/*
 * Whether some queue has notify_events (the cached answer).  Runs inside
 * SPI_connect.
 */
bool
TaskqStreamsExist(void)
{
	if (streams_exist < 0)
		load_cache();
	return streams_exist;
}

/*
 * The database worker: send the stream's events, in their order (run
 * inside SPI_connect; the notifications go at the commit of its
 * transaction).
 */
void
TaskqNotifyStream(const TaskqStreamEvent *events, int n)
{
	static TaskqPlan notify_plan = {
		"SELECT pg_notify('" TASKQ_EVENTS_CHANNEL "', CASE WHEN u.event IS NULL"
		" THEN jsonb_build_object('event', 'events.lost', 'timestamp', now())"
		" ELSE jsonb_build_object('event', u.event, 'job_id', u.id,"
		" 'queue', u.queue, 'timestamp', u.ts) END::text)"
		" FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[])"
		" WITH ORDINALITY AS u(event, id, queue, ts, n) ORDER BY u.n",
		4, {TEXTARRAYOID, UUIDARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID}, true
	};
	Datum	   *ev = palloc(sizeof(Datum) * n);
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *queues = palloc(sizeof(Datum) * n);
	Datum	   *ts = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	Datum		values[4];

	for (int i = 0; i < n; i++)
	{
		nulls[i] = events[i].event == NULL;
		ev[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(events[i].event);
		ids[i] = UUIDPGetDatum(&events[i].job_id);
		queues[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(events[i].queue);
		ts[i] = TimestampTzGetDatum(events[i].ts);
	}
	values[0] = PointerGetDatum(construct_md_array(ev, nulls, 1, dims, lbs, TEXTOID,
												   -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_md_array(ids, NULL, 1, dims, lbs, UUIDOID,
												   UUID_LEN, false, TYPALIGN_CHAR));
	values[2] = PointerGetDatum(construct_md_array(queues, nulls, 1, dims, lbs, TEXTOID,
												   -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_md_array(ts, NULL, 1, dims, lbs, TIMESTAMPTZOID,
												   sizeof(TimestampTz), FLOAT8PASSBYVAL,
												   TYPALIGN_DOUBLE));
	TaskqExecute(&notify_plan, values, NULL, false, 0);
}

/*
 * TaskqEmitEvent for one job.
 */
void
TaskqEmitEventOne(const char *event, Datum id)
{
	if (webhooks_exist == 0 && streams_exist == 0 && !TaskqEventRingWanted())
		return;
	TaskqEmitEvent(event, PointerGetDatum(construct_array(&id, 1, UUIDOID,
														  UUID_LEN, false,
														  TYPALIGN_CHAR)));
}
