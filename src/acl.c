/*-------------------------------------------------------------------------
 *
 * acl.c
 *		Who may do what: per-queue privileges, the queue cache, and running
 *		taskq's statements as the extension's owner.
 *
 * Privileges are per queue: push, pull (pull, ack, fail, heartbeat,
 * progress) and admin (pause, resume, purge, redrive, drop, alter, grant),
 * granted to roles with taskq.grant and kept in taskq.queue_grants.  A
 * grant on the queue name '*' covers every queue.  admin includes push and
 * pull, and any of the three lets a role see the queue's jobs.  Superusers
 * and roles with the privileges of taskq_admin have every privilege on
 * every queue.
 *
 * The role whose privileges count is the session's current role
 * (GetOuterUserId: the login role, or the one chosen with SET ROLE), so a
 * connection pooler or taskq serve can act for a role with SET ROLE.  The
 * tables are the extension owner's and ordinary roles have no privileges
 * on them; the C functions check the caller's privileges and then run
 * their statements as the owner with search_path pinned to pg_catalog
 * (TaskqConnect), the same effect as SECURITY DEFINER ... SET search_path,
 * which the SQL-language functions use, without its cost on hot paths.
 *
 * Each backend caches the settings and grants of the queues it uses (not
 * of queues that do not exist), so that push runs no statement to look
 * its queue up.  A statement trigger
 * on taskq.queues and taskq.queue_grants sends a relcache invalidation of
 * the table at commit; every backend then forgets its cache.  The cache is
 * loaded with the latest snapshot, never an older transaction snapshot, so
 * that a repeatable-read transaction cannot put stale settings into it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "taskq.h"

/* a cached queue: its settings (when it exists) and its grants */
typedef struct QueueEntry
{
	char		name[TASKQ_MAX_QUEUE_NAME + 1];	/* hash key */
	bool		exists;
	TaskqQueueInfo info;		/* backoff points into queue_cache_cxt */
	int			ngrants;
	Oid		   *grantees;
	int		   *privileges;
} QueueEntry;

/* the cache is emptied when it grows past this many queues */
#define QUEUE_CACHE_MAX 1024

static HTAB *queue_cache = NULL;
static MemoryContext queue_cache_cxt = NULL;
static bool queue_cache_callback_set = false;
/* counts invalidations, to tell whether one came while loading an entry */
static uint64 queue_cache_invals = 0;

static TaskqPlan load_plan = {
	"SELECT q.paused, q.timeout_ms, q.max_attempts, q.backoff,"
	" ARRAY(SELECT g.grantee::oid FROM taskq.queue_grants g WHERE g.queue = $1"
	"  ORDER BY g.grantee, g.privilege),"
	" ARRAY(SELECT g.privilege FROM taskq.queue_grants g WHERE g.queue = $1"
	"  ORDER BY g.grantee, g.privilege)"
	" FROM (VALUES (1)) v LEFT JOIN taskq.queues q ON q.name = $1",
	1, {TEXTOID}, true
};

/* forget the cache (cheap to load again) */
static void
queue_cache_reset(void)
{
	if (queue_cache_cxt != NULL)
	{
		MemoryContextDelete(queue_cache_cxt);
		queue_cache_cxt = NULL;
		queue_cache = NULL;
	}
}

/* relcache callback: any invalidation may be of our tables */
static void
queue_cache_callback(Datum arg, Oid relid)
{
	queue_cache_invals++;
	queue_cache_reset();
}

static void
queue_cache_init(void)
{
	HASHCTL		ctl;

	if (!queue_cache_callback_set)
	{
		CacheRegisterRelcacheCallback(queue_cache_callback, (Datum) 0);
		queue_cache_callback_set = true;
	}
	queue_cache_cxt = AllocSetContextCreate(CacheMemoryContext,
											"taskq queue cache",
											ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = TASKQ_MAX_QUEUE_NAME + 1;
	ctl.entrysize = sizeof(QueueEntry);
	ctl.hcxt = queue_cache_cxt;
	queue_cache = hash_create("taskq queue cache", 64, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* privilege name to bit; error for an unknown one */
static int
privilege_bit(const char *name)
{
	if (strcmp(name, "push") == 0)
		return TASKQ_PRIV_PUSH;
	if (strcmp(name, "pull") == 0)
		return TASKQ_PRIV_PULL;
	if (strcmp(name, "admin") == 0)
		return TASKQ_PRIV_ADMIN;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unrecognized queue privilege \"%s\"", name),
			 errhint("Valid privileges are: push, pull, admin.")));
	return 0;					/* keep compiler quiet */
}

