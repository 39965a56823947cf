/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The worker of a database where taskq is installed (started by the
 *		launcher, launcher.c): it reaps expired leases, enforces retention,
 *		counts the kept jobs after a start, delivers webhooks (delivery.c)
 *		and sends coalesced wake-ups.
 *
 * A worker works in short transactions, each in worker_spi's sequence, and
 * holds none while it waits or talks to webhook receivers.  It checks at
 * each round that the extension still exists, so DROP EXTENSION waits at
 * most for one round's transaction.  Its slot in shared memory
 * (workerslots.c) has its latch, which committing backends set, and the
 * queues whose workers to wake.
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "taskq.h"

/* settings */
int			taskq_reaper_interval = 1000;
int			taskq_retention_interval = 60;

/* shortest time between two rounds of wake-up notifications */
#define WAKEUP_ROUND_MS			2
/* rows per retention batch */
#define RETENTION_BATCH			10000

/* the slot of this database worker */
static TaskqDbSlot *my_slot = NULL;

PGDLLEXPORT void taskq_worker_main(Datum arg);

/* on_shmem_exit: give the slot back */
static void
worker_detach(int code, Datum arg)
{
	LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
	if (my_slot != NULL)
	{
		my_slot->pid = 0;
		my_slot->latch = NULL;
		my_slot->streaming = false;
	}
	LWLockRelease(taskq_shared->lock);
}

/* take the slot of our database, or a free one */
static void
worker_attach(Oid dbid)
{
	LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
	my_slot = TaskqFindSlot(dbid);
	if (my_slot != NULL && my_slot->pid != 0 && my_slot->pid != MyProcPid)
	{
		/* the database has a worker already (a restarted launcher's) */
		LWLockRelease(taskq_shared->lock);
		my_slot = NULL;
		proc_exit(0);
	}
	if (my_slot == NULL)
		my_slot = TaskqFindSlot(InvalidOid);
	if (my_slot == NULL)
	{
		/* reuse the slot of a database whose worker is gone */
		for (int i = 0; i < TASKQ_MAX_DATABASES && my_slot == NULL; i++)
			if (taskq_shared->slots[i].pid == 0)
				my_slot = &taskq_shared->slots[i];
	}
	if (my_slot == NULL)
	{
		LWLockRelease(taskq_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("taskq worker: no free slot for database %u", dbid)));
	}
	if (my_slot->dbid != dbid)
		memset(my_slot, 0, sizeof(TaskqDbSlot));
	my_slot->dbid = dbid;
	my_slot->pid = MyProcPid;
	my_slot->latch = MyLatch;
	my_slot->no_extension = false;
	LWLockRelease(taskq_shared->lock);
	on_shmem_exit(worker_detach, (Datum) 0);
}

/*
 * Start a transaction of the worker, in worker_spi's sequence; false (and
 * no transaction) when the extension is not installed.
 */
static bool
worker_begin(const char *activity)
{
	Oid			ext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());

	/*
	 * Hold a share lock on the extension for the transaction, as DROP
	 * EXTENSION locks it exclusively: a drop waits for this transaction, or
	 * is seen here, never in the middle of the worker's statements (which
	 * would fail on tables that are gone).
	 */
	ext = get_extension_oid("taskq", true);
	if (OidIsValid(ext))
	{
		LockDatabaseObject(ExtensionRelationId, ext, 0, AccessShareLock);
		if (get_extension_oid("taskq", true) != ext)
			ext = InvalidOid;
	}
	if (!OidIsValid(ext))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return false;
	}
	SPI_connect();
	pgstat_report_activity(STATE_RUNNING, activity);
	return true;
}

/*
 * end a transaction begun by worker_begin, and send its table statistics
 * (rows reaped, removed, delivered) to shared memory, so that autovacuum
 * sees them while the worker runs
 */
static void
worker_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* the extension is gone: say so and leave */
static void
worker_no_extension(void)
{
	LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
	my_slot->no_extension = true;
	LWLockRelease(taskq_shared->lock);
	proc_exit(0);
}

