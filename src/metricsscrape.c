/*-------------------------------------------------------------------------
 *
 * metricsscrape.c
 *		taskq.metrics(): queue depths, ages and counters in the Prometheus
 *		text exposition format.
 *
 * The counters come from shared memory (metrics.c).  Gauges: the number of
 * jobs per queue and state is a snapshot, kept in shared memory and taken
 * again by whichever scrape finds it older than
 * taskq.metrics_refresh_interval (so this also works on a standby and
 * without the background worker).  Taking it counts the live jobs, one
 * scan, at most once per interval however often and by however many
 * scrapers metrics() is called; the dead-letter queue's size comes from
 * the history counts (metrics.c).  A scrape that takes it claims it first;
 * the others meanwhile use the previous one.  The oldest waiting job's
 * age and the paused flag are read at every scrape, from the pull index:
 * one index probe per priority level in use per queue, whatever the
 * number of jobs.
 *
 * The refresh also forgets the entries of queues that no longer exist
 * (entries created before its snapshot whose queue it did not see).
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "metrics.h"

/* the job states of the taskq_jobs gauge */
static const char *const state_names[NUM_STATES] = {
	"waiting", "delayed", "blocked", "active", "dlq"
};

/* how long a scrape may take the snapshot before another one may */
#define REFRESH_CLAIM_MS	(60 * 1000)

/* one queue of a scrape */
typedef struct ScrapeQueue
{
	char	   *name;
	bool		paused;
	double		oldest_age;		/* seconds */
	bool		has_counters;
	uint64		counters[TASKQ_NUM_METRICS];
	bool		has_jobs;
	int64		jobs[NUM_STATES];
	int32		limits[4];		/* of limit_names; -1: none */
	int64		throttled;		/* waiting jobs a limit holds back; -1: no limits */
} ScrapeQueue;

/* the queue settings that taskq_queue_limit shows, as its label "limit" */
static const char *const limit_names[4] = {
	"concurrency", "group_concurrency", "rate_limit", "group_rate_limit"
};

/*
 * The queues, whether paused, and the age of their oldest runnable job: of
 * the first job (in delivery order) of each priority, found by a loose scan
 * of the pull index, one probe per priority in use, and of the first due
 * delayed job.  Planned at each scrape (not kept): a plan made while the
 * tables were small could scan them whole once they are large.
 */
static const char *const queues_sql =
"SELECT q.name, q.paused,"
" greatest(0, extract(epoch FROM statement_timestamp()"
"  - least(w.run_at, d.run_at)))::float8,"
" q.concurrency, q.group_concurrency, q.rate_limit, q.group_rate_limit,"
" (taskq._queue_limits(q.name, q.concurrency, q.group_concurrency,"
"  q.rate_limit, q.rate_period_ms, q.group_rate_limit,"
"  q.group_rate_period_ms)->>'throttled')::int8"
" FROM taskq.queues q"
" LEFT JOIN LATERAL ("
"  WITH RECURSIVE h(priority, run_at) AS ("
"   (SELECT j.priority, j.run_at FROM taskq.jobs j"
"     WHERE j.queue = q.name AND j.state = 'waiting'"
"     ORDER BY j.priority DESC, j.id LIMIT 1)"
"   UNION ALL"
"   SELECT n.priority, n.run_at FROM h CROSS JOIN LATERAL"
"    (SELECT j.priority, j.run_at FROM taskq.jobs j"
"      WHERE j.queue = q.name AND j.state = 'waiting' AND j.priority < h.priority"
"      ORDER BY j.priority DESC, j.id LIMIT 1) n)"
"  SELECT min(h.run_at) AS run_at FROM h) w ON true"
" LEFT JOIN LATERAL ("
"  SELECT j.run_at FROM taskq.jobs j"
"   WHERE j.queue = q.name AND j.state = 'delayed'"
"   AND j.run_at <= statement_timestamp()"
"   ORDER BY j.run_at LIMIT 1) d ON true"
" ORDER BY q.name COLLATE \"C\"";

