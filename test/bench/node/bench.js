'use strict';
/*
 * test/bench/node/bench.js -- the Node.js drivers of taskq's side-by-side
 * benchmark (test/bench/run.sh calls it; it is not meant to be run alone).
 *
 *   node bench.js MODE --system SYSTEM --db DATABASE [options]
 *
 * Modes (each prints one JSON object on stdout):
 *   setup    create the system's schema (graphile-worker migrations,
 *            pg-boss schema and queue)
 *   push     --clients N --batch B --seconds T: N concurrent producers, B
 *            jobs per transaction, for T seconds
 *   load     --count N: a backlog of N jobs, through the system's own bulk API
 *   drain    --workers N --batch B --count N --cap S: work the backlog off
 *            with no-op handlers until COUNT jobs are done or S seconds pass
 *   latency  --rate R --seconds T --workers N: push R jobs/s, one per
 *            transaction, to N idle workers; push->pickup latency
 *   churn    --workers N --producers P --seconds T: workers draining a
 *            backlog while producers push; jobs done per second
 *   steady   --seconds T --rate R --interval-ms I --batch-max B
 *            --producers P --workers N --pull K --poll-ms M --window W
 *            [--hold H]: a fixed push rate in batches, workers pulling K
 *            and acking each job; per-window rates, latencies, backlog
 *            and dead tuples (scenarios 7 and 9: taskq, taskq_nohist,
 *            naive, pgmq, pgmq_archive)
 *   sink     (taskq only) a webhook receiver on 127.0.0.1 plus a
 *            LISTEN taskq_events client; writes its port to --port-file and
 *            prints what it received when it gets SIGTERM
 *
 * graphile-worker and pg-boss run through their own APIs (WorkerUtils.addJob,
 * addJobs, run(); boss.send, insert, fetch, complete, work), as their users
 * run them.  taskq, the naive queue, pgmq and PgQ are driven here with
 * plain `pg` clients, only for the latency scenario, the PgQ churn, the
 * fixed-rate scenarios 7 and 9 and the sink (their throughput scenarios
 * use pgbench).
 *
 * The server is reached through BENCH_PGHOST (a socket directory) and
 * BENCH_PGPORT as user postgres; BENCH_PAYLOAD is the job's JSON data.
 */

const fs = require('node:fs');
const http = require('node:http');
const { performance } = require('node:perf_hooks');
const pg = require('pg');

const QUEUE = 'bench';
const TASK = 'send_email';

/* Command-line options: --name value pairs. */
function parseArgs(args) {
	const out = { _: [] };
	for (let i = 0; i < args.length; i++) {
		if (args[i].startsWith('--')) {
			out[args[i].slice(2)] = args[i + 1];
			i++;
		} else {
			out._.push(args[i]);
		}
	}
	return out;
}

const argv = parseArgs(process.argv.slice(2));
const MODE = argv._[0];
const SYSTEM = argv.system;
const PAYLOAD = JSON.parse(process.env.BENCH_PAYLOAD || '{"user_id": 1}');
const conn = {
	host: process.env.BENCH_PGHOST,
	port: Number(process.env.BENCH_PGPORT),
	user: 'postgres',
	database: argv.db,
};

const num = (name, dflt) => (argv[name] === undefined ? dflt : Number(argv[name]));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

/* A pool of connections to the benchmark database. */
function makePool(max) {
	const pool = new pg.Pool({ ...conn, max });
	pool.on('error', (err) => console.error(`pool error: ${err.message}`));
	pool.on('connect', (client) => client.on('error', (err) => console.error(`client error: ${err.message}`)));
	return pool;
}

/* A logger for graphile-worker that keeps only warnings and errors. */
function quietGraphileLogger() {
	const { Logger } = require('graphile-worker');
	return new Logger(() => (level, message) => {
		if (level === 'error' || level === 'warning')
			console.error(`graphile-worker ${level}: ${message}`);
	});
}

/* A started pg-boss instance with the pool size it needs. */
async function startBoss(max) {
	const PgBoss = require('pg-boss');
	const boss = new PgBoss({ ...conn, max });
	boss.on('error', (err) => console.error(`pg-boss error: ${err.message}`));
	await boss.start();
	return boss;
}

