/*-------------------------------------------------------------------------
 *
 * util.c
 *		Saved SPI plans, the statement that moves a job between tables,
 *		the checks and errors shared by the SQL-callable functions, and
 *		jsonb and uuid[] helpers.
 *
 * Plans are prepared on first use and kept (SPI_keepplan) for the life of
 * the backend; hot-path ones as generic plans, so that they never plan.  The plan cache replans by itself
 * when the extension's tables are dropped and created again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "taskq.h"

/* the columns of taskq.jobs, finished_jobs and dead_jobs, in table order */
static const char *const job_columns[] = {
	"id", "queue", "name", "priority", "max_attempts", "dag_depth",
	"created_at", "timeout_ms", "has_children", "unique_key", "flow_id",
	"group_key", "depends_on", "backoff", "metadata", "data", "run_at",
	"pending_parents", "state", "attempts", "lease_ms", "lease_expires_at",
	"started_at", "lease", "progress", "finished_at", "result", "error",
	"errors", "logs"
};

/*
 * The OIDs of taskq's tables, which the paths that work without a
 * statement look up on every call (a lookup of the schema and one of the
 * table, about 1,000 instructions together, several times per job), and
 * whether each has the columns of taskq.jobs (TaskqIsJobTable: thirty
 * string comparisons).  What is kept is what the catalog caches would
 * answer: it is forgotten on every invalidation that could change that
 * answer, of any row of pg_namespace, pg_class or pg_attribute (a
 * syscache callback for each; they come with the same processing of
 * invalidations that updates the catalog caches, so the answer is never
 * older than theirs).  Tables not found are not kept.
 */
typedef struct TableOidEntry
{
	const char *name;			/* a constant string of the callers */
	Oid			oid;
	int8		job_table;		/* -1 not known yet, else a bool */
} TableOidEntry;

static TableOidEntry table_oids[16];
static int	ntable_oids = 0;
static bool table_oid_callbacks = false;

static void
table_oids_forget(Datum arg, int cacheid, uint32 hashvalue)
{
	ntable_oids = 0;
}

static TableOidEntry *
table_oid_entry(Oid oid)
{
	for (int i = 0; i < ntable_oids; i++)
		if (table_oids[i].oid == oid)
			return &table_oids[i];
	return NULL;
}

/* the OID of a table of taskq's schema */
Oid
TaskqTableOid(const char *name)
{
	Oid			oid;

	for (int i = 0; i < ntable_oids; i++)
		if (table_oids[i].name == name || strcmp(table_oids[i].name, name) == 0)
			return table_oids[i].oid;
	if (!table_oid_callbacks)
	{
		CacheRegisterSyscacheCallback(NAMESPACEOID, table_oids_forget, (Datum) 0);
		CacheRegisterSyscacheCallback(RELOID, table_oids_forget, (Datum) 0);
		CacheRegisterSyscacheCallback(ATTNUM, table_oids_forget, (Datum) 0);
		table_oid_callbacks = true;
	}
	oid = get_relname_relid(name, get_namespace_oid("taskq", false));
	if (OidIsValid(oid) && ntable_oids < lengthof(table_oids))
	{
		table_oids[ntable_oids].name = name;
		table_oids[ntable_oids].oid = oid;
		table_oids[ntable_oids].job_table = -1;
		ntable_oids++;
	}
	return oid;
}

/*
 * The tables whose changes taskq's per-backend caches follow: the queue
 * cache (queues, queue_grants) and the subscriber flags of events.c
 * (webhooks, queues).  Their changes invalidate their relcache entries
 * (the trigger taskq._queues_changed, TaskqSubscribersChanged); a relcache
 * callback sees every relation's invalidation, and most are of other
 * tables: VACUUM and ANALYZE of taskq.jobs, a temporary table.
 */
static const char *const cache_tables[] = {"queues", "queue_grants", "webhooks"};
static Oid	cache_table_oids[lengthof(cache_tables)];
static bool cache_tables_known = false;

/* look the tables up; call in a transaction, before filling a cache */
void
TaskqNoteCacheTables(void)
{
	Oid			nsp;

	if (cache_tables_known)
		return;
	nsp = get_namespace_oid("taskq", true);
	if (!OidIsValid(nsp))
		return;
	for (int i = 0; i < lengthof(cache_tables); i++)
		cache_table_oids[i] = get_relname_relid(cache_tables[i], nsp);
	cache_tables_known = true;
}

