/*-------------------------------------------------------------------------
 *
 * worker.c
 *		taskq worker: pull jobs from some queues and run a command for each.
 *
 * taskq worker --queue Q [--queue Q2 ...] [--concurrency N] [--batch K]
 *		[--handler ENGINE=COMMAND ...] [--route QUEUE=ENGINE ...]
 *		[--shutdown-timeout SECONDS]
 *		[--poll-interval SECONDS] -- COMMAND [ARGS...]
 *
 * Design: one process, one thread, one connection used synchronously (and,
 * for waiting pulls, a second one used asynchronously), and a poll() loop.  Each job runs as a child process (fork + execvp, no
 * shell) in its own process group, so that a Ctrl-C in the terminal
 * reaches the worker only and a timeout can kill the handler with the
 * processes it started.  The loop watches:
 *
 *	- the connection's socket, for taskq_wakeup notifications (LISTEN; the
 *	  payload is a queue name, '' for any) and for the server going away;
 *	- with one queue, the waiting pull's connection instead of LISTEN: when
 *	  a pull comes back short, the free slots are reserved for a pull with
 *	  wait_ms (up to WAIT_MAX_MS, less the --poll-interval) sent there,
 *	  which the server wakes when a job becomes runnable (see below);
 *	- each handler's stdout (kept up to RESULT_MAX), stderr (the last
 *	  ERROR_TAIL bytes are kept) and progress pipe (lines "progress N
 *	  [message]" become taskq.progress calls), read without blocking;
 *	- a self-pipe written by the signal handlers (SIGCHLD, SIGTERM, SIGINT);
 *	- timers: heartbeats every third of each job's lease, each job's
 *	  deadline (its lease length: SIGTERM, then SIGKILL KILL_GRACE_MS
 *	  later, then fail 'timed out'), the fallback poll when idle (a wake-up
 *	  is a hint, not a guarantee), reconnection and the shutdown deadline.
 *
 * Slots: up to --concurrency jobs run at once; the worker pulls
 * min(free slots, --batch) jobs at a time, going round the queues, and
 * pulls again at once while pulls come back full, then waits for a
 * wake-up, a free slot or the fallback poll.  It never polls in a tight
 * loop.
 *
 * Results: exit status 0 acks the job with stdout as the result when it
 * is valid JSON (checked by the server's jsonb input), otherwise with
 * {"stdout": "..."} (cut to STDOUT_WRAP_MAX bytes, "truncated": true when
 * cut), and with no result when stdout is empty.  Any other exit, or a
 * handler killed by a signal, fails the job with the exit status and the
 * tail of stderr, so the queue's retry, backoff and dead-letter rules
 * apply.  Every ack, fail, heartbeat and progress call passes the job's
 * lease: when the lease is no longer current (the job was re-delivered
 * after its lease expired), the call is refused and the worker drops the
 * job, logging "lease lost".
 *
 * Waiting pulls: taskq.pull's wait_ms sleeps in the server until a commit
 * makes a job of the queue runnable (a push, a promotion, a redrive, a
 * reclaimed lease, a slot freed under flow control), so the worker needs
 * neither LISTEN nor a fallback poll, and works through PgBouncer in
 * transaction pooling.  pull takes one queue: a worker with several
 * queues LISTENs and polls instead, as does one whose server's taskq has
 * no wait_ms.  The waiting pull has a connection of its own, so that
 * heartbeats, acks and progress go on meanwhile on the first one; it is
 * cancelled at shutdown.  A failed waiting pull is logged and the worker
 * polls until the next one.
 *
 * Connection loss: the worker keeps its children running, reconnects with
 * a growing pause (RECONNECT_MIN_MS doubling to RECONNECT_MAX_MS), LISTENs
 * again and then reports the jobs that finished meanwhile; a job whose
 * lease expired in the meantime is refused (lease lost) and is delivered
 * again by the queue, so nothing is lost and nothing is acked twice.
 *
 * Shutdown: the first SIGTERM or SIGINT stops pulling and lets running
 * jobs finish for up to --shutdown-timeout seconds; handlers still running
 * then are killed and their jobs failed with 'worker shutting down' (which
 * counts as an attempt; the job is retried after its backoff).  A second
 * signal kills the handlers and exits at once without reporting: those
 * jobs come back when their leases expire.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "cli.h"

#define RESULT_MAX			(1024 * 1024)	/* stdout kept; ack result limit */
#define STDOUT_WRAP_MAX		(64 * 1024)	/* stdout in {"stdout": ...} */
#define BUNDLE_RESULT_MAX	(64 * 1024)	/* results acked with a pull */
#define ERROR_TAIL			8192	/* bytes of stderr kept for fail */
#define PROGRESS_LINE_MAX	8192
#define KILL_GRACE_MS		3000	/* SIGTERM → SIGKILL */
#define RECONNECT_MIN_MS	500
#define RECONNECT_MAX_MS	10000
#define RELEASE_DELAY_MS	5000	/* a job no handler here can run waits
									 * that long for another worker */
#define WAIT_MAX_MS			30000	/* longest wait_ms of a waiting pull */

#define PULL_COLUMNS "SELECT id, lease, queue, name, data::text, " \
	"coalesce(metadata, '{}')::text, attempt, max_attempts, " \
	"parent_results::text, metadata->>'engine', flow_id, " \
	"greatest(1, round(extract(epoch FROM lease_expires_at - now()) * 1000))::bigint, " \
	"group_key "

typedef enum SlotState
{
	SLOT_FREE,
	SLOT_WAITING,				/* reserved for the waiting pull's jobs */
	SLOT_RUNNING,				/* handler running (or pipes being drained) */
	SLOT_DONE					/* handler finished, outcome to report */
} SlotState;

typedef struct Job
{
	SlotState	state;
	char	   *id;
	char	   *lease;
	char	   *queue;
	char	   *name;
	int			attempt;
	int			max_attempts;
	int64_t		lease_ms;

	pid_t		pid;
	int			out_fd;
	int			err_fd;
	int			prog_fd;

	char	   *out;
	size_t		out_len;
	bool		out_truncated;
	char		err[2 * ERROR_TAIL];
	size_t		err_len;
	char		prog[PROGRESS_LINE_MAX];
	size_t		prog_len;

	int64_t		started;
	int64_t		deadline;
	int64_t		next_heartbeat;
	int64_t		kill_at;		/* SIGKILL due (0: none) */
	char	   *kill_reason;	/* we killed it: timed out / shutting down */
	bool		lease_lost;
	bool		exited;
	int			status;
	char	   *release_reason; /* set when the job is handed back unrun */
} Job;

typedef struct Handler
{
	char	   *engine;
	char	  **argv;
} Handler;

