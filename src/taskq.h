/*-------------------------------------------------------------------------
 *
 * taskq.h
 *		Shared declarations of the taskq extension.
 *
 * taskq keeps jobs in three tables of identical shape:
 *
 *	taskq.jobs			live jobs: waiting, delayed, blocked, active
 *	taskq.finished_jobs	completed and cancelled jobs, kept for retention
 *	taskq.dead_jobs		the dead-letter queue
 *
 * A job changes table with one DELETE ... RETURNING feeding an INSERT (see
 * TaskqMoveSql), so it is never in two tables nor in none, and a session
 * that waited on the row lock of a job that moved simply finds nothing.
 *
 * Every statement run from C goes through SPI with $n parameters and a
 * plan prepared once per backend (TaskqPlan).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TASKQ_H
#define TASKQ_H

#include "access/itup.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/buf.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* limits of the public API (README, "Limits") */
#define TASKQ_MAX_QUEUE_NAME		256
#define TASKQ_MAX_JOB_NAME			1024
#define TASKQ_MAX_DATA				(1024 * 1024)
#define TASKQ_MAX_RESULT			(1024 * 1024)
/* webhooks: URL and secret lengths, and the shortest signing key */
#define TASKQ_MAX_WEBHOOK_URL		2048
#define TASKQ_MAX_SECRET			1024
#define TASKQ_MIN_SECRET_BYTES		24
/* deliveries in flight per webhook, webhooks per role, connect timeout */
#define TASKQ_WEBHOOK_IN_FLIGHT		2
#define TASKQ_MAX_WEBHOOKS_PER_ROLE	100
#define TASKQ_WEBHOOK_CONNECT_TIMEOUT_MS 5000
/* the most jobs one pull hands out */
#define TASKQ_MAX_PULL				1000
#define TASKQ_MAX_METADATA			(64 * 1024)
#define TASKQ_MAX_UNIQUE_KEY		1024
#define TASKQ_MAX_FLOW_ID			1024
#define TASKQ_MAX_GROUP_KEY			256
#define TASKQ_MAX_ERROR				(10 * 1024)
#define TASKQ_MAX_MAX_ATTEMPTS		1000
#define TASKQ_MAX_HISTORY			100	/* kept entries of errors and logs */
#define TASKQ_RECLAIM_BATCH			1000	/* expired leases reclaimed per pull */
#define TASKQ_MAX_PARENTS			1000	/* depends_on entries of one job */
#define TASKQ_MAX_FLOW_KEY			256
#define TASKQ_MAX_FLOW_JOBS			10000

/*
 * SQL expression: the jsonb array col with entry appended, keeping only the
 * last TASKQ_MAX_HISTORY entries (error history, progress log).
 */
#define TASKQ_HISTORY_APPEND(col, entry) \
	"(CASE WHEN jsonb_array_length(coalesce(" col ", '[]')) >= " \
	CppAsString2(TASKQ_MAX_HISTORY) " THEN " col " - 0" \
	" ELSE coalesce(" col ", '[]') END) || jsonb_build_array(" entry ")"

/* SQL expression: the error history of job alias p with error e appended */
#define TASKQ_ERRORS_APPEND(p, e) \
	TASKQ_HISTORY_APPEND(p ".errors", \
		"jsonb_build_object('attempt', " p ".attempts, 'error', " e ", 'at', now())")

/* settings, each defined by its module's Init function */
extern int	taskq_default_timeout;
extern int	taskq_max_dag_depth;
extern char *taskq_database_names;
extern int	taskq_launcher_interval;
extern int	taskq_reaper_interval;
extern int	taskq_retention_interval;
extern bool taskq_webhook_allow_private;
extern int	taskq_webhook_timeout;
extern int	taskq_webhook_concurrency;
extern int	taskq_webhook_mark_after;
extern int	taskq_metrics_max_queues;
extern int	taskq_metrics_refresh_interval;

/* background workers (worker.c) */
#define TASKQ_MAX_DATABASES		64
#define TASKQ_WAKE_RING			16
#define TASKQ_WAKEUP_CHANNEL	"taskq_wakeup"
#define TASKQ_EVENTS_CHANNEL	"taskq_events"