static const char *
privilege_name(int need)
{
	switch (need)
	{
		case TASKQ_PRIV_PUSH:
			return "push";
		case TASKQ_PRIV_PULL:
			return "pull";
		case TASKQ_PRIV_ADMIN:
			return "admin";
		default:
			return "push, pull or admin";
	}
}

/*
 * Read a queue's settings and grants into the cache (or into *tmp when an
 * invalidation came while reading, so the entry may be stale already).
 * Runs inside TaskqConnect.
 */
static QueueEntry *
queue_load(const char *name, QueueEntry *tmp)
{
	Datum		values[1];
	uint64		invals = queue_cache_invals;
	QueueEntry	e;
	QueueEntry *entry;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	MemoryContext old;
	ArrayType  *grantees;
	ArrayType  *privs;
	Datum	   *gv;
	Datum	   *pv;
	int			ng;

	memset(&e, 0, sizeof(e));
	if (queue_cache != NULL &&
		hash_get_num_entries(queue_cache) >= QUEUE_CACHE_MAX)
		queue_cache_reset();
	if (queue_cache == NULL)
		queue_cache_init();

	values[0] = CStringGetTextDatum(name);
	PushActiveSnapshot(GetLatestSnapshot());
	TaskqExecute(&load_plan, values, NULL, true, 1);
	PopActiveSnapshot();

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	(void) SPI_getbinval(tup, desc, 1, &isnull);
	e.exists = !isnull;
	old = MemoryContextSwitchTo(invals == queue_cache_invals && e.exists ?
								queue_cache_cxt : CurrentMemoryContext);
	if (e.exists)
	{
		e.info.paused = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
		e.info.timeout_ms = DatumGetInt32(SPI_getbinval(tup, desc, 2,
														&e.info.timeout_null));
		e.info.max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		e.info.backoff = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
	}
	grantees = DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 5, &isnull));
	privs = DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 6, &isnull));
	deconstruct_array(grantees, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &gv, NULL, &ng);
	deconstruct_array(privs, TEXTOID, -1, false, TYPALIGN_INT, &pv, NULL, &ng);
	e.ngrants = ng;
	e.grantees = palloc(sizeof(Oid) * (ng + 1));
	e.privileges = palloc(sizeof(int) * (ng + 1));
	for (int i = 0; i < ng; i++)
	{
		e.grantees[i] = DatumGetObjectId(gv[i]);
		e.privileges[i] = privilege_bit(TextDatumGetCString(pv[i]));
	}
	MemoryContextSwitchTo(old);

	/*
	 * Not kept: what an invalidation came while loading (it may be stale
	 * already), and a queue that does not exist.  Other backends see a
	 * commit before its invalidations are sent, and the wake-up of a
	 * push's commit can make a worker pull in that window: a cached "no
	 * such queue" would then hide the queue the push created.
	 */
	if (invals != queue_cache_invals || !e.exists)
	{
		*tmp = e;
		strlcpy(tmp->name, name, sizeof(tmp->name));
		return tmp;
	}
	entry = hash_search(queue_cache, name, HASH_ENTER, NULL);
	entry->exists = e.exists;
	entry->info = e.info;
	entry->ngrants = e.ngrants;
	entry->grantees = e.grantees;
	entry->privileges = e.privileges;
	return entry;
}

/* the cached entry of a queue, loading it on a miss */
static QueueEntry *
queue_get(const char *name, QueueEntry *tmp)
{
	QueueEntry *entry;

	if (queue_cache != NULL &&
		(entry = hash_search(queue_cache, name, HASH_FIND, NULL)) != NULL)
		return entry;
	return queue_load(name, tmp);
}

/* whether role has the privileges of a grant in entry covering need */
static bool
grants_allow(const QueueEntry *entry, Oid role, int need)
{
	for (int i = 0; i < entry->ngrants; i++)
		if ((entry->privileges[i] & (need | TASKQ_PRIV_ADMIN)) != 0 &&
			has_privs_of_role(role, entry->grantees[i]))
			return true;
	return false;
}

