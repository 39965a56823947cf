/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The background workers: a launcher, and one worker per database
 *		where taskq is installed, which reaps expired leases, enforces
 *		retention, delivers webhooks and sends coalesced wake-ups.
 *
 * The launcher connects to no database (shared catalogs only).  Every
 * taskq.launcher_interval, or when woken, it lists pg_database and starts a
 * dynamic worker for each database that allows connections and, when
 * taskq.database_names is set, is named there.  A worker whose database
 * has no taskq extension says so in its slot and exits; the launcher tries
 * that database again only after a longer pause, or at once when a CREATE
 * EXTENSION taskq commits anywhere (it wakes the launcher).
 *
 * Shared memory (TaskqShared) holds the launcher's latch and one slot per
 * database worker: its pid and latch, so that backends can wake it when
 * they commit (events.c), and the names of queues that got new jobs, which
 * the worker turns into one NOTIFY per queue (coalesced wake-ups).
 *
 * A worker works in short transactions, each in worker_spi's sequence, and
 * holds none while it waits or talks to webhook receivers.  It checks at
 * each round that the extension still exists, so DROP EXTENSION waits at
 * most for one round's transaction.  DROP DATABASE, ALTER DATABASE ...
 * RENAME and CREATE DATABASE ... TEMPLATE stop the database's worker first
 * (a ProcessUtility hook) and keep the launcher from restarting it for a
 * while.
 *
 * Locking: TaskqShared->lock (an LWLock) guards the slots.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
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
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "taskq.h"

/* how long the launcher leaves alone a database without the extension */
#define NO_EXTENSION_PAUSE_MS	(60 * 1000)
/* how long a dropped database's worker is kept from restarting */
#define DROPDB_PAUSE_MS			(30 * 1000)
/* ... and that of a database being renamed or copied */
#define COPYDB_PAUSE_MS			(5 * 1000)
/* shortest time between two rounds of wake-up notifications */
#define WAKEUP_ROUND_MS			2
/* rows per retention batch */
#define RETENTION_BATCH			10000

TaskqShared *taskq_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

/* the slot of this database worker */
static TaskqDbSlot *my_slot = NULL;

PGDLLEXPORT void taskq_launcher_main(Datum arg);
PGDLLEXPORT void taskq_worker_main(Datum arg);

/*
 * Shared memory size of taskq.
 */
static Size
taskq_shmem_size(void)
{
	return sizeof(TaskqShared);
}

/* shmem_request_hook: ask for our shared memory and lock */
static void
taskq_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(taskq_shmem_size());
	RequestNamedLWLockTranche("taskq", 1);
}