/*
 * For a relcache callback: whether an invalidation of relid may concern
 * the caches.  Every invalidation does until the tables were looked up;
 * one of theirs (they may have been dropped and made again) also makes
 * the next fill look them up again.
 */
bool
TaskqCacheInvalidation(Oid relid)
{
	if (!OidIsValid(relid) || !cache_tables_known)
		return true;
	for (int i = 0; i < lengthof(cache_tables); i++)
		if (relid == cache_table_oids[i])
		{
			cache_tables_known = false;
			return true;
		}
	return false;
}

/*
 * Whether a table has exactly the columns of taskq.jobs, in order (so
 * does finished_jobs, unless someone changed it): what taskq writes into
 * it without a statement expects them.  The answer for one of taskq's
 * tables is kept with its OID (above).
 */
bool
TaskqIsJobTable(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TableOidEntry *e = table_oid_entry(RelationGetRelid(rel));
	bool		is = desc->natts == lengthof(job_columns);

	if (e != NULL && e->job_table >= 0)
		return e->job_table;
	for (int a = 0; a < desc->natts && is; a++)
		if (TupleDescAttr(desc, a)->attisdropped ||
			strcmp(NameStr(TupleDescAttr(desc, a)->attname), job_columns[a]) != 0)
			is = false;
	if (e != NULL)
		e->job_table = is;
	return is;
}

/*
 * the attribute number of a column of taskq.jobs, less one.  The hot paths
 * ask for the same few names (string constants) on every call: where a
 * name was found is kept by its address, in an open-addressing table of
 * the addresses seen (a few dozen), and checked with one strcmp instead
 * of a search.
 */
int
TaskqJobColumn(const char *name)
{
#define SEEN_SLOTS	128
#define SEEN_PROBES	8
	static struct
	{
		const char *name;
		int			col;
	}			seen[SEEN_SLOTS];
	/* Fibonacci hashing of the address: constants lie a few bytes apart */
	int			h = (int) (((uint64) (uintptr_t) name * UINT64CONST(0x9E3779B97F4A7C15)) >> 57);
	int			slot = h;

	for (int k = 0; k < SEEN_PROBES; k++)
	{
		int			s = (h + k) % SEEN_SLOTS;

		if (seen[s].name == name && strcmp(job_columns[seen[s].col], name) == 0)
			return seen[s].col;
		if (seen[s].name == NULL)
		{
			slot = s;
			break;
		}
	}
	for (int i = 0; i < lengthof(job_columns); i++)
		if (strcmp(job_columns[i], name) == 0)
		{
			seen[slot].name = name;
			seen[slot].col = i;
			return i;
		}
	elog(ERROR, "taskq: taskq.jobs has no column \"%s\"", name);
	return -1;					/* keep the compiler quiet */
}

/* the OID of a label of taskq.job_state (type: that type's OID) */
Datum
TaskqJobState(Oid type, const char *label)
{
	HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(type),
									  CStringGetDatum(label));
	Oid			oid;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "taskq.job_state has no label \"%s\"", label);
	oid = ((Form_pg_enum) GETSTRUCT(tup))->oid;
	ReleaseSysCache(tup);
	return ObjectIdGetDatum(oid);
}

/*
 * Return the kept plan of a statement, preparing it on first use.
 * Must be called inside SPI_connect.
 */
SPIPlanPtr
TaskqGetPlan(TaskqPlan *plan)
{
	if (plan->plan == NULL)
	{
		SPIPlanPtr	p;

		/*
		 * A hot-path statement asks for a generic plan: the plan cache would
		 * otherwise plan it again on every call whenever it guesses the
		 * generic plan costlier than a custom one (LIMIT $n, queue = $n),
		 * which was most of the time of a pull.  Such statements are
		 * written so that their generic plan is the right one whatever the
		 * parameters (index scans; no joins whose size the planner guesses).
		 */
		p = SPI_prepare_cursor(plan->sql, plan->nargs, plan->argtypes,
							   plan->generic ? CURSOR_OPT_GENERIC_PLAN : 0);

		if (p == NULL)
			elog(ERROR, "taskq: SPI_prepare failed (%s) for: %s",
				 SPI_result_code_string(SPI_result), plan->sql);
		SPI_keepplan(p);
		plan->plan = p;
	}
	return plan->plan;
}