/* COUNT copies of the job, as each system's bulk API takes them. */
function jobList(count, stamp) {
	const list = [];
	for (let i = 0; i < count; i++) {
		const data = stamp ? { ...PAYLOAD, t: now() } : PAYLOAD;
		if (SYSTEM === 'graphile')
			list.push({ identifier: TASK, payload: data });
		else if (SYSTEM === 'pgboss')
			list.push({ name: QUEUE, data });
		else
			list.push({ name: TASK, data });
	}
	return list;
}

/*
 * Producers: a function pushing one job (latency: DATA carries its send
 * time) or BATCH jobs in one transaction, and a close().
 */
async function makeProducer(system, poolSize) {
	if (system === 'graphile') {
		const { makeWorkerUtils } = require('graphile-worker');
		const pool = makePool(poolSize);
		const utils = await makeWorkerUtils({ pgPool: pool, logger: quietGraphileLogger() });
		return {
			push1: (data) => utils.addJob(TASK, data || PAYLOAD),
			pushBatch: (jobs) => utils.addJobs(jobs),
			close: async () => { await utils.release(); await pool.end(); },
		};
	}
	if (system === 'pgboss') {
		const boss = await startBoss(poolSize);
		return {
			push1: (data) => boss.send(QUEUE, data || PAYLOAD),
			pushBatch: (jobs) => boss.insert(jobs),
			close: () => boss.stop({ graceful: false, wait: true }),
		};
	}
	/* one statement per job, as a client library sends it */
	const text = {
		taskq: 'SELECT taskq.push($1, $2, $3)',
		naive: 'INSERT INTO naive_jobs (name, data) VALUES ($1, $2)',
		pgq: 'SELECT pgq.insert_event($1, $2, $3)',
		pgmq: 'SELECT pgmq.send($1::text, $2::jsonb)',
	}[system];
	if (!text)
		throw new Error(`no producer for system ${system}`);
	const pool = makePool(poolSize);
	const params = (data) => {
		const json = JSON.stringify(data || PAYLOAD);
		/* the naive table has no queue column, pgmq messages no name */
		if (system === 'naive')
			return [TASK, json];
		return system === 'pgmq' ? [QUEUE, json] : [QUEUE, TASK, json];
	};
	return {
		push1: (data) => pool.query({ name: 'push1', text, values: params(data) }),
		close: () => pool.end(),
	};
}

/* setup: the system's schema and queue, through its own API. */
async function setup() {
	if (SYSTEM === 'graphile') {
		const { runMigrations } = require('graphile-worker');
		const pool = makePool(2);
		await runMigrations({ pgPool: pool, logger: quietGraphileLogger() });
		await pool.end();
	} else if (SYSTEM === 'pgboss') {
		const boss = await startBoss(2);
		await boss.createQueue(QUEUE);
		await boss.stop({ graceful: false, wait: true });
	} else {
		throw new Error(`setup: unknown system ${SYSTEM}`);
	}
	return { ok: true };
}

/* push: CLIENTS producers, BATCH jobs per transaction, for SECONDS. */
async function push() {
	const clients = num('clients', 8);
	const batch = num('batch', 1);
	const seconds = num('seconds', 10);
	const producer = await makeProducer(SYSTEM, clients + 2);
	const jobs = batch > 1 ? jobList(batch) : null;
	let done = 0;
	const start = now();
	const deadline = start + seconds * 1000;
	await Promise.all(Array.from({ length: clients }, async () => {
		while (now() < deadline) {
			if (batch > 1)
				await producer.pushBatch(jobs);
			else
				await producer.push1();
			done += batch;
		}
	}));
	const elapsed = (now() - start) / 1000;
	await producer.close();
	return { jobs: done, seconds: elapsed, jobs_per_s: done / elapsed };
}