typedef struct Route
{
	char	   *queue;
	char	   *engine;
} Route;

/* configuration */
static char **queues;
static int	nqueues;
static int	concurrency = 1;
static int	batch = 1;
static int	shutdown_timeout_s = 30;
static int	poll_interval_ms = 5000;
static char **default_argv;
static Handler *handlers;
static int	nhandlers;
static Route *routes;			/* --route QUEUE=ENGINE */
static int	nroutes;

/* jobs handed back lately, so that each is logged once */
#define RELEASED_KEPT	256
static char *released[RELEASED_KEPT];
static int	released_next;

/* state */
static Job *jobs;
static PGconn *conn;
static int64_t reconnect_at;
static int	reconnect_delay = RECONNECT_MIN_MS;
static bool need_pull = true;
static int64_t next_poll;
static int	rr_queue;
static bool shutting_down;
static int64_t shutdown_deadline;
static int	selfpipe[2];
static struct pollfd *pfds;		/* what poll() watches */

/* the waiting pull (one queue only) */
static bool wait_pulls;			/* used: one queue, a server with wait_ms */
static PGconn *wconn;			/* its connection */
static int64_t wconn_retry_at;	/* when to connect it again */
static bool wait_in_flight;		/* sent, its result not all read yet */
static int	wait_want;			/* the slots it reserved */
static bool queue_drained;		/* the last pull came back short */
static volatile sig_atomic_t signals_received = 0;

static void
wake_self(void)
{
	int			save = errno;
	ssize_t		rc;

	rc = write(selfpipe[1], "x", 1);
	(void) rc;
	errno = save;
}

static void
handle_stop_signal(int signo)
{
	signals_received++;
	wake_self();
}

static void
handle_sigchld(int signo)
{
	wake_self();
}

static void
set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* split a command string on blanks (no quoting, no shell) */
static char **
split_words(const char *s)
{
	char	  **argv = pg_malloc0(sizeof(char *) * (strlen(s) / 2 + 2));
	char	   *copy = pg_strdup(s);
	char	   *tok;
	char	   *save = NULL;
	int			n = 0;

	for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
		argv[n++] = tok;
	argv[n] = NULL;
	return n > 0 ? argv : NULL;
}

/* ---- connection ---- */

static void
connection_lost(void)
{
	if (conn)
	{
		log_message("lost the connection to the server; reconnecting");
		PQfinish(conn);
		conn = NULL;
	}
	reconnect_at = now_ms() + reconnect_delay;
}

/*
 * wexec: run a statement; NULL (and the connection marked lost) when the
 * connection is gone, else the result, which may hold an error.
 */
static PGresult *
wexec(const char *sql, int nparams, const char *const *params)
{
	PGresult   *res;

	if (conn == NULL)
		return NULL;
	res = exec_prepared(conn, sql, nparams, params);
	if (PQstatus(conn) == CONNECTION_BAD)
	{
		PQclear(res);
		connection_lost();
		return NULL;
	}
	return res;
}

static const char *
res_message(const PGresult *res)
{
	const char *s = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	return s ? s : PQresultErrorMessage(res);
}

static bool
try_connect(bool first)
{
	PGresult   *res;

	conn = connect_db(first);
	if (conn == NULL)
		return false;
	if (wait_pulls)
		goto connected;
	res = PQexec(conn, "LISTEN taskq_wakeup");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		if (first)
		{
			report_result_error(res, conn);
			exit(EXIT_ERROR);
		}
		log_message("LISTEN failed: %s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		conn = NULL;
		return false;
	}
	PQclear(res);
connected:
	if (!first)
		log_message("reconnected");
	reconnect_delay = RECONNECT_MIN_MS;
	need_pull = true;
	return true;
}

/* ---- jobs ---- */

static int
free_slots(void)
{
	int			i,
				n = 0;

	for (i = 0; i < concurrency; i++)
		if (jobs[i].state == SLOT_FREE)
			n++;
	return n;
}

static int
busy_slots(void)
{
	return concurrency - free_slots();
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
	{
		close(*fd);
		*fd = -1;
	}
}

static void
clear_job(Job *job)
{
	free(job->id);
	free(job->lease);
	free(job->queue);
	free(job->name);
	free(job->out);
	free(job->kill_reason);
	free(job->release_reason);
	close_fd(&job->out_fd);
	close_fd(&job->err_fd);
	close_fd(&job->prog_fd);
	memset(job, 0, sizeof(Job));
	job->out_fd = job->err_fd = job->prog_fd = -1;
	job->state = SLOT_FREE;
	need_pull = true;			/* a slot is free: there may be more work */
}

static void
log_job(Job *job, const char *outcome)
{
	log_message("job %s queue=%s name=%s attempt=%d/%d outcome=%s duration=%lldms",
				job->id, job->queue, job->name, job->attempt, job->max_attempts,
				outcome, (long long) (now_ms() - job->started));
}

static void
terminate_job(Job *job, const char *reason)
{
	if (job->pid > 0 && !job->exited)
	{
		kill(-job->pid, SIGTERM);
		job->kill_at = now_ms() + KILL_GRACE_MS;
	}
	if (reason && job->kill_reason == NULL)
		job->kill_reason = pg_strdup(reason);
}