/*
 * One round of the reaper.  Expired leases are indexed by queue: first,
 * in one transaction, one probe per queue of taskq.queues from its lease
 * floor (pullhead.c; the reaper takes the floor's periodic check from the
 * beginning when it is due, as a pull does, so that a queue nobody pulls
 * is checked too); then, for each queue that has expired leases, batches
 * of TASKQ_RECLAIM_BATCH, a transaction each, until they are gone.
 * cxt outlives the transactions (the worker's loop context).
 */
static void
worker_reap(MemoryContext cxt)
{
	static TaskqPlan queues_plan = {
		"SELECT name FROM taskq.queues ORDER BY name", 0, {0}, true
	};
	List	   *expired = NIL;
	ListCell   *lc;
	MemoryContext probe_cxt;
	TimestampTz now;
	int			nqueues;

	if (!worker_begin("taskq: reaping expired leases"))
		worker_no_extension();
	now = GetCurrentTransactionStartTimestamp();
	nqueues = TaskqExecute(&queues_plan, NULL, NULL, true, 0);
	probe_cxt = AllocSetContextCreate(CurrentMemoryContext, "taskq reaper probe",
									  ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < nqueues; i++)
	{
		bool		isnull;
		SPITupleTable *queues = SPI_tuptable;
		Datum		queue = SPI_getbinval(queues->vals[i], queues->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(probe_cxt);
		char	   *name = TextDatumGetCString(queue);
		uint64		gen;
		bool		check;
		TimestampTz floor = TaskqLeaseFloor(name, false, &gen, &check, NULL);
		TimestampTz first = TaskqProbeExpired(queue, floor, now, NULL, NULL);

		TaskqLeaseFloorSeen(name, gen, check, first, now, NULL);
		SPI_tuptable = queues;
		/* the queues to reclaim, kept past this transaction */
		if (first != DT_NOEND)
		{
			MemoryContextSwitchTo(cxt);
			expired = lappend(expired, pstrdup(name));
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(probe_cxt);
		CHECK_FOR_INTERRUPTS();
	}
	/* counted at commit: one per round */
	TaskqMetricsCountDb(TASKQ_METRIC_REAPER_RUNS, 1);
	worker_end();
	MemoryContextSwitchTo(cxt);

	foreach(lc, expired)
	{
		char	   *name = lfirst(lc);
		int			n;

		do
		{
			uint64		gen;

			if (!worker_begin("taskq: reaping expired leases"))
				worker_no_extension();
			n = TaskqReclaimExpired(CStringGetTextDatum(name),
									TaskqLeaseFloor(name, false, &gen, NULL, NULL),
									GetCurrentTransactionStartTimestamp());
			worker_end();
			MemoryContextSwitchTo(cxt);
			CHECK_FOR_INTERRUPTS();
		} while (n >= TASKQ_RECLAIM_BATCH);
	}
}

/* one round of retention: taskq.cleanup in bounded batches */
static void
worker_cleanup(void)
{
	static TaskqPlan cleanup_plan = {
		"SELECT taskq.cleanup($1)", 1, {INT4OID}
	};
	int64		n;

	do
	{
		Datum		batch = Int32GetDatum(RETENTION_BATCH);
		bool		isnull;

		if (!worker_begin("taskq: removing old jobs"))
			worker_no_extension();
		TaskqExecute(&cleanup_plan, &batch, NULL, false, 1);
		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
		TaskqMetricsCountDb(TASKQ_METRIC_RETENTION_REMOVED, n);
		TaskqMetricsCountDb(TASKQ_METRIC_RETENTION_RUNS, n < RETENTION_BATCH ? 1 : 0);
		worker_end();
		CHECK_FOR_INTERRUPTS();
	} while (n >= RETENTION_BATCH);

	/* count the kept jobs if need be (after a start), so that no reader has to */
	if (!worker_begin("taskq: counting finished jobs"))
		worker_no_extension();
	TaskqHistoryPrepare();
	worker_end();
}

/*
 * Send the coalesced wake-ups: one NOTIFY per queue that got new jobs.
 * Returns whether there were any.
 */
static bool
worker_wakeups(void)
{
	char		queues[TASKQ_WAKE_RING][TASKQ_MAX_QUEUE_NAME + 1];
	int			n;
	bool		overflow;

	LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
	n = my_slot->nwake;
	overflow = my_slot->wake_overflow;
	memcpy(queues, my_slot->wake, sizeof(queues[0]) * n);
	my_slot->nwake = 0;
	my_slot->wake_overflow = false;
	LWLockRelease(taskq_shared->lock);

	if (n == 0 && !overflow)
		return false;
	if (!worker_begin("taskq: sending wake-ups"))
		worker_no_extension();
	for (int i = 0; i < n; i++)
		Async_Notify(TASKQ_WAKEUP_CHANNEL, queues[i]);
	if (overflow)
		Async_Notify(TASKQ_WAKEUP_CHANNEL, "");
	worker_end();
	return true;
}

/*
 * The taskq_events stream (events.c): while some queue has notify_events,
 * the worker reads the event ring and sends the events marked for the
 * stream, a batch per transaction.  The slot says whether it does, so that
 * committing backends leave their events to it; it says so only once the
 * worker reads, and no longer once it stops (or exits: worker_detach).
 */
#define STREAM_BATCH		1000
#define STREAM_CHECK_MS		1000
#define STREAM_ROUND_MS		5

static uint64 stream_cursor = 0;	/* 0: not following */
static TimestampTz next_stream_check = 0;
static TimestampTz next_stream_send = 0;

static void
set_streaming(bool on)
{
	LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
	my_slot->streaming = on;
	LWLockRelease(taskq_shared->lock);
}

static void
worker_stream(TimestampTz now)
{
	TaskqStreamEvent *events;
	int			n;

	/* whether to follow, at most every STREAM_CHECK_MS */
	if (now >= next_stream_check)
	{
		bool		wanted;

		if (!worker_begin("taskq: sending events"))
			worker_no_extension();
		wanted = TaskqStreamsExist();
		worker_end();
		next_stream_check = now + (TimestampTz) STREAM_CHECK_MS * 1000;
		if (wanted && stream_cursor == 0)
		{
			stream_cursor = TaskqEventRingFollow();
			if (stream_cursor != 0)
				set_streaming(true);
		}
		else if (!wanted && stream_cursor != 0)
		{
			set_streaming(false);
			stream_cursor = 0;
		}
	}
	/*
	 * Sends at most every STREAM_ROUND_MS: under a stream of commits, one
	 * transaction of the worker carries the events of many, and the worker
	 * does not spend a core on notifying.  A round sends all the ring has
	 * for it, STREAM_BATCH events per transaction.
	 */
	if (stream_cursor == 0 || now < next_stream_send)
		return;

	events = palloc(sizeof(TaskqStreamEvent) * (STREAM_BATCH + 1));
	do
	{
		CHECK_FOR_INTERRUPTS();
		n = TaskqEventRingTake(&stream_cursor, STREAM_BATCH, events);
		if (n == 0)
			break;
		if (!worker_begin("taskq: sending events"))
			worker_no_extension();
		TaskqNotifyStream(events, n);
		worker_end();
		next_stream_send = GetCurrentTimestamp() + (TimestampTz) STREAM_ROUND_MS * 1000;
	} while (n >= STREAM_BATCH);
}

/*
 * Database worker main loop.
 */
void
taskq_worker_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	TimestampTz next_reap = 0;
	TimestampTz next_cleanup = 0;
	TimestampTz next_delivery = 0;
	TimestampTz next_wakeups = 0;
	MemoryContext loop_cxt;
	char	   *dbname;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	TaskqTuneMalloc();
	TaskqPinSearchPath();
	pgstat_report_appname("taskq worker");
	worker_attach(dbid);

	/* not installed here: leave, and let the launcher know */
	StartTransactionCommand();
	dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(dbid));
	if (!OidIsValid(get_extension_oid("taskq", true)))
	{
		CommitTransactionCommand();
		worker_no_extension();
	}
	CommitTransactionCommand();

	if (!TaskqDeliveryStart(worker_begin, worker_end))
		worker_no_extension();
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "taskq worker loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		TimestampTz now;
		long		timeout;
		bool		deliveries;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* taskq.database_names may no longer list us */
			if (!TaskqDatabaseWanted(dbname))
				proc_exit(0);
			/* the intervals may have changed: reckon from now */
			next_reap = 0;
			next_cleanup = Min(next_cleanup, GetCurrentTimestamp() +
							   (TimestampTz) taskq_retention_interval * 1000000);
		}
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);

		/*
		 * Wake-ups at most every WAKEUP_ROUND_MS: under a stream of pushes
		 * one NOTIFY per queue covers all the commits of a round, and the
		 * worker does not spend a core on notifying.
		 */
		now = GetCurrentTimestamp();
		if (now >= next_wakeups)
		{
			if (worker_wakeups())
				next_wakeups = now + (TimestampTz) WAKEUP_ROUND_MS * 1000;
		}

		/* the events stream */
		worker_stream(GetCurrentTimestamp());

		now = GetCurrentTimestamp();
		if (now >= next_reap)
		{
			worker_reap(loop_cxt);
			next_reap = now + (TimestampTz) taskq_reaper_interval * 1000;
		}
		if (now >= next_cleanup)
		{
			worker_cleanup();
			next_cleanup = now + (TimestampTz) taskq_retention_interval * 1000000;
		}
		MemoryContextSwitchTo(loop_cxt);

		/*
		 * Webhooks: when new outbox rows were committed, when deliveries are
		 * in flight or one comes due, start what is due and move the others
		 * along.
		 */
		LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
		deliveries = my_slot->deliveries_pending;
		my_slot->deliveries_pending = false;
		LWLockRelease(taskq_shared->lock);
		now = GetCurrentTimestamp();
		if (deliveries || TaskqDeliveriesInFlight() || now >= next_delivery)
		{
			long		sleep_ms = TaskqDeliverWebhooks(worker_begin, worker_end, deliveries);

			if (sleep_ms < 0)
				worker_no_extension();
			next_delivery = GetCurrentTimestamp() + (TimestampTz) sleep_ms * 1000;
		}

		now = GetCurrentTimestamp();
		timeout = Max(0, (next_delivery - now) / 1000);
		timeout = Min(timeout, Max(0, (next_reap - now) / 1000));
		timeout = Min(timeout, Max(0, (next_cleanup - now) / 1000));
		if (now < next_wakeups)
			timeout = Min(timeout, Max(0, (next_wakeups - now) / 1000));
		/* the stream's check, and its reader registration kept alive */
		timeout = Min(timeout, Max(0, (next_stream_check - now) / 1000));
		if (stream_cursor != 0 && now < next_stream_send)
			timeout = Min(timeout, Max(0, (next_stream_send - now) / 1000));
		/*
		 * With transfers in flight, wait on their sockets first (briefly),
		 * so that they move on as soon as they can rather than at the next
		 * wake-up; then look at the latch.
		 */
		if (TaskqDeliveriesInFlight())
		{
			TaskqDeliveriesWait(Max(timeout, 1));
			timeout = 0;
		}
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 TaskqDeliveriesInFlight() ? timeout : Max(timeout, 1),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Define the settings of the database workers; from _PG_init.
 */
void
TaskqWorkerInit(void)
{
	DefineCustomIntVariable("taskq.reaper_interval",
							"Sets how often the background worker reclaims expired leases.",
							NULL,
							&taskq_reaper_interval,
							1000,
							10,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("taskq.retention_interval",
							"Sets how often the background worker removes old finished jobs.",
							NULL,
							&taskq_retention_interval,
							60,
							1,
							24 * 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}