/* load: a backlog of COUNT jobs in bulk calls of 1000, two at a time. */
async function load() {
	const count = num('count', 100000);
	const producer = await makeProducer(SYSTEM, 4);
	const chunk = jobList(1000);
	let left = count;
	const start = now();
	await Promise.all([0, 1].map(async () => {
		while (left > 0) {
			const n = Math.min(left, 1000);
			left -= n;
			await producer.pushBatch(n === 1000 ? chunk : chunk.slice(0, n));
		}
	}));
	await producer.close();
	return { jobs: count, seconds: (now() - start) / 1000 };
}

/*
 * drain: WORKERS workers, pulling BATCH jobs at a time and completing them
 * in a separate transaction, until COUNT jobs are done or CAP seconds have
 * passed.
 */
async function drain() {
	const workers = num('workers', 8);
	const batch = num('batch', 1);
	const count = num('count', 100000);
	const cap = num('cap', 600);
	let done = 0;
	const start = now();
	const deadline = start + cap * 1000;

	if (SYSTEM === 'graphile') {
		/*
		 * graphile-worker's pool: CONCURRENCY workers, each get_job then
		 * complete_job per job.  With BATCH > 1, its batching features: a
		 * local queue of BATCH jobs fetched (and locked) in one query, and
		 * completions batched (completeJobBatchDelay 0).
		 */
		const { run } = require('graphile-worker');
		const pool = makePool(workers + 2);
		let finish;
		const finished = new Promise((r) => { finish = r; });
		const preset = batch > 1
			? { worker: { localQueue: { size: batch }, completeJobBatchDelay: 0 } }
			: { worker: {} };
		const runner = await run({
			pgPool: pool,
			concurrency: workers,
			noHandleSignals: true,
			logger: quietGraphileLogger(),
			preset,
			taskList: {
				[TASK]: async () => {
					done++;
					if (done >= count)
						finish();
				},
			},
		});
		const timer = setTimeout(finish, cap * 1000);
		await finished;
		clearTimeout(timer);
		/* stopping flushes the batched completions */
		await runner.stop();
		const elapsed = (now() - start) / 1000;
		await pool.end();
		return { jobs: Math.min(done, count), seconds: elapsed, jobs_per_s: Math.min(done, count) / elapsed };
	}
	if (SYSTEM === 'pgboss') {
		/* fetch then complete, WORKERS loops (work() would wait a polling
		 * interval between fetches even when jobs were found) */
		const boss = await startBoss(workers + 2);
		await Promise.all(Array.from({ length: workers }, async () => {
			while (done < count && now() < deadline) {
				const jobs = await boss.fetch(QUEUE, { batchSize: batch });
				if (!jobs || jobs.length === 0)
					break;
				await boss.complete(QUEUE, jobs.map((j) => j.id));
				done += jobs.length;
			}
		}));
		const elapsed = (now() - start) / 1000;
		await boss.stop({ graceful: false, wait: true });
		return { jobs: done, seconds: elapsed, jobs_per_s: done / elapsed };
	}
	throw new Error(`drain: unknown system ${SYSTEM}`);
}

/*
 * Consumers for the latency and churn modes: start(onJob) with
 * onJob(data) called once per job when it is in a worker's hands, then
 * stop().  WORKERS workers; POLL_MS is the polling interval of systems that
 * poll.
 */