/* the snapshot: jobs per queue and state, in the order of state_names */
static const char *const counts_sql =
"SELECT q.name, coalesce(j.waiting, 0), coalesce(j.delayed, 0),"
" coalesce(j.blocked, 0), coalesce(j.active, 0), coalesce(d.dlq, 0)"
" FROM taskq.queues q"
" LEFT JOIN (SELECT queue,"
"  count(*) FILTER (WHERE state = 'waiting') AS waiting,"
"  count(*) FILTER (WHERE state = 'delayed') AS delayed,"
"  count(*) FILTER (WHERE state = 'blocked') AS blocked,"
"  count(*) FILTER (WHERE state = 'active') AS active"
"  FROM taskq.jobs GROUP BY queue) j ON j.queue = q.name"
" LEFT JOIN taskq._history_counts() d ON d.queue = q.name";

/* Unix time in seconds of a timestamp */
static double
unix_seconds(TimestampTz t)
{
	return (double) (t + (TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) *
					 SECS_PER_DAY * USECS_PER_SEC) / USECS_PER_SEC;
}

/* compare ScrapeQueues by name, as COLLATE "C" orders them */
static int
scrape_queue_cmp(const void *a, const void *b)
{
	return strcmp(((const ScrapeQueue *) a)->name, ((const ScrapeQueue *) b)->name);
}

/* the queue of a scrape of that name, or NULL */
static ScrapeQueue *
scrape_queue(ScrapeQueue *queues, int n, const char *name)
{
	ScrapeQueue key;

	key.name = (char *) name;
	return bsearch(&key, queues, n, sizeof(ScrapeQueue), scrape_queue_cmp);
}

/*
 * Run the snapshot's count, with a fresh snapshot (the counts are shared
 * with other scrapes, whatever this transaction's isolation); returns the
 * number of rows, in SPI_tuptable.
 */
static int
run_counts(void)
{
	SPIPlanPtr	plan = SPI_prepare(counts_sql, 0, NULL);
	int			rc;

	if (plan == NULL)
		elog(ERROR, "taskq: SPI_prepare failed (%s) for: %s",
			 SPI_result_code_string(SPI_result), counts_sql);
	rc = SPI_execute_snapshot(plan, NULL, NULL, GetLatestSnapshot(),
							  InvalidSnapshot, true, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "taskq: could not count the jobs (%s)",
			 SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/* row i of the counts: the queue's name and its jobs per state */
static char *
count_row(int i, int64 *jobs)
{
	bool		isnull;

	for (int s = 0; s < NUM_STATES; s++)
		jobs[s] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, s + 2, &isnull));
	return SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
}

/*
 * Store a new snapshot (the rows of run_counts) in shared memory, and
 * forget the queues created before it began (created < seq_before) that
 * it did not see: they were dropped.
 */
static void
store_snapshot(int nrows, uint64 seq_before, TimestampTz taken)
{
	MetricsEntry *db;
	MetricsEntry *e;
	HASH_SEQ_STATUS scan;
	uint64		gen;
	char	  **names = palloc(sizeof(char *) * Max(nrows, 1));
	int64	   *jobs = palloc(sizeof(int64) * NUM_STATES * Max(nrows, 1));

	/* out of SPI's tuples first, so that the lock is held briefly */
	for (int i = 0; i < nrows; i++)
		names[i] = count_row(i, &jobs[i * NUM_STATES]);

	LWLockAcquire(metrics_shared->lock, LW_EXCLUSIVE);
	db = MetricsGetEntry(MyDatabaseId, KIND_DATABASE, "");
	if (db == NULL)
	{
		LWLockRelease(metrics_shared->lock);
		return;
	}
	gen = db->gen + 1;
	for (int i = 0; i < nrows; i++)
	{
		const int64 *j = &jobs[i * NUM_STATES];

		e = MetricsGetEntry(MyDatabaseId, KIND_QUEUE, names[i]);
		if (e == NULL)
			continue;
		if (e->key.kind == KIND_OVERFLOW && e->snap_gen == gen)
		{
			for (int s = 0; s < NUM_STATES; s++)
				e->jobs[s] += j[s];
		}
		else
			memcpy(e->jobs, j, sizeof(e->jobs));
		e->snap_gen = gen;
	}
	hash_seq_init(&scan, metrics_hash);
	while ((e = hash_seq_search(&scan)) != NULL)
		if (e->key.dbid == MyDatabaseId && e->key.kind == KIND_QUEUE &&
			e->snap_gen != gen && e->created < seq_before)
			MetricsRemoveEntry(e);
	db->gen = gen;
	db->snap_time = taken;
	db->claimed_until = 0;
	LWLockRelease(metrics_shared->lock);
}

