/*-------------------------------------------------------------------------
 *
 * commands.c
 *		The inspection and admin subcommands of the taskq tool: queues,
 *		stats, peek, get, flow, dlq, redrive, purge, pause, resume, push,
 *		webhooks and watch.
 *
 * Each one is a thin layer over one of the extension's SQL functions,
 * called with bound parameters (never by pasting arguments into SQL).  A
 * table is printed by default, JSON with --json (see output.c).  Missing
 * objects are errors with status 1: the server's own (an unknown queue
 * raises 42704) or ours for functions that return NULL (get, flow).
 *
 * The subcommands are described by the table "commands" below: name, help,
 * own options, how many positional arguments, and for most of them the
 * query to run and how to print its result.  run_command parses any of
 * them the same way and, unless the subcommand has its own body (redrive,
 * purge, watch), runs its query and prints the result.  The query's
 * parameters are the positional arguments followed by the values of the
 * options that take one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <getopt.h>
#include <signal.h>
#include <unistd.h>

#include "cli.h"

#define COMMON_HELP \
	"\nOptions:\n" \
	"  -d, --dbname=CONNSTR  database (conninfo string or URI; PG* variables apply)\n" \
	"      --json            JSON output\n" \
	"  -h, --help            show this help\n"

#define MAX_OWN_OPTIONS		2	/* a subcommand's own options, at most */
#define MAX_PARAMS			4	/* a query's parameters, at most */
#define OPTION_CODE_BASE	256 /* getopt codes of options with no short form */

/* an option of one subcommand besides the common ones */
typedef struct OwnOption
{
	const char *name;			/* long form */
	char		letter;			/* short form, or 0 for none */
	bool		has_arg;		/* takes a value (else a flag) */
	const char *dflt;			/* value when not given, or NULL */
	void		(*check) (const char *cmd, const char *arg);	/* or NULL */
} OwnOption;

/* how a query's result is printed */
typedef enum OutputKind
{
	OUT_ROWS,					/* print_rows: a table, or a JSON array */
	OUT_VALUE,					/* the first value as is (JSON from the server) */
	OUT_TABLE,					/* print_table */
	OUT_RECORD,					/* print_record */
	OUT_CUSTOM					/* the subcommand's print function */
} OutputKind;

typedef struct Command Command;

/* one run of a subcommand: what its command line said */
typedef struct Invocation
{
	const Command *cmd;
	char	  **pos;			/* the positional arguments */
	int			npos;
	const char *opt[MAX_OWN_OPTIONS];	/* own options' values ("true" for
										 * a flag given), defaults applied */
	const char *params[MAX_PARAMS]; /* the query's parameters */
	int			nparams;
} Invocation;

typedef void (*PrintFn) (PGconn *conn, PGresult *res, const Invocation *inv);

struct Command
{
	const char *name;
	const char *help;			/* --help text, before COMMON_HELP */
	OwnOption	options[MAX_OWN_OPTIONS + 1];	/* ends with a NULL name */
	const char *args;			/* named by "missing argument: ...", or NULL */
	int			min_args;		/* positional arguments, at least */
	int			max_args;		/* and at most (-1: any number) */
	const char *sql;			/* the query (NULL: the printer runs its own) */
	const char *table_sql;		/* without --json, if not the same */
	OutputKind	json_out;		/* printing with --json */
	OutputKind	table_out;		/* and without */
	PrintFn		print;			/* for OUT_CUSTOM */
	const char *not_found;		/* error when the result is NULL or empty,
								 * formatted with the first parameter */
	int			(*run) (Invocation *inv);	/* own body instead, or NULL */
};

static void check_count(const char *cmd, const char *arg);
static void check_iterations(const char *cmd, const char *arg);
static void check_interval(const char *cmd, const char *arg);
static void print_flow_table(PGconn *conn, PGresult *res, const Invocation *inv);
static void print_paused(PGconn *conn, PGresult *res, const Invocation *inv);
static void print_push_id(PGconn *conn, PGresult *res, const Invocation *inv);
static void print_webhooks(PGconn *conn, PGresult *res, const Invocation *inv);
static int	run_redrive(Invocation *inv);
static int	run_purge(Invocation *inv);
static int	run_watch(Invocation *inv);

