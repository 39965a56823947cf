/*-------------------------------------------------------------------------
 *
 * main.c
 *		taskq-serve's options, start-up and shutdown (see serve.h).
 *
 * Run by the command-line tool as "taskq serve" (argv[0]
 * SERVE_AS_SUBCOMMAND), the program speaks as that subcommand: its
 * messages start with "taskq", its usage errors suggest "taskq serve
 * --help", and it has no -V.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

const char *progname = SERVE_PROGRAM;

/* as "taskq serve": "serve", for usage errors; NULL when run as itself */
static const char *subcommand = NULL;
/* the name in --help */
static const char *command_name = SERVE_PROGRAM;

ServeConfig config = {
	.listen_addr = DEFAULT_LISTEN,
	.pool_size = 4,
	.thread_count = 0,
	.max_body = DEFAULT_MAX_BODY,
	.max_response = DEFAULT_MAX_RESPONSE,
	.max_wait_ms = 20000,
	.connection_timeout_s = 30,
	.statement_timeout_ms = 30000,
	.shutdown_timeout_s = 30,
	.max_connections = 256,
	.max_connections_per_ip = 64,
	.request_deadline_s = 60,
	.metrics_token = NULL,
	.event_buffer = DEFAULT_EVENT_BUFFER,
	.quiet = false,
};

static void
usage(void)
{
	printf("Serve the taskq SQL API over HTTP (REST and JSON).\n\n"
		   "Usage:\n  %s [OPTIONS]\n\n"
		   "Options:\n"
		   "      --listen=HOST:PORT      address to listen on (default %s;\n"
		   "                              [::1]:PORT for IPv6, port 0 for any free port)\n"
		   "      --pool=N                database connections (default 4)\n"
		   "      --threads=N             HTTP threads (default: --pool)\n"
		   "      --max-body=BYTES        largest request body (default %d)\n"
		   "      --max-response=BYTES    largest response body (default %d)\n"
		   "      --max-wait=MS           longest wait_ms of a pull; a waiting pull holds\n"
		   "                              one pool connection (default 20000)\n"
		   "      --timeout=SECONDS       close idle or stalled connections (default 30)\n"
		   "      --statement-timeout=MS  statement_timeout of the connections (default\n"
		   "                              30000; 0: none)\n"
		   "      --shutdown-timeout=SECONDS  on SIGTERM, wait this long for requests in\n"
		   "                              flight (default 30)\n"
		   "      --max-connections=N     open HTTP connections at most (default 256)\n"
		   "      --max-connections-per-ip=N  open HTTP connections per client address\n"
		   "                              at most (default 64)\n"
		   "      --request-deadline=SECONDS  a request's headers and body must arrive\n"
		   "                              within this time (default 60)\n"
		   "      --metrics-token=TOKEN   require this bearer token for /metrics (default:\n"
		   "                              $TASKQ_METRICS_TOKEN; none: no token needed)\n"
		   "      --tcp-listen=HOST:PORT  also serve the TCP protocol (newline-delimited JSON\n"
		   "                              commands) there (default: none)\n"
		   "      --event-buffer=BYTES    unread events a client of /api/v1/events may\n"
		   "                              have before it is cut off (default %d)\n"
		   "      --quiet                 no log line per request\n"
		   "  -d, --dbname=CONNSTR        database (conninfo string or URI; PG* variables apply)\n"
		   "  -h, --help                  show this help\n"
		   "%s\n"
		   "Requests carry \"Authorization: Bearer <token>\", a token made by\n"
		   "taskq.create_api_token(role); they run as that role.  See the README,\n"
		   "section \"HTTP API\", for the routes.\n",
		   command_name, DEFAULT_LISTEN, DEFAULT_MAX_BODY, DEFAULT_MAX_RESPONSE,
		   DEFAULT_EVENT_BUFFER, subcommand ? "" : "  -V, --version               show the version\n");
}