/* whether role is a superuser or has the privileges of taskq_admin */
bool
TaskqIsAdmin(Oid role)
{
	Oid			admin;

	if (superuser_arg(role))
		return true;
	admin = get_role_oid("taskq_admin", true);
	return OidIsValid(admin) && has_privs_of_role(role, admin);
}

/* whether a role has a privilege on a queue: administrator, or a grant */
static bool
role_allowed(Oid role, const char *queue, int need)
{
	QueueEntry	tmp;
	QueueEntry	tmp_all;

	if (TaskqIsAdmin(role))
		return true;
	if (grants_allow(queue_get(queue, &tmp), role, need))
		return true;
	return grants_allow(queue_get("*", &tmp_all), role, need);
}

/*
 * Whether the caller has a privilege (need: TASKQ_PRIV_*, or
 * TASKQ_PRIV_ANY for seeing the queue) on a queue.  Runs inside
 * TaskqConnect.
 */
bool
TaskqQueueAllowed(const char *queue, int need)
{
	return role_allowed(GetOuterUserId(), queue, need);
}

/*
 * Whether a given role may see a queue (any privilege on it): for the
 * background worker, which delivers a webhook only while its owner may
 * see the job's queue.  A dropped role sees nothing.
 */
bool
TaskqRoleSeesQueue(Oid role, const char *queue)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		return false;
	return role_allowed(role, queue, TASKQ_PRIV_ANY);
}

/* error unless the caller has a privilege on a queue */
void
TaskqRequireQueuePrivilege(const char *queue, int need)
{
	if (!TaskqQueueAllowed(queue, need))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for queue \"%s\"", queue),
				 errdetail("Role \"%s\" needs the %s privilege on it.",
						   GetUserNameFromId(GetOuterUserId(), false),
						   privilege_name(need)),
				 errhint("A taskq administrator can grant it with taskq.grant().")));
}

/* error unless the caller is a superuser or has taskq_admin's privileges */
void
TaskqRequireAdmin(const char *action)
{
	if (!TaskqIsAdmin(GetOuterUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", action),
				 errdetail("Only superusers and members of taskq_admin may %s.",
						   action)));
}

/*
 * A queue's settings, from the cache unless fresh is set; false when the
 * queue does not exist.  qi->backoff is a copy in the caller's memory.
 * Runs inside TaskqConnect.
 */
bool
TaskqCachedQueue(const char *name, bool fresh, TaskqQueueInfo *qi)
{
	QueueEntry	tmp;
	QueueEntry *entry = fresh ? queue_load(name, &tmp) : queue_get(name, &tmp);

	if (!entry->exists)
		return false;
	*qi = entry->info;
	qi->backoff = palloc(VARSIZE(entry->info.backoff));
	memcpy(qi->backoff, entry->info.backoff, VARSIZE(entry->info.backoff));
	return true;
}

/*
 * Start running taskq's statements for a SQL-callable function: SPI, the
 * extension owner's identity and search_path pinned to pg_catalog.  The
 * caller's identity stays available through GetOuterUserId.  An error
 * undoes all three (transaction or subtransaction abort).
 */
