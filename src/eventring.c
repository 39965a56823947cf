/*-------------------------------------------------------------------------
 *
 * eventring.c
 *		The live event stream: job events kept in a ring of shared memory
 *		while somebody reads them, for taskq.read_events and the gateway's
 *		GET /api/v1/events.
 *
 * Nothing is kept while nobody reads: a reader registers itself (one slot
 * per backend, by PGPROC number) and the count of readers is what every
 * event checks first, one atomic read.  While the count is not zero,
 * TaskqEmitEvent (events.c) hands each event here too; it is kept in the
 * transaction's own memory until commit, and at commit, after the
 * transaction is visible, copied into the ring under its lock, each entry
 * taking the next sequence number.  An aborted transaction or
 * subtransaction drops its events; a prepared transaction's are dropped
 * too (they cannot be kept for its COMMIT PREPARED, which may run in
 * another session).  The committing backend sets the latches of the
 * readers of its database, which sleep in taskq.read_events meanwhile.
 * The database worker, which reads for the NOTIFY stream in rounds, asks
 * for that only when its last read found nothing: while events come, it
 * comes back after each round by itself, and a drain's commits do not
 * wake it once each.
 *
 * A registration lasts while its backend reads: each call of read_events
 * renews it until READER_LEASE_MS after the call returns, and a committing
 * backend that finds it older clears it; the backend's exit clears it too.
 * So a gateway that stops reading (its clients are gone) costs nothing
 * after a minute, and a client that comes back within that minute resumes
 * without losing anything.
 *
 * The ring keeps the last taskq.event_buffer events of the cluster, of
 * every database (each entry says which).  Sequence numbers begin at the
 * server's start time in microseconds, so they keep growing across
 * restarts (unless the clock goes back) and a cursor from before a
 * restart never seems to be ahead.  A reader whose cursor is older than
 * the oldest event kept is told so by a first row of event
 * "events.lost": the events between its cursor and that row's sequence
 * number are gone (overwritten, or written while the server was down).
 *
 * Within a transaction the events keep their order, except that
 * job.promoted (a child of a completed parent became runnable: written by
 * the trigger of the parent's ack, before its job.completed) comes after
 * the others.
 *
 * Without shared_preload_libraries there is no ring: read_events is an
 * error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "taskq.h"

/* how long a reader stays registered after its last read_events */
#define READER_LEASE_MS		60000

/* the events, by number; the ring stores the number */
static const char *const event_names[] = {
	NULL,
	"job.pushed", "job.completed", "job.failed", "job.dlq", "job.cancelled",
	"job.progress", "job.redriven", "job.promoted"
};
#define EVENT_PROMOTED	8
#define NUM_EVENTS		lengthof(event_names)

typedef struct RingEntry
{
	uint64		seq;
	Oid			dbid;
	uint8		event;
	bool		stream;			/* for the NOTIFY stream (events.c) */
	pg_uuid_t	job_id;
	TimestampTz ts;
	char		queue[TASKQ_MAX_QUEUE_NAME + 1];
} RingEntry;

typedef struct ReaderSlot
{
	Oid			dbid;			/* InvalidOid: not reading */
	TimestampTz until;			/* registered until then */
	bool		wake;			/* a commit with events sets its latch */
} ReaderSlot;

typedef struct RingShared
{
	LWLock	   *lock;
	pg_atomic_uint32 nreaders;	/* slots with a dbid */
	uint64		next_seq;		/* the number the next event takes */
	uint64		first_seq;		/* the number of the first event ever kept */
	int			size;			/* entries */
	int			nslots;
	ReaderSlot *readers;		/* by PGPROC number */
	RingEntry	entries[FLEXIBLE_ARRAY_MEMBER];
} RingShared;

/* taskq.event_buffer */
int			taskq_event_buffer = 8192;

static RingShared *ring = NULL;
static bool i_read = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* this transaction's events, until commit */
typedef struct PendingEvent
{
	uint8		event;
	bool		stream;			/* for the NOTIFY stream (events.c) */
	int			nest;			/* the subtransaction level that wrote it */
	pg_uuid_t	job_id;
	TimestampTz ts;
	char	   *queue;
} PendingEvent;