async function makeConsumer(system, workers, pollMs) {
	let stopping = false;
	const loops = [];

	if (system === 'graphile') {
		const { run } = require('graphile-worker');
		const pool = makePool(workers + 2);
		let runner;
		return {
			start: async (onJob) => {
				runner = await run({
					pgPool: pool,
					concurrency: workers,
					noHandleSignals: true,
					logger: quietGraphileLogger(),
					taskList: { [TASK]: async (payload) => onJob(payload) },
				});
			},
			stop: async () => { await runner.stop(); await pool.end(); },
		};
	}
	if (system === 'pgboss') {
		const boss = await startBoss(workers + 2);
		return {
			start: async (onJob, opts = {}) => {
				if (opts.loops) {
					/* fetch/complete loops, for throughput */
					for (let i = 0; i < workers; i++) {
						loops.push((async () => {
							while (!stopping) {
								const jobs = await boss.fetch(QUEUE);
								if (!jobs || jobs.length === 0) {
									await sleep(pollMs);
									continue;
								}
								for (const j of jobs)
									onJob(j.data);
								await boss.complete(QUEUE, jobs.map((j) => j.id));
							}
						})());
					}
				} else {
					/*
					 * work(), as users run it, with its default polling
					 * interval (2 s).  It fetches one batch per interval even
					 * when more jobs wait, so batchSize 100 lets the workers
					 * keep up with the latency scenario's 100 jobs/s.
					 */
					for (let i = 0; i < workers; i++) {
						await boss.work(QUEUE, { batchSize: 100 }, async (jobs) => {
							for (const job of jobs)
								onJob(job.data);
						});
					}
				}
			},
			stop: async () => {
				stopping = true;
				await Promise.all(loops);
				await boss.stop({ graceful: true, wait: true });
			},
		};
	}

	const clients = [];
	for (let i = 0; i < workers; i++) {
		const c = new pg.Client(conn);
		await c.connect();
		clients.push(c);
	}
	const closeAll = async () => {
		stopping = true;
		await Promise.all(loops);
		await Promise.all(clients.map((c) => c.end()));
	};

	if (system === 'taskq') {
		/*
		 * An idle worker as `taskq worker` runs one: a pull that waits in
		 * the server (wait_ms, woken through shared memory by the commit
		 * of a push), up to 10 jobs, each batch acked by the worker's next
		 * pull (its acks; a pull with acks returns at once, so the one
		 * after it waits again).
		 */
		return {
			start: async (onJob) => {
				for (const c of clients) {
					loops.push((async () => {
						let acks = null;
						while (!stopping) {
							const r = await c.query({
								name: 'pull',
								text: 'SELECT id, lease, data FROM taskq.pull($1, 10, NULL, $2::jsonb, $3)',
								values: [QUEUE, acks, 1000],
							});
							acks = r.rows.length === 0 ? null :
								JSON.stringify(r.rows.map((row) => ({ id: row.id, lease: row.lease })));
							for (const row of r.rows)
								onJob(row.data);
						}
						if (acks)
							await c.query('SELECT taskq.ack_batch($1::jsonb)', [acks]);
					})());
				}
			},
			stop: closeAll,
		};
	}
	if (system === 'naive') {
		/* polling every POLL_MS ms: pull (up to 10) and ack until empty */
		return {
			start: async (onJob) => {
				for (const c of clients) {
					loops.push((async () => {
						while (!stopping) {
							const r = await c.query({
								name: 'pull',
								text: `UPDATE naive_jobs SET status = 'running', attempts = attempts + 1, locked_at = now()
									WHERE id IN (SELECT id FROM naive_jobs WHERE status = 'waiting'
										ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED)
									RETURNING id, data`,
							});
							for (const row of r.rows) {
								onJob(row.data);
								await c.query({ name: 'ack', text: 'DELETE FROM naive_jobs WHERE id = $1', values: [row.id] });
							}
							if (r.rows.length === 0)
								await sleep(pollMs);
						}
					})());
				}
			},
			stop: closeAll,
		};
	}
	if (system === 'pgmq') {
		/*
		 * pgmq 1.5.1 has no notification: its waiting primitive is
		 * read_with_poll, which polls inside the server every POLL_MS ms
		 * (here for up to 1 s per call); then delete each message.
		 */
		return {
			start: async (onJob) => {
				for (const c of clients) {
					loops.push((async () => {
						while (!stopping) {
							const r = await c.query({
								name: 'read',
								text: 'SELECT msg_id, message FROM pgmq.read_with_poll($1::text, 30, 10, 1, $2::int)',
								values: [QUEUE, pollMs],
							});
							for (const row of r.rows) {
								onJob(row.message);
								await c.query({ name: 'delete', text: 'SELECT pgmq.delete($1::text, $2::bigint)', values: [QUEUE, row.msg_id] });
							}
						}
					})());
				}
			},
			stop: closeAll,
		};
	}
	if (system === 'pgq') {
		/*
		 * One PgQ consumer (PgQ hands every batch to every consumer: it has
		 * no sharing of a queue's events between workers).  next_batch and
		 * its events in one transaction, finish_batch in the next; polls
		 * every POLL_MS ms when there is no batch.  Batches come from the
		 * ticker (pgqd, started by run.sh).
		 */
		const c = clients[0];
		return {
			start: async (onJob) => {
				loops.push((async () => {
					while (!stopping) {
						await c.query('BEGIN');
						const b = await c.query({ name: 'next', text: 'SELECT pgq.next_batch($1, $2) AS id', values: [QUEUE, 'bench_consumer'] });
						const id = b.rows[0].id;
						if (id === null) {
							await c.query('COMMIT');
							await sleep(pollMs);
							continue;
						}
						const ev = await c.query({ name: 'events', text: 'SELECT ev_id, ev_data FROM pgq.get_batch_events($1)', values: [id] });
						await c.query('COMMIT');
						for (const e of ev.rows)
							onJob(JSON.parse(e.ev_data));
						await c.query({ name: 'finish', text: 'SELECT pgq.finish_batch($1)', values: [id] });
					}
				})());
			},
			stop: closeAll,
		};
	}
	throw new Error(`no consumer for system ${system}`);
}

