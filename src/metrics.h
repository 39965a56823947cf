/*-------------------------------------------------------------------------
 *
 * metrics.h
 *		Private to metrics.c (collection: the shared counters, each
 *		transaction's pending counts, the history counts) and
 *		metricsscrape.c (the snapshot and the Prometheus text).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TASKQ_METRICS_H
#define TASKQ_METRICS_H

#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "taskq.h"

/* the job states of the taskq_jobs gauge (state_names, metricsscrape.c) */
#define NUM_STATES 5

/* database and overflow entries: one of each per database */
#define MAX_OTHER_ENTRIES	(2 * TASKQ_MAX_DATABASES)

/* kinds of shared entries */
#define KIND_DATABASE	'd'		/* per-database counters, snapshot state */
#define KIND_QUEUE		'q'
#define KIND_OVERFLOW	'o'		/* the queues beyond taskq.metrics_max_queues */

typedef struct MetricsKey
{
	Oid			dbid;
	char		kind;
	char		queue[TASKQ_MAX_QUEUE_NAME + 1];	/* "" unless KIND_QUEUE */
} MetricsKey;

typedef struct MetricsEntry
{
	MetricsKey	key;
	uint64		created;		/* creation order, for the sweep */
	pg_atomic_uint64 counters[TASKQ_NUM_METRICS];

	/* queue and overflow entries: the last snapshot that covered them */
	uint64		snap_gen;
	int64		jobs[NUM_STATES];

	/* database entries: the snapshot */
	uint64		gen;			/* of the latest snapshot; 0: none yet */
	TimestampTz snap_time;		/* when it was taken */
	TimestampTz claimed_until;	/* a scrape is taking it until then */

	/* database entries: the kept counts (see "History counts" below) */
	int			hist_state;		/* HIST_NONE, HIST_TAKING or HIST_VALID */
	uint64		hist_gen;		/* of the latest count taken */
	Oid			hist_relid;		/* finished_jobs when it was taken */
	TimestampTz hist_claimed_until; /* a backend is taking it until then */
	pg_atomic_uint32 hist_inflight; /* commits whose counts are added */
	pg_atomic_uint32 hist_broken;	/* the counts are wrong: take them again */
} MetricsEntry;

#define HIST_NONE	0
#define HIST_TAKING 1
#define HIST_VALID	2

/* the first of the history counts, which are not Prometheus counters */
#define FIRST_HISTORY	TASKQ_HISTORY_COMPLETED
#define NUM_HISTORY		(TASKQ_NUM_METRICS - FIRST_HISTORY)

typedef struct MetricsShared
{
	LWLock	   *lock;
	TimestampTz reset_time;		/* when the counters started */
	uint64		next_created;
	int			nqueues;		/* queue entries */
	int			nother;			/* database and overflow entries */
} MetricsShared;

extern MetricsShared *metrics_shared;
extern HTAB *metrics_hash;

extern MetricsEntry *MetricsFindEntry(Oid dbid, char kind, const char *queue);
extern MetricsEntry *MetricsGetEntry(Oid dbid, char kind, const char *queue);
extern void MetricsRemoveEntry(MetricsEntry *e);

#endif							/* TASKQ_METRICS_H */