/* the options into config; usage errors exit */
static void
parse_options(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONG_OPTIONS,
		{"listen", required_argument, NULL, 'l'},
		{"pool", required_argument, NULL, 'p'},
		{"threads", required_argument, NULL, 't'},
		{"max-body", required_argument, NULL, 'b'},
		{"max-response", required_argument, NULL, 'r'},
		{"max-wait", required_argument, NULL, 'W'},
		{"timeout", required_argument, NULL, 'T'},
		{"statement-timeout", required_argument, NULL, 's'},
		{"shutdown-timeout", required_argument, NULL, 'S'},
		{"max-connections", required_argument, NULL, 'c'},
		{"max-connections-per-ip", required_argument, NULL, 'I'},
		{"request-deadline", required_argument, NULL, 'D'},
		{"metrics-token", required_argument, NULL, 'm'},
		{"tcp-listen", required_argument, NULL, 'L'},
		{"event-buffer", required_argument, NULL, 'E'},
		{"quiet", no_argument, NULL, 'q'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	int			c;

	while ((c = getopt_long(argc, argv, subcommand ? "+d:h" : "+d:hV", opts, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		switch (c)
		{
			case 'h':
				usage();
				exit(EXIT_OK);
			case 'V':
				if (subcommand)
					usage_error(subcommand, "invalid option");
				printf("%s (taskq) %s\n", SERVE_PROGRAM, TASKQ_VERSION);
				exit(EXIT_OK);
			case 'l':
				config.listen_addr = optarg;
				break;
			case 'p':
				config.pool_size = parse_int_option(subcommand, "pool size", optarg, 1, 1000);
				break;
			case 't':
				config.thread_count = parse_int_option(subcommand, "thread count", optarg, 1, 1000);
				break;
			case 'b':
				config.max_body = parse_int_option(subcommand, "body limit", optarg, 1, 1024 * 1024 * 1024);
				break;
			case 'r':
				config.max_response = parse_int_option(subcommand, "response limit", optarg, 1, 1024 * 1024 * 1024);
				break;
			case 'W':
				config.max_wait_ms = parse_int_option(subcommand, "wait limit", optarg, 0, 3600 * 1000);
				break;
			case 'L':
				config.tcp_listen_addr = optarg;
				break;
			case 'E':
				config.event_buffer = parse_int_option(subcommand, "event buffer", optarg, 256 * 1024, 1024 * 1024 * 1024);
				break;
			case 'T':
				config.connection_timeout_s = parse_int_option(subcommand, "timeout", optarg, 1, 86400);
				break;
			case 's':
				config.statement_timeout_ms = parse_int_option(subcommand, "statement timeout", optarg, 0, INT_MAX);
				break;
			case 'S':
				config.shutdown_timeout_s = parse_int_option(subcommand, "shutdown timeout", optarg, 0, 86400);
				break;
			case 'c':
				config.max_connections = parse_int_option(subcommand, "connection limit", optarg, 1, 100000);
				break;
			case 'I':
				config.max_connections_per_ip = parse_int_option(subcommand, "connection limit per address", optarg, 1, 100000);
				break;
			case 'D':
				config.request_deadline_s = parse_int_option(subcommand, "request deadline", optarg, 1, 86400);
				break;
			case 'm':
				if (optarg[0] == '\0')
					usage_error(subcommand, "empty metrics token");
				config.metrics_token = optarg;
				break;
			case 'q':
				config.quiet = true;
				break;
			default:
				usage_error(subcommand, "invalid option");
		}
	}
	if (optind < argc)
		usage_error(subcommand, "unexpected argument \"%s\"", argv[optind]);
	if (config.metrics_token == NULL && getenv("TASKQ_METRICS_TOKEN") &&
		getenv("TASKQ_METRICS_TOKEN")[0] != '\0')
		config.metrics_token = getenv("TASKQ_METRICS_TOKEN");
	if (config.thread_count == 0)
		config.thread_count = config.pool_size;
}

/*
 * Resolve --listen (HOST:PORT, [IPV6]:PORT or :PORT for every IPv4
 * address) into *ss; exits with a usage error when it cannot.
 */
static void
resolve_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char	   *copy = pg_strdup(spec);
	char	   *host;
	char	   *port;
	struct addrinfo hints;
	struct addrinfo *ai;
	int			rc;

	if (copy[0] == '[')
	{
		host = copy + 1;
		port = strchr(host, ']');
		if (port == NULL || port[1] != ':')
			usage_error(subcommand, "invalid --listen \"%s\" (HOST:PORT or [IPV6]:PORT)", spec);
		*port = '\0';
		port += 2;
	}
	else
	{
		port = strrchr(copy, ':');
		if (port == NULL)
			usage_error(subcommand, "invalid --listen \"%s\" (HOST:PORT or [IPV6]:PORT)", spec);
		*port++ = '\0';
		host = copy[0] ? copy : "0.0.0.0";
	}
	(void) parse_int_option(subcommand, "port", port, 0, 65535);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0)
		usage_error(subcommand, "cannot resolve --listen host \"%s\": %s", host,
					gai_strerror(rc));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sslen = ai->ai_addrlen;
	freeaddrinfo(ai);
	free(copy);
}

/*
 * Start MHD on the address ss.  The signals that stop the server are
 * blocked first (MHD's threads inherit the mask): the main thread takes
 * them with sigwait.
 */
static struct MHD_Daemon *
start_daemon(const struct sockaddr_storage *ss, socklen_t sslen,
			 const sigset_t *sigs)
{
	struct MHD_Daemon *daemon;
	const union MHD_DaemonInfo *info;
	char		host[NI_MAXHOST];
	unsigned int flags;

	pthread_sigmask(SIG_BLOCK, sigs, NULL);
	pqsignal(SIGPIPE, SIG_IGN);

	flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
		MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE;
	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle_request, NULL,
							  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
							  MHD_OPTION_SOCK_ADDR, (const struct sockaddr *) ss,
							  MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) config.thread_count,
							  MHD_OPTION_CONNECTION_LIMIT, (unsigned int) config.max_connections,
							  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) config.max_connections_per_ip,
							  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) config.connection_timeout_s,
							  MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
							  MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
							  MHD_OPTION_END);
	if (daemon == NULL)
		fatal("could not listen on %s", config.listen_addr);
	info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (getnameinfo((const struct sockaddr *) ss, sslen, host, sizeof(host), NULL, 0,
					NI_NUMERICHOST) != 0)
		strlcpy(host, "?", sizeof(host));
	log_message("listening on http://%s%s%s:%u (pool %d, threads %d)",
				ss->ss_family == AF_INET6 ? "[" : "", host,
				ss->ss_family == AF_INET6 ? "]" : "",
				info ? (unsigned int) info->port : 0, config.pool_size,
				config.thread_count);
	return daemon;
}

