/*-------------------------------------------------------------------------
 *
 * taskq.c
 *		Module entry point of the taskq extension: settings, and the
 *		background workers when preloaded.
 *
 * _PG_init stays short: it defines the taskq.* settings, reserves the
 * prefix and sets up the event callbacks.  The SQL API works when the
 * library is loaded on demand by the first call of a taskq function; the
 * background workers (reaper, retention, webhooks, wake-ups) need it in
 * shared_preload_libraries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "taskq.h"

PG_MODULE_MAGIC;

/* taskq.default_timeout_ms: lease length when neither call, job nor queue sets one */
int			taskq_default_timeout_ms = 30000;

/* taskq.max_dag_depth: longest chain of jobs a flow may have */
int			taskq_max_dag_depth = 10;

/* background worker settings */
char	   *taskq_database_names = NULL;
int			taskq_launcher_interval = 10;
int			taskq_reaper_interval = 1000;
int			taskq_retention_interval = 60;
bool		taskq_webhook_allow_private = false;
int			taskq_webhook_timeout_ms = 10000;
int			taskq_webhook_concurrency = 16;

/* metrics settings */
int			taskq_metrics_max_queues = 1000;
int			taskq_metrics_refresh_interval = 15;

/*
 * Module load callback: define the settings.
 */
void
_PG_init(void)
{
	/* pg_upgrade's servers must run no launcher nor worker of ours */
	if (IsBinaryUpgrade)
		return;

	DefineCustomIntVariable("taskq.default_timeout_ms",
							"Sets the default lease length of a pulled job.",
							"Used when neither the pull, the job nor its queue sets timeout_ms.",
							&taskq_default_timeout_ms,
							30000,
							1,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("taskq.max_dag_depth",
							"Sets the longest chain of dependent jobs a flow may have.",
							"A job without parents is at depth 1; a push that would put a job deeper is refused.",
							&taskq_max_dag_depth,
							10,
							1,
							1000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

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

	DefineCustomBoolVariable("taskq.webhook_allow_private",
							 "Sets whether webhooks may be delivered to private addresses.",
							 "Loopback, private, link-local, CGNAT and unique-local addresses are refused unless this is on.",
							 &taskq_webhook_allow_private,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("taskq.webhook_timeout_ms",
							"Sets how long one webhook delivery attempt may take.",
							NULL,
							&taskq_webhook_timeout_ms,
							10000,
							100,
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

	DefineCustomIntVariable("taskq.metrics_refresh_interval",
							"Sets how old the job counts of taskq.metrics() may be before a scrape counts again.",
							"Zero counts at every scrape.",
							&taskq_metrics_refresh_interval,
							15,
							0,
							24 * 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* shared memory: only while preloading */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("taskq.metrics_max_queues",
								"Sets how many queues have counters of their own in taskq.metrics().",
								"Counters of further queues are added up under the queue label \"\".",
								&taskq_metrics_max_queues,
								1000,
								16,
								1000000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

	MarkGUCPrefixReserved("taskq");

	TaskqEventsInit();
	if (process_shared_preload_libraries_in_progress)
	{
		TaskqWorkerInit();
		TaskqMetricsInit();
	}
}