static MemoryContext pending_cxt = NULL;
static PendingEvent *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;
static uint64 pending_dropped = 0;	/* past the ring's size: only counted */

/*
 * the jobs' queues, and whether each queue's events go to taskq_events, in
 * the order of the ids
 */
static TaskqPlan queues_plan = {
	"SELECT j.id, j.queue, coalesce(q.notify_events, false)"
	" FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)"
	" JOIN taskq.all_jobs j ON j.id = u.id"
	" LEFT JOIN taskq.queues q ON q.name = j.queue ORDER BY u.n",
	1, {UUIDARRAYOID}, true
};

static int
ring_nslots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
ring_shmem_size(void)
{
	return add_size(add_size(offsetof(RingShared, entries),
							 mul_size(taskq_event_buffer, sizeof(RingEntry))),
					mul_size(ring_nslots(), sizeof(ReaderSlot)));
}

static void
ring_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(ring_shmem_size());
	RequestNamedLWLockTranche("taskq events", 1);
}

static void
ring_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ring = ShmemInitStruct("taskq events", ring_shmem_size(), &found);
	if (!found)
	{
		ring->lock = &(GetNamedLWLockTranche("taskq events"))->lock;
		pg_atomic_init_u32(&ring->nreaders, 0);
		ring->size = taskq_event_buffer;
		ring->nslots = ring_nslots();
		ring->next_seq = (uint64) GetCurrentTimestamp();
		ring->first_seq = ring->next_seq;
		for (int i = 0; i < ring->size; i++)
			ring->entries[i].seq = 0;
		ring->readers = (ReaderSlot *) &ring->entries[ring->size];
		for (int i = 0; i < ring->nslots; i++)
			ring->readers[i].dbid = InvalidOid;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Whether anybody reads events now: then TaskqEventRingNote wants them.
 */
bool
TaskqEventRingWanted(void)
{
	return ring != NULL && pg_atomic_read_u32(&ring->nreaders) > 0;
}

static int
event_number(const char *event)
{
	for (int i = 1; i < NUM_EVENTS; i++)
		if (strcmp(event_names[i], event) == 0)
			return i;
	return 0;
}

static void
pending_add(int event, bool stream, const pg_uuid_t *id, const char *queue, int len)
{
	PendingEvent *p;

	if (pending_cxt == NULL)
		pending_cxt = AllocSetContextCreate(TopMemoryContext, "taskq events",
											ALLOCSET_SMALL_SIZES);
	if (npending == maxpending)
	{
		int			newmax = Max(16, maxpending * 2);

		/* no more than the ring holds: the older ones would be overwritten */
		if (maxpending >= ring->size)
		{
			pending_dropped++;
			pfree(pending[0].queue);
			memmove(pending, pending + 1, sizeof(PendingEvent) * (npending - 1));
			npending--;
		}
		else
		{
			newmax = Min(newmax, ring->size);
			if (pending == NULL)
				pending = MemoryContextAlloc(pending_cxt, sizeof(PendingEvent) * newmax);
			else
				pending = repalloc(pending, sizeof(PendingEvent) * newmax);
			maxpending = newmax;
		}
	}
	p = &pending[npending++];
	p->event = event;
	p->stream = stream;
	p->nest = GetCurrentTransactionNestLevel();
	memcpy(&p->job_id, id, sizeof(pg_uuid_t));
	p->ts = GetCurrentTransactionStartTimestamp();
	p->queue = MemoryContextAlloc(pending_cxt, len + 1);
	memcpy(p->queue, queue, len);
	p->queue[len] = '\0';
}

/*
 * An event happened to the jobs of ids (a uuid[]): keep it for the
 * stream, to be published at commit; with stream, marked for the NOTIFY
 * stream of the database worker where the job's queue has notify_events
 * (as of this transaction).  Runs inside SPI_connect, as the owner; the
 * caller checked TaskqEventRingWanted.
 */
void
TaskqEventRingNote(const char *event, Datum ids, bool stream)
{
	int			e = event_number(event);
	int			n;

	if (e == 0)
		return;
	n = TaskqExecute(&queues_plan, &ids, NULL, false, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		text	   *queue = DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 2, &isnull));

		bool		notify = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 3, &isnull));

		pending_add(e, stream && notify, DatumGetUUIDP(id), VARDATA_ANY(queue),
					VARSIZE_ANY_EXHDR(queue));
	}
}