/*
 * The flow-control limits of a queue in a table cell, from the "limits"
 * object of stats() or queues() (SQL expression L): "concurrency=20
 * group_concurrency=5 rate_limit=100/60000ms", '' without limits.
 */
#define LIMITS_TEXT(L) \
	"concat_ws(' ', 'concurrency=' || ((" L ")->>'concurrency'), " \
	"'group_concurrency=' || ((" L ")->>'group_concurrency'), " \
	"'rate_limit=' || ((" L ")#>>'{rate_limit,limit}') || '/' || " \
	"((" L ")#>>'{rate_limit,period_ms}') || 'ms', " \
	"'group_rate_limit=' || ((" L ")#>>'{group_rate_limit,limit}') || '/' || " \
	"((" L ")#>>'{group_rate_limit,period_ms}') || 'ms')"

static const Command commands[] = {
	{
		.name = "queues",
		.help = "List the queues with their job counts per state and, for queues with\n"
		"flow-control limits, the limits and the waiting jobs they hold back.\n\n"
		"Usage:\n  taskq queues [OPTIONS]\n",
		.sql = "SELECT * FROM taskq.queues() ORDER BY name",
		.table_sql = "SELECT name, paused, waiting, delayed, blocked, active, completed, "
		"dlq, cancelled, throttled, " LIMITS_TEXT("limits") " AS limits "
		"FROM taskq.queues() ORDER BY name",
		.json_out = OUT_ROWS, .table_out = OUT_ROWS,
	},
	{
		.name = "stats",
		.help = "Show a queue's counts per state, the age of its oldest runnable job and,\n"
		"for a queue with flow-control limits, the limits and the jobs they hold back.\n\n"
		"Usage:\n  taskq stats QUEUE [OPTIONS]\n",
		.min_args = 1, .max_args = 1,
		.sql = "SELECT taskq.stats($1)::text",
		.table_sql =
		"SELECT s->>'queue' AS queue, (s->>'paused')::boolean AS paused, "
		"(c->>'waiting')::bigint AS waiting, (c->>'delayed')::bigint AS delayed, "
		"(c->>'blocked')::bigint AS blocked, (c->>'active')::bigint AS active, "
		"(c->>'completed')::bigint AS completed, (c->>'dlq')::bigint AS dlq, "
		"(c->>'cancelled')::bigint AS cancelled, "
		"(s->>'oldest_waiting_age_ms')::bigint AS oldest_waiting_age_ms, "
		"(s#>>'{limits,throttled}')::bigint AS throttled, "
		LIMITS_TEXT("s->'limits'") " AS limits "
		"FROM taskq.stats($1) s, LATERAL (SELECT s->'counts') x(c)",
		.json_out = OUT_VALUE, .table_out = OUT_TABLE,
	},
	{
		.name = "peek",
		.help = "Show the jobs the next pulls would deliver, in delivery order, changing nothing.\n\n"
		"Usage:\n  taskq peek QUEUE [-n N] [OPTIONS]\n\n"
		"  -n, --count=N         show at most N jobs (default 10)\n",
		.options = {{"count", 'n', true, "10", check_count}},
		.args = "QUEUE",
		.min_args = 1, .max_args = 1,
		.sql = "SELECT id, name, state, priority, attempts, run_at, data, metadata "
		"FROM taskq.peek($1, $2::int)",
		.json_out = OUT_ROWS, .table_out = OUT_ROWS,
	},
	{
		.name = "get",
		.help = "Show one job, whatever its state.\n\n"
		"Usage:\n  taskq get ID [OPTIONS]\n",
		.min_args = 1, .max_args = 1,
		.sql = "SELECT taskq.get($1::uuid)::text",
		.table_sql =
		"SELECT j->>'id' AS id, j->>'queue' AS queue, j->>'name' AS name, "
		"j->>'state' AS state, j->>'priority' AS priority, "
		"j->>'attempts' AS attempts, j->>'max_attempts' AS max_attempts, "
		"j->>'progress' AS progress, j->>'data' AS data, "
		"j->>'metadata' AS metadata, j->>'result' AS result, "
		"j->>'error' AS error, j->>'flow_id' AS flow_id, "
		"j->>'depends_on' AS depends_on, j->>'unique_key' AS unique_key, j->>'group' AS \"group\", "
		"j->>'run_at' AS run_at, j->>'lease_expires_at' AS lease_expires_at, "
		"j->>'created_at' AS created_at, j->>'started_at' AS started_at, "
		"j->>'finished_at' AS finished_at, j->>'logs' AS logs "
		"FROM taskq.get($1::uuid) j WHERE j IS NOT NULL",
		.json_out = OUT_VALUE, .table_out = OUT_RECORD,
		.not_found = "job %s not found",
	},
	{
		/* the table queries the flow again: see print_flow_table */
		.name = "flow",
		.help = "Show the jobs of a DAG flow with their states, and the counts per state.\n\n"
		"Usage:\n  taskq flow FLOW_ID [OPTIONS]\n",
		.min_args = 1, .max_args = 1,
		.sql = "SELECT taskq.flow($1)::text",
		.json_out = OUT_VALUE, .table_out = OUT_CUSTOM,
		.print = print_flow_table,
		.not_found = "flow \"%s\" not found",
	},
	{
		.name = "dlq",
		.help = "List the dead jobs of a queue, most recent first.\n\n"
		"Usage:\n  taskq dlq QUEUE [-n N] [OPTIONS]\n\n"
		"  -n, --count=N         show at most N jobs (default 100)\n",
		.options = {{"count", 'n', true, "100", check_count}},
		.args = "QUEUE",
		.min_args = 1, .max_args = 1,
		.sql = "SELECT * FROM taskq.dlq($1, $2::int)",
		.table_sql = "SELECT id, name, attempts, max_attempts, failed_at, error "
		"FROM taskq.dlq($1, $2::int)",
		.json_out = OUT_ROWS, .table_out = OUT_ROWS,
	},
	{
		.name = "redrive",
		.help = "Put dead jobs back to waiting, with their attempts reset: one job, or every\n"
		"dead job of a queue (oldest first).\n\n"
		"Usage:\n  taskq redrive ID [OPTIONS]\n  taskq redrive --queue QUEUE [OPTIONS]\n\n"
		"  -q, --queue=QUEUE     redrive the whole dead-letter queue of QUEUE\n"
		"A job that is not in the dead-letter queue is an error (status 1).\n",
		.options = {{"queue", 'q', true}},
		.max_args = -1,			/* checked by run_redrive */
		.run = run_redrive,
	},
	{
		.name = "purge",
		.help = "Remove the waiting and delayed jobs of a queue (their blocked descendants\n"
		"are cancelled).  Asks for confirmation when stdin is a terminal; without\n"
		"a terminal, --yes is required (else nothing is done and the status is 2).\n\n"
		"Usage:\n  taskq purge QUEUE [--yes] [OPTIONS]\n\n"
		"  -y, --yes             do not ask for confirmation\n",
		.options = {{"yes", 'y', false}},
		.args = "QUEUE",
		.min_args = 1, .max_args = 1,
		.run = run_purge,
	},
	{
		.name = "pause",
		.help = "Pause a queue: pulls return nothing from it and pushes are refused\n"
		"until it is resumed; leased jobs can still be finished.\n\n"
		"Usage:\n  taskq pause QUEUE [OPTIONS]\n",
		.min_args = 1, .max_args = 1,
		.sql = "SELECT taskq.pause($1)",
		.json_out = OUT_CUSTOM, .table_out = OUT_CUSTOM,
		.print = print_paused,
	},
	{
		.name = "resume",
		.help = "Resume a paused queue.\n\n"
		"Usage:\n  taskq resume QUEUE [OPTIONS]\n",
		.min_args = 1, .max_args = 1,
		.sql = "SELECT taskq.resume($1)",
		.json_out = OUT_CUSTOM, .table_out = OUT_CUSTOM,
		.print = print_paused,
	},
	{
		.name = "push",
		.help = "Push a job and print its id (the queue is created on first push).\n\n"
		"Usage:\n  taskq push QUEUE NAME [--data JSON] [--options JSON] [OPTIONS]\n\n"
		"      --data=JSON       the job's data, a JSON object (default {})\n"
		"      --options=JSON    push options, e.g. '{\"priority\": 5, \"delay_ms\": 1000,\n"
		"                        \"max_attempts\": 5, \"metadata\": {\"engine\": \"py\"}}'\n",
		.options = {{"data", 0, true, "{}"}, {"options", 0, true, "{}"}},
		.args = "QUEUE NAME",
		.min_args = 2, .max_args = 2,
		.sql = "SELECT taskq.push($1, $2, $3::jsonb, $4::jsonb)",
		.json_out = OUT_CUSTOM, .table_out = OUT_VALUE,
		.print = print_push_id,
	},
	{
		.name = "webhooks",
		.help = "List the webhooks.  Secrets are not shown unless --show-secrets is given\n"
		"(and then only those the server shows you: your own, or all for a superuser).\n\n"
		"Usage:\n  taskq webhooks [--show-secrets] [OPTIONS]\n",
		.options = {{"show-secrets", 0, false}},
		.json_out = OUT_CUSTOM, .table_out = OUT_CUSTOM,
		.print = print_webhooks,
	},
	{
		.name = "watch",
		.help = "A live view of the queues, refreshed every second like top: job counts per\n"
		"state and throughput (jobs finished per second since the last refresh).\n"
		"With --json, one JSON object per refresh, one per line.  Stop with Ctrl-C.\n\n"
		"Usage:\n  taskq watch [QUEUE...] [--interval SECONDS] [--iterations N] [OPTIONS]\n\n"
		"  -i, --interval=SECS   refresh period (default 1)\n"
		"  -n, --iterations=N    stop after N refreshes (default: run until interrupted)\n",
		.options = {{"iterations", 'n', true, NULL, check_iterations},
		{"interval", 'i', true, "1", check_interval}},
		.max_args = -1,
		.run = run_watch,
	},
	{NULL}
};