static void
start_job(Job *job, PGresult *res, int row)
{
	const char *data = PQgetvalue(res, row, 4);
	const char *metadata = PQgetvalue(res, row, 5);
	const char *engine = PQgetisnull(res, row, 9) ? NULL : PQgetvalue(res, row, 9);
	char	  **argv = default_argv;
	int			fd_in,
				p_out[2],
				p_err[2],
				p_prog[2];
	pid_t		pid;
	int			i;

	memset(job, 0, sizeof(Job));
	job->out_fd = job->err_fd = job->prog_fd = -1;
	job->state = SLOT_RUNNING;
	job->id = pg_strdup(PQgetvalue(res, row, 0));
	job->lease = pg_strdup(PQgetvalue(res, row, 1));
	job->queue = pg_strdup(PQgetvalue(res, row, 2));
	job->name = pg_strdup(PQgetvalue(res, row, 3));
	job->attempt = atoi(PQgetvalue(res, row, 6));
	job->max_attempts = atoi(PQgetvalue(res, row, 7));
	job->lease_ms = atoll(PQgetvalue(res, row, 11));
	if (job->lease_ms < 3)
		job->lease_ms = 3;
	job->started = now_ms();
	job->deadline = job->started + job->lease_ms;
	job->next_heartbeat = job->started + job->lease_ms / 3;

	/* the job's metadata.engine, else its queue's --route */
	for (i = 0; i < nroutes && engine == NULL; i++)
		if (strcmp(routes[i].queue, job->queue) == 0)
			engine = routes[i].engine;
	if (engine)
		for (i = 0; i < nhandlers; i++)
			if (strcmp(handlers[i].engine, engine) == 0)
			{
				argv = handlers[i].argv;
				break;
			}
	if (argv == NULL)
	{
		char		buf[1200];

		if (engine)
			snprintf(buf, sizeof(buf),
					 "no handler for engine \"%.1000s\" and no default command", engine);
		else
			snprintf(buf, sizeof(buf),
					 "no default command for a job without an engine");
		job->release_reason = pg_strdup(buf);
		job->state = SLOT_DONE;
		return;
	}

	/* stdin: the data, from an anonymous file (it may exceed a pipe) */
	fd_in = memfd_create("taskq-data", MFD_CLOEXEC);
	if (fd_in < 0 ||
		write(fd_in, data, strlen(data)) != (ssize_t) strlen(data) ||
		write(fd_in, "\n", 1) != 1 ||
		lseek(fd_in, 0, SEEK_SET) != 0 ||
		pipe2(p_out, O_CLOEXEC) != 0)
		fatal("could not set up a handler's input: %m");
	if (pipe2(p_err, O_CLOEXEC) != 0 || pipe2(p_prog, O_CLOEXEC) != 0)
		fatal("could not create a pipe: %m");

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		fatal("could not fork: %m");
	if (pid == 0)
	{
		sigset_t	none;

		setpgid(0, 0);
		pqsignal(SIGTERM, SIG_DFL);
		pqsignal(SIGINT, SIG_DFL);
		pqsignal(SIGCHLD, SIG_DFL);
		pqsignal(SIGPIPE, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);

		/* the sources are >= 3 (fds 0-2 were open), so no clobbering */
		if (dup2(fd_in, 0) < 0 || dup2(p_out[1], 1) < 0 || dup2(p_err[1], 2) < 0)
			_exit(127);
		if (p_prog[1] == 3)
			fcntl(3, F_SETFD, 0);
		else if (dup2(p_prog[1], 3) < 0)
			_exit(127);

		setenv("TASKQ_JOB_ID", job->id, 1);
		setenv("TASKQ_QUEUE", job->queue, 1);
		setenv("TASKQ_JOB_NAME", job->name, 1);
		setenv("TASKQ_ATTEMPT", PQgetvalue(res, row, 6), 1);
		setenv("TASKQ_MAX_ATTEMPTS", PQgetvalue(res, row, 7), 1);
		setenv("TASKQ_METADATA", metadata, 1);
		if (!PQgetisnull(res, row, 8))
			setenv("TASKQ_PARENT_RESULTS", PQgetvalue(res, row, 8), 1);
		else
			unsetenv("TASKQ_PARENT_RESULTS");
		if (!PQgetisnull(res, row, 10))
			setenv("TASKQ_FLOW_ID", PQgetvalue(res, row, 10), 1);
		else
			unsetenv("TASKQ_FLOW_ID");
		if (!PQgetisnull(res, row, 12))
			setenv("TASKQ_GROUP", PQgetvalue(res, row, 12), 1);
		else
			unsetenv("TASKQ_GROUP");
		setenv("TASKQ_PROGRESS_FD", "3", 1);

		execvp(argv[0], argv);
		fprintf(stderr, "could not run \"%s\": %s\n", argv[0], strerror(errno));
		_exit(127);
	}

	setpgid(pid, pid);			/* also here: no race with kill(-pid) */
	close(fd_in);
	close(p_out[1]);
	close(p_err[1]);
	close(p_prog[1]);
	job->pid = pid;
	job->out_fd = p_out[0];
	job->err_fd = p_err[0];
	job->prog_fd = p_prog[0];
	set_nonblock(job->out_fd);
	set_nonblock(job->err_fd);
	set_nonblock(job->prog_fd);
}

static void
send_progress(Job *job, const char *line)
{
	const char *params[4];
	char		num[32];
	const char *p = line;
	char	   *end;
	long		n;
	PGresult   *res;

	if (strncmp(p, "progress", 8) != 0 || (p[8] != ' ' && p[8] != '\t'))
		return;
	p += 8;
	while (*p == ' ' || *p == '\t')
		p++;
	n = strtol(p, &end, 10);
	if (end == p || (*end != '\0' && *end != ' ' && *end != '\t'))
		return;
	while (*end == ' ' || *end == '\t')
		end++;
	snprintf(num, sizeof(num), "%ld", n < -1000 ? -1000 : n > 1000 ? 1000 : n);
	params[0] = job->id;
	params[1] = num;
	params[2] = *end ? end : NULL;
	params[3] = job->lease;
	res = wexec("SELECT taskq.progress($1::uuid, $2::int, $3, $4::uuid)", 4, params);
	if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
		log_message("job %s: progress not recorded: %s (SQLSTATE %s)",
					job->id, res_message(res), res_sqlstate(res));
	PQclear(res);
}

/* read what a handler wrote; true at end of file (or error) */
static bool
read_pipe(Job *job, int which)
{
	char		buf[65536];

	for (;;)
	{
		int			fd = which == 0 ? job->out_fd : which == 1 ? job->err_fd : job->prog_fd;
		ssize_t		n;

		if (fd < 0)
			return true;
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return false;
		if (n <= 0)
		{
			if (which == 0)
				close_fd(&job->out_fd);
			else if (which == 1)
				close_fd(&job->err_fd);
			else
				close_fd(&job->prog_fd);
			return true;
		}
		if (which == 0)
		{
			size_t		room = RESULT_MAX + 1 - job->out_len;
			size_t		take = (size_t) n < room ? (size_t) n : room;

			if (job->out == NULL)
				job->out = pg_malloc(RESULT_MAX + 2);
			memcpy(job->out + job->out_len, buf, take);
			job->out_len += take;
			if (take < (size_t) n)
				job->out_truncated = true;
		}
		else if (which == 1)
		{
			ssize_t		i;

			for (i = 0; i < n; i++)
			{
				if (job->err_len == sizeof(job->err))
				{
					memmove(job->err, job->err + ERROR_TAIL, ERROR_TAIL);
					job->err_len = ERROR_TAIL;
				}
				job->err[job->err_len++] = buf[i];
			}
		}
		else
		{
			ssize_t		i;

			for (i = 0; i < n; i++)
			{
				if (buf[i] == '\n')
				{
					job->prog[job->prog_len] = '\0';
					send_progress(job, job->prog);
					job->prog_len = 0;
				}
				else if (job->prog_len < PROGRESS_LINE_MAX - 1)
					job->prog[job->prog_len++] = buf[i];
			}
		}
	}
}