/* The Q-quantile of a sorted array (nearest rank). */
function quantile(sorted, q) {
	if (sorted.length === 0)
		return null;
	const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
	return sorted[i];
}

/*
 * latency: push RATE jobs/s, one per transaction, each carrying the time
 * its push was issued; WORKERS idle workers note when they have it.  The
 * first second is warm-up and not counted.
 */
async function latency() {
	const rate = num('rate', 100);
	const seconds = num('seconds', 20);
	const workers = num('workers', 2);
	const pollMs = num('poll-ms', 100);
	const samples = [];
	/* the push's own round trip, its commit included: the floor of the latency */
	const pushSamples = [];
	let received = 0;
	const producer = await makeProducer(SYSTEM, 2);
	const consumer = await makeConsumer(SYSTEM, workers, pollMs);
	let warm = Infinity;
	await consumer.start((data) => {
		const t = now();
		received++;
		if (data && typeof data.t === 'number' && data.t >= warm)
			samples.push(t - data.t);
	});
	/* give idle workers time to settle into their waiting state */
	await sleep(500);
	const t0 = now();
	warm = t0 + 1000;
	const total = Math.round(rate * seconds);
	const inflight = [];
	for (let i = 0; i < total; i++) {
		const due = t0 + (i * 1000) / rate;
		const wait = due - now();
		if (wait > 0)
			await sleep(wait);
		const t = now();
		inflight.push(producer.push1({ ...PAYLOAD, t }).then(() => {
			if (t >= warm)
				pushSamples.push(now() - t);
		}));
	}
	await Promise.all(inflight);
	/* wait for the stragglers, at most 10 s */
	const pushedCounted = total;
	const until = now() + 10000;
	while (received < pushedCounted && now() < until)
		await sleep(50);
	await consumer.stop();
	await producer.close();
	samples.sort((a, b) => a - b);
	pushSamples.sort((a, b) => a - b);
	return {
		pushed: total,
		received,
		samples: samples.length,
		p50_ms: quantile(samples, 0.5),
		p99_ms: quantile(samples, 0.99),
		max_ms: samples.length ? samples[samples.length - 1] : null,
		push_p50_ms: quantile(pushSamples, 0.5),
		push_p99_ms: quantile(pushSamples, 0.99),
	};
}

/*
 * churn: WORKERS workers drain a backlog while PRODUCERS producers push one
 * job per transaction as fast as they can, for SECONDS; jobs done and
 * pushed per second.
 */
async function churn() {
	const workers = num('workers', 8);
	const producers = num('producers', 2);
	const seconds = num('seconds', 180);
	const done = new Array(Math.ceil(seconds) + 1).fill(0);
	const pushed = new Array(Math.ceil(seconds) + 1).fill(0);
	const producer = await makeProducer(SYSTEM, producers + 1);
	const consumer = await makeConsumer(SYSTEM, workers, 100);
	const start = now();
	const deadline = start + seconds * 1000;
	const slot = () => Math.min(done.length - 1, Math.floor((now() - start) / 1000));
	await consumer.start(() => { if (now() < deadline) done[slot()]++; }, { loops: true });
	await Promise.all(Array.from({ length: producers }, async () => {
		while (now() < deadline) {
			await producer.push1();
			if (now() < deadline)
				pushed[slot()]++;
		}
	}));
	const wait = deadline - now();
	if (wait > 0)
		await sleep(wait);
	await consumer.stop();
	await producer.close();
	const n = Math.floor(seconds);
	return { done_per_s: done.slice(0, n), pushed_per_s: pushed.slice(0, n) };
}