/* the shared-memory slot of one database's worker */
typedef struct TaskqDbSlot
{
	Oid			dbid;			/* InvalidOid: free */
	pid_t		pid;			/* the worker, 0 when none runs */
	Latch	   *latch;			/* the worker's latch, to wake it */
	bool		no_extension;	/* the worker left: taskq is not installed */
	TimestampTz stop_until;		/* DROP DATABASE: no restart before */
	int			nwake;			/* queues with new jobs, to NOTIFY */
	bool		wake_overflow;	/* more than TASKQ_WAKE_RING of them */
	bool		deliveries_pending; /* new outbox rows since the last round */
	bool		streaming;		/* the worker sends the taskq_events stream */
	char		wake[TASKQ_WAKE_RING][TASKQ_MAX_QUEUE_NAME + 1];
} TaskqDbSlot;

typedef struct TaskqShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch;
	bool		launcher_woken;	/* look at the databases again, now */
	TaskqDbSlot slots[TASKQ_MAX_DATABASES];
} TaskqShared;

extern TaskqShared *taskq_shared;

/* a plan prepared on first use and kept for the life of the backend */
typedef struct TaskqPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[24];
	bool		generic;		/* always the generic plan (hot paths) */
	SPIPlanPtr	plan;
	bool		planned;		/* a generic plan was made for it */
} TaskqPlan;

/* one column of a job row replaced by an expression while a job moves */
typedef struct TaskqColumnSet
{
	const char *column;
	const char *expr;
} TaskqColumnSet;

/* backoff policy of a job or a queue */
typedef enum TaskqBackoffType
{
	TASKQ_BACKOFF_FIXED,
	TASKQ_BACKOFF_LINEAR,
	TASKQ_BACKOFF_EXPONENTIAL
} TaskqBackoffType;

/* options of taskq.push, as parsed by TaskqParseJobOptions */
typedef struct TaskqJobOptions
{
	Jsonb	   *metadata;		/* NULL when not given */
	int32		priority;
	bool		has_run_at;
	TimestampTz run_at;			/* from run_at or delay_ms */
	bool		has_timeout;
	int32		timeout_ms;
	bool		has_max_attempts;
	int32		max_attempts;
	Jsonb	   *backoff;		/* validated; NULL when not given */
	text	   *unique_key;		/* NULL when not given */
	text	   *flow_id;		/* NULL when not given */
	text	   *group_key;		/* option "group"; NULL when not given */
	pg_uuid_t  *depends_on;		/* parents, without duplicates */
	int			ndepends;
} TaskqJobOptions;

/* options of taskq.create_queue / taskq.alter_queue */
typedef struct TaskqQueueOptions
{
	bool		has_timeout;
	bool		timeout_null;	/* "timeout_ms": null resets to the GUC */
	int32		timeout_ms;
	bool		has_max_attempts;
	int32		max_attempts;
	Jsonb	   *backoff;		/* NULL when not given */
	bool		has_completed_retention;
	int64		completed_retention_ms;
	bool		has_cancelled_retention;
	int64		cancelled_retention_ms;
	bool		has_dlq_retention;
	int64		dlq_retention_ms;
	bool		has_notify_events;
	bool		notify_events;
	bool		has_concurrency;
	int32		concurrency;	/* 0: no limit (null) */
	bool		has_group_concurrency;
	int32		group_concurrency;	/* 0: no limit (null) */
	bool		has_rate_limit;
	int32		rate_limit;		/* 0: no limit (null) */
	int32		rate_period_ms;
	bool		has_group_rate_limit;
	int32		group_rate_limit;	/* 0: no limit (null) */
	int32		group_rate_period_ms;
	bool		has_priority_aging;
	int32		priority_aging_ms;
	const char *fairness;		/* NULL when not given */
} TaskqQueueOptions;

/* what push and pull need to know of a queue */
typedef struct TaskqQueueInfo
{
	bool		paused;
	bool		timeout_null;
	int32		timeout_ms;
	int32		max_attempts;
	Jsonb	   *backoff;
	bool		backoff_default;	/* backoff is the built-in policy */
	int32		concurrency;	/* 0: no limit */
	int32		group_concurrency;	/* 0: no limit */
	int32		rate_limit;		/* 0: no limit */
	int32		rate_period_ms;
	int32		group_rate_limit;	/* 0: no limit */
	int32		group_rate_period_ms;
	int32		priority_aging_ms;	/* 0: off */
	bool		round_robin;	/* fairness "round_robin" */
	bool		notify_events;	/* its events go to the taskq_events stream */
	bool		forgets_completed;	/* retention.completed_ms 0: keeps none */
} TaskqQueueInfo;