/*
 * Run after a statement of TaskqMoveSql into finished_jobs or dead_jobs
 * that moved jobs, while SPI_tuptable is its result: TaskqFinishMoved
 * (dagfinish.c), set at load time.
 */
TaskqMovedHook taskq_moved_hook = NULL;

/*
 * How many taskq statements are running in this backend: writes to
 * taskq.jobs outside them are foreign writes to pullhead.c.
 */
int			taskq_statement_depth = 0;

/*
 * Run a kept statement with its parameters; isnull may be NULL when no
 * parameter is null.  Returns SPI_processed.
 */
int
TaskqExecute(TaskqPlan *plan, Datum *values, const bool *isnull,
			 bool read_only, long count)
{
	char		nulls[lengthof(plan->argtypes)];
	int			rc;
	bool		replan;
	volatile int nest = 0;

	Assert(plan->nargs <= lengthof(plan->argtypes));
	for (int i = 0; i < plan->nargs; i++)
		nulls[i] = (isnull != NULL && isnull[i]) ? 'n' : ' ';

	/*
	 * A generic plan is made at the first execution, and again after the
	 * tables it reads change (relcache invalidation), then kept.  Made
	 * while a table is small (a fresh database, a queue just drained), it
	 * could be a sequential scan that stays one as the table grows: every
	 * hot-path statement is meant for an index (or a TID) scan, so plan
	 * them with sequential scans off.  Bitmap scans and sorts are off too:
	 * made after ANALYZE saw a drained queue (a few rows, a bloated
	 * index), a plan fetched every waiting job of the queue with a bitmap
	 * scan and sorted them instead of reading the pull index in order, at
	 * 40-100 ms a pull until the next ANALYZE.  An error resets the
	 * settings with the transaction.
	 */
	replan = plan->generic &&
		(!plan->planned || !SPI_plan_is_valid(TaskqGetPlan(plan)));
	if (replan)
	{
		nest = NewGUCNestLevel();
		(void) set_config_option("enable_seqscan", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_sort", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		/*
		 * And no JIT: a scan that has no other way (a small table without a
		 * usable index) keeps the cost that disables it, which would pass
		 * jit_above_cost and compile the plan at every execution.
		 */
		(void) set_config_option("jit", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	}
	taskq_statement_depth++;
	PG_TRY();
	{
		rc = SPI_execute_plan(TaskqGetPlan(plan), values, nulls, read_only, count);
	}
	PG_FINALLY();
	{
		taskq_statement_depth--;
	}
	PG_END_TRY();
	if (replan)
	{
		AtEOXact_GUC(true, nest);
		plan->planned = true;
	}
	if (rc < 0)
		elog(ERROR, "taskq: SPI_execute_plan failed (%s) for: %s",
			 SPI_result_code_string(rc), plan->sql);
	if (rc == SPI_OK_INSERT_RETURNING && SPI_processed > 0 && taskq_moved_hook &&
		strcmp(NameStr(TupleDescAttr(SPI_tuptable->tupdesc,
									 SPI_tuptable->tupdesc->natts - 1)->attname),
			   TASKQ_FINISH_COLUMN) == 0)
		taskq_moved_hook();
	return (int) SPI_processed;
}

/*
 * The row a move writes: the expression of each column of the target
 * table, in table order, over "m" (the deleted row), sets replacing some.
 * With cast, each set expression is cast to its column's type in
 * to_table, for a SELECT list (which has no target column to coerce to).
 */
static void
append_move_row(StringInfo buf, const TaskqColumnSet *sets, bool cast,
				const char *to_table)
{
	Oid			relid = InvalidOid;

	if (cast)
		relid = TaskqTableOid(to_table);
	for (int i = 0; i < lengthof(job_columns); i++)
	{
		const char *expr = NULL;

		for (const TaskqColumnSet *s = sets; s->column != NULL; s++)
			if (strcmp(s->column, job_columns[i]) == 0)
				expr = s->expr;
		if (i > 0)
			appendStringInfoString(buf, ", ");
		if (expr && cast)
			appendStringInfo(buf, "CAST((%s) AS %s)", expr,
							 format_type_be_qualified(get_atttype(relid, i + 1)));
		else if (expr)
			appendStringInfoString(buf, expr);
		else
			appendStringInfo(buf, "m.%s", job_columns[i]);
	}
}

/* whether a move into to_table has consequences to act on (dagfinish.c) */
static void
append_move_finish(StringInfo buf, const char *to_table)
{
	appendStringInfo(buf, "CASE WHEN has_children OR pending_parents > 0"
					 " OR metadata ? 'reply_to'%s THEN id END AS " TASKQ_FINISH_COLUMN,
					 strcmp(to_table, "finished_jobs") == 0 ?
					 " OR metadata ? 'follow_ups'" : "");
}

/*
 * Build the statement that moves jobs from one table to another in one
 * step: DELETE ... RETURNING feeding INSERT ... SELECT.
 *
 * The deleted rows are visible as "m" (table alias "j" inside the DELETE);
 * returning is what the statement returns; a move into finished_jobs or
 * dead_jobs returns one more column, last, for TaskqFinishMoved.
 * sets replaces some columns by expressions over m.  using_clause may be
 * NULL; when given, its columns (alias "i") come out next to j.*, so sets
 * can use them through "m".  The text is made once per plan, in
 * TopMemoryContext.
 *
 * With select set (a move into finished_jobs or dead_jobs only), the
 * statement deletes the same rows but only returns: returning, the
 * column for TaskqFinishMoved, then the row to write, which
 * TaskqExecuteMove writes without a statement.
 */
char *
TaskqMoveSql(const char *from_table, const char *to_table,
			 const char *using_clause, const char *where_clause,
			 const TaskqColumnSet *sets, const char *returning, bool select)
{
	StringInfoData buf;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	bool		history = strcmp(to_table, "finished_jobs") == 0 ||
		strcmp(to_table, "dead_jobs") == 0;

	Assert(history || !select);
	initStringInfo(&buf);
	appendStringInfo(&buf, "WITH m AS (DELETE FROM taskq.%s j", from_table);
	if (using_clause)
		appendStringInfo(&buf, " USING %s", using_clause);
	appendStringInfo(&buf, " WHERE %s RETURNING j.*", where_clause);
	if (using_clause)
		appendStringInfoString(&buf, ", i.*");
	appendStringInfoString(&buf, ") ");
	if (select)
	{
		appendStringInfo(&buf, "SELECT %s%s", returning ? returning : "",
						 returning ? ", " : "");
		append_move_finish(&buf, to_table);
		appendStringInfoString(&buf, ", ");
		append_move_row(&buf, sets, true, to_table);
		appendStringInfoString(&buf, " FROM m");
		MemoryContextSwitchTo(old);
		return buf.data;
	}
	appendStringInfo(&buf, "INSERT INTO taskq.%s (", to_table);
	for (int i = 0; i < lengthof(job_columns); i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", job_columns[i]);
	appendStringInfoString(&buf, ") SELECT ");
	append_move_row(&buf, sets, false, to_table);
	appendStringInfoString(&buf, " FROM m");
	if (history)
	{
		appendStringInfo(&buf, " RETURNING %s%s", returning ? returning : "",
						 returning ? ", " : "");
		append_move_finish(&buf, to_table);
	}
	else if (returning)
		appendStringInfo(&buf, " RETURNING %s", returning);
	MemoryContextSwitchTo(old);
	return buf.data;
}

/*
 * Run a move into finished_jobs or dead_jobs: select_plan (TaskqMoveSql
 * with select) deletes the rows, which are then written into to_table
 * without a statement (rowinsert.c), as COPY writes; or, when to_table
 * has triggers (or has been changed), insert_plan, the same move as one
 * statement.  Either way SPI_tuptable is then the statement's, returning
 * first and the column for TaskqFinishMoved among the others, whose hook
 * has run.  Returns the number of jobs moved.
 */
int
TaskqExecuteMove(TaskqPlan *select_plan, TaskqPlan *insert_plan,
				 const char *to_table, Datum *values, const bool *isnull)
{
	Relation	rel = table_open(TaskqTableOid(to_table), RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	int			n;

	if (!TaskqCanInsertRows(rel) || !TaskqIsJobTable(rel))
	{
		table_close(rel, NoLock);
		return TaskqExecute(insert_plan, values, isnull, false, 0);
	}

	n = TaskqExecute(select_plan, values, isnull, false, 0);
	if (n > 0)
	{
		SPITupleTable *tt = SPI_tuptable;
		int			first = tt->tupdesc->natts - desc->natts;
		TupleTableSlot **slots = palloc(sizeof(TupleTableSlot *) * n);
		TupleDesc	copy = NULL;

		for (int a = 0; a < desc->natts; a++)
			if (TupleDescAttr(tt->tupdesc, first + a)->atttypid !=
				TupleDescAttr(desc, a)->atttypid)
				elog(ERROR, "taskq: a move into taskq.%s returned column %d of type %u, not %u",
					 to_table, a + 1, TupleDescAttr(tt->tupdesc, first + a)->atttypid,
					 TupleDescAttr(desc, a)->atttypid);
		for (int i = 0; i < n; i++)
		{
			slots[i] = TaskqRowSlot(rel, n, &copy);
			for (int a = 0; a < desc->natts; a++)
				slots[i]->tts_values[a] = SPI_getbinval(tt->vals[i], tt->tupdesc,
														first + a + 1,
														&slots[i]->tts_isnull[a]);
			ExecStoreVirtualTuple(slots[i]);
		}
		TaskqInsertRows(rel, slots, n);
		TaskqDropRowSlots(slots, n, copy);
		if (taskq_moved_hook)
			taskq_moved_hook();
	}
	table_close(rel, NoLock);
	return n;
}

/*
 * The error for an unknown job id, also given for a job the caller may not
 * see (TaskqRequireJobPrivilege), so that the two cannot be told apart.
 */
void
TaskqRaiseJobNotFound(Datum id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("job \"%s\" does not exist", TaskqUuidText(id))));
}

/*
 * A call that acts on an active job found nothing to act on: say why.
 *
 * The job does not exist, or the caller's lease is not the job's current
 * one (it expired and the job was delivered again, or it finished), or the
 * job is not active.  Never returns.  The lookup takes a fresh snapshot
 * (not read-only), so it sees the change that made the caller's statement
 * find nothing, even when that statement had to wait for it.
 */
void
TaskqRaiseJobConflict(Datum id, bool lease_given, Datum lease)
{
	static TaskqPlan plan = {
		"SELECT state::text, lease FROM taskq.all_jobs WHERE id = $1",
		1, {UUIDOID}
	};
	Datum		values[1] = {id};
	char	   *state;
	bool		isnull;
	Datum		cur;

	if (TaskqExecute(&plan, values, NULL, false, 1) == 0)
		TaskqRaiseJobNotFound(id);

	state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	cur = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
						&isnull);
	if (lease_given &&
		(isnull || memcmp(DatumGetUUIDP(cur), DatumGetUUIDP(lease),
						  UUID_LEN) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lease %s is not the current lease of job \"%s\"",
						TaskqUuidText(lease), TaskqUuidText(id)),
				 errdetail("The job is now in state \"%s\"; the lease expired or the job finished.",
						   state),
				 errhint("Pull the job again to obtain a current lease.")));

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("job \"%s\" is not active", TaskqUuidText(id)),
			 errdetail("The job is in state \"%s\".", state)));
}