/*
 * parse_invocation: parse a subcommand's command line (argv[0] is its
 * name): the common options, its own, and its number of positional
 * arguments.  --help prints the help and exits 0; mistakes exit 2.
 */
static void
parse_invocation(const Command *cmd, int argc, char **argv, Invocation *inv)
{
	struct option longopts[NUM_COMMON_OPTIONS + MAX_OWN_OPTIONS + 1] = {COMMON_LONG_OPTIONS};
	char		shortopts[3 + 2 * MAX_OWN_OPTIONS + 1] = "d:h";
	int			slen = 3;
	int			nopts;
	int			c;
	int			k;

	memset(inv, 0, sizeof(*inv));
	inv->cmd = cmd;
	for (nopts = 0; cmd->options[nopts].name; nopts++)
	{
		const OwnOption *o = &cmd->options[nopts];
		struct option *lo = &longopts[NUM_COMMON_OPTIONS + nopts];

		lo->name = o->name;
		lo->has_arg = o->has_arg ? required_argument : no_argument;
		lo->val = o->letter ? o->letter : OPTION_CODE_BASE + nopts;
		if (o->letter)
		{
			shortopts[slen++] = o->letter;
			if (o->has_arg)
				shortopts[slen++] = ':';
		}
		inv->opt[nopts] = o->dflt;
	}

	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		if (c == 'h')
		{
			printf("%s" COMMON_HELP, cmd->help);
			exit(EXIT_OK);
		}
		for (k = 0; k < nopts; k++)
			if (c == longopts[NUM_COMMON_OPTIONS + k].val)
				break;
		if (k == nopts)
			usage_error(argv[0], "invalid option");
		if (cmd->options[k].check)
			cmd->options[k].check(argv[0], optarg);
		inv->opt[k] = cmd->options[k].has_arg ? optarg : "true";
	}

	inv->pos = argv + optind;
	inv->npos = argc - optind;
	if (inv->npos < cmd->min_args)
	{
		if (cmd->args)
			usage_error(argv[0], "missing argument: %s", cmd->args);
		usage_error(argv[0], "missing argument");
	}
	if (cmd->max_args >= 0 && inv->npos > cmd->max_args)
		usage_error(argv[0], "too many arguments");
}