/* the last ERROR_TAIL bytes of stderr, from a line start when possible */
static char *
stderr_tail(Job *job)
{
	size_t		start = job->err_len > ERROR_TAIL ? job->err_len - ERROR_TAIL : 0;
	size_t		len;
	char	   *s;

	/* skip a partial UTF-8 character */
	while (start < job->err_len && (job->err[start] & 0xC0) == 0x80)
		start++;
	len = job->err_len - start;
	while (len > 0 && (job->err[start + len - 1] == '\n' ||
					   job->err[start + len - 1] == ' '))
		len--;
	s = pg_malloc(len + 1);
	memcpy(s, job->err + start, len);
	s[len] = '\0';
	return s;
}

/*
 * s with NUL bytes and bytes that are not legal UTF-8 replaced by '?' (in
 * place), so that the server takes it as text
 */
static void
sanitize_utf8(char *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		int			n = utf8_char_length((const unsigned char *) s + i, len - i);

		if (n == 0 || s[i] == '\0')
			s[i++] = '?';
		else
			i += n;
	}
}

/* whether a finished job's stdout is blank: it is acked with no result */
static bool
out_blank(const Job *job)
{
	for (size_t i = 0; i < job->out_len; i++)
		if (!strchr(" \t\r\n", job->out[i]))
			return false;
	return true;
}

/*
 * bundleable: a finished job whose ack can go with the next pull (bundled
 * acking): it succeeded, its lease is not known to be lost, and its stdout
 * is blank or JSON that the server takes as it is (checked here with
 * PostgreSQL's own JSON parser; a string with \u0000, which jsonb
 * refuses, is left to report_job, as is anything the server might refuse
 * as too big).
 */
static bool
bundleable(Job *job)
{
	JsonLexContext *lex;
	bool		ok;

	if (job->state != SLOT_DONE || job->lease_lost || job->release_reason ||
		job->kill_reason || !WIFEXITED(job->status) ||
		WEXITSTATUS(job->status) != 0 || job->out_truncated)
		return false;
	if (out_blank(job))
		return true;
	if (job->out_len > BUNDLE_RESULT_MAX ||
		memchr(job->out, '\0', job->out_len) != NULL)
		return false;
	job->out[job->out_len] = '\0';
	if (strstr(job->out, "\\u0000") != NULL)
		return false;
	lex = makeJsonLexContextCstringLen(job->out, (int) job->out_len, PG_UTF8, false);
	ok = pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
	pfree(lex);
	return ok;
}

static int
bundleable_slots(void)
{
	int			n = 0;

	for (int i = 0; i < concurrency; i++)
		if (bundleable(&jobs[i]))
			n++;
	return n;
}

/*
 * release_job: hand a job that no handler here can run back to the queue
 * (taskq.release: no attempt counted), for another worker, after
 * RELEASE_DELAY_MS; logged the first time only.  False when the
 * connection is down.
 */
static bool
release_job(Job *job)
{
	const char *params[3];
	PGresult   *res;
	bool		seen = false;
	char		delay[16];

	snprintf(delay, sizeof(delay), "%d", RELEASE_DELAY_MS);
	params[0] = job->id;
	params[1] = job->lease;
	params[2] = delay;
	res = wexec("SELECT taskq.release($1::uuid, $2::uuid, $3::int)", 3, params);
	if (res == NULL)
		return false;
	for (int i = 0; i < RELEASED_KEPT && !seen; i++)
		seen = released[i] && strcmp(released[i], job->id) == 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		char		outcome[512];

		snprintf(outcome, sizeof(outcome), "not-released (%s, SQLSTATE %s)",
				 res_message(res), res_sqlstate(res));
		log_job(job, outcome);
	}
	else if (!seen)
	{
		char		outcome[1400];

		snprintf(outcome, sizeof(outcome),
				 "released (%s; handed back for another worker, no attempt counted; logged once)",
				 job->release_reason);
		log_job(job, outcome);
		free(released[released_next]);
		released[released_next] = pg_strdup(job->id);
		released_next = (released_next + 1) % RELEASED_KEPT;
	}
	PQclear(res);
	clear_job(job);
	return true;
}

/*
 * report_job: ack or fail a finished job; false when the connection is
 * down (the job stays SLOT_DONE and is reported after reconnecting).
 */