/*
 * Cut a text to at most maxbytes bytes, on a character boundary.
 */
text *
TaskqClipText(text *t, int maxbytes)
{
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len <= maxbytes)
		return t;
	len = pg_mbcliplen(VARDATA_ANY(t), len, maxbytes);
	return cstring_to_text_with_len(VARDATA_ANY(t), len);
}

/*
 * The stored size of a jsonb value in bytes, which is what the size
 * limits of data, result and metadata measure.
 */
int
TaskqJsonbSize(Jsonb *jb)
{
	return VARSIZE(jb) - VARHDRSZ;
}

/*
 * A queue name is 1 to TASKQ_MAX_QUEUE_NAME bytes.
 */
void
TaskqCheckQueueName(text *queue)
{
	int			len = VARSIZE_ANY_EXHDR(queue);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue name must not be empty")));
	if (len > TASKQ_MAX_QUEUE_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("queue name is too long"),
				 errdetail("The name is %d bytes; the limit is %d bytes.",
						   len, TASKQ_MAX_QUEUE_NAME)));
}

/*
 * Error unless argument n of a SQL-callable function is given.
 */
void
TaskqRequireArg(FunctionCallInfo fcinfo, int n, const char *argname)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", argname)));
}

/*
 * The first column of the rows the last statement returned, job ids, as
 * a uuid[] Datum.
 */