/*
 * TaskqEventRingNote for jobs whose queues the caller has (an ack's
 * finished rows): each queue's notify_events is the queue cache's, and no
 * statement runs.  Runs inside TaskqSwitchToOwner.
 */
void
TaskqEventRingNoteJobs(const char *event, const Datum *ids, text *const *queues,
					   int n, bool stream)
{
	int			e = event_number(event);

	if (e == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		const char *queue = VARDATA_ANY(queues[i]);
		int			len = VARSIZE_ANY_EXHDR(queues[i]);
		char		name[TASKQ_MAX_QUEUE_NAME + 1];
		bool		notify = false;

		if (stream && len <= TASKQ_MAX_QUEUE_NAME)
		{
			memcpy(name, queue, len);
			name[len] = '\0';
			notify = TaskqQueueNotifies(name);
		}
		pending_add(e, notify, DatumGetUUIDP(ids[i]), queue, len);
	}
}

/* clear reader slot s; under the lock, exclusively */
static void
reader_clear(int s)
{
	if (ring->readers[s].dbid != InvalidOid)
	{
		ring->readers[s].dbid = InvalidOid;
		pg_atomic_fetch_sub_u32(&ring->nreaders, 1);
	}
}

/* copy one pending event into the ring; under the lock, exclusively */
static void
ring_put(const PendingEvent *p)
{
	RingEntry  *e = &ring->entries[ring->next_seq % ring->size];

	e->seq = ring->next_seq++;
	e->dbid = MyDatabaseId;
	e->event = p->event;
	e->stream = p->stream;
	e->job_id = p->job_id;
	e->ts = p->ts;
	strlcpy(e->queue, p->queue, sizeof(e->queue));
}

/* publish the transaction's events and wake the readers */
static void
ring_publish(void)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	/* dropped events still take their numbers: readers see the gap */
	ring->next_seq += pending_dropped;
	for (int i = 0; i < npending; i++)
		if (pending[i].event != EVENT_PROMOTED)
			ring_put(&pending[i]);
	for (int i = 0; i < npending; i++)
		if (pending[i].event == EVENT_PROMOTED)
			ring_put(&pending[i]);
	for (int s = 0; s < ring->nslots; s++)
	{
		if (ring->readers[s].dbid == InvalidOid)
			continue;
		if (ring->readers[s].until < now)
			reader_clear(s);
		else if (ring->readers[s].dbid == MyDatabaseId && ring->readers[s].wake)
			SetLatch(&ProcGlobal->allProcs[s].procLatch);
	}
	LWLockRelease(ring->lock);
}

static void
pending_reset(void)
{
	npending = 0;
	maxpending = 0;
	pending = NULL;
	pending_dropped = 0;
	if (pending_cxt != NULL)
		MemoryContextReset(pending_cxt);
}

static void
ring_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (ring != NULL && (npending > 0 || pending_dropped > 0))
				ring_publish();
			pending_reset();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (npending > 0 || pending_dropped > 0)
				pending_reset();
			break;
		default:
			break;
	}
}

static void
ring_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	if (npending == 0)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		/* its events are the last ones: drop them */
		while (npending > 0 && pending[npending - 1].nest >= level)
		{
			npending--;
			pfree(pending[npending].queue);
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = npending - 1; i >= 0 && pending[i].nest >= level; i--)
			pending[i].nest = level - 1;
	}
}

/* the backend exits: it reads no more */
static void
reader_exit(int code, Datum arg)
{
	if (!i_read || ring == NULL || MyProc == NULL)
		return;
	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	reader_clear(MyProc->pgprocno);
	LWLockRelease(ring->lock);
	i_read = false;
}

