/*-------------------------------------------------------------------------
 *
 * main.c
 *		The taskq command-line tool: command-line parsing and the
 *		connection and queries shared by every subcommand.
 *
 * Usage: taskq [-d CONNSTR] [--json] SUBCOMMAND [ARGS...]
 *
 * The connection follows libpq's conventions (see src/fe/connect.c):
 * -d/--dbname takes a conninfo string or a URI, and whatever it does not
 * say comes from the PG* environment variables and the service and
 * password files.
 *
 * Exit statuses: 0 success, 1 an error (a server or SQL error prints its
 * message and SQLSTATE to stderr), 2 a usage error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <getopt.h>
#include <unistd.h>

#include "cli.h"

const char *progname = "taskq";

typedef struct Subcommand
{
	const char *name;
	int			(*fn) (int argc, char **argv);
	const char *summary;
} Subcommand;

static const Subcommand subcommands[] = {
	{"queues", run_command, "list queues with their job counts"},
	{"stats", run_command, "counts and oldest waiting age of a queue"},
	{"peek", run_command, "the jobs the next pulls would deliver"},
	{"get", run_command, "show one job"},
	{"flow", run_command, "show the jobs of a DAG flow"},
	{"dlq", run_command, "list the dead-letter queue of a queue"},
	{"redrive", run_command, "put dead jobs back to waiting"},
	{"purge", run_command, "remove the waiting and delayed jobs of a queue"},
	{"pause", run_command, "stop deliveries from a queue"},
	{"resume", run_command, "resume deliveries from a queue"},
	{"push", run_command, "push a job and print its id"},
	{"webhooks", run_command, "list webhooks"},
	{"watch", run_command, "live view of queue counts and throughput"},
	{"worker", cmd_worker, "run a command for each job of some queues"},
	{"serve", cmd_serve, "serve the SQL API over HTTP (REST and JSON)"},
	{NULL, NULL, NULL}
};

static void
usage(FILE *out)
{
	const Subcommand *sc;

	fprintf(out,
			"%s: inspect taskq queues and run workers\n\n"
			"Usage:\n"
			"  %s [-d CONNSTR] [--json] SUBCOMMAND [ARGS...]\n\n"
			"Subcommands:\n", progname, progname);
	for (sc = subcommands; sc->name; sc++)
		fprintf(out, "  %-10s %s\n", sc->name, sc->summary);
	fprintf(out,
			"\nOptions (accepted before or after the subcommand):\n"
			"  -d, --dbname=CONNSTR  database to connect to (conninfo string or URI);\n"
			"                        PGHOST, PGPORT, PGDATABASE, PGUSER, ... apply too\n"
			"      --json            JSON output for scripts\n"
			"  -h, --help            show help (\"%s SUBCOMMAND --help\" for a subcommand)\n"
			"  -V, --version         show the version\n\n"
			"Exit status: 0 success, 1 error, 2 usage error.\n", progname);
}

/*
 * connect_db: connect with -d and the PG* environment.  On failure either
 * exit with status 1 or, for the worker's reconnection loop, print the
 * reason and return NULL.
 */
PGconn *
connect_db(bool exit_on_failure)
{
	char	   *msg;
	PGconn	   *conn = connect_params("taskq", NULL, &msg);

	if (conn == NULL && msg == NULL)
	{
		if (exit_on_failure)
			fatal("out of memory");
		log_message("could not connect: out of memory");
		return NULL;
	}
	if (conn == NULL)
	{
		if (exit_on_failure)
			fatal("could not connect to the database: %s", msg);
		log_message("could not connect to the database: %s", msg);
		free(msg);
		return NULL;
	}
	return conn;
}

/*
 * run_query: run one statement with text parameters; on error report it
 * and exit with status 1.
 */
PGresult *
run_query(PGconn *conn, const char *sql, int nparams,
		  const char *const *params)
{
	PGresult   *res;

	res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK &&
		PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		report_result_error(res, conn);
		PQclear(res);
		PQfinish(conn);
		exit(EXIT_ERROR);
	}
	return res;
}

/*
 * cmd_serve: "taskq serve" is the program taskq-serve, run in this
 * process's place: the one next to this program (in the directory of the
 * running executable, links resolved), else the first on the PATH.  Its
 * argv[0] SERVE_AS_SUBCOMMAND makes it speak as this subcommand; a -d
 * given before the subcommand goes first, so that one after it still wins.
 */
int
cmd_serve(int argc, char **argv)
{
	char	  **args = pg_malloc0(sizeof(char *) * (argc + 2));
	char		self[MAXPGPATH];
	ssize_t		len;
	int			n = 0;
	int			i;

	args[n++] = pg_strdup(SERVE_AS_SUBCOMMAND);
	if (common.dbname)
		args[n++] = psprintf("--dbname=%s", common.dbname);
	for (i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;

	fflush(NULL);
	len = readlink("/proc/self/exe", self, sizeof(self));
	if (len > 0 && len < (ssize_t) sizeof(self))
	{
		char		path[MAXPGPATH];

		self[len] = '\0';
		get_parent_directory(self);
		join_path_components(path, self, SERVE_PROGRAM);
		if (access(path, X_OK) == 0)
		{
			execv(path, args);
			fatal("could not run \"%s\": %m", path);
		}
	}
	execvp(SERVE_PROGRAM, args);
	fatal("could not run %s (not next to this %s, nor on the PATH): %m",
		  SERVE_PROGRAM, progname);
}

int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	const Subcommand *sc;
	int			c;

	/* "+": stop at the subcommand, which parses the rest */
	while ((c = getopt_long(argc, argv, "+d:hV", long_options, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		switch (c)
		{
			case 'h':
				usage(stdout);
				return EXIT_OK;
			case 'V':
				printf("taskq (taskq command-line tool) %s\n", TASKQ_VERSION);
				return EXIT_OK;
			default:
				usage_error(NULL, "invalid option");
		}
	}
	if (optind >= argc)
		usage_error(NULL, "no subcommand given");
	if (strcmp(argv[optind], "help") == 0)
	{
		usage(stdout);
		return EXIT_OK;
	}
	for (sc = subcommands; sc->name; sc++)
	{
		if (strcmp(sc->name, argv[optind]) == 0)
		{
			char	  **subargv = argv + optind;
			int			subargc = argc - optind;

			optind = 0;			/* glibc: start over with the new argv */
			return sc->fn(subargc, subargv);
		}
	}
	usage_error(NULL, "unknown subcommand \"%s\"", argv[optind]);
}