/*
 * run_queries: the body of a subcommand described by its queries: connect,
 * run the query for --json or for the table, check it found something if
 * it must, and print the result.
 */
static int
run_queries(Invocation *inv)
{
	const Command *cmd = inv->cmd;
	const char *sql = cmd->sql;
	OutputKind	out = common.json ? cmd->json_out : cmd->table_out;
	PGconn	   *conn;
	PGresult   *res = NULL;
	int			k;

	if (!common.json && cmd->table_sql)
		sql = cmd->table_sql;
	/* the positional arguments, then the values of the options */
	for (k = 0; k < inv->npos; k++)
		inv->params[inv->nparams++] = inv->pos[k];
	for (k = 0; cmd->options[k].name; k++)
		if (cmd->options[k].has_arg)
			inv->params[inv->nparams++] = inv->opt[k];

	conn = connect_db(true);
	if (out == OUT_ROWS)
		print_rows(conn, sql, inv->nparams, inv->params);
	else
	{
		if (sql)
			res = run_query(conn, sql, inv->nparams, inv->params);
		if (cmd->not_found && (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)))
		{
			PQclear(res);
			PQfinish(conn);
			fatal(cmd->not_found, inv->params[0]);
		}
		switch (out)
		{
			case OUT_VALUE:
				printf("%s\n", PQgetvalue(res, 0, 0));
				break;
			case OUT_TABLE:
				print_table(res);
				break;
			case OUT_RECORD:
				print_record(res);
				break;
			default:
				cmd->print(conn, res, inv);
				break;
		}
		PQclear(res);
	}
	PQfinish(conn);
	return EXIT_OK;
}

