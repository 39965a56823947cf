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
 * job as the event left it.
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

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "taskq.h"

/* -1: unknown, else whether webhooks / event-stream queues exist */
static int	webhooks_exist = -1;
static int	streams_exist = -1;
/* -1: unknown, else whether a queue keeps no completed jobs */
static int	no_history_exists = -1;

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
 * later): no job is runnable yet, so no worker is woken, but the pulls
 * waiting on the queue are, after commit, to sleep until its run_at
 * rather than for their whole step (pullwait.c).
 */
void
TaskqNoteDelayed(text *queue)
{
	note_queue(queue, delayed_queues, &ndelayed, &delayed_overflow);
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
	Oid			nsp = get_namespace_oid("taskq", false);
	Oid			relid = get_relname_relid("webhooks", nsp);

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
 * An event happened to the jobs of ids (a uuid[]): write the outbox rows
 * of the webhooks that want it, and notify the streams.  Runs inside
 * SPI_connect, after the jobs' change.
 */
void
TaskqEmitEvent(const char *event, Datum ids)
{
	Datum		values[2];
	bool		live = TaskqEventRingWanted();
	bool		by_worker = false;

	if (webhooks_exist < 0 || streams_exist < 0)
		load_cache();
	if (!webhooks_exist && !streams_exist && !live)
		return;

	values[0] = ids;
	values[1] = CStringGetTextDatum(event);
	if (webhooks_exist &&
		TaskqExecute(&outbox_plan, values, NULL, false, 0) > 0)
		TaskqNoteWorkerWake();
	if (streams_exist)
	{
		by_worker = live && worker_streams();
		if (!by_worker)
			TaskqExecute(&stream_plan, values, NULL, false, 0);
	}
	if (live)
		TaskqEventRingNote(event, ids, by_worker);
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
