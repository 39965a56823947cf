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
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <getopt.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "pqexpbuffer.h"
#include "taskq.h"

#define COMMON_LONG_OPTIONS \
	{"dbname", required_argument, NULL, 'd'}, \
	{"json", no_argument, NULL, 'J'}, \
	{"help", no_argument, NULL, 'h'}

#define COMMON_HELP \
	"\nOptions:\n" \
	"  -d, --dbname=CONNSTR  database (conninfo string or URI; PG* variables apply)\n" \
	"      --json            JSON output\n" \
	"  -h, --help            show this help\n"

/*
 * parse_simple: parse the options of a subcommand that has only the common
 * ones and check it has between min_pos and max_pos positional arguments;
 * returns the index of the first one.
 */
static int
parse_simple(int argc, char **argv, const char *help, int min_pos,
			 int max_pos)
{
	static const struct option opts[] = {COMMON_LONG_OPTIONS, {NULL, 0, NULL, 0}};
	int			c;
	int			npos;

	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		if (c == 'h')
		{
			printf("%s" COMMON_HELP, help);
			exit(EXIT_OK);
		}
		usage_error(argv[0], "invalid option");
	}
	npos = argc - optind;
	if (npos < min_pos)
		usage_error(argv[0], "missing argument");
	if (npos > max_pos)
		usage_error(argv[0], "too many arguments");
	return optind;
}

/* parse a positive count given to -n */
static const char *
parse_count(const char *cmd, const char *arg)
{
	char	   *end;
	long		n = strtol(arg, &end, 10);

	if (*arg == '\0' || *end != '\0' || n < 1 || n > 1000000)
		usage_error(cmd, "invalid count \"%s\" (an integer from 1 to 1000000)", arg);
	return arg;
}

int
cmd_queues(int argc, char **argv)
{
	PGconn	   *conn;

	parse_simple(argc, argv,
				 "List the queues with their job counts per state.\n\n"
				 "Usage:\n  taskq queues [OPTIONS]\n", 0, 0);
	conn = connect_db(true);
	print_rows(conn, "SELECT * FROM taskq.queues() ORDER BY name", 0, NULL);
	PQfinish(conn);
	return EXIT_OK;
}

int
cmd_stats(int argc, char **argv)
{
	PGconn	   *conn;
	PGresult   *res;
	const char *params[1];
	int			i;

	i = parse_simple(argc, argv,
					 "Show a queue's counts per state and the age of its oldest runnable job.\n\n"
					 "Usage:\n  taskq stats QUEUE [OPTIONS]\n", 1, 1);
	params[0] = argv[i];
	conn = connect_db(true);
	if (common.json)
	{
		res = run_query(conn, "SELECT taskq.stats($1)::text", 1, params);
		printf("%s\n", PQgetvalue(res, 0, 0));
	}
	else
	{
		res = run_query(conn,
						"SELECT s->>'queue' AS queue, (s->>'paused')::boolean AS paused, "
						"(c->>'waiting')::bigint AS waiting, (c->>'delayed')::bigint AS delayed, "
						"(c->>'blocked')::bigint AS blocked, (c->>'active')::bigint AS active, "
						"(c->>'completed')::bigint AS completed, (c->>'dlq')::bigint AS dlq, "
						"(c->>'cancelled')::bigint AS cancelled, "
						"(s->>'oldest_waiting_age_ms')::bigint AS oldest_waiting_age_ms "
						"FROM taskq.stats($1) s, LATERAL (SELECT s->'counts') x(c)",
						1, params);
		print_table(res);
	}
	PQclear(res);
	PQfinish(conn);
	return EXIT_OK;
}