/*
 * run_command: the entry point of every subcommand of this file; argv[0]
 * is the subcommand's name.
 */
int
run_command(int argc, char **argv)
{
	const Command *cmd;
	Invocation	inv;

	for (cmd = commands; cmd->name; cmd++)
		if (strcmp(cmd->name, argv[0]) == 0)
			break;
	if (cmd->name == NULL)
		usage_error(NULL, "unknown subcommand \"%s\"", argv[0]);
	parse_invocation(cmd, argc, argv, &inv);
	return cmd->run ? cmd->run(&inv) : run_queries(&inv);
}

/* check a positive count given to -n */
static void
check_count(const char *cmd, const char *arg)
{
	(void) parse_int_option(cmd, "count", arg, 1, 1000000);
}

/* print {"queue": QUEUE, "KEY": VALUE}, VALUE being JSON already */
static void
print_queue_json(const char *queue, const char *key, const char *value)
{
	printf("{\"queue\": ");
	print_json_string(stdout, queue);
	printf(", \"%s\": %s}\n", key, value);
}

/* flow's table: its jobs, then a line of counts per state */
static void
print_flow_table(PGconn *conn, PGresult *res, const Invocation *inv)
{
	PGresult   *r;

	r = run_query(conn,
				  "SELECT x.id, x.name, x.queue, x.state, x.attempts, "
				  "jsonb_array_length(coalesce(x.depends_on, '[]')) AS parents, x.error "
				  "FROM jsonb_to_recordset(taskq.flow($1)->'jobs') "
				  "AS x(id uuid, name text, queue text, state text, depends_on jsonb, "
				  "attempts int, error text)", 1, inv->params);
	print_table(r);
	PQclear(r);
	r = run_query(conn,
				  "SELECT string_agg(key || ' ' || value, ', ' ORDER BY key) "
				  "FROM jsonb_each_text(taskq.flow($1)->'counts')", 1, inv->params);
	printf("\nflow %s: %s\n", inv->params[0],
		   PQgetisnull(r, 0, 0) ? "no jobs" : PQgetvalue(r, 0, 0));
	PQclear(r);
}