/*
 * The SQL of the steady modes (scenarios 7 and 9) per system: push a batch
 * of n jobs whose data carries the server's clock at the push (t, epoch
 * ms), pull up to n jobs returning each one's claim latency (the server's
 * clock at the lease minus t: push -> lease, the push's own commit
 * included), ack one job; hot: the table the live jobs are in.
 */
const STAMP = "jsonb_build_object('t', extract(epoch FROM clock_timestamp()) * 1000)";
const CLAIM_MS = (col) => `(extract(epoch FROM clock_timestamp()) * 1000 - (${col}->>'t')::numeric)::float8 AS claim_ms`;
function steadySql(system) {
	const family = system.replace(/_.*$/, '');
	if (family === 'taskq')
		return {
			hot: 'taskq.jobs',
			push: {
				text: `SELECT count(*) AS n FROM taskq.push_batch($1, (SELECT jsonb_agg(jsonb_build_object('name', $2::text, 'data', $3::jsonb || ${STAMP})) FROM generate_series(1, $4::int)))`,
				values: (n) => [QUEUE, TASK, JSON.stringify(PAYLOAD), n],
			},
			pull: {
				text: `SELECT id, lease, ${CLAIM_MS('data')} FROM taskq.pull($1, $2)`,
				values: (n) => [QUEUE, n],
			},
			ack: { text: 'SELECT taskq.ack($1, NULL, $2)', values: (row) => [row.id, row.lease] },
		};
	if (family === 'naive')
		return {
			hot: 'naive_jobs',
			push: {
				text: `INSERT INTO naive_jobs (name, data) SELECT $1::text, $2::jsonb || ${STAMP} FROM generate_series(1, $3::int)`,
				values: (n) => [TASK, JSON.stringify(PAYLOAD), n],
			},
			pull: {
				text: `UPDATE naive_jobs SET status = 'running', attempts = attempts + 1, locked_at = now()
					WHERE id IN (SELECT id FROM naive_jobs WHERE status = 'waiting'
						ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
					RETURNING id, ${CLAIM_MS('data')}`,
				values: (n) => [n],
			},
			ack: { text: 'DELETE FROM naive_jobs WHERE id = $1', values: (row) => [row.id] },
		};
	if (family === 'pgmq')
		return {
			hot: 'pgmq.q_bench',
			push: {
				text: `SELECT count(*) AS n FROM pgmq.send_batch($1::text, ARRAY(SELECT $2::jsonb || ${STAMP} FROM generate_series(1, $3::int)))`,
				values: (n) => [QUEUE, JSON.stringify(PAYLOAD), n],
			},
			pull: {
				text: `SELECT msg_id AS id, ${CLAIM_MS('message')} FROM pgmq.read($1::text, 30, $2::int)`,
				values: (n) => [QUEUE, n],
			},
			/* pgmq deletes (no history) or, as pgmq_archive, archives */
			ack: {
				text: system === 'pgmq_archive' ? 'SELECT pgmq.archive($1::text, $2::bigint)' : 'SELECT pgmq.delete($1::text, $2::bigint)',
				values: (row) => [QUEUE, row.id],
			},
		};
	throw new Error(`steady: no SQL for system ${system}`);
}

/*
 * steady (scenarios 7 and 9): for SECONDS, producers push RATE jobs/s in
 * batches every INTERVAL ms (at most BATCH_MAX jobs a batch; jobs that
 * cannot be sent on time, no producer connection being free, go with the
 * next batch), on PRODUCERS connections, while WORKERS workers each pull up
 * to PULL jobs and ack each job in its own transaction, sleeping POLL_MS ms
 * after an empty pull.  With HOLD > 0 a REPEATABLE READ transaction that
 * has read the hot table is open from before the first push for HOLD
 * seconds.  Per WINDOW seconds: jobs completed (acks returned) and pushed
 * per second, pull latency (the client's round trip of every pull, empty
 * ones included) and claim latency percentiles, and at the window's end
 * the backlog (live rows of the hot table), its dead tuples and autovacuum
 * runs.
 */