/*
 * The shutdown after the signal sig: no new connections, new requests on
 * open ones answered 503, the requests in flight waited for up to
 * --shutdown-timeout (or until a second signal), then cancelled.  The
 * exit status: 0, or 1 when requests had to be cancelled.
 */
static int
shut_down(struct MHD_Daemon *daemon, const sigset_t *sigs, int sig)
{
	int64_t		deadline;
	bool		forced = false;

	stop_taking_requests();
	tcp_stop();
	hub_stop();					/* event streams end now */
	{
		MHD_socket	fd = MHD_quiesce_daemon(daemon);

		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	log_message("shutting down (%s): waiting up to %d s for %d request(s) in flight",
				sig == SIGTERM ? "SIGTERM" : "SIGINT", config.shutdown_timeout_s,
				requests_in_flight());

	deadline = now_ms() + (int64_t) config.shutdown_timeout_s * 1000;
	while (requests_in_flight() > 0 || tcp_connections() > 0 ||
		   websocket_connections() > 0)
	{
		struct timespec wait = {0, 50 * 1000 * 1000};
		int64_t		now = now_ms();

		if (now >= deadline)
		{
			log_message("shutdown timeout: cancelling %d request(s)", requests_in_flight());
			forced = true;
			break;
		}
		if (sigtimedwait(sigs, NULL, &wait) > 0)
		{
			log_message("second signal: cancelling %d request(s)", requests_in_flight());
			forced = true;
			break;
		}
	}
	if (forced)
		pool_cancel_queries();
	MHD_stop_daemon(daemon);
	pool_close();
	log_message("stopped");
	return forced ? EXIT_ERROR : EXIT_OK;
}

int
main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t	sslen;
	struct MHD_Daemon *daemon;
	sigset_t	sigs;
	int			sig;

	if (argc > 0 && strcmp(argv[0], SERVE_AS_SUBCOMMAND) == 0)
	{
		progname = "taskq";
		subcommand = "serve";
		command_name = SERVE_AS_SUBCOMMAND;
	}
	parse_options(argc, argv);
	resolve_listen(config.listen_addr, &ss, &sslen);
	pool_open();

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	daemon = start_daemon(&ss, sslen, &sigs);
	hub_start();
	if (config.tcp_listen_addr)
	{
		struct sockaddr_storage tss;
		socklen_t	tsslen;

		resolve_listen(config.tcp_listen_addr, &tss, &tsslen);
		tcp_start(&tss, tsslen);
	}

	while (sigwait(&sigs, &sig) != 0)
		;
	return shut_down(daemon, &sigs, sig);
}