static bool
report_job(Job *job)
{
	const char *params[3];
	PGresult   *res;
	char		outcome[256];
	char	   *error = NULL;

	params[0] = job->id;
	if (job->lease_lost)
	{
		log_job(job, "lease-lost");
		clear_job(job);
		return true;
	}
	if (job->release_reason)
		return release_job(job);

	if (!job->kill_reason &&
		WIFEXITED(job->status) && WEXITSTATUS(job->status) == 0)
	{
		/* success: ack, stdout as the result */
		const char *sql = "SELECT taskq.ack($1::uuid, $2::jsonb, $3::uuid)";
		bool		blank = out_blank(job);

		if (job->out)
			job->out[job->out_len] = '\0';
		params[1] = blank ? NULL : job->out;
		params[2] = job->lease;
		res = NULL;
		if (!job->out_truncated && (blank || memchr(job->out, '\0', job->out_len) == NULL))
		{
			res = wexec(sql, 3, params);
			if (res == NULL)
				return false;
		}
		if (res == NULL ||
			(PQresultStatus(res) == PGRES_FATAL_ERROR &&
			 (strncmp(res_sqlstate(res), "22", 2) == 0 ||
			  strcmp(res_sqlstate(res), "54000") == 0)))
		{
			/* not JSON (or too big): {"stdout": "..."} */
			bool		cut = job->out_len > STDOUT_WRAP_MAX;
			size_t		len = cut ? STDOUT_WRAP_MAX : job->out_len;

			PQclear(res);
			while (cut && len > 0 && (job->out[len] & 0xC0) == 0x80)
				len--;
			job->out[len] = '\0';
			sanitize_utf8(job->out, len);
			params[1] = job->out;
			res = wexec(cut ?
						"SELECT taskq.ack($1::uuid, jsonb_build_object('stdout', $2::text, 'truncated', true), $3::uuid)" :
						"SELECT taskq.ack($1::uuid, jsonb_build_object('stdout', $2::text), $3::uuid)",
						3, params);
			if (res == NULL)
				return false;
		}
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			snprintf(outcome, sizeof(outcome), "completed");
		else
			snprintf(outcome, sizeof(outcome), "%s (ack refused: %s, SQLSTATE %s)",
					 strcmp(res_sqlstate(res), "55000") == 0 ? "lease-lost" : "error",
					 res_message(res), res_sqlstate(res));
		PQclear(res);
		log_job(job, outcome);
		clear_job(job);
		return true;
	}

	/* failure: fail with the reason and the tail of stderr */
	{
		char	   *tail = stderr_tail(job);
		char		what[256];
		size_t		sz;

		if (job->kill_reason)
			snprintf(what, sizeof(what), "%s", job->kill_reason);
		else if (WIFEXITED(job->status))
			snprintf(what, sizeof(what), "handler exited with status %d",
					 WEXITSTATUS(job->status));
		else if (WIFSIGNALED(job->status))
			snprintf(what, sizeof(what), "handler killed by signal %d (%s)",
					 WTERMSIG(job->status), strsignal(WTERMSIG(job->status)));
		else
			snprintf(what, sizeof(what), "handler failed");
		sz = strlen(what) + strlen(tail) + 4;
		error = pg_malloc(sz);
		snprintf(error, sz, "%s%s%s", what, *tail ? ": " : "", tail);
		sanitize_utf8(error, strlen(error));
		free(tail);
	}
	params[1] = error;
	params[2] = job->lease;
	res = wexec("SELECT taskq.fail($1::uuid, $2, $3::uuid)", 3, params);
	if (res == NULL)
	{
		free(error);
		return false;
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		snprintf(outcome, sizeof(outcome), "%s (%.150s)",
				 strcmp(PQgetvalue(res, 0, 0), "dlq") == 0 ? "dlq" : "retry",
				 job->kill_reason ? job->kill_reason : "handler failed");
	else
		snprintf(outcome, sizeof(outcome), "%s (fail refused: %s, SQLSTATE %s)",
				 strcmp(res_sqlstate(res), "55000") == 0 ? "lease-lost" : "error",
				 res_message(res), res_sqlstate(res));
	/* describe a plain exit better than "handler failed" */
	if (PQresultStatus(res) == PGRES_TUPLES_OK && !job->kill_reason)
	{
		char		tmp[256];
		const char *kind = strcmp(PQgetvalue(res, 0, 0), "dlq") == 0 ? "dlq" : "retry";

		if (WIFEXITED(job->status))
			snprintf(tmp, sizeof(tmp), "%s (exit status %d)", kind, WEXITSTATUS(job->status));
		else
			snprintf(tmp, sizeof(tmp), "%s (signal %d)", kind, WTERMSIG(job->status));
		strcpy(outcome, tmp);
	}
	PQclear(res);
	free(error);
	log_job(job, outcome);
	clear_job(job);
	return true;
}

static void
heartbeat_job(Job *job, int64_t now)
{
	const char *params[2] = {job->id, job->lease};
	PGresult   *res;

	res = wexec("SELECT taskq.heartbeat($1::uuid, $2::uuid)", 2, params);
	if (res == NULL)
		return;
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		job->next_heartbeat = now + job->lease_ms / 3;
	else if (strcmp(res_sqlstate(res), "55000") == 0 ||
			 strcmp(res_sqlstate(res), "42704") == 0)
	{
		log_message("job %s: heartbeat refused (%s); stopping its handler",
					job->id, res_message(res));
		job->lease_lost = true;
		terminate_job(job, NULL);
	}
	else
	{
		log_message("job %s: heartbeat failed: %s (SQLSTATE %s)",
					job->id, res_message(res), res_sqlstate(res));
		job->next_heartbeat = now + 1000;
	}
	PQclear(res);
}

/*
 * pull min(free slots, batch) jobs per query, round the queues.  The first
 * query also acks the finished jobs that can go with it (bundled acking:
 * pull's acks, one transaction and one commit for both); should it fail,
 * they stay finished and report_job acks them one by one.  An ack whose
 * lease turns out to be lost is skipped by the server, never an error, so
 * that it cannot lose the pull: the job is delivered again.
 */
static void
pull_jobs(void)
{
	int			tried = 0;
	bool		full = false;

	while (tried < nqueues && conn)
	{
		int		   *bundled = pg_malloc(sizeof(int) * concurrency);
		int			nbundled = 0;
		int			room;
		int			want;
		const char *params[3];
		char		count[16];
		PQExpBufferData acks;
		PGresult   *res;
		int			r,
					slot = 0;

		initPQExpBuffer(&acks);
		for (int i = 0; i < concurrency; i++)
			if (bundleable(&jobs[i]))
			{
				Job		   *job = &jobs[i];

				appendPQExpBufferStr(&acks, nbundled == 0 ? "[" : ",");
				appendPQExpBufferStr(&acks, "{\"id\":");
				append_json_string(&acks, job->id);
				appendPQExpBufferStr(&acks, ",\"lease\":");
				append_json_string(&acks, job->lease);
				/* no result at all (SQL NULL) for a blank stdout */
				if (!out_blank(job))
				{
					appendPQExpBufferStr(&acks, ",\"result\":");
					appendPQExpBufferStr(&acks, job->out);
				}
				appendPQExpBufferChar(&acks, '}');
				bundled[nbundled++] = i;
			}
		if (nbundled > 0)
			appendPQExpBufferChar(&acks, ']');
		room = free_slots() + nbundled;
		if (room == 0)
		{
			termPQExpBuffer(&acks);
			free(bundled);
			break;
		}
		want = room < batch ? room : batch;
		snprintf(count, sizeof(count), "%d", want);
		params[0] = queues[rr_queue];
		params[1] = count;
		params[2] = nbundled > 0 ? acks.data : NULL;
		rr_queue = (rr_queue + 1) % nqueues;
		tried++;
		res = wexec(PULL_COLUMNS "FROM taskq.pull($1, $2::int, NULL, $3::jsonb)",
					3, params);
		termPQExpBuffer(&acks);
		if (res == NULL)
		{
			free(bundled);
			return;
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			free(bundled);
			log_message("pull from queue \"%s\" failed: %s (SQLSTATE %s)",
						params[0], res_message(res), res_sqlstate(res));
			PQclear(res);
			/* report the finished jobs one by one, then pull again */
			if (nbundled > 0)
				break;
			continue;
		}
		for (int i = 0; i < nbundled; i++)
		{
			log_job(&jobs[bundled[i]], "completed");
			clear_job(&jobs[bundled[i]]);
		}
		free(bundled);
		for (r = 0; r < PQntuples(res); r++)
		{
			while (jobs[slot].state != SLOT_FREE)
				slot++;
			start_job(&jobs[slot], res, r);
		}
		if (PQntuples(res) == want)
			full = true;
		PQclear(res);
		if (free_slots() == 0)
			break;
	}
	need_pull = full && free_slots() > 0;
	queue_drained = !full;
	next_poll = now_ms() + poll_interval_ms;
}

/* ---- the waiting pull ---- */

/* give the slots reserved for the waiting pull back */
static void
release_waiting_slots(void)
{
	for (int i = 0; i < concurrency; i++)
		if (jobs[i].state == SLOT_WAITING)
			jobs[i].state = SLOT_FREE;
	wait_want = 0;
}

static void
wait_conn_lost(void)
{
	if (wconn)
	{
		if (!shutting_down)
			log_message("lost the waiting pull's connection: %s",
						PQerrorMessage(wconn));
		PQfinish(wconn);
		wconn = NULL;
	}
	wait_in_flight = false;
	release_waiting_slots();
	wconn_retry_at = now_ms() + RECONNECT_MIN_MS;
	need_pull = true;
}

/*
 * Reserve min(free slots, batch) slots and send a pull with wait_ms for
 * them on the waiting pull's connection (connected first if need be).
 */
static void
start_waiting_pull(void)
{
	int64_t		now = now_ms();
	int			want = free_slots() < batch ? free_slots() : batch;
	char		count[16];
	char		wait[16];
	const char *params[3];

	if (wconn == NULL)
	{
		if (now < wconn_retry_at)
			return;
		wconn = connect_db(false);
		if (wconn == NULL)
		{
			wconn_retry_at = now + RECONNECT_MAX_MS;
			return;
		}
	}
	snprintf(count, sizeof(count), "%d", want);
	snprintf(wait, sizeof(wait), "%d",
			 poll_interval_ms < WAIT_MAX_MS ? poll_interval_ms : WAIT_MAX_MS);
	params[0] = queues[0];
	params[1] = count;
	params[2] = wait;
	if (!send_prepared(wconn, PULL_COLUMNS
					   "FROM taskq.pull($1, $2::int, NULL, NULL, $3::int)",
					   3, params))
	{
		wait_conn_lost();
		return;
	}
	for (int i = 0, n = 0; i < concurrency && n < want; i++)
		if (jobs[i].state == SLOT_FREE)
		{
			jobs[i].state = SLOT_WAITING;
			n++;
		}
	wait_want = want;
	wait_in_flight = true;
	queue_drained = false;
}

/* the waiting pull's result: start its jobs, or note why it failed */
static void
waiting_pull_done(PGresult *res)
{
	int			slot = 0;

	release_waiting_slots();
	if (prepared_missing(wconn, res))
	{
		/* nothing ran (a pooler's other server connection): send it again */
		need_pull = true;
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		if (strcmp(res_sqlstate(res), "42883") == 0)
		{
			/* a server whose taskq.pull has no wait_ms: LISTEN instead */
			log_message("the server's taskq.pull has no wait_ms; waiting for wake-ups through LISTEN");
			wait_pulls = false;
			if (conn)
				PQclear(wexec("LISTEN taskq_wakeup", 0, NULL));
		}
		else if (!shutting_down && PQstatus(wconn) != CONNECTION_BAD &&
				 strncmp(res_sqlstate(res), "57P", 3) != 0)
			/* (57P: the server ends the session; wait_conn_lost says so) */
			log_message("waiting pull from queue \"%s\" failed: %s (SQLSTATE %s)",
						queues[0], res_message(res), res_sqlstate(res));
		/* poll on the first connection until the next waiting pull */
		next_poll = now_ms() + poll_interval_ms;
		return;
	}
	for (int r = 0; r < PQntuples(res); r++)
	{
		while (jobs[slot].state != SLOT_FREE)
			slot++;
		start_job(&jobs[slot], res, r);
	}
	/* full: there may be more; empty (time is up): wait again */
	need_pull = PQntuples(res) > 0;
	queue_drained = PQntuples(res) == 0;
}

/* read what the server sent on the waiting pull's connection */
static void
collect_waiting_pull(void)
{
	if (!wait_in_flight)
		return;
	if (!PQconsumeInput(wconn))
	{
		wait_conn_lost();
		return;
	}
	while (!PQisBusy(wconn))
	{
		PGresult   *res = PQgetResult(wconn);

		if (res == NULL)
		{
			wait_in_flight = false;
			break;
		}
		waiting_pull_done(res);
		PQclear(res);
	}
	if (wait_in_flight && PQstatus(wconn) == CONNECTION_BAD)
		wait_conn_lost();
}

/* at shutdown: ask the server to end the waiting pull now */
static void
cancel_waiting_pull(void)
{
	PGcancel   *cancel;
	char		errbuf[256];

	if (!wait_in_flight)
		return;
	cancel = PQgetCancel(wconn);
	if (cancel == NULL || !PQcancel(cancel, errbuf, sizeof(errbuf)))
		wait_conn_lost();
	if (cancel)
		PQfreeCancel(cancel);
}

static void
reap_children(void)
{
	for (;;)
	{
		int			status;
		pid_t		pid = waitpid(-1, &status, WNOHANG);
		int			i;

		if (pid <= 0)
			break;
		for (i = 0; i < concurrency; i++)
			if (jobs[i].state == SLOT_RUNNING && jobs[i].pid == pid)
			{
				jobs[i].exited = true;
				jobs[i].status = status;
				jobs[i].kill_at = 0;
				break;
			}
	}
}

static void
drain_notifications(void)
{
	PGnotify   *n;

	if (conn == NULL)
		return;
	if (!PQconsumeInput(conn))
	{
		connection_lost();
		return;
	}
	while ((n = PQnotifies(conn)) != NULL)
	{
		int			i;

		if (n->extra[0] == '\0')
			need_pull = true;
		for (i = 0; i < nqueues; i++)
			if (strcmp(n->extra, queues[i]) == 0)
				need_pull = true;
		PQfreemem(n);
	}
}

static void
worker_usage(void)
{
	printf("Run a command for each job of some queues.\n\n"
		   "Usage:\n"
		   "  taskq worker --queue Q [--queue Q2 ...] [OPTIONS] -- COMMAND [ARGS...]\n\n"
		   "COMMAND runs once per job (no shell) with the job's data as JSON on stdin and\n"
		   "TASKQ_JOB_ID, TASKQ_QUEUE, TASKQ_JOB_NAME, TASKQ_ATTEMPT, TASKQ_MAX_ATTEMPTS,\n"
		   "TASKQ_METADATA, TASKQ_PARENT_RESULTS (when any), TASKQ_FLOW_ID (when any),\n"
		   "TASKQ_GROUP (the push option \"group\", when any) and\n"
		   "TASKQ_PROGRESS_FD (write lines \"progress N [message]\" there) in its environment.\n"
		   "Exit 0 acks the job with stdout as the result (JSON, else {\"stdout\": ...});\n"
		   "any other exit fails it with the tail of stderr.\n\n"
		   "Options:\n"
		   "  -q, --queue=QUEUE           queue to work on (repeatable, at least one)\n"
		   "  -c, --concurrency=N         jobs run at once (default 1)\n"
		   "  -b, --batch=K               jobs pulled per query, at most the free slots (default 1)\n"
		   "      --handler=ENGINE=COMMAND  run COMMAND (split on blanks, no shell) for jobs\n"
		   "                              whose metadata.engine is ENGINE (repeatable)\n"
		   "      --route=QUEUE=ENGINE    the engine of the jobs of QUEUE without\n"
		   "                              metadata.engine (repeatable)\n"
		   "      --shutdown-timeout=SECS on SIGTERM/SIGINT, wait this long for running jobs\n"
		   "                              before failing them back to the queue (default 30)\n"
		   "      --poll-interval=SECS    fallback poll when no wake-up comes (default 5);\n"
		   "                              with one queue, the longest wait of a waiting pull\n"
		   "                              (at most 30)\n"
		   "  -d, --dbname=CONNSTR        database (conninfo string or URI; PG* variables apply)\n"
		   "  -h, --help                  show this help\n");
}

/* ---- the steps of cmd_worker ---- */

/* the command line into the configuration; usage errors exit */
static void
parse_worker_options(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONG_OPTIONS,
		{"queue", required_argument, NULL, 'q'},
		{"concurrency", required_argument, NULL, 'c'},
		{"batch", required_argument, NULL, 'b'},
		{"handler", required_argument, NULL, 'H'},
		{"route", required_argument, NULL, 'R'},
		{"shutdown-timeout", required_argument, NULL, 'S'},
		{"poll-interval", required_argument, NULL, 'P'},
		{NULL, 0, NULL, 0}
	};
	int			c;

	queues = pg_malloc0(sizeof(char *) * argc);
	handlers = pg_malloc0(sizeof(Handler) * argc);
	routes = pg_malloc0(sizeof(Route) * argc);
	while ((c = getopt_long(argc, argv, "+d:hq:c:b:", opts, NULL)) != -1)
	{
		if (common_option(c, optarg))
			continue;
		switch (c)
		{
			case 'h':
				worker_usage();
				exit(EXIT_OK);
			case 'q':
				if (optarg[0] == '\0')
					usage_error(argv[0], "empty queue name");
				queues[nqueues++] = optarg;
				break;
			case 'c':
				concurrency = parse_int_option(argv[0], "concurrency", optarg, 1, 1000);
				break;
			case 'b':
				batch = parse_int_option(argv[0], "batch size", optarg, 1, 1000);
				break;
			case 'S':
				shutdown_timeout_s = parse_int_option(argv[0], "shutdown timeout", optarg, 0, 86400);
				break;
			case 'P':
				poll_interval_ms = parse_int_option(argv[0], "poll interval", optarg, 1, 3600) * 1000;
				break;
			case 'H':
				{
					char	   *eq = strchr(optarg, '=');

					if (eq == NULL || eq == optarg)
						usage_error(argv[0], "--handler takes ENGINE=COMMAND");
					handlers[nhandlers].engine = pnstrdup(optarg, eq - optarg);
					handlers[nhandlers].argv = split_words(eq + 1);
					if (handlers[nhandlers].argv == NULL)
						usage_error(argv[0], "empty command for engine \"%s\"",
									handlers[nhandlers].engine);
					nhandlers++;
					break;
				}
			case 'R':
				{
					char	   *eq = strchr(optarg, '=');

					if (eq == NULL || eq == optarg || eq[1] == '\0')
						usage_error(argv[0], "--route takes QUEUE=ENGINE");
					routes[nroutes].queue = pnstrdup(optarg, eq - optarg);
					routes[nroutes].engine = pg_strdup(eq + 1);
					nroutes++;
					break;
				}
			default:
				usage_error(argv[0], "invalid option");
		}
	}
	if (nqueues == 0)
		usage_error(argv[0], "at least one --queue is required");
	if (optind < argc)
		default_argv = argv + optind;
	if (default_argv == NULL && nhandlers == 0)
		usage_error(argv[0], "no command given (taskq worker --queue Q -- COMMAND [ARGS...])");
}