/*
 * Make sure the snapshot is recent enough: take it again when it is older
 * than taskq.metrics_refresh_interval and no other scrape is taking it.
 * Returns false when there is none to use (none taken yet, and another
 * scrape is taking the first one, or no room in shared memory): the
 * caller then counts for itself.
 */
static bool
refresh_snapshot(void)
{
	MetricsEntry *db;
	TimestampTz now = GetCurrentTimestamp();
	bool		refresh;
	bool		have;
	uint64		seq_before;
	int			nrows;

	LWLockAcquire(metrics_shared->lock, LW_EXCLUSIVE);
	db = MetricsGetEntry(MyDatabaseId, KIND_DATABASE, "");
	if (db == NULL)
	{
		LWLockRelease(metrics_shared->lock);
		return false;
	}
	have = db->gen != 0;
	refresh = (!have ||
			   now >= db->snap_time + (TimestampTz) taskq_metrics_refresh_interval * USECS_PER_SEC) &&
		now >= db->claimed_until;
	if (refresh)
		db->claimed_until = now + (TimestampTz) REFRESH_CLAIM_MS * 1000;
	seq_before = metrics_shared->next_created;
	LWLockRelease(metrics_shared->lock);
	if (!refresh)
		return have;

	PG_TRY();
	{
		nrows = run_counts();
	}
	PG_CATCH();
	{
		/* let the next scrape try again */
		LWLockAcquire(metrics_shared->lock, LW_EXCLUSIVE);
		db = MetricsFindEntry(MyDatabaseId, KIND_DATABASE, "");
		if (db != NULL)
			db->claimed_until = 0;
		LWLockRelease(metrics_shared->lock);
		PG_RE_THROW();
	}
	PG_END_TRY();
	store_snapshot(nrows, seq_before, now);
	return true;
}

/* append a label value, escaped as the exposition format wants */
static void
append_label_value(StringInfo buf, const char *s)
{
	appendStringInfoChar(buf, '"');
	for (; *s; s++)
	{
		if (*s == '\\')
			appendStringInfoString(buf, "\\\\");
		else if (*s == '"')
			appendStringInfoString(buf, "\\\"");
		else if (*s == '\n')
			appendStringInfoString(buf, "\\n");
		else
			appendStringInfoChar(buf, *s);
	}
	appendStringInfoChar(buf, '"');
}

