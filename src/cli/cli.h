/*-------------------------------------------------------------------------
 *
 * cli.h
 *		Declarations shared by the files of the taskq command-line tool.
 *
 * The tool is a plain libpq client: main.c parses the command line and
 * connects, output.c prints query results as aligned tables or JSON,
 * commands.c holds the inspection and admin subcommands and worker.c the
 * worker that runs a command per job.  The HTTP gateway, "taskq serve", is
 * a program of its own, taskq-serve (src/serve), which main.c runs in the
 * tool's place.  What every taskq program needs (messages, the connection, option values, JSON
 * strings, the clock) is in src/fe (fe.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TASKQ_CLI_H
#define TASKQ_CLI_H

#include "fe.h"

/* main.c */
extern PGconn *connect_db(bool exit_on_failure);
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

/* main.c: runs taskq-serve (src/serve) */
extern int	cmd_serve(int argc, char **argv);

#endif							/* TASKQ_CLI_H */
