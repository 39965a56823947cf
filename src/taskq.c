/*-------------------------------------------------------------------------
 *
 * taskq.c
 *		Module entry point of the taskq extension: settings.
 *
 * _PG_init stays short: it defines the taskq.* settings and reserves the
 * prefix.  The library may be loaded on demand by the first call of a taskq
 * function, or preloaded through shared_preload_libraries; both work.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "taskq.h"

PG_MODULE_MAGIC;

/* taskq.default_timeout_ms: lease length when neither call, job nor queue sets one */
int			taskq_default_timeout_ms = 30000;

/* taskq.max_dag_depth: longest chain of jobs a flow may have */
int			taskq_max_dag_depth = 10;

/*
 * Module load callback: define the settings.
 */
void
_PG_init(void)
{
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

	MarkGUCPrefixReserved("taskq");
}