async function steady() {
	const seconds = num('seconds', 60);
	const rate = num('rate', 1000);
	const intervalMs = num('interval-ms', 10);
	const batchMax = num('batch-max', 128);
	const producers = num('producers', 4);
	const workers = num('workers', 8);
	const pullN = num('pull', 1);
	const pollMs = num('poll-ms', 10);
	const windowS = num('window', 5);
	const hold = num('hold', 0);
	const sql = steadySql(SYSTEM);
	const nWin = Math.ceil(seconds / windowS);
	const win = Array.from({ length: nWin }, () => ({ done: 0, pushed: 0, pulls: [], claims: [] }));

	const connect = async () => {
		const c = new pg.Client(conn);
		c.on('error', (err) => console.error(`client error: ${err.message}`));
		await c.connect();
		return c;
	};
	const monitor = await connect();
	const sample = async () => {
		const r = await monitor.query({
			name: 'sample',
			text: `SELECT n_dead_tup AS dead, n_live_tup AS live, autovacuum_count AS autovacuums,
					(SELECT count(*) FROM ${sql.hot}) AS backlog
				FROM pg_stat_user_tables WHERE relid = $1::regclass`,
			values: [sql.hot],
		});
		const row = r.rows[0];
		return { dead: Number(row.dead), live: Number(row.live), autovacuums: Number(row.autovacuums), backlog: Number(row.backlog) };
	};
	let holder = null;
	let holdTimer = null;
	let holding = false;
	if (hold > 0) {
		/* a transaction that has read something: its snapshot holds xmin */
		holder = await connect();
		await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
		await holder.query(`SELECT count(*) FROM ${sql.hot}`);
		holding = true;
	}
	const prodClients = [];
	for (let i = 0; i < producers; i++)
		prodClients.push(await connect());
	const workClients = [];
	for (let i = 0; i < workers; i++)
		workClients.push(await connect());

	const start = now();
	const end = start + seconds * 1000;
	const slot = (t) => (t >= end ? -1 : Math.floor((t - start) / (windowS * 1000)));
	let stopping = false;
	let pushedTotal = 0;
	let doneTotal = 0;
	const release = async () => {
		if (holding) {
			holding = false;
			await holder.query('COMMIT');
		}
	};
	if (holder)
		holdTimer = setTimeout(() => release().catch((e) => console.error(`holder: ${e.message}`)), hold * 1000);

	/* workers */
	const loops = workClients.map(async (c) => {
		while (!stopping) {
			const t0 = now();
			const r = await c.query({ name: 'pull', text: sql.pull.text, values: sql.pull.values(pullN) });
			const t1 = now();
			const w = slot(t1);
			if (w >= 0) {
				win[w].pulls.push(t1 - t0);
				for (const row of r.rows)
					win[w].claims.push(row.claim_ms);
			}
			if (r.rows.length === 0) {
				await sleep(pollMs);
				continue;
			}
			for (const row of r.rows) {
				await c.query({ name: 'ack', text: sql.ack.text, values: sql.ack.values(row) });
				doneTotal++;
				const wa = slot(now());
				if (wa >= 0)
					win[wa].done++;
			}
		}
	});

	/* the monitor: a sample at the end of every window */
	const samples = [];
	const monitorLoop = (async () => {
		for (let w = 1; w <= nWin; w++) {
			const wait = start + Math.min(seconds, w * windowS) * 1000 - now();
			if (wait > 0)
				await sleep(wait);
			samples.push(await sample());
		}
	})();

	/* producers: a batch every INTERVAL ms */
	const free = [...prodClients];
	const inflight = new Set();
	const perTick = (rate * intervalMs) / 1000;
	let owed = 0;
	let late = 0;
	for (let k = 0; ; k++) {
		const due = start + k * intervalMs;
		if (due >= end)
			break;
		const wait = due - now();
		if (wait > 0)
			await sleep(wait);
		owed += perTick;
		const n = Math.min(batchMax, Math.floor(owed));
		if (n < 1)
			continue;
		if (free.length === 0) {
			late++;
			continue;
		}
		owed -= n;
		const c = free.pop();
		const p = (async () => {
			await c.query({ name: 'push', text: sql.push.text, values: sql.push.values(n) });
			pushedTotal += n;
			const w = slot(now());
			if (w >= 0)
				win[w].pushed += n;
			free.push(c);
		})();
		inflight.add(p);
		p.finally(() => inflight.delete(p));
	}
	await Promise.all(inflight);
	const wait = end - now();
	if (wait > 0)
		await sleep(wait);
	stopping = true;
	await Promise.all(loops);
	await monitorLoop;
	if (holdTimer)
		clearTimeout(holdTimer);
	if (holder) {
		await release();
		await holder.end();
	}
	const final = await sample();
	await Promise.all([...prodClients, ...workClients, monitor].map((c) => c.end()));

	const q = (list, p) => quantile([...list].sort((a, b) => a - b), p);
	const windows = win.map((x, i) => {
		const len = Math.min(windowS, seconds - i * windowS);
		return {
			end_s: Math.min(seconds, (i + 1) * windowS),
			done_per_s: x.done / len,
			pushed_per_s: x.pushed / len,
			pulls: x.pulls.length,
			pull_p50_ms: q(x.pulls, 0.5),
			pull_p99_ms: q(x.pulls, 0.99),
			claims: x.claims.length,
			claim_p50_ms: q(x.claims, 0.5),
			claim_p95_ms: q(x.claims, 0.95),
			claim_p99_ms: q(x.claims, 0.99),
			backlog: samples[i]?.backlog ?? null,
			dead_tuples: samples[i]?.dead ?? null,
			live_tuples: samples[i]?.live ?? null,
			autovacuums: samples[i]?.autovacuums ?? null,
		};
	});
	const allClaims = win.flatMap((x) => x.claims);
	const allPulls = win.flatMap((x) => x.pulls);
	return {
		seconds,
		rate,
		pushed: pushedTotal,
		done: doneTotal,
		late_ticks: late,
		claim_p50_ms: q(allClaims, 0.5),
		claim_p95_ms: q(allClaims, 0.95),
		claim_p99_ms: q(allClaims, 0.99),
		pull_p50_ms: q(allPulls, 0.5),
		pull_p99_ms: q(allPulls, 0.99),
		backlog_end: final.backlog,
		dead_tuples_end: final.dead,
		autovacuums_end: final.autovacuums,
		windows,
	};
}