/* the process: standard fds, the self-pipe, signals, the job slots */
static void
set_up_worker(void)
{
	int			i;

	/* fds 0-2 must be open: the child set-up relies on new fds being >= 3 */
	for (i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0)
			(void) open("/dev/null", O_RDWR);

	if (pipe2(selfpipe, O_CLOEXEC | O_NONBLOCK) != 0)
		fatal("could not create a pipe: %m");
	pqsignal(SIGTERM, handle_stop_signal);
	pqsignal(SIGINT, handle_stop_signal);
	pqsignal(SIGCHLD, handle_sigchld);
	pqsignal(SIGPIPE, SIG_IGN);

	jobs = pg_malloc0(sizeof(Job) * concurrency);
	for (i = 0; i < concurrency; i++)
	{
		jobs[i].out_fd = jobs[i].err_fd = jobs[i].prog_fd = -1;
		jobs[i].state = SLOT_FREE;
	}
	pfds = pg_malloc0(sizeof(struct pollfd) * (3 * concurrency + 3));
	wait_pulls = (nqueues == 1);
}

/*
 * The signals received: the first starts the shutdown, a second kills the
 * handlers and exits at once; at the shutdown deadline the handlers still
 * running are stopped.
 */
static void
handle_signals(int64_t now)
{
	int			i;

	if (signals_received >= 2)
	{
		log_message("second signal: killing %d running handler(s) and exiting now",
					busy_slots());
		for (i = 0; i < concurrency; i++)
			if (jobs[i].state == SLOT_RUNNING && jobs[i].pid > 0 && !jobs[i].exited)
				kill(-jobs[i].pid, SIGKILL);
		exit(EXIT_ERROR);
	}
	if (signals_received >= 1 && !shutting_down)
	{
		shutting_down = true;
		shutdown_deadline = now + (int64_t) shutdown_timeout_s * 1000;
		cancel_waiting_pull();
		log_message("shutting down: waiting up to %d s for %d running job(s)",
					shutdown_timeout_s, busy_slots() - wait_want);
	}
	if (shutting_down && now >= shutdown_deadline && wait_in_flight)
		wait_conn_lost();
	if (shutting_down && now >= shutdown_deadline)
		for (i = 0; i < concurrency; i++)
			if (jobs[i].state == SLOT_RUNNING && !jobs[i].kill_reason)
				terminate_job(&jobs[i], "worker shutting down");
}