/* queue privileges (acl.c) */
#define TASKQ_PRIV_PUSH		0x01
#define TASKQ_PRIV_PULL		0x02
#define TASKQ_PRIV_ADMIN	0x04
#define TASKQ_PRIV_ANY		(TASKQ_PRIV_PUSH | TASKQ_PRIV_PULL | TASKQ_PRIV_ADMIN)

/* what TaskqSwitchToOwner saves of the caller, for TaskqSwitchBack */
typedef struct TaskqContext
{
	Oid			user;
	int			sec_context;
} TaskqContext;

/* acl.c */
extern bool TaskqQueueAllowed(const char *queue, int need);
extern void TaskqRequireQueuePrivilege(const char *queue, int need);
extern bool TaskqIsAdmin(Oid role);
extern void TaskqRequireAdmin(const char *action);
extern bool TaskqRequireJobPrivilege(Datum id, int need);
extern bool TaskqJobsVisible(Datum ids, Datum *hidden);
extern bool TaskqRoleSeesQueue(Oid role, const char *queue);
extern Datum TaskqRequireItemsPrivilege(Datum items, int need);

/* taskq.c */
extern void _PG_init(void);

/* uuid7.c */
extern int	taskq_shard_id;
extern void TaskqUuidInit(void);
extern void TaskqUuid7(pg_uuid_t *uuid);
extern void TaskqRandomUuid(pg_uuid_t *uuid);
extern char *TaskqUuidText(Datum uuid);

/* direct.c: the hot path's reads and writes of taskq.jobs without plans */
typedef struct TaskqClaimRequest
{
	Datum		queue;
	int32		count;
	bool		timeout_null;	/* the call's timeout_ms */
	int32		timeout_ms;
	int32		default_timeout_ms; /* the queue's, or taskq.default_timeout */
	TimestampTz now;
	int			nlevels;		/* 0: from the head of the queue */
	const int32 *priority;		/* the levels, in the order to take from */
	const Datum *bound;			/* uuid: each level's first id */
	const ItemPointerData *tids;	/* not NULL: claim these, not the head */
	int			ntids;

	/*
	 * Not NULL: set for each level to the id prefix of the first job the
	 * scan met there (a plain read, before locking: what TaskqFirstWaiting
	 * finds), PG_UINT64_MAX when it met none, 0 when it did not scan it
	 */
	uint64	   *first;
} TaskqClaimRequest;
extern bool TaskqProbeHousekeeping(Datum queue, TimestampTz floor, TimestampTz now,
								   TimestampTz *first_lease, bool *due,
								   TimestampTz *quiet);
extern Relation TaskqActiveIndexOpen(bool by_group);
extern bool TaskqFirstWaiting(Datum queue, int nlevels, const int32 *priority,
							  const Datum *bound, pg_uuid_t **first);
typedef void (*TaskqClaimTake) (void *arg, int i, const Datum *values, const bool *nulls);
extern int	TaskqClaimDirect(const TaskqClaimRequest *req, TaskqClaimTake take, void *arg);
extern int	TaskqWaitingDirect(Datum queue, int nlevels, const int32 *priority,
							   const Datum *bound, int32 limit, ItemPointerData *tids,
							   text **groups, uint64 *first);
extern int	TaskqLevelsUnpack(Datum levels, Datum bounds, int32 *priority, Datum *bound);
typedef struct TaskqAckItem
{
	Datum		id;
	Datum		result;
	bool		result_null;
	Datum		lease;
	bool		lease_null;
	int			outcome;		/* 1 acked, 2 acked and forgotten, 0 not active
								 * under the lease, -1 the statement's */
	text	   *queue;			/* when acked */
} TaskqAckItem;
extern bool TaskqAckDirect(TaskqAckItem *items, int n, bool forget);