/* pause and resume: the queue's new state */
static void
print_paused(PGconn *conn, PGresult *res, const Invocation *inv)
{
	bool		pause = strcmp(inv->cmd->name, "pause") == 0;

	if (common.json)
		print_queue_json(inv->params[0], "paused", pause ? "true" : "false");
	else
		printf("%s queue \"%s\"\n", pause ? "paused" : "resumed", inv->params[0]);
}

/* push --json: the new job's id */
static void
print_push_id(PGconn *conn, PGresult *res, const Invocation *inv)
{
	printf("{\"id\": \"%s\"}\n", PQgetvalue(res, 0, 0));
}

/* webhooks: the list, with the secrets only if --show-secrets */
static void
print_webhooks(PGconn *conn, PGresult *res, const Invocation *inv)
{
	if (inv->opt[0])
		print_rows(conn,
				   "SELECT id, url, events, queues, max_attempts, base_delay_ms, owner, "
				   "created_at, secret FROM taskq.webhooks() ORDER BY created_at, id",
				   0, NULL);
	else
		print_rows(conn,
				   "SELECT id, url, events, queues, max_attempts, base_delay_ms, owner, "
				   "created_at FROM taskq.webhooks() ORDER BY created_at, id", 0, NULL);
}

/*
 * run_redrive: one dead job (ID) or a whole dead-letter queue (--queue);
 * a job not in the dead-letter queue is an error.
 */
static int
run_redrive(Invocation *inv)
{
	const char *queue = inv->opt[0];
	const char *params[1];
	PGconn	   *conn;
	PGresult   *res;
	long long	n;

	if (queue && inv->npos > 0)
		usage_error(inv->cmd->name, "give either a job id or --queue, not both");
	if (!queue && inv->npos != 1)
		usage_error(inv->cmd->name, inv->npos == 0 ?
					"missing argument: ID or --queue QUEUE" : "too many arguments");

	conn = connect_db(true);
	if (queue)
	{
		params[0] = queue;
		res = run_query(conn, "SELECT taskq.redrive_queue($1)", 1, params);
		n = atoll(PQgetvalue(res, 0, 0));
	}
	else
	{
		params[0] = inv->pos[0];
		res = run_query(conn, "SELECT taskq.redrive($1::uuid)::int", 1, params);
		n = atoll(PQgetvalue(res, 0, 0));
		if (n == 0)
		{
			PQclear(res);
			PQfinish(conn);
			fatal("job %s is not in the dead-letter queue", params[0]);
		}
	}
	if (common.json)
		printf("{\"redriven\": %lld}\n", n);
	else
		printf("redrove %lld job%s\n", n, n == 1 ? "" : "s");
	PQclear(res);
	PQfinish(conn);
	return EXIT_OK;
}

/*
 * run_purge: empty a queue of its waiting and delayed jobs, after asking
 * on a terminal; without one, --yes is required.
 */
static int
run_purge(Invocation *inv)
{
	bool		yes = inv->opt[0] != NULL;
	const char *params[1];
	PGconn	   *conn;
	PGresult   *res;

	params[0] = inv->pos[0];
	if (!yes && !isatty(STDIN_FILENO))
		usage_error(inv->cmd->name, "refusing to purge queue \"%s\" without --yes (stdin is not a terminal)",
					params[0]);

	conn = connect_db(true);
	if (!yes)
	{
		char		answer[64];

		res = run_query(conn,
						"SELECT (s->'counts'->>'waiting')::bigint + (s->'counts'->>'delayed')::bigint "
						"FROM taskq.stats($1) s", 1, params);
		fprintf(stderr, "purge %s waiting and delayed jobs of queue \"%s\"? [y/N] ",
				PQgetvalue(res, 0, 0), params[0]);
		PQclear(res);
		if (fgets(answer, sizeof(answer), stdin) == NULL ||
			(answer[0] != 'y' && answer[0] != 'Y'))
		{
			fprintf(stderr, "%s: purge cancelled\n", progname);
			PQfinish(conn);
			return EXIT_ERROR;
		}
	}
	res = run_query(conn, "SELECT taskq.purge($1)", 1, params);
	if (common.json)
		print_queue_json(params[0], "purged", PQgetvalue(res, 0, 0));
	else
		printf("purged %s jobs from queue \"%s\"\n", PQgetvalue(res, 0, 0), params[0]);
	PQclear(res);
	PQfinish(conn);
	return EXIT_OK;
}