/* try to reconnect when the connection is lost and the pause is over */
static void
reconnect_if_due(int64_t now)
{
	if (conn == NULL && now >= reconnect_at)
	{
		if (!try_connect(false))
		{
			reconnect_delay = reconnect_delay * 2 > RECONNECT_MAX_MS ?
				RECONNECT_MAX_MS : reconnect_delay * 2;
			reconnect_at = now_ms() + reconnect_delay;
		}
	}
}

/*
 * The running handlers: those past their deadline are stopped (SIGKILL
 * when the grace is over), those that exited have their pipes drained and
 * become SLOT_DONE, to be reported.
 */
static void
tend_handlers(int64_t now)
{
	int			i;

	reap_children();
	for (i = 0; i < concurrency; i++)
	{
		Job		   *job = &jobs[i];

		if (job->state != SLOT_RUNNING)
			continue;
		if (!job->exited)
		{
			if (!job->kill_reason && !job->lease_lost && now >= job->deadline)
			{
				char		reason[64];

				snprintf(reason, sizeof(reason), "timed out after %lld ms",
						 (long long) job->lease_ms);
				terminate_job(job, reason);
			}
			if (job->kill_at && now >= job->kill_at)
			{
				kill(-job->pid, SIGKILL);
				job->kill_at = 0;
			}
			continue;
		}
		/* exited: take what is left in the pipes, then report */
		read_pipe(job, 0);
		read_pipe(job, 1);
		read_pipe(job, 2);
		if (job->prog_len > 0)
		{
			job->prog[job->prog_len] = '\0';
			send_progress(job, job->prog);
			job->prog_len = 0;
		}
		close_fd(&job->out_fd);
		close_fd(&job->err_fd);
		close_fd(&job->prog_fd);
		job->state = SLOT_DONE;
	}
}