/* register as a reader, or renew the registration; returns the next seq */
static uint64
reader_register(int32 wait_ms)
{
	uint64		next;
	ReaderSlot *slot = &ring->readers[MyProc->pgprocno];

	if (!i_read)
	{
		before_shmem_exit(reader_exit, (Datum) 0);
		i_read = true;
	}
	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	if (slot->dbid == InvalidOid)
		pg_atomic_fetch_add_u32(&ring->nreaders, 1);
	slot->dbid = MyDatabaseId;
	slot->wake = true;
	slot->until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											  wait_ms + READER_LEASE_MS);
	next = ring->next_seq;
	LWLockRelease(ring->lock);
	return next;
}

static void
require_ring(void)
{
	if (ring == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the event stream needs taskq in shared_preload_libraries"),
				 errhint("Add taskq to shared_preload_libraries and restart the server.")));
}

/*
 * taskq.events_cursor() returns bigint: the sequence number of the last
 * event so far, to read the events after it; and registers the session
 * as a reader, so that the events from now on are kept.
 */
PG_FUNCTION_INFO_V1(taskq_events_cursor);
Datum
taskq_events_cursor(PG_FUNCTION_ARGS)
{
	require_ring();
	PG_RETURN_INT64((int64) reader_register(0) - 1);
}

typedef struct ReadRow
{
	uint64		seq;
	uint8		event;			/* 0: events.lost */
	pg_uuid_t	job_id;
	TimestampTz ts;
	char	   *queue;
} ReadRow;

/*
 * Copy the events of this database after "after" (at most max) into rows,
 * only those marked for the NOTIFY stream when stream_only; a first
 * events.lost row when some are gone.  Returns how many; *last is the
 * number of the last event looked at.  With stream_only (the database
 * worker, which comes back by itself after a batch), the reader asks for
 * its latch to be set by the next commit only when it found nothing.
 */
static int
ring_read(uint64 after, int max, bool stream_only, ReadRow *rows, uint64 *last)
{
	int			n = 0;
	uint64		oldest;
	uint64		seq;

	LWLockAcquire(ring->lock, LW_SHARED);
	oldest = Max(ring->first_seq,
				 ring->next_seq > (uint64) ring->size ? ring->next_seq - ring->size : 0);
	if (after + 1 < oldest || after + 1 > ring->next_seq)
	{
		/*
		 * Events after the cursor are gone, or the cursor is ahead of every
		 * event (made up, or from before a restart whose clock went back):
		 * say so, and go on from what is kept.
		 */
		after = after + 1 < oldest ? oldest - 1 : ring->next_seq - 1;
		rows[n].seq = after;
		rows[n].event = 0;
		rows[n].queue = NULL;
		n++;
	}
	for (seq = after + 1; seq < ring->next_seq && n < max; seq++)
	{
		RingEntry  *e = &ring->entries[seq % ring->size];

		if (e->seq != seq || e->dbid != MyDatabaseId || (stream_only && !e->stream))
			continue;
		rows[n].seq = seq;
		rows[n].event = e->event;
		rows[n].job_id = e->job_id;
		rows[n].ts = e->ts;
		rows[n].queue = pstrdup(e->queue);
		n++;
	}
	*last = seq - 1;

	/*
	 * The slot is only written by its backend, and read by committing
	 * backends under the lock held exclusively: a commit after this sees
	 * the new value.
	 */
	if (stream_only)
		ring->readers[MyProc->pgprocno].wake = n == 0;
	LWLockRelease(ring->lock);
	return n;
}

/*
 * taskq.read_events(after bigint, wait_ms integer DEFAULT 0,
 *		max_events integer DEFAULT 1000)
 *		RETURNS TABLE (seq bigint, event text, job_id uuid, queue text,
 *		"timestamp" timestamptz)
 *
 * The database's events after sequence number "after" (NULL: the events
 * from now on), oldest first; when there are none, waits up to wait_ms
 * for one.  Every queue's events: the caller must be allowed to see them
 * all (EXECUTE is granted to taskq_admin only).
 */