/* the # HELP and # TYPE lines of a metric family */
static void
append_family(StringInfo buf, const char *name, const char *type,
			  const char *help)
{
	appendStringInfo(buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* the per-queue counters, in output order */
static const struct
{
	TaskqMetric metric;
	const char *name;
	const char *help;
}			queue_counters[] = {
	{TASKQ_METRIC_PUSHED, "taskq_jobs_pushed_total",
	"Jobs pushed (committed), of any state."},
	{TASKQ_METRIC_PULLED, "taskq_jobs_pulled_total",
	"Jobs delivered by pull (attempts started)."},
	{TASKQ_METRIC_COMPLETED, "taskq_jobs_completed_total",
	"Jobs completed (acked)."},
	{TASKQ_METRIC_FAILED, "taskq_jobs_failed_total",
	"Failed attempts with attempts left (fail, or an expired lease): retries scheduled."},
	{TASKQ_METRIC_DEAD, "taskq_jobs_dead_total",
	"Jobs moved to the dead-letter queue (out of attempts, or a dead parent)."},
	{TASKQ_METRIC_CANCELLED, "taskq_jobs_cancelled_total",
	"Jobs cancelled (by cancel, or a cancelled parent)."},
	{TASKQ_METRIC_LEASE_EXPIRED, "taskq_lease_expirations_total",
	"Expired leases reclaimed (each also counts as failed or dead)."},
	{TASKQ_METRIC_REDRIVEN, "taskq_jobs_redriven_total",
	"Dead jobs put back by redrive or redrive_queue."},
};

/* the per-database counters after the webhook deliveries, in output order */
static const struct
{
	TaskqMetric metric;
	const char *name;
	const char *help;
}			db_counters[] = {
	{TASKQ_METRIC_REAPER_RUNS, "taskq_reaper_runs_total",
	"Rounds of the background worker's reaper (expired leases)."},
	{TASKQ_METRIC_RETENTION_RUNS, "taskq_retention_runs_total",
	"Rounds of the background worker's retention (cleanup)."},
	{TASKQ_METRIC_RETENTION_REMOVED, "taskq_retention_jobs_removed_total",
	"Finished and dead jobs removed by the background worker's retention."},
};

/*
 * taskq.metrics() RETURNS text
 *
 * The metrics of this database in the Prometheus text exposition format
 * (version 0.0.4).  Shows queue names and numbers, nothing of the jobs.
 */
PG_FUNCTION_INFO_V1(taskq_metrics);
Datum
taskq_metrics(PG_FUNCTION_ARGS)
{
	StringInfoData buf;
	ScrapeQueue *queues;
	int			nqueues;
	bool		have_snapshot = false;
	bool		have_counters = false;
	TimestampTz snap_time = 0;
	TimestampTz now;
	bool		overflow = false;
	bool		overflow_jobs = false;
	bool		any_jobs;
	int64		overflow_jobs_n[NUM_STATES];
	uint64		overflow_counters[TASKQ_NUM_METRICS];
	uint64		db_values[TASKQ_NUM_METRICS];

	/* in the caller's memory context, which outlives SPI's */
	initStringInfo(&buf);
	SPI_connect();

	/* the snapshot of the job counts, taken again if too old */
	if (metrics_shared != NULL)
		have_snapshot = refresh_snapshot();

	/* the queues, read now */
	if (SPI_execute(queues_sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "taskq: could not list the queues");
	nqueues = (int) SPI_processed;
	queues = palloc0(sizeof(ScrapeQueue) * Max(nqueues, 1));
	for (int i = 0; i < nqueues; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		queues[i].name = SPI_getvalue(tup, desc, 1);
		queues[i].paused = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		queues[i].oldest_age = DatumGetFloat8(SPI_getbinval(tup, desc, 3, &isnull));
		for (int l = 0; l < 4; l++)
		{
			Datum		v = SPI_getbinval(tup, desc, 4 + l, &isnull);

			queues[i].limits[l] = isnull ? -1 : DatumGetInt32(v);
		}
		{
			Datum		v = SPI_getbinval(tup, desc, 8, &isnull);

			queues[i].throttled = isnull ? -1 : DatumGetInt64(v);
		}
	}

	/* the counters, and the snapshot of each queue */
	if (metrics_shared != NULL)
	{
		MetricsEntry *db;
		MetricsEntry *e;

		LWLockAcquire(metrics_shared->lock, LW_SHARED);
		db = MetricsFindEntry(MyDatabaseId, KIND_DATABASE, "");
		if (db == NULL || db->gen == 0)
			have_snapshot = false;
		if (db != NULL)
		{
			have_counters = true;
			snap_time = db->snap_time;
			for (int m = 0; m < TASKQ_NUM_METRICS; m++)
				db_values[m] = pg_atomic_read_u64(&db->counters[m]);
			for (int i = 0; i < nqueues; i++)
			{
				e = MetricsFindEntry(MyDatabaseId, KIND_QUEUE, queues[i].name);
				if (e == NULL)
					continue;
				queues[i].has_counters = true;
				for (int m = 0; m < TASKQ_NUM_METRICS; m++)
					queues[i].counters[m] = pg_atomic_read_u64(&e->counters[m]);
				if (have_snapshot && e->snap_gen == db->gen)
				{
					queues[i].has_jobs = true;
					memcpy(queues[i].jobs, e->jobs, sizeof(e->jobs));
				}
			}
			e = MetricsFindEntry(MyDatabaseId, KIND_OVERFLOW, "");
			if (e != NULL)
			{
				overflow = true;
				for (int m = 0; m < TASKQ_NUM_METRICS; m++)
					overflow_counters[m] = pg_atomic_read_u64(&e->counters[m]);
				overflow_jobs = have_snapshot && e->snap_gen == db->gen;
				memcpy(overflow_jobs_n, e->jobs, sizeof(e->jobs));
			}
		}
		LWLockRelease(metrics_shared->lock);

		/*
		 * A queue without an entry had nothing counted since the server
		 * started, unless it is one of the overflow's.
		 */
		for (int i = 0; i < nqueues && have_counters && !overflow; i++)
			queues[i].has_counters = true;
	}
	now = GetCurrentTimestamp();
	if (!have_snapshot)
	{
		/* no snapshot to use: count now, for this scrape alone */
		int			nrows = run_counts();

		for (int i = 0; i < nrows; i++)
		{
			int64		jobs[NUM_STATES];
			char	   *name = count_row(i, jobs);
			ScrapeQueue *q = scrape_queue(queues, nqueues, name);

			if (q == NULL)
				continue;
			q->has_jobs = true;
			memcpy(q->jobs, jobs, sizeof(jobs));
		}
		snap_time = now;
	}

	/* gauges */
	any_jobs = overflow_jobs;
	for (int i = 0; i < nqueues && !any_jobs; i++)
		any_jobs = queues[i].has_jobs;
	if (any_jobs)
	{
		append_family(&buf, "taskq_jobs", "gauge",
					  "Jobs per queue and state (dlq: in the dead-letter queue), as of the snapshot.");
		for (int i = 0; i < nqueues; i++)
			for (int s = 0; s < NUM_STATES && queues[i].has_jobs; s++)
			{
				appendStringInfoString(&buf, "taskq_jobs{queue=");
				append_label_value(&buf, queues[i].name);
				appendStringInfo(&buf, ",state=\"%s\"} " INT64_FORMAT "\n",
								 state_names[s], queues[i].jobs[s]);
			}
		for (int s = 0; s < NUM_STATES && overflow_jobs; s++)
			appendStringInfo(&buf, "taskq_jobs{queue=\"\",state=\"%s\"} " INT64_FORMAT "\n",
							 state_names[s], overflow_jobs_n[s]);
	}
	if (nqueues > 0)
	{
		append_family(&buf, "taskq_oldest_waiting_age_seconds", "gauge",
					  "Time since the longest-waiting runnable job at the head of the queue became runnable, 0 when none.");
		for (int i = 0; i < nqueues; i++)
		{
			appendStringInfoString(&buf, "taskq_oldest_waiting_age_seconds{queue=");
			append_label_value(&buf, queues[i].name);
			appendStringInfo(&buf, "} %.3f\n", queues[i].oldest_age);
		}
		append_family(&buf, "taskq_queue_paused", "gauge",
					  "1 when the queue is paused, else 0.");
		for (int i = 0; i < nqueues; i++)
		{
			appendStringInfoString(&buf, "taskq_queue_paused{queue=");
			append_label_value(&buf, queues[i].name);
			appendStringInfo(&buf, "} %d\n", queues[i].paused ? 1 : 0);
		}
	}
	{
		bool		any_limit = false;

		for (int i = 0; i < nqueues && !any_limit; i++)
			for (int l = 0; l < 4; l++)
				any_limit |= queues[i].limits[l] >= 0;
		if (any_limit)
		{
			append_family(&buf, "taskq_queue_limit", "gauge",
						  "The flow-control limits a queue has set: concurrency, group_concurrency, and leases per window of rate_limit and group_rate_limit.");
			for (int i = 0; i < nqueues; i++)
				for (int l = 0; l < 4; l++)
				{
					if (queues[i].limits[l] < 0)
						continue;
					appendStringInfoString(&buf, "taskq_queue_limit{queue=");
					append_label_value(&buf, queues[i].name);
					appendStringInfo(&buf, ",limit=\"%s\"} %d\n", limit_names[l],
									 queues[i].limits[l]);
				}
			append_family(&buf, "taskq_queue_throttled", "gauge",
						  "Waiting jobs of a queue with flow-control limits that a limit holds back, counted at the scrape.");
			for (int i = 0; i < nqueues; i++)
			{
				if (queues[i].throttled < 0)
					continue;
				appendStringInfoString(&buf, "taskq_queue_throttled{queue=");
				append_label_value(&buf, queues[i].name);
				appendStringInfo(&buf, "} " INT64_FORMAT "\n", queues[i].throttled);
			}
		}
	}
	append_family(&buf, "taskq_metrics_snapshot_timestamp_seconds", "gauge",
				  "When the snapshot of taskq_jobs was taken, in Unix time.");
	appendStringInfo(&buf, "taskq_metrics_snapshot_timestamp_seconds %.3f\n",
					 unix_seconds(snap_time));
	append_family(&buf, "taskq_metrics_snapshot_age_seconds", "gauge",
				  "Age of the snapshot of taskq_jobs.");
	appendStringInfo(&buf, "taskq_metrics_snapshot_age_seconds %.3f\n",
					 Max(0.0, (double) (now - snap_time) / USECS_PER_SEC));

	/* counters: only with taskq in shared_preload_libraries */
	if (have_counters)
	{
		bool		any = overflow;

		for (int i = 0; i < nqueues && !any; i++)
			any = queues[i].has_counters;
		for (int c = 0; c < lengthof(queue_counters) && any; c++)
		{
			TaskqMetric m = queue_counters[c].metric;

			append_family(&buf, queue_counters[c].name, "counter", queue_counters[c].help);
			for (int i = 0; i < nqueues; i++)
			{
				if (!queues[i].has_counters)
					continue;
				appendStringInfo(&buf, "%s{queue=", queue_counters[c].name);
				append_label_value(&buf, queues[i].name);
				appendStringInfo(&buf, "} " UINT64_FORMAT "\n", queues[i].counters[m]);
			}
			if (overflow)
				appendStringInfo(&buf, "%s{queue=\"\"} " UINT64_FORMAT "\n",
								 queue_counters[c].name, overflow_counters[m]);
		}

		append_family(&buf, "taskq_webhook_deliveries_total", "counter",
					  "Webhook delivery attempts by outcome: succeeded, failed (to be retried), exhausted (failed, no attempts left).");
		appendStringInfo(&buf,
						 "taskq_webhook_deliveries_total{outcome=\"succeeded\"} " UINT64_FORMAT "\n"
						 "taskq_webhook_deliveries_total{outcome=\"failed\"} " UINT64_FORMAT "\n"
						 "taskq_webhook_deliveries_total{outcome=\"exhausted\"} " UINT64_FORMAT "\n",
						 db_values[TASKQ_METRIC_WEBHOOK_SUCCEEDED],
						 db_values[TASKQ_METRIC_WEBHOOK_FAILED],
						 db_values[TASKQ_METRIC_WEBHOOK_EXHAUSTED]);
		for (int c = 0; c < lengthof(db_counters); c++)
		{
			append_family(&buf, db_counters[c].name, "counter", db_counters[c].help);
			appendStringInfo(&buf, "%s " UINT64_FORMAT "\n", db_counters[c].name,
							 db_values[db_counters[c].metric]);
		}
		append_family(&buf, "taskq_stats_reset_timestamp_seconds", "gauge",
					  "When the counters started from zero (server start), in Unix time.");
		appendStringInfo(&buf, "taskq_stats_reset_timestamp_seconds %.3f\n",
						 unix_seconds(metrics_shared->reset_time));
	}

	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}