Datum
TaskqReturnedIds(int n)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(n, 1));
	bool		isnull;

	for (int i = 0; i < n; i++)
		ids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
	return PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false,
										   TYPALIGN_CHAR));
}

/*
 * An array of uuids as a uuid[] Datum.
 */
Datum
TaskqUuidArray(const pg_uuid_t *ids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = UUIDPGetDatum(&ids[i]);
	return PointerGetDatum(construct_array(elems, n, UUIDOID, UUID_LEN,
										   false, TYPALIGN_CHAR));
}

/* a text from a string JsonbValue */
text *
TaskqJbvText(const JsonbValue *v)
{
	return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
}

/* a Jsonb from a JsonbValue, NULL for JSON null */
Jsonb *
TaskqJbvJsonb(JsonbValue *v)
{
	return v->type == jbvNull ? NULL : JsonbValueToJsonb(v);
}

/* a key of an object container, or NULL */
JsonbValue *
TaskqJsonbKey(JsonbContainer *c, const char *key)
{
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

/* the JsonbValue of a whole jsonb document, for pushJsonbValue */
static void
jsonb_as_value(Jsonb *jb, JsonbValue *v)
{
	v->type = jbvBinary;
	v->val.binary.data = &jb->root;
	v->val.binary.len = VARSIZE(jb) - VARHDRSZ;
}

/* add a key to an object being built */
static void
push_key_name(JsonbParseState **st, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	(void) pushJsonbValue(st, WJB_KEY, &k);
}

/* add "key": value (a jsonb document, or JSON null for NULL) to an object */
void
TaskqJsonbPushKey(JsonbParseState **st, const char *key, Jsonb *value)
{
	JsonbValue	v;

	push_key_name(st, key);
	if (value == NULL)
		v.type = jbvNull;
	else
		jsonb_as_value(value, &v);
	(void) pushJsonbValue(st, WJB_VALUE, &v);
}

/* add "key": "string" to an object */
void
TaskqJsonbPushString(JsonbParseState **st, const char *key, const char *s)
{
	JsonbValue	v;

	push_key_name(st, key);
	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	(void) pushJsonbValue(st, WJB_VALUE, &v);
}

/* a string as a jsonb document */
Jsonb *
TaskqStringJsonb(text *t)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = VARDATA_ANY(t);
	v.val.string.len = VARSIZE_ANY_EXHDR(t);
	return JsonbValueToJsonb(&v);
}

/*
 * Start running taskq's statements for a SQL-callable function as the
 * extension's owner: SPI_connect, the owner's identity and search_path
 * pinned to pg_catalog.  The
 * caller's identity stays available through GetOuterUserId.  An error
 * undoes all three (transaction or subtransaction abort).
 */
void
TaskqSwitchToOwner(TaskqContext *cxt)
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

	TaskqTuneMalloc();
	SPI_connect();
	GetUserIdAndSecContext(&cxt->user, &cxt->sec_context);
	SetUserIdAndSecContext(owner, cxt->sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PushOverrideSearchPath(&pinned);
}

/* end what TaskqSwitchToOwner started: back to the caller */
void
TaskqSwitchBack(TaskqContext *cxt)
{
	PopOverrideSearchPath();
	SetUserIdAndSecContext(cxt->user, cxt->sec_context);
	SPI_finish();
}

/* a queue privilege's name to its bit (TASKQ_PRIV_*); error for an unknown one */
int
TaskqPrivilegeBit(const char *name)
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

/* a privilege bit's name, for messages */
const char *
TaskqPrivilegeName(int need)
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