PG_FUNCTION_INFO_V1(taskq_read_events);
Datum
taskq_read_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		wait_ms = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1);
	int32		max = PG_ARGISNULL(2) ? 1000 : PG_GETARG_INT32(2);
	uint64		after;
	uint64		next;
	TimestampTz deadline;
	ReadRow    *rows;
	int			n;

	require_ring();
	if (!PG_ARGISNULL(0) && PG_GETARG_INT64(0) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event cursor must not be negative")));
	if (wait_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("wait_ms must not be negative")));
	if (max < 1 || max > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must be between 1 and 100000")));
	if (wait_ms > 0 && GetTopTransactionIdIfAny() != InvalidTransactionId)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("read_events cannot wait in a transaction that has written"),
				 errhint("Commit first, or pass wait_ms 0.")));

	InitMaterializedSRF(fcinfo, 0);
	next = reader_register(wait_ms);
	after = PG_ARGISNULL(0) ? next - 1 : (uint64) PG_GETARG_INT64(0);
	rows = palloc(sizeof(ReadRow) * (max + 1));
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
	for (;;)
	{
		TimestampTz now;

		uint64		last;

		n = ring_read(after, max, false, rows, &last);
		if (n > 0)
			break;
		now = GetCurrentTimestamp();
		if (now >= deadline)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(TimestampDifferenceMilliseconds(now, deadline), 1),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	/* the lease counts from now */
	(void) reader_register(0);

	for (int i = 0; i < n; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		values[0] = Int64GetDatum((int64) rows[i].seq);
		if (rows[i].event == 0)
		{
			values[1] = CStringGetTextDatum("events.lost");
			nulls[2] = nulls[3] = nulls[4] = true;
		}
		else
		{
			values[1] = CStringGetTextDatum(event_names[rows[i].event]);
			values[2] = UUIDPGetDatum(&rows[i].job_id);
			values[3] = CStringGetTextDatum(rows[i].queue);
			values[4] = TimestampTzGetDatum(rows[i].ts);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * The database worker's reading, for the NOTIFY stream (events.c):
 * TaskqEventRingFollow registers it as a reader and returns the number of
 * the last event so far (0 without the ring); TaskqEventRingTake renews
 * the registration and copies up to max events marked for the stream
 * after *cursor into out (an events.lost one, event NULL, when some are
 * gone), moving *cursor past what it looked at.  Returns how many.
 */
uint64
TaskqEventRingFollow(void)
{
	if (ring == NULL)
		return 0;
	return reader_register(0) - 1;
}

int
TaskqEventRingTake(uint64 *cursor, int max, TaskqStreamEvent *out)
{
	ReadRow    *rows;
	uint64		last;
	int			n;

	if (ring == NULL)
		return 0;
	(void) reader_register(0);
	rows = palloc(sizeof(ReadRow) * (max + 1));
	n = ring_read(*cursor, max, true, rows, &last);
	for (int i = 0; i < n; i++)
	{
		out[i].event = rows[i].event == 0 ? NULL : event_names[rows[i].event];
		out[i].job_id = rows[i].job_id;
		out[i].queue = rows[i].queue;
		out[i].ts = rows[i].ts;
	}
	*cursor = Max(*cursor, last);
	pfree(rows);
	return n;
}

/*
 * Set up: the setting, the callbacks, and (when preloading) the shared
 * memory.
 */
void
TaskqEventRingInit(bool preloading)
{
	RegisterXactCallback(ring_xact_callback, NULL);
	RegisterSubXactCallback(ring_subxact_callback, NULL);
	if (!preloading)
		return;
	DefineCustomIntVariable("taskq.event_buffer",
							"Sets how many job events shared memory keeps for the live event stream.",
							"Events are kept only while a session reads them (taskq.read_events, taskq serve's /api/v1/events).",
							&taskq_event_buffer,
							8192,
							16,
							1024 * 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ring_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ring_shmem_startup;
}