/* ack or fail the finished jobs, while there is a connection */
static void
report_finished_jobs(void)
{
	int			i;

	for (i = 0; i < concurrency && conn; i++)
		if (jobs[i].state == SLOT_DONE)
			report_job(&jobs[i]);
}

/* heartbeat the running jobs whose heartbeat is due */
static void
heartbeat_jobs(int64_t now)
{
	int			i;

	for (i = 0; i < concurrency && conn; i++)
		if (jobs[i].state == SLOT_RUNNING && !jobs[i].exited &&
			!jobs[i].lease_lost && now >= jobs[i].next_heartbeat)
			heartbeat_job(&jobs[i], now);
}

/* when the loop must run again at the latest: the first timer due */
static int64_t
next_wake(int64_t now)
{
	int64_t		wake = now + 5000;
	int			i;

	if (conn && !shutting_down && free_slots() > 0)
	{
		if (need_pull)
			wake = now;
		else if (wait_pulls && queue_drained && !wait_in_flight)
			wake = wconn_retry_at > now ? wconn_retry_at : now;
		else if (next_poll < wake && !wait_in_flight)
			wake = next_poll;
	}
	if (conn == NULL && reconnect_at < wake)
		wake = reconnect_at;
	if (shutting_down && shutdown_deadline < wake)
		wake = shutdown_deadline;
	for (i = 0; i < concurrency; i++)
	{
		Job		   *job = &jobs[i];

		if (job->state == SLOT_DONE)
			wake = now + 100;	/* waiting for the connection */
		if (job->state != SLOT_RUNNING)
			continue;
		if (job->exited)
			wake = now;
		if (!job->kill_reason && job->deadline < wake)
			wake = job->deadline;
		if (job->kill_at && job->kill_at < wake)
			wake = job->kill_at;
		if (conn && !job->lease_lost && job->next_heartbeat < wake)
			wake = job->next_heartbeat;
	}
	return wake;
}

/*
 * Sleep in poll() until something happens (a signal, a notification, a
 * handler's output) or the next timer is due, then drain the self-pipe,
 * the connection and the handlers' pipes.
 */
static void
wait_for_events(void)
{
	int64_t		now = now_ms();
	int64_t		wake = next_wake(now);
	int			timeout = wake > now ? (int) (wake - now) : 0;
	int			nfds = 0;
	int			i;

	pfds[nfds].fd = selfpipe[0];
	pfds[nfds++].events = POLLIN;
	if (conn)
	{
		pfds[nfds].fd = PQsocket(conn);
		pfds[nfds++].events = POLLIN;
	}
	if (wait_in_flight)
	{
		pfds[nfds].fd = PQsocket(wconn);
		pfds[nfds++].events = POLLIN;
	}
	for (i = 0; i < concurrency; i++)
	{
		Job		   *job = &jobs[i];

		if (job->state != SLOT_RUNNING)
			continue;
		if (job->out_fd >= 0)
		{
			pfds[nfds].fd = job->out_fd;
			pfds[nfds++].events = POLLIN;
		}
		if (job->err_fd >= 0)
		{
			pfds[nfds].fd = job->err_fd;
			pfds[nfds++].events = POLLIN;
		}
		if (job->prog_fd >= 0)
		{
			pfds[nfds].fd = job->prog_fd;
			pfds[nfds++].events = POLLIN;
		}
	}
	if (poll(pfds, nfds, timeout) < 0 && errno != EINTR)
		fatal("poll failed: %m");

	{
		char		buf[64];

		while (read(selfpipe[0], buf, sizeof(buf)) > 0)
			;
	}
	drain_notifications();
	collect_waiting_pull();
	for (i = 0; i < concurrency; i++)
		if (jobs[i].state == SLOT_RUNNING)
		{
			read_pipe(&jobs[i], 0);
			read_pipe(&jobs[i], 1);
			read_pipe(&jobs[i], 2);
		}
}

/*
 * The main loop: until a shutdown has no job left running, handle the
 * signals, the connection, the handlers and their results, heartbeats and
 * pulls, then wait for the next event.
 */
static void
run_worker_loop(void)
{
	for (;;)
	{
		int64_t		now = now_ms();

		handle_signals(now);
		reconnect_if_due(now);
		tend_handlers(now);

		now = now_ms();
		heartbeat_jobs(now);
		/* a job that finished well is acked with the next pull */
		if (conn && !shutting_down &&
			((free_slots() > 0 &&
			  (need_pull || (now >= next_poll && !wait_in_flight))) ||
			 bundleable_slots() > 0))
			pull_jobs();
		if (wait_pulls && conn && !shutting_down && queue_drained &&
			!wait_in_flight && free_slots() > 0)
			start_waiting_pull();

		/* the others, and any job set up without a run (no handler) */
		report_finished_jobs();

		if (shutting_down && busy_slots() == 0)
			break;

		wait_for_events();
	}
}

/* ---- the worker ---- */

int
cmd_worker(int argc, char **argv)
{
	parse_worker_options(argc, argv);
	set_up_worker();

	try_connect(true);
	log_message("worker started: queues %d, concurrency %d, batch %d, %s",
				nqueues, concurrency, batch,
				wait_pulls ? "waiting pulls" : "wake-ups through LISTEN");

	run_worker_loop();

	log_message("worker stopped");
	if (wconn)
		PQfinish(wconn);
	if (conn)
		PQfinish(conn);
	return EXIT_OK;
}