/* leafpeek.c: the first entries of a B-tree range, from its leaf page */
#define TASKQ_PEEK_MAX	64
typedef struct TaskqLeafPeek
{
	Relation	index;
	Buffer		buf;			/* the leaf, pinned until TaskqLeafPeekEnd */
	int			n;
	ItemPointerData tids[TASKQ_PEEK_MAX];	/* in the index's order */
	OffsetNumber offsets[TASKQ_PEEK_MAX];
	bool		posting[TASKQ_PEEK_MAX];	/* of a posting list */
	bool		dead[TASKQ_PEEK_MAX];	/* the caller's: dead to everyone */
	int			ndead;			/* the caller's: how many it noted */
	bool		complete;		/* no entries of the range beyond these */
	IndexTuple	last;			/* when not complete: a copy of the last entry read */
} TaskqLeafPeek;
extern void TaskqLeafPeekRead(TaskqLeafPeek *peek, Relation index, Snapshot snapshot,
							  const Datum *values, int nkeys, int nrange, int max);
extern void TaskqLeafPeekEnd(TaskqLeafPeek *peek);

/* rowinsert.c */
extern bool TaskqCanInsertRows(Relation rel);
extern void TaskqInsertRows(Relation rel, TupleTableSlot **slots, int n);
extern TupleTableSlot *TaskqRowSlot(Relation rel, int nrows, TupleDesc *copy);
extern void TaskqDropRowSlots(TupleTableSlot **slots, int n, TupleDesc copy);

/* resultrel.c */
extern void TaskqOpenResultRel(ResultRelInfo *rri, EState *estate);
extern void TaskqOpenIndexesFor(ResultRelInfo *rri, TupleTableSlot *slot,
								EState *estate);
extern Expr **TaskqColumnDefaults(Relation rel);

/* util.c */
extern int	taskq_statement_depth;
extern Oid	TaskqTableOid(const char *name);
extern void TaskqNoteCacheTables(void);
extern bool TaskqCacheInvalidation(Oid relid);
extern bool TaskqIsJobTable(Relation rel);
extern int	TaskqJobColumn(const char *name);
extern Datum TaskqJobState(Oid type, const char *label);
extern SPIPlanPtr TaskqGetPlan(TaskqPlan *plan);
extern int	TaskqExecute(TaskqPlan *plan, Datum *values, const bool *isnull,
						 bool read_only, long count);
extern char *TaskqMoveSql(const char *from_table, const char *to_table,
						  const char *using_clause, const char *where_clause,
						  const TaskqColumnSet *sets, const char *returning,
						  bool select);
extern int	TaskqExecuteMove(TaskqPlan *select_plan, TaskqPlan *insert_plan,
							 const char *to_table, Datum *values,
							 const bool *isnull);
extern void TaskqRaiseJobNotFound(Datum id) pg_attribute_noreturn();
extern void TaskqRaiseJobConflict(Datum id, bool lease_given, Datum lease);
extern text *TaskqClipText(text *t, int maxbytes);
extern int	TaskqJsonbSize(Jsonb *jb);
extern void TaskqCheckQueueName(text *queue);
extern void TaskqRequireArg(FunctionCallInfo fcinfo, int n, const char *argname);
extern Datum TaskqReturnedIds(int n);
extern Datum TaskqUuidArray(const pg_uuid_t *ids, int n);
extern void TaskqSwitchToOwner(TaskqContext *cxt);
extern void TaskqSwitchBack(TaskqContext *cxt);
extern int	TaskqPrivilegeBit(const char *name);
extern const char *TaskqPrivilegeName(int need);
extern text *TaskqJbvText(const JsonbValue *v);
extern Jsonb *TaskqJbvJsonb(JsonbValue *v);
extern JsonbValue *TaskqJsonbKey(JsonbContainer *c, const char *key);
extern void TaskqJsonbPushKey(JsonbParseState **st, const char *key, Jsonb *value);
extern void TaskqJsonbPushString(JsonbParseState **st, const char *key, const char *s);
extern Jsonb *TaskqStringJsonb(text *t);

/* options.c */
extern void TaskqParseJobOptions(Jsonb *options, TaskqJobOptions *opts);
extern void TaskqParseQueueOptions(Jsonb *options, TaskqQueueOptions *opts);
extern text *TaskqOptionText(const char *option, const JsonbValue *v, int maxbytes);
extern JsonbIterator *TaskqJsonKeys(JsonbContainer *object);
extern bool TaskqJsonKeyNext(JsonbIterator **it, char **key, JsonbValue *val);

