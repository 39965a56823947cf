/*-------------------------------------------------------------------------
 *
 * cli.h
 *		Declarations shared by the files of the taskq command-line tool.
 *
 * The tool is a plain libpq client: main.c parses the command line and
 * connects, output.c prints query results as aligned tables or JSON,
 * commands.c holds the inspection and admin subcommands, worker.c the
 * worker that runs a command per job and serve.c the HTTP gateway.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TASKQ_CLI_H
#define TASKQ_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "libpq-fe.h"

/* exit statuses that scripts can rely on */
#define EXIT_OK		0
#define EXIT_ERROR	1
#define EXIT_USAGE	2

/* options every subcommand accepts */
typedef struct CommonOptions
{
	const char *dbname;			/* -d/--dbname: conninfo string or URI */
	bool		json;			/* --json */
} CommonOptions;

extern CommonOptions common;
extern const char *progname;

/* main.c */
extern void usage_error(const char *cmd, const char *fmt,...)
			pg_attribute_printf(2, 3) pg_attribute_noreturn();
extern void fatal(const char *fmt,...) pg_attribute_printf(1, 2) pg_attribute_noreturn();
extern void log_message(const char *fmt,...) pg_attribute_printf(1, 2);
extern PGconn *connect_params(const char *appname, const char *client_encoding,
							   char **err);
extern PGconn *connect_db(bool exit_on_failure);
extern bool common_option(int c, const char *arg);
extern void report_result_error(const PGresult *res, PGconn *conn);
extern PGresult *run_query(PGconn *conn, const char *sql, int nparams,
						   const char *const *params);

/* output.c */
extern void print_table(const PGresult *res);
extern void print_record(const PGresult *res);
extern void print_json_string(FILE *out, const char *s);
extern void print_rows(PGconn *conn, const char *sql, int nparams,
					   const char *const *params);
extern int	utf8_width(const char *s, int len);

/* commands.c: every subcommand but worker (argv[0] names it) */
extern int	run_command(int argc, char **argv);

/* worker.c */
extern int	cmd_worker(int argc, char **argv);

/* serve.c */
extern int	cmd_serve(int argc, char **argv);

#endif							/* TASKQ_CLI_H */
