/*-------------------------------------------------------------------------
 *
 * connect.c
 *		The options every taskq program and subcommand takes (-d, --json)
 *		and the libpq connection they describe.
 *
 * The connection follows libpq's conventions: -d/--dbname takes a
 * conninfo string or a URI (expanded by PQconnectdbParams), and whatever
 * it does not say comes from the PG* environment variables and the
 * service and password files.  Nothing here ever prints a password:
 * connection failures carry libpq's message, which never contains it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "fe.h"

CommonOptions common;

/*
 * common_option: handle an option every subcommand accepts; false if c is
 * not one of them.  Option codes: 'd' for --dbname, 'J' for --json.
 */
bool
common_option(int c, const char *arg)
{
	switch (c)
	{
		case 'd':
			common.dbname = arg;
			return true;
		case 'J':
			common.json = true;
			return true;
		default:
			return false;
	}
}

/*
 * connect_params: connect with -d and the PG* environment, as appname, in
 * client_encoding when not NULL.  On failure return NULL with *err the
 * reason (malloc'd, without its trailing newlines), or NULL when libpq ran
 * out of memory.
 */
PGconn *
connect_params(const char *appname, const char *client_encoding, char **err)
{
	const char *keywords[4];
	const char *values[4];
	PGconn	   *conn;
	int			n = 0;

	*err = NULL;
	if (common.dbname)
	{
		keywords[n] = "dbname";
		values[n] = common.dbname;
		n++;
	}
	keywords[n] = "fallback_application_name";
	values[n] = appname;
	n++;
	/* after dbname, so that it wins */
	if (client_encoding)
	{
		keywords[n] = "client_encoding";
		values[n] = client_encoding;
		n++;
	}
	keywords[n] = NULL;
	values[n] = NULL;

	conn = PQconnectdbParams(keywords, values, 1);
	if (conn == NULL)
		return NULL;
	if (PQstatus(conn) != CONNECTION_OK)
	{
		*err = connection_error(conn);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}
