/*-------------------------------------------------------------------------
 *
 * prepared.c
 *		Running a program's statements prepared: each is prepared at its
 *		first run on a connection and executed by name from then on.
 *
 * The worker's statements run once per job or more.  Parsed and planned
 * again at every run (an unnamed statement), a pull with acks cost the
 * server about a quarter more: pgbench, 8 clients, 4,000 jobs/s unnamed
 * against 5,350 prepared.
 *
 * A statement's name is made from a hash of its text, so that a name
 * always means the same statement.  Through a pooler in transaction mode
 * (PgBouncer before 1.21 does not follow prepared statements), the
 * server connection that runs a statement may not be the one it was
 * prepared on: a statement of the same name there is the same statement
 * (prepared by another client of the same version), and a missing one
 * (26000, reported before anything ran) makes the connection run its
 * statements unnamed from then on, starting with that one.  Only a
 * statement run outside a transaction block is prepared: there, that
 * error ends nothing but its own implicit transaction, and the statement
 * can run again.
 *
 * What is prepared on a connection is kept with it (libpq instance data
 * of an event procedure), and forgotten when it is reset or closed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <inttypes.h>

#include "libpq-events.h"

#include "fe.h"

/* statements kept per connection; the others run unnamed */
#define MAX_PREPARED 32

typedef struct Prepared
{
	bool		unnamed;		/* run every statement unnamed */
	int			n;
	uint64_t	hashes[MAX_PREPARED];	/* of the statements prepared */
} Prepared;

static int
prepared_event(PGEventId id, void *info, void *pass)
{
	(void) pass;
	if (id == PGEVT_CONNRESET)
	{
		/* a new session: nothing is prepared there */
		Prepared   *p = PQinstanceData(((PGEventConnReset *) info)->conn,
									   prepared_event);

		if (p != NULL)
			p->n = 0;
	}
	else if (id == PGEVT_CONNDESTROY)
		free(PQinstanceData(((PGEventConnDestroy *) info)->conn, prepared_event));
	return 1;
}

/* conn's record of what is prepared there; NULL when it cannot be kept */
static Prepared *
prepared_of(PGconn *conn)
{
	Prepared   *p = PQinstanceData(conn, prepared_event);

	if (p != NULL)
		return p;
	p = calloc(1, sizeof(Prepared));
	if (p == NULL)
		return NULL;
	if (!PQregisterEventProc(conn, prepared_event, "taskq prepared statements", NULL))
	{
		free(p);
		return NULL;
	}
	if (!PQsetInstanceData(conn, prepared_event, p))
	{
		free(p);
		return NULL;
	}
	return p;
}

/* FNV-1a, 64 bits */
static uint64_t
text_hash(const char *s)
{
	uint64_t	h = UINT64_C(14695981039346656037);

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * UINT64_C(1099511628211);
	return h;
}

/*
 * The name (in name, 32 bytes) under which sql is prepared on conn,
 * prepared now if need be; NULL when it is to run unnamed: in a
 * transaction block, on a connection that runs its statements so, when
 * the connection keeps the most it can, or when the statement could not
 * be prepared (its unnamed run reports why).
 */
static const char *
prepared_name(PGconn *conn, const char *sql, int nparams, char *name)
{
	Prepared   *p;
	uint64_t	h;
	PGresult   *res;
	bool		ok;

	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		return NULL;
	p = prepared_of(conn);
	if (p == NULL || p->unnamed)
		return NULL;
	h = text_hash(sql);
	snprintf(name, 32, "taskq_%016" PRIx64, h);
	for (int i = 0; i < p->n; i++)
		if (p->hashes[i] == h)
			return name;
	if (p->n == MAX_PREPARED)
		return NULL;
	res = PQprepare(conn, name, sql, nparams, NULL);
	/* 42P05: this name, so this statement, is prepared there already */
	ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
		strcmp(res_sqlstate(res), "42P05") == 0;
	PQclear(res);
	if (!ok)
		return NULL;
	p->hashes[p->n++] = h;
	return name;
}

/*
 * PQexecParams (text parameters and results) of sql on conn, prepared
 * there at its first run.
 */
PGresult *
exec_prepared(PGconn *conn, const char *sql, int nparams,
			  const char *const *params)
{
	char		name[32];
	PGresult   *res;

	if (prepared_name(conn, sql, nparams, name) == NULL)
		return PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	res = PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
	if (prepared_missing(conn, res))
	{
		PQclear(res);
		res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	}
	return res;
}

/*
 * PQsendQueryParams of sql on conn (idle), prepared there at its first
 * run (synchronously).  Pass its result to prepared_missing: when that
 * says so, nothing ran, and the statement is to be sent again.
 */
int
send_prepared(PGconn *conn, const char *sql, int nparams,
			  const char *const *params)
{
	char		name[32];

	if (prepared_name(conn, sql, nparams, name) == NULL)
		return PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	return PQsendQueryPrepared(conn, name, nparams, params, NULL, NULL, 0);
}

/*
 * Whether res is the error of a prepared statement missing on the server
 * connection that got it (a pooler's): conn then runs its statements
 * unnamed from now on.
 */
bool
prepared_missing(PGconn *conn, const PGresult *res)
{
	Prepared   *p;

	if (PQresultStatus(res) != PGRES_FATAL_ERROR ||
		strcmp(res_sqlstate(res), "26000") != 0)
		return false;
	p = PQinstanceData(conn, prepared_event);
	if (p == NULL || p->unnamed)
		return false;
	p->unnamed = true;
	return true;
}