/* shared by peek and dlq: QUEUE [-n N] */
static int
parse_queue_count(int argc, char **argv, const char *help, const char **count)
{
	static const struct option opts[] = {
		COMMON_LONG_OPTIONS,
		{"count", required_argument, NULL, 'n'},
		{NULL, 0, NULL, 0}
	};
	int			c;

	while ((c = getopt_long(argc, argv, "d:hn:", opts, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		if (c == 'h')
		{
			printf("%s" COMMON_HELP, help);
			exit(EXIT_OK);
		}
		if (c == 'n')
		{
			*count = parse_count(argv[0], optarg);
			continue;
		}
		usage_error(argv[0], "invalid option");
	}
	if (argc - optind < 1)
		usage_error(argv[0], "missing argument: QUEUE");
	if (argc - optind > 1)
		usage_error(argv[0], "too many arguments");
	return optind;
}

int
cmd_peek(int argc, char **argv)
{
	PGconn	   *conn;
	const char *params[2] = {NULL, "10"};
	int			i;

	i = parse_queue_count(argc, argv,
						  "Show the jobs the next pulls would deliver, in delivery order, changing nothing.\n\n"
						  "Usage:\n  taskq peek QUEUE [-n N] [OPTIONS]\n\n"
						  "  -n, --count=N         show at most N jobs (default 10)\n",
						  &params[1]);
	params[0] = argv[i];
	conn = connect_db(true);
	print_rows(conn,
			   "SELECT id, name, state, priority, attempts, run_at, data, metadata "
			   "FROM taskq.peek($1, $2::int)", 2, params);
	PQfinish(conn);
	return EXIT_OK;
}

int
cmd_get(int argc, char **argv)
{
	PGconn	   *conn;
	PGresult   *res;
	const char *params[1];
	int			i;

	i = parse_simple(argc, argv,
					 "Show one job, whatever its state.\n\n"
					 "Usage:\n  taskq get ID [OPTIONS]\n", 1, 1);
	params[0] = argv[i];
	conn = connect_db(true);
	if (common.json)
		res = run_query(conn, "SELECT taskq.get($1::uuid)::text", 1, params);
	else
		res = run_query(conn,
						"SELECT j->>'id' AS id, j->>'queue' AS queue, j->>'name' AS name, "
						"j->>'state' AS state, j->>'priority' AS priority, "
						"j->>'attempts' AS attempts, j->>'max_attempts' AS max_attempts, "
						"j->>'progress' AS progress, j->>'data' AS data, "
						"j->>'metadata' AS metadata, j->>'result' AS result, "
						"j->>'error' AS error, j->>'flow_id' AS flow_id, "
						"j->>'depends_on' AS depends_on, j->>'unique_key' AS unique_key, "
						"j->>'run_at' AS run_at, j->>'lease_expires_at' AS lease_expires_at, "
						"j->>'created_at' AS created_at, j->>'started_at' AS started_at, "
						"j->>'finished_at' AS finished_at, j->>'logs' AS logs "
						"FROM taskq.get($1::uuid) j WHERE j IS NOT NULL", 1, params);
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
	{
		PQclear(res);
		PQfinish(conn);
		fatal("job %s not found", params[0]);
	}
	if (common.json)
		printf("%s\n", PQgetvalue(res, 0, 0));
	else
		print_record(res);
	PQclear(res);
	PQfinish(conn);
	return EXIT_OK;
}

int
cmd_flow(int argc, char **argv)
{
	PGconn	   *conn;
	PGresult   *res;
	const char *params[1];
	int			i;

	i = parse_simple(argc, argv,
					 "Show the jobs of a DAG flow with their states, and the counts per state.\n\n"
					 "Usage:\n  taskq flow FLOW_ID [OPTIONS]\n", 1, 1);
	params[0] = argv[i];
	conn = connect_db(true);
	res = run_query(conn, "SELECT taskq.flow($1)::text", 1, params);
	if (PQgetisnull(res, 0, 0))
	{
		PQclear(res);
		PQfinish(conn);
		fatal("flow \"%s\" not found", params[0]);
	}
	if (common.json)
	{
		printf("%s\n", PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	else
	{
		PQclear(res);
		res = run_query(conn,
						"SELECT x.id, x.name, x.queue, x.state, x.attempts, "
						"jsonb_array_length(coalesce(x.depends_on, '[]')) AS parents, x.error "
						"FROM jsonb_to_recordset(taskq.flow($1)->'jobs') "
						"AS x(id uuid, name text, queue text, state text, depends_on jsonb, "
						"attempts int, error text)", 1, params);
		print_table(res);
		PQclear(res);
		res = run_query(conn,
						"SELECT string_agg(key || ' ' || value, ', ' ORDER BY key) "
						"FROM jsonb_each_text(taskq.flow($1)->'counts')", 1, params);
		printf("\nflow %s: %s\n", params[0],
			   PQgetisnull(res, 0, 0) ? "no jobs" : PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	PQfinish(conn);
	return EXIT_OK;
}

int
cmd_dlq(int argc, char **argv)
{
	PGconn	   *conn;
	const char *params[2] = {NULL, "100"};
	int			i;

	i = parse_queue_count(argc, argv,
						  "List the dead jobs of a queue, most recent first.\n\n"
						  "Usage:\n  taskq dlq QUEUE [-n N] [OPTIONS]\n\n"
						  "  -n, --count=N         show at most N jobs (default 100)\n",
						  &params[1]);
	params[0] = argv[i];
	conn = connect_db(true);
	if (common.json)
		print_rows(conn, "SELECT * FROM taskq.dlq($1, $2::int)", 2, params);
	else
		print_rows(conn,
				   "SELECT id, name, attempts, max_attempts, failed_at, error "
				   "FROM taskq.dlq($1, $2::int)", 2, params);
	PQfinish(conn);
	return EXIT_OK;
}

int
cmd_redrive(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONG_OPTIONS,
		{"queue", required_argument, NULL, 'q'},
		{NULL, 0, NULL, 0}
	};
	const char *help =
		"Put dead jobs back to waiting, with their attempts reset: one job, or every\n"
		"dead job of a queue (oldest first).\n\n"
		"Usage:\n  taskq redrive ID [OPTIONS]\n  taskq redrive --queue QUEUE [OPTIONS]\n\n"
		"  -q, --queue=QUEUE     redrive the whole dead-letter queue of QUEUE\n"
		"A job that is not in the dead-letter queue is an error (status 1).\n";
	const char *queue = NULL;
	const char *params[1];
	PGconn	   *conn;
	PGresult   *res;
	long long	n;
	int			c;

	while ((c = getopt_long(argc, argv, "d:hq:", opts, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		if (c == 'h')
		{
			printf("%s" COMMON_HELP, help);
			exit(EXIT_OK);
		}
		if (c == 'q')
		{
			queue = optarg;
			continue;
		}
		usage_error(argv[0], "invalid option");
	}
	if (queue && argc - optind > 0)
		usage_error(argv[0], "give either a job id or --queue, not both");
	if (!queue && argc - optind != 1)
		usage_error(argv[0], argc - optind == 0 ?
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
		params[0] = argv[optind];
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

int
cmd_purge(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONG_OPTIONS,
		{"yes", no_argument, NULL, 'y'},
		{NULL, 0, NULL, 0}
	};
	const char *help =
		"Remove the waiting and delayed jobs of a queue (their blocked descendants\n"
		"are cancelled).  Asks for confirmation when stdin is a terminal; without\n"
		"a terminal, --yes is required (else nothing is done and the status is 2).\n\n"
		"Usage:\n  taskq purge QUEUE [--yes] [OPTIONS]\n\n"
		"  -y, --yes             do not ask for confirmation\n";
	bool		yes = false;
	const char *params[1];
	PGconn	   *conn;
	PGresult   *res;
	int			c;

	while ((c = getopt_long(argc, argv, "d:hy", opts, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		if (c == 'h')
		{
			printf("%s" COMMON_HELP, help);
			exit(EXIT_OK);
		}
		if (c == 'y')
		{
			yes = true;
			continue;
		}
		usage_error(argv[0], "invalid option");
	}
	if (argc - optind != 1)
		usage_error(argv[0], argc - optind == 0 ?
					"missing argument: QUEUE" : "too many arguments");
	params[0] = argv[optind];

	if (!yes && !isatty(STDIN_FILENO))
		usage_error(argv[0], "refusing to purge queue \"%s\" without --yes (stdin is not a terminal)",
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
	{
		printf("{\"queue\": ");
		print_json_string(stdout, params[0]);
		printf(", \"purged\": %s}\n", PQgetvalue(res, 0, 0));
	}
	else
		printf("purged %s jobs from queue \"%s\"\n", PQgetvalue(res, 0, 0), params[0]);
	PQclear(res);
	PQfinish(conn);
	return EXIT_OK;
}

static int
pause_resume(int argc, char **argv, bool pause)
{
	const char *params[1];
	PGconn	   *conn;
	PGresult   *res;
	int			i;

	i = parse_simple(argc, argv, pause ?
					 "Pause a queue: pulls return nothing from it and pushes are refused\n"
					 "until it is resumed; leased jobs can still be finished.\n\n"
					 "Usage:\n  taskq pause QUEUE [OPTIONS]\n" :
					 "Resume a paused queue.\n\n"
					 "Usage:\n  taskq resume QUEUE [OPTIONS]\n", 1, 1);
	params[0] = argv[i];
	conn = connect_db(true);
	res = run_query(conn, pause ? "SELECT taskq.pause($1)" :
					"SELECT taskq.resume($1)", 1, params);
	PQclear(res);
	if (common.json)
	{
		printf("{\"queue\": ");
		print_json_string(stdout, params[0]);
		printf(", \"paused\": %s}\n", pause ? "true" : "false");
	}
	else
		printf("%s queue \"%s\"\n", pause ? "paused" : "resumed", params[0]);
	PQfinish(conn);
	return EXIT_OK;
}

int
cmd_pause(int argc, char **argv)
{
	return pause_resume(argc, argv, true);
}

int
cmd_resume(int argc, char **argv)
{
	return pause_resume(argc, argv, false);
}

int
cmd_push(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONG_OPTIONS,
		{"data", required_argument, NULL, 'D'},
		{"options", required_argument, NULL, 'o'},
		{NULL, 0, NULL, 0}
	};
	const char *help =
		"Push a job and print its id (the queue is created on first push).\n\n"
		"Usage:\n  taskq push QUEUE NAME [--data JSON] [--options JSON] [OPTIONS]\n\n"
		"      --data=JSON       the job's data, a JSON object (default {})\n"
		"      --options=JSON    push options, e.g. '{\"priority\": 5, \"delay_ms\": 1000,\n"
		"                        \"max_attempts\": 5, \"metadata\": {\"engine\": \"py\"}}'\n";
	const char *params[4] = {NULL, NULL, "{}", "{}"};
	PGconn	   *conn;
	PGresult   *res;
	int			c;

	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		if (c == 'h')
		{
			printf("%s" COMMON_HELP, help);
			exit(EXIT_OK);
		}
		if (c == 'D')
		{
			params[2] = optarg;
			continue;
		}
		if (c == 'o')
		{
			params[3] = optarg;
			continue;
		}
		usage_error(argv[0], "invalid option");
	}
	if (argc - optind != 2)
		usage_error(argv[0], argc - optind < 2 ?
					"missing argument: QUEUE NAME" : "too many arguments");
	params[0] = argv[optind];
	params[1] = argv[optind + 1];
	conn = connect_db(true);
	res = run_query(conn, "SELECT taskq.push($1, $2, $3::jsonb, $4::jsonb)", 4, params);
	if (common.json)
		printf("{\"id\": \"%s\"}\n", PQgetvalue(res, 0, 0));
	else
		printf("%s\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(conn);
	return EXIT_OK;
}

int
cmd_webhooks(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONG_OPTIONS,
		{"show-secrets", no_argument, NULL, 's'},
		{NULL, 0, NULL, 0}
	};
	const char *help =
		"List the webhooks.  Secrets are not shown unless --show-secrets is given\n"
		"(and then only those the server shows you: your own, or all for a superuser).\n\n"
		"Usage:\n  taskq webhooks [--show-secrets] [OPTIONS]\n";
	bool		secrets = false;
	PGconn	   *conn;
	int			c;

	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		if (c == 'h')
		{
			printf("%s" COMMON_HELP, help);
			exit(EXIT_OK);
		}
		if (c == 's')
		{
			secrets = true;
			continue;
		}
		usage_error(argv[0], "invalid option");
	}
	if (argc - optind > 0)
		usage_error(argv[0], "too many arguments");
	conn = connect_db(true);
	if (secrets)
		print_rows(conn,
				   "SELECT id, url, events, queues, max_attempts, base_delay_ms, owner, "
				   "created_at, secret FROM taskq.webhooks() ORDER BY created_at, id",
				   0, NULL);
	else
		print_rows(conn,
				   "SELECT id, url, events, queues, max_attempts, base_delay_ms, owner, "
				   "created_at FROM taskq.webhooks() ORDER BY created_at, id", 0, NULL);
	PQfinish(conn);
	return EXIT_OK;
}

/* ---- watch ---- */

typedef struct WatchPrev
{
	char	   *name;
	long long	done;			/* completed + dlq + cancelled at last round */
} WatchPrev;

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t watch_stop = 0;

static void
watch_signal(int signo)
{
	watch_stop = 1;
}

int
cmd_watch(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONG_OPTIONS,
		{"iterations", required_argument, NULL, 'n'},
		{"interval", required_argument, NULL, 'i'},
		{NULL, 0, NULL, 0}
	};
	const char *help =
		"A live view of the queues, refreshed every second like top: job counts per\n"
		"state and throughput (jobs finished per second since the last refresh).\n"
		"With --json, one JSON object per refresh, one per line.  Stop with Ctrl-C.\n\n"
		"Usage:\n  taskq watch [QUEUE...] [--interval SECONDS] [--iterations N] [OPTIONS]\n\n"
		"  -i, --interval=SECS   refresh period (default 1)\n"
		"  -n, --iterations=N    stop after N refreshes (default: run until interrupted)\n";
	double		interval = 1.0;
	long		iterations = 0;
	WatchPrev  *prev = NULL;
	int			nprev = 0;
	double		prev_time = 0;
	bool		tty = isatty(STDOUT_FILENO);
	PGconn	   *conn;
	long		round;
	int			c;

	while ((c = getopt_long(argc, argv, "d:hn:i:", opts, NULL)) != -1)
	{
		char	   *end;

		if (common_option(c, optarg))
			continue;
		if (c == 'h')
		{
			printf("%s" COMMON_HELP, help);
			exit(EXIT_OK);
		}
		if (c == 'n')
		{
			iterations = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || iterations < 1)
				usage_error(argv[0], "invalid number of iterations \"%s\"", optarg);
			continue;
		}
		if (c == 'i')
		{
			interval = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' || interval < 0.1 || interval > 3600)
				usage_error(argv[0], "invalid interval \"%s\" (seconds, 0.1 to 3600)", optarg);
			continue;
		}
		usage_error(argv[0], "invalid option");
	}

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
		if (optind < argc)
			appendPQExpBufferStr(&sql, " WHERE name = ANY ($1::text[])");
		appendPQExpBufferStr(&sql, " ORDER BY name");
		if (optind < argc)
		{
			PQExpBufferData arr;
			const char *params[1];
			int			k;

			/* build a text[] literal of the queue names */
			initPQExpBuffer(&arr);
			appendPQExpBufferChar(&arr, '{');
			for (k = optind; k < argc; k++)
			{
				const char *p;

				if (k > optind)
					appendPQExpBufferChar(&arr, ',');
				appendPQExpBufferChar(&arr, '"');
				for (p = argv[k]; *p; p++)
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
