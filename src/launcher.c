/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher, which starts a worker (worker.c) in every database
 *		where taskq is installed, and the ProcessUtility hook that steps
 *		the workers aside for DROP, RENAME and copies of their database.
 *
 * The launcher connects to no database (shared catalogs only).  Every
 * taskq.launcher_interval, or when woken, it lists pg_database and starts a
 * dynamic worker for each database that allows connections and, when
 * taskq.database_names is set, is named there.  A worker whose database
 * has no taskq extension says so in its slot and exits; the launcher tries
 * that database again only after a longer pause, or at once when a CREATE
 * EXTENSION taskq commits anywhere (it wakes the launcher).
 *
 * DROP DATABASE, ALTER DATABASE ... RENAME and CREATE DATABASE ...
 * TEMPLATE stop the database's worker first (the ProcessUtility hook) and
 * keep the launcher from restarting it for a while.
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "taskq.h"

/* settings */
char	   *taskq_database_names = NULL;
int			taskq_launcher_interval = 10;

/* how long the launcher leaves alone a database without the extension */
#define NO_EXTENSION_PAUSE_MS	(60 * 1000)
/* how long a dropped database's worker is kept from restarting */
#define DROPDB_PAUSE_MS			(30 * 1000)
/* ... and that of a database being renamed or copied */
#define COPYDB_PAUSE_MS			(5 * 1000)

static ProcessUtility_hook_type prev_process_utility_hook = NULL;

PGDLLEXPORT void taskq_launcher_main(Datum arg);

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
 * after DROP DATABASE, forget the database's metrics and pull heads; after
 * COMMIT PREPARED, count and check them again.
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
	{
		TaskqNoteLauncherWake();
		TaskqHeadForeignWrite();
	}
	TaskqHeadNoteCopy(pstmt->utilityStmt);

	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	/* a prepared transaction's jobs are committed: count them */
	if (IsA(pstmt->utilityStmt, TransactionStmt) &&
		((TransactionStmt *) pstmt->utilityStmt)->kind == TRANS_STMT_COMMIT_PREPARED)
	{
		TaskqHistoryBreak();
		TaskqHeadBreak();
	}

	if (OidIsValid(dropped))
	{
		TaskqMetricsForgetDatabase(dropped);
		TaskqHeadForgetDatabase(dropped);
	}
}

/*
 * Define the settings of the launcher; and, while shared_preload_libraries
 * is processed, register the launcher and the ProcessUtility hook.
 */
void
TaskqLauncherInit(bool preloading)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("taskq.database_names",
							   "Sets the databases where the background worker runs.",
							   "A comma-separated list; empty means every database where taskq is installed.",
							   &taskq_database_names,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("taskq.launcher_interval",
							"Sets how often the launcher looks for new databases.",
							NULL,
							&taskq_launcher_interval,
							10,
							1,
							3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	if (!preloading)
		return;

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
bool
TaskqDatabaseWanted(const char *name)
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
	TaskqPinSearchPath();
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
				!TaskqDatabaseWanted(NameStr(d->datname)))
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