/* check -n of watch: a positive number of refreshes */
static void
check_iterations(const char *cmd, const char *arg)
{
	char	   *end;
	long		n = strtol(arg, &end, 10);

	if (*arg == '\0' || *end != '\0' || n < 1)
		usage_error(cmd, "invalid number of iterations \"%s\"", arg);
}

/* check -i of watch: a period from 0.1 to 3600 seconds */
static void
check_interval(const char *cmd, const char *arg)
{
	char	   *end;
	double		secs = strtod(arg, &end);

	if (*arg == '\0' || *end != '\0' || secs < 0.1 || secs > 3600)
		usage_error(cmd, "invalid interval \"%s\" (seconds, 0.1 to 3600)", arg);
}

/* ---- watch ---- */

typedef struct WatchPrev
{
	char	   *name;
	long long	done;			/* completed + dlq + cancelled at last round */
} WatchPrev;

static volatile sig_atomic_t watch_stop = 0;

/* SIGINT and SIGTERM: stop watching after the current refresh */
static void
watch_signal(int signo)
{
	watch_stop = 1;
}

/*
 * run_watch: the live view, until interrupted or after --iterations
 * refreshes; the positional arguments, if any, are the queues to show.
 */
static int
run_watch(Invocation *inv)
{
	long		iterations = inv->opt[0] ? strtol(inv->opt[0], NULL, 10) : 0;
	double		interval = strtod(inv->opt[1], NULL);
	WatchPrev  *prev = NULL;
	int			nprev = 0;
	double		prev_time = 0;
	bool		tty = isatty(STDOUT_FILENO);
	PGconn	   *conn;
	long		round;

	conn = connect_db(true);
	pqsignal(SIGINT, watch_signal);
	pqsignal(SIGTERM, watch_signal);

	for (round = 0; !watch_stop && (iterations == 0 || round < iterations); round++)
	{
		PQExpBufferData sql;
		PGresult   *res;
		double		t = now_seconds();
		double		dt = round > 0 ? t - prev_time : 0;
		WatchPrev  *cur;
		int			nrows,
					r;
		long long	total_rate_x10 = 0;

		initPQExpBuffer(&sql);
		appendPQExpBufferStr(&sql,
							 "SELECT name, paused, waiting, delayed, blocked, active, "
							 "completed, dlq, cancelled, now()::text FROM taskq.queues()");
		if (inv->npos > 0)
			appendPQExpBufferStr(&sql, " WHERE name = ANY ($1::text[])");
		appendPQExpBufferStr(&sql, " ORDER BY name");
		if (inv->npos > 0)
		{
			PQExpBufferData arr;
			const char *params[1];
			int			k;

			/* build a text[] literal of the queue names */
			initPQExpBuffer(&arr);
			appendPQExpBufferChar(&arr, '{');
			for (k = 0; k < inv->npos; k++)
			{
				const char *p;

				if (k > 0)
					appendPQExpBufferChar(&arr, ',');
				appendPQExpBufferChar(&arr, '"');
				for (p = inv->pos[k]; *p; p++)
				{
					if (*p == '"' || *p == '\\')
						appendPQExpBufferChar(&arr, '\\');
					appendPQExpBufferChar(&arr, *p);
				}
				appendPQExpBufferChar(&arr, '"');
			}
			appendPQExpBufferChar(&arr, '}');
			params[0] = arr.data;
			res = run_query(conn, sql.data, 1, params);
			termPQExpBuffer(&arr);
		}
		else
			res = run_query(conn, sql.data, 0, NULL);
		termPQExpBuffer(&sql);

		nrows = PQntuples(res);
		cur = pg_malloc0(sizeof(WatchPrev) * (nrows + 1));
		if (!common.json && tty)
			printf("\033[H\033[2J");
		if (common.json)
			printf("{\"time\": \"%s\", \"queues\": [", nrows > 0 ? PQgetvalue(res, 0, 9) : "");
		else
		{
			printf("taskq watch  every %.1fs  %s\n\n", interval,
				   nrows > 0 ? PQgetvalue(res, 0, 9) : "");
			printf("%-24s %-6s %9s %9s %9s %9s %10s %8s %9s %9s\n",
				   "queue", "paused", "waiting", "delayed", "blocked", "active",
				   "completed", "dlq", "cancelled", "done/s");
		}
		for (r = 0; r < nrows; r++)
		{
			const char *name = PQgetvalue(res, r, 0);
			long long	done = atoll(PQgetvalue(res, r, 6)) +
				atoll(PQgetvalue(res, r, 7)) + atoll(PQgetvalue(res, r, 8));
			double		rate = 0;
			int			k;

			cur[r].name = pg_strdup(name);
			cur[r].done = done;
			for (k = 0; k < nprev; k++)
				if (strcmp(prev[k].name, name) == 0)
				{
					if (dt > 0 && done > prev[k].done)
						rate = (done - prev[k].done) / dt;
					break;
				}
			total_rate_x10 += (long long) (rate * 10 + 0.5);
			if (common.json)
			{
				printf("%s{\"name\": ", r ? ", " : "");
				print_json_string(stdout, name);
				printf(", \"paused\": %s, \"waiting\": %s, \"delayed\": %s, "
					   "\"blocked\": %s, \"active\": %s, \"completed\": %s, "
					   "\"dlq\": %s, \"cancelled\": %s, \"done_per_second\": %.1f}",
					   strcmp(PQgetvalue(res, r, 1), "t") == 0 ? "true" : "false",
					   PQgetvalue(res, r, 2), PQgetvalue(res, r, 3),
					   PQgetvalue(res, r, 4), PQgetvalue(res, r, 5),
					   PQgetvalue(res, r, 6), PQgetvalue(res, r, 7),
					   PQgetvalue(res, r, 8), rate);
			}
			else
				printf("%-24s %-6s %9s %9s %9s %9s %10s %8s %9s %9.1f\n",
					   name, strcmp(PQgetvalue(res, r, 1), "t") == 0 ? "yes" : "no",
					   PQgetvalue(res, r, 2), PQgetvalue(res, r, 3),
					   PQgetvalue(res, r, 4), PQgetvalue(res, r, 5),
					   PQgetvalue(res, r, 6), PQgetvalue(res, r, 7),
					   PQgetvalue(res, r, 8), rate);
		}
		if (common.json)
			printf("], \"done_per_second\": %.1f}\n", total_rate_x10 / 10.0);
		else
		{
			printf("\n%d queue%s, %.1f jobs finished per second\n", nrows,
				   nrows == 1 ? "" : "s", total_rate_x10 / 10.0);
			if (!tty)
				putchar('\n');
		}
		fflush(stdout);
		PQclear(res);

		for (r = 0; r < nprev; r++)
			free(prev[r].name);
		free(prev);
		prev = cur;
		nprev = nrows;
		prev_time = t;

		if (iterations == 0 || round + 1 < iterations)
		{
			double		until = t + interval;

			while (!watch_stop && now_seconds() < until)
			{
				double		left = until - now_seconds();

				if (left > 0)
					usleep((useconds_t) ((left > 0.2 ? 0.2 : left) * 1e6));
			}
		}
	}
	PQfinish(conn);
	return EXIT_OK;
}