/* backoff.c */
extern Jsonb *TaskqMergeBackoff(Jsonb *base, Jsonb *over);
extern int64 TaskqBackoffDelay(Jsonb *backoff, int32 attempt);
extern bool TaskqBackoffIsDefault(Jsonb *backoff);

/* queuecache.c */
extern bool TaskqCachedQueue(const char *name, bool fresh, TaskqQueueInfo *qi);
extern bool TaskqQueueGrantsAllow(const char *queue, Oid role, int need);

/* flowcontrol.c */
typedef int (*TaskqClaimFn) (void *arg, int32 count, Datum ctids);
extern int	TaskqClaimLimited(Datum queue, const TaskqQueueInfo *qi, int32 count,
							  const Datum *levels, TaskqClaimFn claim, void *arg,
							  uint64 *first, bool *first_known);
extern void TaskqNoteSlotsFreed(int n);
extern void TaskqNoteQueueSlotsFreed(const char *queue);

/* ratelimit.c */
extern bool TaskqRateLimitsAvailable(void);

/* signature.c */
extern void TaskqHmacSha256(const char *key, int keylen, const char *const *parts,
							const size_t *lens, int n, uint8 *mac);
extern char *TaskqStandardSignature(const char *secret, const char *id,
									const char *timestamp, const char *body,
									size_t bodylen);
extern int32 TaskqRateTake(text *queue, const char *group, int len, int32 limit,
						   int32 period_ms, int32 want);
extern void TaskqRateGiveBack(text *queue, const char *group, int len,
							  int32 period_ms, int32 n);
extern int32 TaskqRateUsed(text *queue, const char *group, int len, int32 period_ms);
extern void TaskqRateReset(text *queue);
extern void TaskqRateLimitInit(bool preloading);

/* queue.c */
extern bool TaskqLookupQueue(Datum queue, bool create, TaskqQueueInfo *qi);
extern bool TaskqQueueNotifies(const char *name);
extern bool TaskqQueueForgetsCompleted(const char *name);

/* push.c */
extern void TaskqPushJob(Datum queue, text *name, Jsonb *data, Jsonb *options,
						 const pg_uuid_t *extra_parents, int nextra,
						 bool internal, pg_uuid_t *id);

/*
 * options.c: a follow-up, as found in metadata.follow_ups: checked at push
 * time of its parent, pushed when the parent completes (dagfinish.c)
 */
typedef struct TaskqFollowUp
{
	text	   *queue;
	text	   *name;
	Jsonb	   *data;
	Jsonb	   *options;
	Jsonb	   *metadata;
	text	   *flow_id;
} TaskqFollowUp;
extern void TaskqCheckJobName(text *name);
extern Jsonb *TaskqCheckJobData(Jsonb *data, bool limit_size);
extern void TaskqReadFollowUp(int n, JsonbValue *v, TaskqFollowUp *fu);
extern bool TaskqCheckMetadata(Jsonb *metadata, bool privileges);

/* dag.c */
extern void TaskqDagInit(void);
extern int	TaskqResolveParents(const pg_uuid_t *parents, int nparents,
								int *depth, pg_uuid_t **live);
extern void TaskqAddEdges(const pg_uuid_t *parents, int nparents,
						  const pg_uuid_t *child);
extern void TaskqPromoteChildren(Datum id);
extern void TaskqDropChildEdges(Datum id);
extern void TaskqCascade(Datum id, text *name, bool dead);

/* dagfinish.c: the last column of a move into finished_jobs or dead_jobs */
#define TASKQ_FINISH_COLUMN "taskq_finish"
extern void TaskqFinishMoved(void);
extern void TaskqDagFinishInit(void);

/* util.c: what TaskqExecute runs after such a move (TaskqFinishMoved) */
typedef void (*TaskqMovedHook) (void);
extern TaskqMovedHook taskq_moved_hook;

/* pull.c */
extern void TaskqPullInit(void);
extern int	TaskqReclaimExpired(Datum queue, TimestampTz floor, TimestampTz now);
extern TimestampTz TaskqProbeExpired(Datum queue, TimestampTz floor, TimestampTz now,
									 bool *due, TimestampTz *quiet);

