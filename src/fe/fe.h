/*-------------------------------------------------------------------------
 *
 * fe.h
 *		What taskq's two front-end programs share: the command-line tool
 *		(src/cli, taskq) and the HTTP gateway (src/serve, taskq-serve).
 *
 * Each program compiles these files into itself (fe.mk): messages.c
 * (errors, usage errors and log lines, prefixed with the program's name),
 * connect.c (the options every program takes and the libpq connection),
 * options.c (integer option values), json.c (JSON strings and UTF-8),
 * clock.c (a monotonic clock) and prepared.c (statements prepared once
 * per connection).
 *
 * A program defines progname, the name its messages start with.
 * TASKQ_VERSION, the extension's version, comes from fe.mk.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TASKQ_FE_H
#define TASKQ_FE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "libpq-fe.h"
#include "pqexpbuffer.h"

/* exit statuses that scripts can rely on */
#define EXIT_OK		0
#define EXIT_ERROR	1
#define EXIT_USAGE	2

/*
 * The HTTP gateway's program, and its argv[0] when the command-line tool
 * runs it for "taskq serve" (it then speaks as that subcommand)
 */
#define SERVE_PROGRAM		"taskq-serve"
#define SERVE_AS_SUBCOMMAND	"taskq serve"

/* defined by each program: the name its messages start with */
extern const char *progname;

/* messages.c */
extern void usage_error(const char *cmd, const char *fmt,...)
			pg_attribute_printf(2, 3) pg_attribute_noreturn();
extern void fatal(const char *fmt,...) pg_attribute_printf(1, 2) pg_attribute_noreturn();
extern void log_message(const char *fmt,...) pg_attribute_printf(1, 2);
extern char *connection_error(PGconn *conn);
extern const char *res_sqlstate(const PGresult *res);
extern void report_result_error(const PGresult *res, PGconn *conn);

/* connect.c: options every subcommand accepts */
typedef struct CommonOptions
{
	const char *dbname;			/* -d/--dbname: conninfo string or URI */
	bool		json;			/* --json */
} CommonOptions;

extern CommonOptions common;

/*
 * The start of a getopt_long table of a subcommand: the options of
 * common_option, and -h/--help
 */
#define COMMON_LONG_OPTIONS \
	{"dbname", required_argument, NULL, 'd'}, \
	{"json", no_argument, NULL, 'J'}, \
	{"help", no_argument, NULL, 'h'}
#define NUM_COMMON_OPTIONS	3

extern bool common_option(int c, const char *arg);
extern PGconn *connect_params(const char *appname, const char *client_encoding,
							  char **err);

/* options.c */
extern int	parse_int_option(const char *cmd, const char *what, const char *arg,
							 int min, int max);

/* json.c */
extern int	utf8_char_length(const unsigned char *s, size_t avail);
extern void append_json_string(PQExpBuffer buf, const char *s);

/* prepared.c */
extern PGresult *exec_prepared(PGconn *conn, const char *sql, int nparams,
							   const char *const *params);
extern int	send_prepared(PGconn *conn, const char *sql, int nparams,
						  const char *const *params);
extern bool prepared_missing(PGconn *conn, const PGresult *res);

/* clock.c */
extern int64_t now_ms(void);
extern double now_seconds(void);

#endif							/* TASKQ_FE_H */