/*
 * sink: receives taskq's webhooks (204 to every POST) and LISTENs on
 * taskq_events; prints the counts when it gets SIGTERM.
 */
async function sink() {
	let hooks = 0;
	let events = 0;
	const server = http.createServer((req, res) => {
		req.resume();
		req.on('end', () => {
			hooks++;
			res.writeHead(204);
			res.end();
		});
	});
	await new Promise((r) => server.listen(0, '127.0.0.1', r));
	const client = new pg.Client(conn);
	await client.connect();
	client.on('notification', () => { events++; });
	await client.query('LISTEN taskq_events');
	fs.writeFileSync(argv['port-file'], String(server.address().port));
	await new Promise((r) => process.once('SIGTERM', r));
	await client.end();
	server.close();
	return { webhooks_received: hooks, events_received: events };
}

const modes = { setup, push, load, drain, latency, churn, steady, sink };

(async () => {
	if (!modes[MODE])
		throw new Error(`unknown mode ${MODE}; one of ${Object.keys(modes).join(', ')}`);
	const result = await modes[MODE]();
	process.stdout.write(`${JSON.stringify(result)}\n`);
	/* graphile-worker and pg-boss may leave timers behind */
	process.exit(0);
})().catch((err) => {
	console.error(`bench.js ${MODE} ${SYSTEM}: ${err.stack || err.message}`);
	process.exit(1);
});