/* shmem_startup_hook: set up our shared memory */
static void
taskq_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	taskq_shared = ShmemInitStruct("taskq", taskq_shmem_size(), &found);
	if (!found)
	{
		memset(taskq_shared, 0, taskq_shmem_size());
		taskq_shared->lock = &(GetNamedLWLockTranche("taskq"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The slot of a database, or NULL; caller holds the lock.
 */
TaskqDbSlot *
TaskqFindSlot(Oid dbid)
{
	if (taskq_shared == NULL)
		return NULL;
	for (int i = 0; i < TASKQ_MAX_DATABASES; i++)
		if (taskq_shared->slots[i].dbid == dbid)
			return &taskq_shared->slots[i];
	return NULL;
}

/*
 * Stop the worker of a database about to be dropped, renamed or copied,
 * which would otherwise make that fail as "being accessed by other users",
 * and keep the launcher from starting it again for a while.
 */
static void
stop_db_worker(const char *dbname, int pause_ms)
{
	Oid			dbid = get_database_oid(dbname, true);
	TimestampTz until;

	if (!OidIsValid(dbid))
		return;
	until = GetCurrentTimestamp() + (TimestampTz) pause_ms * 1000;
	for (int tries = 0; tries < 100; tries++)
	{
		TaskqDbSlot *slot;
		pid_t		pid = 0;

		LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
		slot = TaskqFindSlot(dbid);
		if (slot != NULL)
		{
			slot->stop_until = until;
			pid = slot->pid;
		}
		LWLockRelease(taskq_shared->lock);
		if (pid == 0)
			break;
		kill(pid, SIGTERM);
		pg_usleep(50 * 1000);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * ProcessUtility hook: before DROP DATABASE, ALTER DATABASE ... RENAME and
 * CREATE DATABASE ... TEMPLATE, stop the database's worker (see
 * stop_db_worker); after CREATE EXTENSION taskq commits, wake the launcher;
 * after DROP DATABASE, forget the database's metrics.
 */
static void
taskq_process_utility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Oid			dropped = InvalidOid;

	if (IsA(pstmt->utilityStmt, DropdbStmt))
		dropped = get_database_oid(((DropdbStmt *) pstmt->utilityStmt)->dbname, true);

	if (taskq_shared != NULL)
	{
		Node	   *stmt = pstmt->utilityStmt;

		if (IsA(stmt, DropdbStmt))
			stop_db_worker(((DropdbStmt *) stmt)->dbname, DROPDB_PAUSE_MS);
		else if (IsA(stmt, RenameStmt) &&
				 ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
			stop_db_worker(((RenameStmt *) stmt)->subname, COPYDB_PAUSE_MS);
		else if (IsA(stmt, CreatedbStmt))
		{
			ListCell   *lc;

			foreach(lc, ((CreatedbStmt *) stmt)->options)
			{
				DefElem    *opt = lfirst(lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
					stop_db_worker(defGetString(opt), COPYDB_PAUSE_MS);
			}
		}
	}

	/* a new taskq database: the launcher starts its worker at commit */
	if (IsA(pstmt->utilityStmt, CreateExtensionStmt) &&
		strcmp(((CreateExtensionStmt *) pstmt->utilityStmt)->extname, "taskq") == 0)
		TaskqNoteLauncherWake();

	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	/* a prepared transaction's jobs are committed: count them */
	if (IsA(pstmt->utilityStmt, TransactionStmt) &&
		((TransactionStmt *) pstmt->utilityStmt)->kind == TRANS_STMT_COMMIT_PREPARED)
		TaskqHistoryBreak();

	if (OidIsValid(dropped))
		TaskqMetricsForgetDatabase(dropped);
}

/*
 * Register the launcher and the hooks; called from _PG_init while
 * shared_preload_libraries is processed.
 */
void
TaskqWorkerInit(void)
{
	BackgroundWorker worker;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = taskq_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = taskq_shmem_startup;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = taskq_process_utility;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "taskq");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "taskq_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "taskq launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "taskq launcher");
	RegisterBackgroundWorker(&worker);
}

/* a database as the launcher sees it */
typedef struct LauncherDb
{
	Oid			dbid;
	char		name[NAMEDATALEN];
	BackgroundWorkerHandle *handle;
	TimestampTz not_before;		/* no restart before */
	TimestampTz started_at;		/* when its worker was last started */
	bool		seen;
} LauncherDb;

/* is name listed in taskq.database_names (or is the list empty)? */
static bool
database_wanted(const char *name)
{
	char	   *raw;
	List	   *names;
	ListCell   *lc;
	bool		wanted = false;

	if (taskq_database_names == NULL || taskq_database_names[0] == '\0')
		return true;
	raw = pstrdup(taskq_database_names);
	if (!SplitIdentifierString(raw, ',', &names))
	{
		ereport(LOG,
				(errmsg("taskq launcher: invalid list syntax in taskq.database_names")));
		return false;
	}
	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			wanted = true;
	return wanted;
}

/* start the worker of a database */
static void
start_db_worker(LauncherDb *db)
{
	BackgroundWorker worker;
	MemoryContext old_cxt;
	bool		registered;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "taskq");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "taskq_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "taskq worker for database %s", db->name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "taskq worker");
	worker.bgw_main_arg = ObjectIdGetDatum(db->dbid);
	worker.bgw_notify_pid = MyProcPid;

	db->started_at = GetCurrentTimestamp();
	db->not_before = 0;
	if (db->handle != NULL)
		pfree(db->handle);
	db->handle = NULL;
	/* the handle outlives this loop round: not in the loop's context */
	old_cxt = MemoryContextSwitchTo(TopMemoryContext);
	registered = RegisterDynamicBackgroundWorker(&worker, &db->handle);
	MemoryContextSwitchTo(old_cxt);
	if (!registered)
	{
		db->handle = NULL;
		ereport(LOG,
				(errmsg("taskq launcher: could not start a worker for database \"%s\"", db->name),
				 errhint("Raise max_worker_processes.")));
	}
}

/*
 * Pin search_path for the life of a launcher or worker process: they run
 * as the bootstrap superuser, and every statement they run, or fire
 * (triggers, the DAG trigger's pushes), must resolve names in pg_catalog
 * only, never in a schema another role can create objects in.  The
 * override source outranks ALTER DATABASE/ROLE settings, the
 * configuration file and SET, so it holds in every transaction.
 */
static void
pin_search_path(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET,
					PGC_S_OVERRIDE);
}

/*
 * Launcher main loop.
 */
void
taskq_launcher_main(Datum arg)
{
	LauncherDb *dbs = palloc0(sizeof(LauncherDb) * TASKQ_MAX_DATABASES);
	int			ndbs = 0;
	TimestampTz last_woken = 0;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pin_search_path();
	pgstat_report_appname("taskq launcher");

	LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
	taskq_shared->launcher_latch = MyLatch;
	LWLockRelease(taskq_shared->lock);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "taskq launcher loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		Relation	rel;
		TableScanDesc scan;
		HeapTuple	tup;
		TimestampTz now;
		bool		woken;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);

		LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
		woken = taskq_shared->launcher_woken;
		taskq_shared->launcher_woken = false;
		LWLockRelease(taskq_shared->lock);
		if (woken)
			last_woken = GetCurrentTimestamp();

		for (int i = 0; i < ndbs; i++)
			dbs[i].seen = false;

		/* list the databases */
		StartTransactionCommand();
		rel = table_open(DatabaseRelationId, AccessShareLock);
		scan = table_beginscan_catalog(rel, 0, NULL);
		while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);
			int			i;

			if (!d->datallowconn || d->datistemplate ||
				!database_wanted(NameStr(d->datname)))
				continue;
			for (i = 0; i < ndbs; i++)
				if (dbs[i].dbid == d->oid)
					break;
			if (i == ndbs)
			{
				if (ndbs == TASKQ_MAX_DATABASES)
					continue;
				memset(&dbs[ndbs], 0, sizeof(LauncherDb));
				dbs[ndbs].dbid = d->oid;
				ndbs++;
			}
			strlcpy(dbs[i].name, NameStr(d->datname), NAMEDATALEN);
			dbs[i].seen = true;
		}
		table_endscan(scan);
		table_close(rel, AccessShareLock);
		CommitTransactionCommand();
		MemoryContextSwitchTo(loop_cxt);

		/* start what is missing, stop what is no longer wanted */
		now = GetCurrentTimestamp();
		for (int i = 0; i < ndbs; i++)
		{
			LauncherDb *db = &dbs[i];
			pid_t		pid;
			TaskqDbSlot *slot;
			bool		running = db->handle != NULL &&
				GetBackgroundWorkerPid(db->handle, &pid) != BGWH_STOPPED;

			if (!db->seen)
			{
				if (running)
					TerminateBackgroundWorker(db->handle);
				if (db->handle != NULL)
					pfree(db->handle);
				db->dbid = InvalidOid;
				db->handle = NULL;
				continue;
			}
			if (running)
				continue;

			/* it stopped: was it for lack of the extension, or a drop? */
			LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
			slot = TaskqFindSlot(db->dbid);
			if (slot != NULL && slot->pid != 0)
			{
				/* a worker runs that this launcher did not start: keep it */
				LWLockRelease(taskq_shared->lock);
				continue;
			}
			if (slot != NULL)
			{
				if (slot->no_extension)
				{
					slot->no_extension = false;
					db->not_before = now + (TimestampTz) NO_EXTENSION_PAUSE_MS * 1000;
				}
				if (slot->stop_until > db->not_before)
					db->not_before = slot->stop_until;
			}
			LWLockRelease(taskq_shared->lock);

			/*
			 * A CREATE EXTENSION taskq committed since this worker started
			 * (maybe while it was finding no extension): try again now.
			 */
			if (now >= db->not_before ||
				(last_woken >= db->started_at &&
				 (slot == NULL || slot->stop_until <= now)))
				start_db_worker(db);
		}

		/* forget databases that are gone */
		for (int i = 0; i < ndbs;)
		{
			if (!OidIsValid(dbs[i].dbid))
				dbs[i] = dbs[--ndbs];
			else
				i++;
		}

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 taskq_launcher_interval * 1000L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* on_shmem_exit: give the slot back */
static void
worker_detach(int code, Datum arg)
{
	LWLockAcquire(taskq_shared->lock, LW_EXCLUSIVE);
	if (my_slot != NULL)
	{
		my_slot->pid = 0;
		my_slot->latch = NULL;
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

/* one round of the reaper: batches until the expired leases are gone */
static void
worker_reap(void)
{
	int			n;

	do
	{
		if (!worker_begin("taskq: reaping expired leases"))
			worker_no_extension();
		n = TaskqReclaimExpired((Datum) 0, true);
		TaskqMetricsCountDb(TASKQ_METRIC_REAPER_RUNS, n < TASKQ_RECLAIM_BATCH ? 1 : 0);
		worker_end();
		CHECK_FOR_INTERRUPTS();
	} while (n >= TASKQ_RECLAIM_BATCH);
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
	pin_search_path();
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

	TaskqDeliveryInit();
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
			if (!database_wanted(dbname))
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

		now = GetCurrentTimestamp();
		if (now >= next_reap)
		{
			worker_reap();
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
			long		sleep_ms = TaskqDeliverWebhooks(worker_begin, worker_end);

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
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(timeout, 1),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
