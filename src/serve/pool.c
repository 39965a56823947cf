/*-------------------------------------------------------------------------
 *
 * pool.c
 *		taskq-serve's pool of libpq connections (see serve.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <pthread.h>
#include <time.h>

#include "serve.h"

#define POOL_WAIT_MS		10000	/* longest wait for a free connection */

static PoolConn *pool;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;

/*
 * A new connection for the pool (or the event stream's own), or NULL (the
 * reason in *err, malloc'd)
 */
PGconn *
pool_connect(char **err)
{
	/* UTF-8 whatever the environment says: responses are UTF-8 JSON */
	PGconn	   *conn = connect_params("taskq serve", "UTF8", err);

	if (conn == NULL)
	{
		if (*err == NULL)
			*err = pg_strdup("out of memory");
		return NULL;
	}

	/*
	 * The connection serves the requests of several roles: a search_path
	 * of pg_catalog only, so that no role can put a function of its own in
	 * the way of another role's statements.
	 */
	{
		char		ms[32];
		const char *params[1] = {ms};
		PGresult   *res;

		snprintf(ms, sizeof(ms), "%d", config.statement_timeout_ms);
		res = PQexecParams(conn,
						   "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false),"
						   " CASE WHEN $1 <> '0'"
						   " THEN pg_catalog.set_config('statement_timeout', $1, false) END",
						   1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			*err = connection_error(conn);
			PQclear(res);
			PQfinish(conn);
			return NULL;
		}
		PQclear(res);
	}
	return conn;
}

/* forget a pool slot's connection (it is reconnected when next taken) */
static void
pool_drop(PoolConn *pc)
{
	if (pc->cancel)
		PQfreeCancel(pc->cancel);
	pc->cancel = NULL;
	if (pc->conn)
		PQfinish(pc->conn);
	pc->conn = NULL;
}

/* (re)connect a pool slot the caller holds; false with *err set on failure */
bool
pool_reconnect(PoolConn *pc, char **err)
{
	PGconn	   *conn;
	PGcancel   *cancel;

	pthread_mutex_lock(&pool_lock);
	pool_drop(pc);
	pthread_mutex_unlock(&pool_lock);
	conn = pool_connect(err);
	if (conn == NULL)
		return false;
	cancel = PQgetCancel(conn);
	pthread_mutex_lock(&pool_lock);
	pc->conn = conn;
	pc->cancel = cancel;
	pthread_mutex_unlock(&pool_lock);
	return true;
}

/*
 * Take a connection from the pool, waiting up to POOL_WAIT_MS for one to
 * be free, and connect it if it has none.  NULL with *code (a SQLSTATE)
 * and *err set when there is none.
 */
PoolConn *
pool_acquire(const char **code, char **err)
{
	PoolConn   *pc = NULL;
	struct timespec deadline;
	int			i;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += POOL_WAIT_MS / 1000;

	pthread_mutex_lock(&pool_lock);
	for (;;)
	{
		for (i = 0; i < config.pool_size; i++)
			if (!pool[i].busy)
			{
				pc = &pool[i];
				break;
			}
		if (pc || pthread_cond_timedwait(&pool_cond, &pool_lock, &deadline) != 0)
			break;
	}
	if (pc)
		pc->busy = true;
	pthread_mutex_unlock(&pool_lock);

	if (pc == NULL)
	{
		*code = "53300";		/* too_many_connections */
		*err = psprintf("no database connection free after %d ms", POOL_WAIT_MS);
		return NULL;
	}
	if (pc->conn == NULL || PQstatus(pc->conn) != CONNECTION_OK)
	{
		char	   *why = NULL;

		if (!pool_reconnect(pc, &why))
		{
			log_message("could not connect to the database: %s", why);
			*code = "08006";	/* connection_failure */
			*err = psprintf("could not connect to the database: %s", why);
			free(why);
			pool_release(pc);
			return NULL;
		}
	}
	return pc;
}

/*
 * Give a connection back, out of any transaction; one that is broken or
 * stuck in a transaction is dropped (also a slot left without one).
 */
void
pool_release(PoolConn *pc)
{
	bool		drop = PQstatus(pc->conn) != CONNECTION_OK;

	if (!drop && PQtransactionStatus(pc->conn) != PQTRANS_IDLE)
	{
		PQclear(PQexec(pc->conn, "ROLLBACK"));
		drop = PQtransactionStatus(pc->conn) != PQTRANS_IDLE;
	}
	pthread_mutex_lock(&pool_lock);
	if (drop)
		pool_drop(pc);
	pc->busy = false;
	pthread_cond_signal(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
}

/*
 * Check at start-up what every request needs: the extension with its API
 * tokens, and the right to run the token look-up.
 */
static void
check_database(PGconn *conn)
{
	PGresult   *res;

	res = PQexec(conn,
				 "SELECT p.oid IS NOT NULL,"
				 " p.oid IS NOT NULL"
				 " AND pg_catalog.has_schema_privilege(p.pronamespace, 'USAGE')"
				 " AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE'),"
				 " current_user, pg_catalog.quote_ident(current_user)"
				 " FROM (SELECT) AS one"
				 " LEFT JOIN pg_catalog.pg_proc p"
				 " ON p.proname = '_api_token_role'"
				 " AND p.pronamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n"
				 " WHERE n.nspname = 'taskq')");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		report_result_error(res, conn);
		exit(EXIT_ERROR);
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		fatal("extension taskq (with API tokens) is not installed in database \"%s\"",
			  PQdb(conn));
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
		fatal("role \"%s\" may not look up API tokens\n"
			  "HINT: GRANT USAGE ON SCHEMA taskq TO %s; "
			  "GRANT EXECUTE ON FUNCTION taskq._api_token_role(text) TO %s;",
			  PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 3));
	PQclear(res);
}

/*
 * Open the pool: every connection now, so that a wrong conninfo fails here,
 * not per request, and check the database with the first.
 */
void
pool_open(void)
{
	int			i;

	pool = pg_malloc0(sizeof(PoolConn) * config.pool_size);
	for (i = 0; i < config.pool_size; i++)
	{
		char	   *why = NULL;

		pool[i].conn = pool_connect(&why);
		if (pool[i].conn == NULL)
			fatal("could not connect to the database: %s", why);
		pool[i].cancel = PQgetCancel(pool[i].conn);
	}
	check_database(pool[0].conn);
}

/* cancel the queries running on the pool's connections (forced stop) */
void
pool_cancel_queries(void)
{
	int			i;

	pthread_mutex_lock(&pool_lock);
	for (i = 0; i < config.pool_size; i++)
	{
		char		errbuf[256];

		if (pool[i].busy && pool[i].cancel)
			(void) PQcancel(pool[i].cancel, errbuf, sizeof(errbuf));
	}
	pthread_mutex_unlock(&pool_lock);
}

/* close every connection of the pool */
void
pool_close(void)
{
	int			i;

	for (i = 0; i < config.pool_size; i++)
		pool_drop(&pool[i]);
}