/* mallocpad.c: the heap padding of backends that run taskq */
extern int	taskq_malloc_top_pad;
extern void TaskqTuneMalloc(void);
extern void TaskqMallocInit(void);

/* pullhead.c: where the claim starts, per queue and priority */
#define TASKQ_HEAD_MAX_LEVELS	16
extern int	taskq_head_check_interval;
typedef struct TaskqHead
{
	bool		usable;			/* the claim may start from the bounds */
	bool		check;			/* check from the head first */
	bool		raise;			/* may raise the bounds */
	uint64		gen;
	uint64		cap;			/* of a check or raise */
	int			nlevels;
	int32		priority[TASKQ_HEAD_MAX_LEVELS];	/* highest first */
	uint64		bound[TASKQ_HEAD_MAX_LEVELS];	/* id prefixes */
} TaskqHead;
extern void TaskqHeadInit(bool preloading);
extern uint64 TaskqIdPrefix(const pg_uuid_t *id);
extern Datum TaskqPrefixId(uint64 prefix);
extern void TaskqHeadPushing(void);
extern void TaskqHeadClaimed(const pg_uuid_t *id);
extern void TaskqHeadNoteLevel(text *queue, int32 p, const pg_uuid_t *id);
extern void TaskqHeadLower(const char *queue, int32 p, const pg_uuid_t *id);
extern void TaskqHeadLowerReturned(int n, int queue_col, int priority_col,
								   int id_col, int waiting_col);
extern bool TaskqHeadRead(const char *queue, TaskqHead *h, bool work);
extern void TaskqHeadRaised(const char *queue, const TaskqHead *h, const uint64 *first);
extern void TaskqHeadChecked(const char *queue, const TaskqHead *h, int n,
							 const int32 *priority, const uint64 *first, bool more);
/*
 * How far past its now() a probe of housekeeping reads the leases and
 * delayed jobs of its queue, to learn until when the next pulls need not
 * probe (pullhead.c, "quiet")
 */
#define TASKQ_QUIET_WINDOW_MS	1000
typedef struct TaskqQuiet
{
	uint64		gen;
	TimestampTz until;			/* DT_NOBEGIN: unknown */
} TaskqQuiet;
extern TimestampTz TaskqLeaseFloor(const char *queue, bool create, uint64 *gen,
								   bool *check, TaskqQuiet *quiet);
extern void TaskqLeaseFloorSeen(const char *queue, uint64 gen, bool check,
								TimestampTz first, TimestampTz upto,
								const TaskqQuiet *quiet);
extern void TaskqQuietNote(const char *queue, TimestampTz at);
extern void TaskqHeadBreak(void);
extern void TaskqHeadForeignWrite(void);
extern void TaskqHeadNoteCopy(Node *stmt);
extern void TaskqHeadForgetDatabase(Oid dbid);

/* pullwait.c: a pull that waits */
extern void TaskqPullWaitInit(bool preloading);
extern int	TaskqPullWait(Datum queue, int32 wait_ms, int (*try_claim) (void *),
						  TimestampTz (*next_due) (void *), void *arg);
extern void TaskqWakeWaiters(char (*queues)[TASKQ_MAX_QUEUE_NAME + 1], int n, bool any);

/* lifecycle.c */
extern void TaskqCheckAckItems(Jsonb *items, const char *argname);
extern int	TaskqAckItems(Jsonb *items);

/* workerslots.c */
extern void TaskqSlotsInit(void);
extern TaskqDbSlot *TaskqFindSlot(Oid dbid);
extern void TaskqPinSearchPath(void);

/* launcher.c */
extern void TaskqLauncherInit(bool preloading);
extern bool TaskqDatabaseWanted(const char *name);

/* worker.c */
extern void TaskqWorkerInit(void);

/* events.c */
extern void TaskqEventsInit(void);
extern void TaskqNoteWakeup(text *queue);
extern void TaskqNoteDelayed(text *queue);
extern void TaskqNoteWorkerWake(void);
extern void TaskqNoteWakeupReturned(int n, int column);
extern void TaskqNoteLauncherWake(void);
extern void TaskqSubscribersChanged(void);
extern void TaskqEmitEvent(const char *event, Datum ids);
extern void TaskqEmitEventOne(const char *event, Datum id);
extern void TaskqEmitEventRows(const char *event, TupleTableSlot **rows, int n);
extern bool TaskqAckMayForget(void);

