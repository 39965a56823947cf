/*-------------------------------------------------------------------------
 *
 * acl.c
 *		Who may do what: per-queue privileges, taskq.grant and taskq.revoke,
 *		and the checks of the SQL-callable functions.
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
 * (TaskqSwitchToOwner, util.c), the same effect as SECURITY DEFINER ... SET
 * search_path, which the SQL-language functions use, without its cost on
 * hot paths.  Grants are read through each backend's queue cache
 * (queuecache.c).
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
	if (TaskqIsAdmin(role))
		return true;
	return TaskqQueueGrantsAllow(queue, role, need) ||
		TaskqQueueGrantsAllow("*", role, need);
}

/*
 * Whether the caller has a privilege (need: TASKQ_PRIV_*, or
 * TASKQ_PRIV_ANY for seeing the queue) on a queue.  Runs inside
 * TaskqSwitchToOwner.
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
						   TaskqPrivilegeName(need)),
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
	return strcmp(priv, "any") == 0 ? TASKQ_PRIV_ANY : TaskqPrivilegeBit(priv);
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

	TaskqSwitchToOwner(&cxt);
	ok = TaskqQueueAllowed(queue, need);
	TaskqSwitchBack(&cxt);
	PG_RETURN_BOOL(ok);
}

/*
 * taskq._require_queue_privilege(queue text, privilege text) RETURNS boolean
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

	TaskqSwitchToOwner(&cxt);
	TaskqRequireQueuePrivilege(queue, need);
	TaskqSwitchBack(&cxt);
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
	(void) TaskqPrivilegeBit(priv);
	role = get_role_oid(NameStr(*PG_GETARG_NAME(1)), false);

	TaskqSwitchToOwner(&cxt);
	if (strcmp(queue, "*") == 0)
		TaskqRequireAdmin(grant ? "grant privileges on every queue" :
						  "revoke privileges on every queue");
	else
		TaskqRequireQueuePrivilege(queue, TASKQ_PRIV_ADMIN);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = ObjectIdGetDatum(role);
	values[2] = PG_GETARG_DATUM(2);
	n = TaskqExecute(grant ? &grant_plan : &revoke_plan, values, NULL, false, 0);
	TaskqSwitchBack(&cxt);
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
 * caller (true).  Runs inside TaskqSwitchToOwner.
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
 * parents' results.  Runs inside TaskqSwitchToOwner, before any parent is locked.
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
 * TaskqSwitchToOwner.
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