void
TaskqConnect(TaskqContext *cxt)
{
	static OverrideSearchPath pinned = {NIL, true, false, 0};
	Oid			nsp = get_namespace_oid("taskq", false);
	HeapTuple	tp;
	Oid			owner;

	tp = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for namespace %u", nsp);
	owner = ((Form_pg_namespace) GETSTRUCT(tp))->nspowner;
	ReleaseSysCache(tp);

	SPI_connect();
	GetUserIdAndSecContext(&cxt->user, &cxt->sec_context);
	SetUserIdAndSecContext(owner, cxt->sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PushOverrideSearchPath(&pinned);
}

/* end what TaskqConnect started */
void
TaskqFinish(TaskqContext *cxt)
{
	PopOverrideSearchPath();
	SetUserIdAndSecContext(cxt->user, cxt->sec_context);
	SPI_finish();
}

/*
 * taskq.queues_changed() trigger: statement trigger on taskq.queues and
 * taskq.queue_grants; every backend forgets its queue cache at commit.
 */
PG_FUNCTION_INFO_V1(taskq_queues_changed);
Datum
taskq_queues_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("taskq.queues_changed() must be called as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * The queue and privilege arguments of has_queue_privilege and
 * require_queue_privilege: the privilege as TASKQ_PRIV_* ("any": any of
 * them).
 */
static int
privilege_args(FunctionCallInfo fcinfo, char **queue)
{
	char	   *priv;

	TaskqRequireArg(fcinfo, 0, "queue name");
	TaskqRequireArg(fcinfo, 1, "privilege");
	*queue = text_to_cstring(PG_GETARG_TEXT_PP(0));
	priv = text_to_cstring(PG_GETARG_TEXT_PP(1));
	return strcmp(priv, "any") == 0 ? TASKQ_PRIV_ANY : privilege_bit(priv);
}

/*
 * taskq.has_queue_privilege(queue text, privilege text) RETURNS boolean
 *
 * Whether the current role has a privilege (push, pull, admin or any) on
 * a queue.
 */
PG_FUNCTION_INFO_V1(taskq_has_queue_privilege);
Datum
taskq_has_queue_privilege(PG_FUNCTION_ARGS)
{
	TaskqContext cxt;
	char	   *queue;
	int			need = privilege_args(fcinfo, &queue);
	bool		ok;

	TaskqConnect(&cxt);
	ok = TaskqQueueAllowed(queue, need);
	TaskqFinish(&cxt);
	PG_RETURN_BOOL(ok);
}

/*
 * taskq.require_queue_privilege(queue text, privilege text) RETURNS boolean
 *
 * Error (42501) unless the current role has the privilege; true otherwise.
 * For the SQL-language functions.
 */
PG_FUNCTION_INFO_V1(taskq_require_queue_privilege);
Datum
taskq_require_queue_privilege(PG_FUNCTION_ARGS)
{
	TaskqContext cxt;
	char	   *queue;
	int			need = privilege_args(fcinfo, &queue);

	TaskqConnect(&cxt);
	TaskqRequireQueuePrivilege(queue, need);
	TaskqFinish(&cxt);
	PG_RETURN_BOOL(true);
}

/*
 * taskq.grant(queue text, role name, privilege text) RETURNS boolean
 * taskq.revoke(queue text, role name, privilege text) RETURNS boolean
 *
 * Superusers, members of taskq_admin and roles with admin on the queue may
 * grant and revoke on it ('*': every queue, taskq administrators only).
 * Returns whether anything changed.
 */
static Datum
grant_or_revoke(FunctionCallInfo fcinfo, bool grant)
{
	static TaskqPlan grant_plan = {
		"INSERT INTO taskq.queue_grants (queue, grantee, privilege)"
		" VALUES ($1, $2::oid::regrole, $3) ON CONFLICT DO NOTHING",
		3, {TEXTOID, OIDOID, TEXTOID}
	};
	static TaskqPlan revoke_plan = {
		"DELETE FROM taskq.queue_grants"
		" WHERE queue = $1 AND grantee = $2::oid::regrole AND privilege = $3",
		3, {TEXTOID, OIDOID, TEXTOID}
	};
	TaskqContext cxt;
	char	   *queue;
	char	   *priv;
	Oid			role;
	Datum		values[3];
	int			n;

	TaskqRequireArg(fcinfo, 0, "queue name");
	TaskqRequireArg(fcinfo, 1, "role");
	TaskqRequireArg(fcinfo, 2, "privilege");
	TaskqCheckQueueName(PG_GETARG_TEXT_PP(0));
	queue = text_to_cstring(PG_GETARG_TEXT_PP(0));
	priv = text_to_cstring(PG_GETARG_TEXT_PP(2));
	(void) privilege_bit(priv);
	role = get_role_oid(NameStr(*PG_GETARG_NAME(1)), false);

	TaskqConnect(&cxt);
	if (strcmp(queue, "*") == 0)
		TaskqRequireAdmin(grant ? "grant privileges on every queue" :
						  "revoke privileges on every queue");
	else
		TaskqRequireQueuePrivilege(queue, TASKQ_PRIV_ADMIN);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = ObjectIdGetDatum(role);
	values[2] = PG_GETARG_DATUM(2);
	n = TaskqExecute(grant ? &grant_plan : &revoke_plan, values, NULL, false, 0);
	TaskqFinish(&cxt);
	PG_RETURN_BOOL(n > 0);
}

PG_FUNCTION_INFO_V1(taskq_grant);
Datum
taskq_grant(PG_FUNCTION_ARGS)
{
	return grant_or_revoke(fcinfo, true);
}

PG_FUNCTION_INFO_V1(taskq_revoke);
Datum
taskq_revoke(PG_FUNCTION_ARGS)
{
	return grant_or_revoke(fcinfo, false);
}

/*
 * Check the caller's privilege on a job's queue.  A job of a queue the
 * caller has no privilege on at all is answered as if it did not exist:
 * false, so that its caller reports "does not exist" (or nothing), never
 * the queue's name.  A visible job whose queue lacks the privilege needed
 * is a permission error naming the queue; an unknown id is left to the
 * caller (true).  Runs inside TaskqConnect.
 */
bool
TaskqRequireJobPrivilege(Datum id, int need)
{
	static TaskqPlan plan = {
		"SELECT queue FROM taskq.all_jobs WHERE id = $1",
		1, {UUIDOID}
	};
	char	   *queue;

	if (TaskqIsAdmin(GetOuterUserId()))
		return true;
	if (TaskqExecute(&plan, &id, NULL, false, 1) == 0)
		return true;
	queue = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (!TaskqQueueAllowed(queue, TASKQ_PRIV_ANY))
		return false;
	TaskqRequireQueuePrivilege(queue, need);
	return true;
}

/*
 * Whether the caller may see every given job (any privilege on its queue);
 * unknown ids count as visible.  For depends_on: a job may depend only on
 * jobs its role can see, since a worker of the child receives the
 * parents' results.  Runs inside TaskqConnect, before any parent is locked.
 */
bool
TaskqJobsVisible(Datum ids, Datum *hidden)
{
	static TaskqPlan plan = {
		"SELECT queue, min(id::text) FROM taskq.all_jobs WHERE id = ANY ($1)"
		" GROUP BY queue ORDER BY 2",
		1, {UUIDARRAYOID}
	};
	SPITupleTable *queues;
	uint64		n;

	if (TaskqIsAdmin(GetOuterUserId()))
		return true;
	n = TaskqExecute(&plan, &ids, NULL, false, 0);
	queues = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
		if (!TaskqQueueAllowed(SPI_getvalue(queues->vals[i], queues->tupdesc, 1),
							   TASKQ_PRIV_ANY))
		{
			*hidden = DirectFunctionCall1(uuid_in,
										  CStringGetDatum(SPI_getvalue(queues->vals[i],
																	   queues->tupdesc, 2)));
			return false;
		}
	return true;
}

/*
 * TaskqRequireJobPrivilege for the jobs of taskq.ack_batch items (objects
 * with an "id").  Returns the items without those whose job is in a queue
 * the caller cannot see (they are treated as unknown ids).  Runs inside
 * TaskqConnect.
 */
Datum
TaskqRequireItemsPrivilege(Datum items, int need)
{
	static TaskqPlan plan = {
		"SELECT DISTINCT j.queue FROM taskq.all_jobs j WHERE j.id IN"
		" (SELECT (x.item ->> 'id')::uuid FROM jsonb_array_elements($1) AS x(item))"
		" ORDER BY 1",
		1, {JSONBOID}
	};
	static TaskqPlan filter_plan = {
		"SELECT coalesce(jsonb_agg(x.item ORDER BY x.n), '[]') FROM"
		" jsonb_array_elements($1) WITH ORDINALITY AS x(item, n)"
		" WHERE NOT EXISTS (SELECT FROM taskq.all_jobs j"
		"  WHERE j.id = (x.item ->> 'id')::uuid AND j.queue = ANY ($2))",
		2, {JSONBOID, TEXTARRAYOID}
	};
	SPITupleTable *queues;
	uint64		n;
	Datum	   *hidden;
	int			nhidden = 0;
	Datum		values[2];
	bool		isnull;

	if (TaskqIsAdmin(GetOuterUserId()))
		return items;
	n = TaskqExecute(&plan, &items, NULL, false, 0);
	queues = SPI_tuptable;
	hidden = palloc(sizeof(Datum) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		char	   *queue = SPI_getvalue(queues->vals[i], queues->tupdesc, 1);

		if (!TaskqQueueAllowed(queue, TASKQ_PRIV_ANY))
			hidden[nhidden++] = CStringGetTextDatum(queue);
		else
			TaskqRequireQueuePrivilege(queue, need);
	}
	if (nhidden == 0)
		return items;
	values[0] = items;
	values[1] = PointerGetDatum(construct_array(hidden, nhidden, TEXTOID, -1, false,
												TYPALIGN_INT));
	TaskqExecute(&filter_plan, values, NULL, false, 1);
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
}