/* eventring.c */
extern int	taskq_event_buffer;
extern void TaskqEventRingInit(bool preloading);
extern bool TaskqEventRingWanted(void);
extern void TaskqEventRingNote(const char *event, Datum ids, bool stream);
extern void TaskqEventRingNoteJobs(const char *event, const Datum *ids,
								   text *const *queues, int n, bool stream);

/* an event of the NOTIFY stream, as the database worker takes it */
typedef struct TaskqStreamEvent
{
	const char *event;			/* NULL: events.lost */
	pg_uuid_t	job_id;
	char	   *queue;
	TimestampTz ts;
} TaskqStreamEvent;

extern uint64 TaskqEventRingFollow(void);
extern int	TaskqEventRingTake(uint64 *cursor, int max, TaskqStreamEvent *out);

/* events.c: the taskq_events stream, sent by the database worker */
extern bool TaskqStreamsExist(void);
extern void TaskqNotifyStream(const TaskqStreamEvent *events, int n);

/* metrics.c: counters, at commit; TASKQ_COUNT(m) bits make a mask */
typedef enum TaskqMetric
{
	/* per queue */
	TASKQ_METRIC_PUSHED,
	TASKQ_METRIC_PULLED,
	TASKQ_METRIC_COMPLETED,
	TASKQ_METRIC_FAILED,
	TASKQ_METRIC_DEAD,
	TASKQ_METRIC_CANCELLED,
	TASKQ_METRIC_LEASE_EXPIRED,
	TASKQ_METRIC_REDRIVEN,
	/* per database */
	TASKQ_METRIC_WEBHOOK_SUCCEEDED,
	TASKQ_METRIC_WEBHOOK_FAILED,
	TASKQ_METRIC_WEBHOOK_EXHAUSTED,
	TASKQ_METRIC_REAPER_RUNS,
	TASKQ_METRIC_RETENTION_RUNS,
	TASKQ_METRIC_RETENTION_REMOVED,
	/* per queue, not exported: jobs kept in finished_jobs and dead_jobs */
	TASKQ_HISTORY_COMPLETED,
	TASKQ_HISTORY_CANCELLED,
	TASKQ_HISTORY_DLQ,
	TASKQ_NUM_METRICS
} TaskqMetric;
#define TASKQ_COUNT(m)	(1 << (m))
/* a job moved to the history tables, counted as such and as kept */
#define TASKQ_COUNT_COMPLETED_KEPT \
	(TASKQ_COUNT(TASKQ_METRIC_COMPLETED) | TASKQ_COUNT(TASKQ_HISTORY_COMPLETED))
#define TASKQ_COUNT_CANCELLED_KEPT \
	(TASKQ_COUNT(TASKQ_METRIC_CANCELLED) | TASKQ_COUNT(TASKQ_HISTORY_CANCELLED))
#define TASKQ_COUNT_DEAD_KEPT \
	(TASKQ_COUNT(TASKQ_METRIC_DEAD) | TASKQ_COUNT(TASKQ_HISTORY_DLQ))
extern void TaskqMetricsInit(bool preloading);
extern void TaskqMetricsForgetDatabase(Oid dbid);
extern void TaskqMetricsCount(text *queue, int metrics, int64 n);
extern void TaskqMetricsCountReturned(int n, int metrics);
extern void TaskqMetricsCountDb(TaskqMetric metric, int64 n);
extern void TaskqMetricsCountDeliveries(int n);
extern void TaskqHistoryPrepare(void);
extern void TaskqHistoryBreak(void);

/* delivery.c */
typedef bool (*TaskqTxnBegin) (const char *activity);
typedef void (*TaskqTxnEnd) (void);
extern void TaskqDeliveryInit(void);
extern bool TaskqDeliveryStart(TaskqTxnBegin begin, TaskqTxnEnd end);
extern bool TaskqDeliveriesInFlight(void);
extern void TaskqDeliveriesWait(long timeout_ms);
extern long TaskqDeliverWebhooks(TaskqTxnBegin begin, TaskqTxnEnd end, bool news);

#endif							/* TASKQ_H */
