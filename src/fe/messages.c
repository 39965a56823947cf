/*-------------------------------------------------------------------------
 *
 * messages.c
 *		Errors, usage errors and log lines of taskq's front-end programs,
 *		each starting with the program's name (progname).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <stdarg.h>
#include <time.h>

#include "fe.h"

/*
 * usage_error: report a command-line mistake and exit with status 2; cmd,
 * when not NULL, is the subcommand whose --help to suggest.
 */
void
usage_error(const char *cmd, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry \"%s%s%s --help\" for more information.\n",
			progname, cmd ? " " : "", cmd ? cmd : "");
	exit(EXIT_USAGE);
}

/*
 * fatal: report an error and exit with status 1.
 */
void
fatal(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: error: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_ERROR);
}

/*
 * log_message: one line on stderr, prefixed with the time.  The line is
 * written whole even when several threads log at once (taskq-serve).
 */
void
log_message(const char *fmt,...)
{
	va_list		ap;
	struct timespec ts;
	struct tm	tm;
	char		buf[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
	flockfile(stderr);
	fprintf(stderr, "%s.%03d %s: ", buf, (int) (ts.tv_nsec / 1000000),
			progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	funlockfile(stderr);
}

/*
 * connection_error: libpq's message for conn without its trailing
 * newlines (malloc'd).
 */
char *
connection_error(PGconn *conn)
{
	char	   *msg = pg_strdup(PQerrorMessage(conn));
	size_t		len = strlen(msg);

	while (len > 0 && msg[len - 1] == '\n')
		msg[--len] = '\0';
	return msg;
}

/*
 * res_sqlstate: the SQLSTATE of res, "" when it has none.
 */
const char *
res_sqlstate(const PGresult *res)
{
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return s ? s : "";
}

/*
 * report_result_error: print a failed query's message, SQLSTATE, detail
 * and hint to stderr.
 */
void
report_result_error(const PGresult *res, PGconn *conn)
{
	const char *msg = NULL;
	const char *sqlstate = NULL;
	const char *detail = NULL;
	const char *hint = NULL;

	if (res)
	{
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	}
	if (msg == NULL)
	{
		char	   *m = connection_error(conn);

		fprintf(stderr, "%s: error: %s\n", progname, m);
		free(m);
		return;
	}
	fprintf(stderr, "%s: error: %s (SQLSTATE %s)\n", progname, msg,
			sqlstate ? sqlstate : "?????");
	if (detail)
		fprintf(stderr, "DETAIL: %s\n", detail);
	if (hint)
		fprintf(stderr, "HINT: %s\n", hint);
}
