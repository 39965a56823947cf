'use strict';
/*
 * test/bench/node/report.js -- turns the raw figures of test/bench/run.sh
 * into the results files: OUT.md (tables, versions, machine, targets),
 * OUT.csv (one row per scenario, system and metric) and OUT.png (gnuplot).
 *
 *   node report.js --raw RAW.tsv --series SERIES.tsv --steady STEADY.tsv \
 *                  --meta META.tsv --out PATH_WITHOUT_EXTENSION --gnuplot 0|1
 *
 * RAW.tsv:    scenario, system, run, metric, value, note (tab-separated);
 *             scenario 0 is the commit ceiling (system ceiling)
 * SERIES.tsv: system, second, jobs done, jobs pushed (scenario 6)
 * STEADY.tsv: scenario, system, window end (s), done/s, pushed/s, pull
 *             p50 and p99, claim p50, p95 and p99 (ms), backlog, dead and
 *             live tuples, autovacuums (scenarios 7 and 9, per window)
 * META.tsv:   key, value
 *
 * Throughput is the median of the runs; ratios are to the naive queue's
 * median of the same scenario, and between taskq and each peer.  Targets
 * are reported as met or not met, never turned into a failure.
 */

const fs = require('node:fs');
const { execFileSync } = require('node:child_process');

const args = {};
for (let i = 2; i < process.argv.length; i += 2)
	args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];

/* Lines of a tab-separated file, split. */
function readTsv(path) {
	if (!path || !fs.existsSync(path))
		return [];
	return fs.readFileSync(path, 'utf8').split('\n').filter((l) => l.length).map((l) => l.split('\t'));
}

const raw = readTsv(args.raw);
const series = readTsv(args.series);
const steadyRows = readTsv(args.steady);
const meta = Object.fromEntries(readTsv(args.meta).map(([k, ...v]) => [k, v.join('\t')]));

const SYSTEMS = ['taskq', 'taskq_nohist', 'taskq_bundled', 'taskq_groups10', 'taskq_groups10k', 'taskq_rr10k', 'taskq_rate', 'naive', 'pgmq', 'pgmq_archive', 'pgq', 'graphile', 'pgboss', 'insert', 'taskq_events', 'taskq_notify', 'taskq_webhook'];
const LABEL = {
	taskq: 'taskq',
	taskq_nohist: 'taskq, no history',
	taskq_bundled: 'taskq, pull with acks',
	taskq_groups10: 'taskq, 10 groups, 1 each',
	taskq_groups10k: 'taskq, 10,000 groups, 1 each',
	taskq_rr10k: 'taskq, round robin over 10,000 groups',
	taskq_rate: 'taskq, rate limit not reached',
	naive: 'naive SKIP LOCKED',
	pgmq: 'pgmq (delete)',
	pgmq_archive: 'pgmq + archive',
	pgq: 'PgQ',
	graphile: 'graphile-worker',
	pgboss: 'pg-boss',
	insert: 'plain INSERT',
	taskq_events: 'taskq + events + webhook',
	taskq_notify: 'taskq + events only',
	taskq_webhook: 'taskq + webhook only',
};
const SCENARIO = {
	1: 'push, 1 job/transaction, 8 clients',
	2: 'push, 100 jobs/transaction, 4 clients',
	3: `drain ${meta.s3_backlog} backlog, 8 workers, pull 1 + ack 1`,
	4: `drain ${meta.s4_backlog} backlog, 4 workers, pull 100 + ack 100`,
	5: `latency at ${meta.latency_rate} jobs/s, ${meta.latency_workers} idle workers`,
	6: `churn: ${meta.s6_backlog} backlog, 8 workers, 2 producers, ${meta.churn_seconds} s`,
	8: `drain at depth: ${meta.s8_backlog} backlog, 8 workers, pull 1 + ack 1, ${meta.s8_seconds} s (then pull 100 + ack 100: below)`,
	7: `held snapshot: ${meta.steady_rate} jobs/s, ${meta.s7_workers} workers pull 1 + ack 1, a REPEATABLE READ transaction open ${meta.xmin_seconds} s`,
	9: `steady load: ${meta.steady_rate} jobs/s in batches every ${meta.steady_interval_ms} ms, ${meta.s9_workers} workers pull ${meta.s9_pull} + ack each, ${meta.steady_seconds} s`,
};
/* Systems that push as another does (scenarios 1 and 2 run only the latter). */
const SAME_PUSH = { taskq_nohist: 'taskq', pgmq_archive: 'pgmq' };
/* How a system does a scenario when it is not the plain mapping. */
const MAPPING = {
	'3 pgq': 'one consumer (PgQ gives every batch to every consumer: no sharing between workers), batches of 1 event (a tick per event): PgQ acks batches, not jobs',
	'4 pgq': 'one consumer, batches of 100 events (a tick per 100 events)',
	'3 graphile': 'run() with concurrency 8: get_job, then complete_job, per job',
	'4 graphile': 'run() with concurrency 4, localQueue size 100 (fetches and locks 100 jobs per query), completeJobBatchDelay 0 (batched completions)',
	'3 pgboss': 'fetch(batchSize 1) then complete(id), 8 loops; pg-boss 10 fetches with a scan and sort of every waiting job of the queue (its index is on (name, start_after)), so its pulls slow down as the backlog grows',
	'4 pgboss': 'fetch(batchSize 100) then complete(ids), 4 loops',
	'1 graphile': 'WorkerUtils.addJob (a NOTIFY per job)',
	'2 graphile': 'WorkerUtils.addJobs, 100 specs',
	'1 pgboss': 'boss.send',
	'2 pgboss': 'boss.insert, 100 jobs',
	'1 pgq': 'pgq.insert_event',
	'1 pgmq': 'pgmq.send',
	'2 pgmq': 'pgmq.send_batch, 100 messages (the data of the 100 jobs as one jsonb[])',
	'3 pgmq': 'pgmq.read(q, 30 s, 1), then pgmq.delete: no history',
	'4 pgmq': 'pgmq.read(q, 30 s, 100), then pgmq.delete(q, ids)',
	'3 pgmq_archive': 'pgmq.read(q, 30 s, 1), then pgmq.archive: the message moves to the archive table (history, as taskq keeps completed jobs)',
	'4 pgmq_archive': 'pgmq.read(q, 30 s, 100), then pgmq.archive(q, ids)',
	'3 taskq_nohist': 'queue with retention.completed_ms 0: an ack deletes the job instead of moving it to the history',
	'3 taskq_groups10': 'queue with group_concurrency 1 (serial per key), the backlog spread at random over 10 groups (push option group); pull and ack as taskq',
	'3 taskq_groups10k': 'as the line above, over 10,000 groups',
	'3 taskq_rr10k': 'queue with fairness round_robin, the backlog spread at random over 10,000 groups; pull and ack as taskq',
	'3 taskq_rate': 'queue with rate_limit 1,000,000 per second (far above the achievable rate: what counting the window costs); pull and ack as taskq',
	'3 taskq_bundled': 'one call and one commit per job: pull(q, 1, NULL, acks) acks the job the client pulled before and leases the next (bundled acking), with history',
	'4 taskq_nohist': 'queue with retention.completed_ms 0 (ack_batch deletes)',
	'2 pgq': 'pgq.insert_event x 100 in one statement',
	'1 insert': 'INSERT of the row push writes into a copy of taskq.jobs',
	'3 taskq_events': 'queue with notify_events, a webhook for job.completed to a local receiver, a LISTEN taskq_events client',
	'3 taskq_notify': 'diagnostic: notify_events and the LISTEN client, no webhook',
	'3 taskq_webhook': 'diagnostic: the webhook and its receiver, no notify_events',
};
const WAITS = {
	taskq: 'pull 10 with wait_ms 1000 (the pull waits in the server, woken by the push\'s commit), each batch acked by the next pull (acks), as taskq worker does',
	naive: `polls every ${meta.latency_poll_ms} ms (pull 10 + ack until empty)`,
	pgmq: `pgmq.read_with_poll (polls in the server every ${meta.latency_poll_ms} ms, up to 1 s a call; pgmq 1.5.1 has no notification), 10 at a time, delete each`,
	pgq: `pgqd ticker (every 1 s; PgQ's default queue settings tick after 3 s or 500 events), one consumer polling next_batch every ${meta.latency_poll_ms} ms`,
	graphile: 'run(): LISTEN (a NOTIFY per addJob), concurrency 2',
	pgboss: 'work() x 2 with its default polling (every 2 s), batchSize 100 (work() takes one batch per interval)',
};

/* values[scenario][system][metric] = [numbers]; notes likewise */
const values = {};
const notes = {};
for (const [scen, sys, , metric, value, note] of raw) {
	if (value === '')
		continue;
	values[scen] ??= {};
	values[scen][sys] ??= {};
	(values[scen][sys][metric] ??= []).push(Number(value));
	if (note) {
		notes[scen] ??= {};
		(notes[scen][sys] ??= new Set()).add(note);
	}
}

function median(list) {
	if (!list || list.length === 0)
		return null;
	const s = [...list].sort((a, b) => a - b);
	const m = Math.floor(s.length / 2);
	return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const get = (scen, sys, metric) => median(values[scen]?.[sys]?.[metric]);
const fmt = (v, digits = 0) => (v === null || Number.isNaN(v) ? 'n/a'
	: v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const ratio = (a, b) => (a === null || b === null || b === 0 ? null : a / b);
const fmtRatio = (r) => (r === null ? '' : ` (${r.toFixed(2)}x)`);
const bytes = (b) => {
	if (b === null)
		return 'n/a';
	return b < 1048576 ? `${(b / 1024).toFixed(0)} kB` : `${(b / 1048576).toFixed(1)} MB`;
};

const present = SYSTEMS.filter((s) => Object.values(values).some((v) => v[s]));
/* In scenarios 1 and 2, taskq_nohist and pgmq_archive push as taskq and
 * pgmq do and are not run: true when SYS's figure is that of another. */
const pushesAs = (scen, sys) => (scen === '1' || scen === '2') && SAME_PUSH[sys]
	&& get(scen, sys, 'jobs_per_s') === null && get(scen, SAME_PUSH[sys], 'jobs_per_s') !== null
	&& present.includes(sys);
/* jobs/s of a scenario, with the push figures of SAME_PUSH */
const thr = (scen, sys) => (pushesAs(scen, sys) ? get(scen, SAME_PUSH[sys], 'jobs_per_s') : get(scen, sys, 'jobs_per_s'));
const md = [];
const csv = ['scenario,system,metric,median,runs,values,ratio_to_naive,note'];

md.push(`# taskq benchmark: ${meta.date_utc} UTC on ${meta.host}`);
md.push('');
md.push(`Produced by \`test/bench/run.sh\` (${meta.mode} run, ${meta.runs} run(s) per system in scenarios 1-4, median reported; took ${meta.runtime_s} s). See test/bench/README.md for what each scenario does for each system.`);
md.push('');
md.push(`Load average of the machine at start / end: ${meta.load_at_start} / ${meta.load_at_end}. Figures from a machine shared with other work are noisy.`);
md.push('');

/* Throughput table. */
md.push('## Throughput (jobs/s; in brackets: ratio to the naive queue)');
md.push('');
const THR = ['1', '2', '3', '4', '8'];
const thrSystems = present.filter((s) => THR.some((scen) => values[scen]?.[s]?.jobs_per_s));
md.push(`| scenario | ${thrSystems.map((s) => LABEL[s]).join(' | ')} |`);
md.push(`|---|${thrSystems.map(() => '---:').join('|')}|`);
for (const scen of THR) {
	if (!values[scen])
		continue;
	const naive = get(scen, 'naive', 'jobs_per_s');
	const cells = thrSystems.map((sys) => {
		const v = get(scen, sys, 'jobs_per_s');
		if (v === null)
			return pushesAs(scen, sys) ? `as ${LABEL[SAME_PUSH[sys]]}` : '';
		return `${fmt(v)}${sys === 'naive' ? '' : fmtRatio(ratio(v, naive))}`;
	});
	md.push(`| ${scen}. ${SCENARIO[scen]} | ${cells.join(' | ')} |`);
	for (const sys of SYSTEMS) {
		const list = values[scen][sys]?.jobs_per_s;
		if (!list)
			continue;
		const v = median(list);
		const r = ratio(v, naive);
		const note = [MAPPING[`${scen} ${sys}`], ...(notes[scen]?.[sys] || [])].filter(Boolean).join('; ');
		csv.push([scen, sys, 'jobs_per_s', v.toFixed(1), list.length, `"${list.join(' ')}"`,
			r === null ? '' : r.toFixed(3), `"${note.replace(/"/g, "'")}"`].join(','));
		const doneList = values[scen][sys].jobs_done;
		if (doneList)
			csv.push([scen, sys, 'jobs_done', median(doneList), doneList.length, `"${doneList.join(' ')}"`, '', ''].join(','));
	}
}
md.push('');
if (thrSystems.some((s) => THR.some((scen) => values[scen] && get(scen, s, 'jobs_per_s') === null))) {
	md.push('Empty cells: the system was not run in that scenario (the plain INSERT is only the baseline of scenario 1, the events variants only run scenario 3). "as taskq", "as pgmq": taskq without history and pgmq with its archive push exactly as taskq and pgmq do, so scenarios 1 and 2 run them once.');
	md.push('');
}
const mappingLines = Object.entries(MAPPING)
	.filter(([k]) => { const [scen, sys] = k.split(' '); return values[scen]?.[sys]; })
	.map(([k, v]) => { const [scen, sys] = k.split(' '); return `- scenario ${scen}, ${LABEL[sys]}: ${v}`; });
const capLines = [];
for (const scen of Object.keys(notes))
	for (const [sys, set] of Object.entries(notes[scen]))
		for (const n of set)
			capLines.push(`- scenario ${scen}, ${LABEL[sys]}: ${n}`);
/* drains that ended at the time limit rather than on an empty queue */
for (const scen of ['3', '4']) {
	const backlog = Number(meta[`s${scen}_backlog`]);
	for (const sys of SYSTEMS) {
		const list = values[scen]?.[sys]?.jobs_done;
		if (!list)
			continue;
		const short = list.filter((n) => n < backlog);
		if (short.length)
			capLines.push(`- scenario ${scen}, ${LABEL[sys]}: stopped at the time limit (${meta.drain_cap_s} s) in ${short.length} of ${list.length} run(s), having done ${list.map((n) => fmt(n)).join(', ')} of ${fmt(backlog)} jobs`);
	}
}
if (mappingLines.length || capLines.length) {
	md.push('How each system does it, where that is not obvious:');
	md.push('');
	md.push(...mappingLines, ...capLines);
	md.push('');
}

/*
 * Each run of scenarios 1 to 4 in the order taken, with the seconds of it
 * in which a VACUUM ran anywhere in the instance (run.sh's retire leaves
 * none of an earlier system's to do): what a median hides.
 */
const runLines = [];
for (const [scen, sys, metric] of [['0', 'ceiling', 'commits_per_s'],
	...['1', '2', '3', '4'].flatMap((sc) => SYSTEMS.map((sy) => [sc, sy, 'jobs_per_s']))]) {
	const r = values[scen]?.[sys]?.[metric];
	const v = values[scen]?.[sys]?.vacuum_s;
	if (!r || !v)
		continue;
	runLines.push(`| ${scen === '0' ? 'ceiling' : scen} | ${scen === '0' ? 'commit ceiling' : LABEL[sys]} | ${r.map((x, i) => `${fmt(x)} (${v[i] ?? '?'} s)`).join(', ')} |`);
}
if (runLines.length) {
	md.push('<details>', '<summary>Each run (jobs/s, commits/s for the ceiling; in brackets: seconds of it in which a VACUUM ran in the instance)</summary>', '');
	md.push('| scenario | system | runs, in order |', '|---|---|---|', ...runLines, '', '</details>', '');
}

/* The commit ceiling and the one-job-per-transaction scenarios against it. */
const ceiling = get('0', 'ceiling', 'commits_per_s');
if (ceiling !== null) {
	const runs = values['0'].ceiling.commits_per_s;
	md.push('## The commit ceiling of the instance');
	md.push('');
	md.push(`${fmt(ceiling)} commits/s: ${meta.ceiling_clients} clients, each transaction one single-row INSERT into a one-column table (${runs.length > 1 ? `median of ${runs.length} runs: ${runs.map((v) => fmt(v)).join(', ')}` : '1 run'}), on this instance, fsync and synchronous_commit on. It is what one commit per job can reach at best here; below, jobs/s as a percentage of it.`);
	md.push('');
	const rows = [
		['1', 'jobs_per_s', '1. push, 1 job/transaction, 8 clients', 1],
		['3', 'jobs_per_s', '3. drain, pull 1 + ack 1, 8 workers (taskq, pull with acks: 1)', 2],
		['8', 'jobs_per_s', '8. drain at depth, pull 1 + ack 1, 8 workers', 2],
		['6', 'first_jobs_per_s', `6. churn, jobs done/s, first ${meta.churn_window} s`, 2],
		['6', 'last_jobs_per_s', `6. churn, jobs done/s, last ${meta.churn_window} s`, 2],
	].filter(([scen]) => values[scen]);
	const cols = present.filter((sys) => rows.some(([scen, m]) => (m === 'jobs_per_s' ? thr(scen, sys) : get(scen, sys, m)) !== null));
	if (rows.length && cols.length) {
		md.push(`| scenario | commits per job | ${cols.map((sys) => LABEL[sys]).join(' | ')} |`);
		md.push(`|---|---:|${cols.map(() => '---:').join('|')}|`);
		for (const [scen, m, what, commits] of rows) {
			const cells = cols.map((sys) => {
				if (pushesAs(scen, sys))
					return `as ${LABEL[SAME_PUSH[sys]]}`;
				const v = m === 'jobs_per_s' ? thr(scen, sys) : get(scen, sys, m);
				if (v === null)
					return '';
				csv.push([scen, sys, `${m}_pct_of_commit_ceiling`, (100 * v / ceiling).toFixed(1), '', '', '', `"ceiling ${ceiling.toFixed(1)} commits/s"`].join(','));
				return `${(100 * v / ceiling).toFixed(1)}%`;
			});
			md.push(`| ${what} | ${commits} | ${cells.join(' | ')} |`);
		}
		md.push('');
		md.push('Commits per job: a worker that pulls then acks commits twice per job, so half the ceiling (50%) is its bound; in scenario 6 the producers\' commits come on top. PgQ (one consumer, batches of one event), graphile-worker and pg-boss commit twice per job in scenario 3 as well.');
		md.push('');
	}
	csv.push(['0', 'ceiling', 'commits_per_s', ceiling.toFixed(1), runs.length, `"${runs.join(' ')}"`, '', `"${meta.ceiling_clients} clients, one single-row INSERT per transaction"`].join(','));
}

/* Ratios within this run: taskq against each peer, above 1 taskq better. */
{
	const PAIRS = [
		['taskq', 'naive'],
		['taskq_nohist', 'naive'],
		['taskq_bundled', 'naive'],
		['taskq_groups10', 'taskq'],
		['taskq_groups10k', 'taskq'],
		['taskq_rr10k', 'taskq'],
		['taskq_rate', 'taskq'],
		['taskq', 'pgmq_archive'],
		['taskq_nohist', 'pgmq'],
		['taskq', 'pgmq'],
		['taskq', 'pgq'],
		['taskq', 'graphile'],
		['taskq', 'pgboss'],
		['taskq_nohist', 'taskq'],
	];
	/* [label, value of a system, higher is better] */
	const ROWS = [
		['1. push 1/tx (jobs/s)', (sys) => thr('1', sys), true],
		['2. push 100/tx (jobs/s)', (sys) => thr('2', sys), true],
		['3. drain, pull 1 + ack 1 (jobs/s)', (sys) => get('3', sys, 'jobs_per_s'), true],
		['4. drain, pull 100 + ack 100 (jobs/s)', (sys) => get('4', sys, 'jobs_per_s'), true],
		['8. drain at depth (jobs/s)', (sys) => get('8', sys, 'jobs_per_s'), true],
		['5. pickup latency p99', (sys) => get('5', sys, 'p99_ms'), false],
		[`6. churn, done/s in the last ${meta.churn_window} s`, (sys) => get('6', sys, 'last_jobs_per_s'), true],
		['7. held snapshot, jobs done', (sys) => get('7', sys, 'done'), true],
		['7. held snapshot, pull latency p99', (sys) => get('7', sys, 'pull_p99_ms'), false],
		['9. steady load, claim latency p99', (sys) => get('9', sys, 'claim_p99_ms'), false],
	];
	const val = (f, sys) => (present.includes(sys) ? f(sys) : null);
	const pairs = PAIRS.filter(([a, b]) => ROWS.some(([, f]) => val(f, a) !== null && val(f, b) !== null));
	const rows = ROWS.filter(([, f]) => pairs.some(([a, b]) => val(f, a) !== null && val(f, b) !== null));
	if (pairs.length && rows.length) {
		md.push('## Ratios within this run (above 1: the first system does better)');
		md.push('');
		md.push(`| | ${pairs.map(([a, b]) => `${LABEL[a]} vs ${LABEL[b]}`).join(' | ')} |`);
		md.push(`|---|${pairs.map(() => '---:').join('|')}|`);
		for (const [what, f, higher] of rows) {
			const cells = pairs.map(([a, b]) => {
				const va = val(f, a);
				const vb = val(f, b);
				const r = higher ? ratio(va, vb) : ratio(vb, va);
				if (r === null)
					return '';
				csv.push(['ratio', `${a}/${b}`, `"${what}"`, r.toFixed(3), '', `"${va} ${vb}"`, '', higher ? '"first/second"' : '"second/first (latency)"'].join(','));
				return `${r < 0.1 ? r.toPrecision(2) : r.toFixed(2)}x`;
			});
			md.push(`| ${what} | ${cells.join(' | ')} |`);
		}
		md.push('');
		md.push('Throughput rows: the first system\'s figure over the second\'s; latency rows: the second\'s over the first\'s, so that above 1 always favours the first. Scenarios 1 and 2 take the push figures of taskq and pgmq for their variants (they push alike). Same run, same instance: the machine\'s noise hits both sides, but one run is one sample.');
		md.push('');
	}
}

/* Scenario 8: scenarios 3 and 4 at depth, against the same drains on
 * 100k and 200k interleaved with them, the sizes at depth and the pulls'
 * mean latency. */
if (values['8']) {
	const of = (v, base) => (v === null || base === null || !base ? 'n/a' : `${(100 * v / base).toFixed(1)}%`);
	md.push(`### Scenario 8 at depth (${fmt(Number(meta.s8_backlog))} jobs)`);
	md.push('');
	md.push(`| system | pull 1 + ack 1 at depth, jobs/s | at ${fmt(Number(meta.s3_backlog))} | of it | pull at depth, mean (ms) | VACUUM running (s) | pull 100 + ack 100 at depth, jobs/s | at ${fmt(Number(meta.s4_backlog))} | of it | pull at depth, mean (ms) | VACUUM running (s) | tables | indexes | bytes per job | load, VACUUM and CHECKPOINT (s) |`);
	md.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
	const METRICS = ['ref_jobs_per_s', 'pull_mean_ms', 'vacuum_s', 'batch_jobs_per_s', 'batch_jobs_done', 'batch_ref_jobs_per_s', 'batch_pull_mean_ms', 'batch_vacuum_s', 'table_bytes', 'index_bytes', 'load_and_vacuum_s'];
	for (const sys of SYSTEMS) {
		if (!values['8'][sys])
			continue;
		const g = (m) => get('8', sys, m);
		const t = g('table_bytes');
		const i = g('index_bytes');
		md.push(`| ${LABEL[sys]} | ${fmt(g('jobs_per_s'))} | ${fmt(g('ref_jobs_per_s'))} | ${of(g('jobs_per_s'), g('ref_jobs_per_s'))} | ${fmt(g('pull_mean_ms'), 2)} | ${fmt(g('vacuum_s'))} | ${fmt(g('batch_jobs_per_s'))} | ${fmt(g('batch_ref_jobs_per_s'))} | ${of(g('batch_jobs_per_s'), g('batch_ref_jobs_per_s'))} | ${fmt(g('batch_pull_mean_ms'), 2)} | ${fmt(g('batch_vacuum_s'))} | ${bytes(t)} | ${bytes(i)} | ${t === null || i === null ? 'n/a' : fmt((t + i) / Number(meta.s8_backlog))} | ${fmt(g('load_and_vacuum_s'))} |`);
		for (const m of METRICS) {
			const list = values['8'][sys][m];
			if (list)
				csv.push(['8', sys, m, +median(list).toFixed(3), list.length, `"${list.join(' ')}"`, '', ''].join(','));
		}
	}
	md.push('');
	md.push(`Medians of ${meta.runs} runs per system, taken alternately: ${meta.s8_seconds} s of scenario 3's loop on what is left at depth, then scenario 3's drain of a fresh backlog of ${fmt(Number(meta.s3_backlog))} in a second database, ${meta.runs} times; then the same with scenario 4's loop and ${fmt(Number(meta.s4_backlog))}. Each drain follows \`VACUUM (ANALYZE)\` and \`CHECKPOINT\`. Sizes summed over the user tables of the system's database after the load, \`VACUUM (ANALYZE)\` and \`CHECKPOINT\`, before the first drain; bytes per job = (tables + indexes) / backlog. The pulls' mean latency is pgbench's (\`-r\`) for the script's first statement. VACUUM running: the seconds of a drain at depth in which a VACUUM (autovacuum's) ran in the system's database, sampled every second.`);
	md.push('');
}

/* Events and webhook. */
const EVENT_VARIANTS = ['taskq_events', 'taskq_notify', 'taskq_webhook'].filter((v) => values['3']?.[v]);
if (EVENT_VARIANTS.length) {
	md.push('### taskq with real-time events and a webhook (scenario 3)');
	md.push('');
	md.push('| variant | run | jobs/s | deliveries pending when the drain ended | outbox empty after (s) | webhooks received | events received |');
	md.push('|---|---:|---:|---:|---:|---:|---:|');
	for (const v of EVENT_VARIANTS) {
		const e = values['3'][v];
		const n = (e.jobs_per_s || []).length;
		for (let i = 0; i < n; i++)
			md.push(`| ${LABEL[v]} | ${i + 1} | ${fmt(e.jobs_per_s[i])} | ${fmt(e.deliveries_pending_at_end?.[i] ?? null)} | ${fmt(e.outbox_drained_after_s?.[i] ?? null, 1)} | ${fmt(e.webhooks_received?.[i] ?? null)} | ${fmt(e.events_received?.[i] ?? null)} |`);
		for (const m of ['deliveries_pending_at_end', 'outbox_drained_after_s', 'webhooks_received', 'events_received']) {
			const list = e[m];
			if (list)
				csv.push(['3', v, m, median(list).toFixed(1), list.length, `"${list.join(' ')}"`, '', ''].join(','));
		}
	}
	md.push('');
	md.push('The drain\'s figure counts until the last ack; the background worker delivers the webhooks meanwhile and afterwards (the outbox column). n/a: not part of that variant.');
	md.push('');
}

/* Latency. */
if (values['5']) {
	md.push(`## Scenario 5: push -> pickup latency (${SCENARIO[5]}, ${meta.latency_seconds} s)`);
	md.push('');
	md.push('| system | p50 ms | p99 ms | the push alone: p50 ms | p99 ms | picked up | how an idle worker waits |');
	md.push('|---|---:|---:|---:|---:|---:|---|');
	for (const sys of SYSTEMS) {
		if (!values['5'][sys])
			continue;
		md.push(`| ${LABEL[sys]} | ${fmt(get('5', sys, 'p50_ms'), 1)} | ${fmt(get('5', sys, 'p99_ms'), 1)} | ${fmt(get('5', sys, 'push_p50_ms'), 1)} | ${fmt(get('5', sys, 'push_p99_ms'), 1)} | ${fmt(get('5', sys, 'received'))} of ${fmt(get('5', sys, 'pushed'))} | ${WAITS[sys]} |`);
		for (const m of ['p50_ms', 'p99_ms', 'push_p50_ms', 'push_p99_ms', 'received'])
			csv.push(['5', sys, m, get('5', sys, m), 1, `"${get('5', sys, m)}"`, '', `"${WAITS[sys]}"`].join(','));
	}
	md.push('');
	md.push('Latency: from just before the producer sends the push (so it includes the push\'s own commit) to the moment a worker has the job; producer and workers share one Node.js process and clock. "The push alone": from the same moment to the producer having the push\'s answer, its commit included; a worker can have the job before that answer arrives.');
	md.push('');
}

/* Churn. */
if (values['6']) {
	md.push(`## Scenario 6: churn (${SCENARIO[6]})`);
	md.push('');
	const cw = meta.churn_window || 20;
	md.push(`| system | done/s, first ${cw} s | done/s, last ${cw} s | last/first | pushed/s, first -> last ${cw} s | dead tuples at the end | live tuples | tables | indexes | autovacuums | backlog left |`);
	md.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
	for (const sys of SYSTEMS) {
		if (!values['6'][sys])
			continue;
		const f = get('6', sys, 'first_jobs_per_s');
		const l = get('6', sys, 'last_jobs_per_s');
		const r = ratio(l, f);
		md.push(`| ${LABEL[sys]} | ${fmt(f)} | ${fmt(l)} | ${r === null ? 'n/a' : r.toFixed(2)} | ${fmt(get('6', sys, 'first_pushed_per_s'))} -> ${fmt(get('6', sys, 'last_pushed_per_s'))} | ${fmt(get('6', sys, 'dead_tuples'))} | ${fmt(get('6', sys, 'live_tuples'))} | ${bytes(get('6', sys, 'table_bytes'))} | ${bytes(get('6', sys, 'index_bytes'))} | ${fmt(get('6', sys, 'autovacuums'))} | ${fmt(get('6', sys, 'backlog_left'))} |`);
		for (const m of Object.keys(values['6'][sys]))
			csv.push(['6', sys, m, get('6', sys, m), 1, `"${get('6', sys, m)}"`, '', ''].join(','));
	}
	md.push('');
	md.push('Tuples and sizes are summed over the user tables of the system\'s own database (pg_stat_user_tables) right after the run. PgQ runs one consumer (see scenario 3).');
	md.push('');
}

/* Scenarios 7 and 9: per-window series (STEADY.tsv). */
const STEADY_COLS = ['end_s', 'done_per_s', 'pushed_per_s', 'pull_p50_ms', 'pull_p99_ms', 'claim_p50_ms',
	'claim_p95_ms', 'claim_p99_ms', 'backlog', 'dead_tuples', 'live_tuples', 'autovacuums'];
/* steady[scen][sys] = [{end_s, ...}] */
const steady = {};
for (const [scen, sys, ...rest] of steadyRows) {
	const w = {};
	STEADY_COLS.forEach((c, i) => { w[c] = rest[i] === '' || rest[i] === undefined ? null : Number(rest[i]); });
	((steady[scen] ??= {})[sys] ??= []).push(w);
}
const steadySystems = (scen) => SYSTEMS.filter((s) => steady[scen]?.[s]);
/* A table of one per-window metric: rows windows, columns systems. */
function windowTable(scen, metric, digits) {
	const syss = steadySystems(scen);
	const n = Math.max(...syss.map((s) => steady[scen][s].length));
	const out = [`| window end (s) | ${syss.map((s) => LABEL[s]).join(' | ')} |`, `|---:|${syss.map(() => '---:').join('|')}|`];
	for (let i = 0; i < n; i++) {
		const end = syss.map((s) => steady[scen][s][i]?.end_s).find((v) => v !== undefined);
		out.push(`| ${end} | ${syss.map((s) => fmt(steady[scen][s][i]?.[metric] ?? null, digits)).join(' | ')} |`);
	}
	return out;
}
function steadyCsv(scen) {
	for (const sys of steadySystems(scen)) {
		for (const m of Object.keys(values[scen]?.[sys] || {}))
			csv.push([scen, sys, m, get(scen, sys, m), 1, `"${get(scen, sys, m)}"`, '', ''].join(','));
		for (const c of STEADY_COLS.slice(1)) {
			const list = steady[scen][sys].map((w) => w[c]);
			const m = median(list.filter((v) => v !== null));
			csv.push([scen, sys, `${c}_by_window`, m === null ? '' : Number(m.toFixed(2)), list.length,
				`"${list.map((v) => (v === null ? '' : Number(v.toFixed(2)))).join(' ')}"`, '', `"per ${scen === '7' ? meta.s7_window : meta.s9_window} s window"`].join(','));
		}
	}
}
const maxOf = (list) => (list.length ? Math.max(...list) : null);
const details = (summary, lines) => ['<details>', `<summary>${summary}</summary>`, '', ...lines, '', '</details>', ''];

if (steady['7']) {
	const syss = steadySystems('7');
	md.push(`## Scenario 7: ${SCENARIO[7]}`);
	md.push('');
	md.push(`Producers push ${meta.steady_rate} jobs/s (${meta.steady_rate_note}) in batches every ${meta.steady_interval_ms} ms; ${meta.s7_workers} workers pull 1 job and ack it in a second transaction (an empty pull waits ${meta.steady_poll_ms} ms); a REPEATABLE READ transaction that has read the hot table is open from before the first push to the end (${meta.xmin_seconds} s), so no dead row of the run can be removed. Per ${meta.s7_window} s window:`);
	md.push('');
	md.push('| system | jobs done | of pushed | done/s, first window | done/s, last window | pull p99 first -> last window (ms) | claim p99, whole run (ms) | dead tuples at the end | backlog at the end |');
	md.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
	for (const sys of syss) {
		const w = steady['7'][sys];
		md.push(`| ${LABEL[sys]} | ${fmt(get('7', sys, 'done'))} | ${fmt(get('7', sys, 'pushed'))} | ${fmt(w[0].done_per_s)} | ${fmt(w[w.length - 1].done_per_s)} | ${fmt(w[0].pull_p99_ms, 1)} -> ${fmt(w[w.length - 1].pull_p99_ms, 1)} | ${fmt(get('7', sys, 'claim_p99_ms'), 1)} | ${fmt(get('7', sys, 'dead_tuples_end'))} | ${fmt(get('7', sys, 'backlog_end'))} |`);
	}
	md.push('');
	md.push('Jobs done per second:');
	md.push('');
	md.push(...windowTable('7', 'done_per_s', 0));
	md.push('');
	md.push('Pull latency p99 (ms; every pull call, empty ones included, as the worker sees it):');
	md.push('');
	md.push(...windowTable('7', 'pull_p99_ms', 1));
	md.push('');
	md.push('Dead tuples of the hot table at the end of each window (pg_stat_user_tables):');
	md.push('');
	md.push(...windowTable('7', 'dead_tuples', 0));
	md.push('');
	md.push(...details('Backlog (live rows of the hot table) and claim latency p99 per window', [
		...windowTable('7', 'backlog', 0), '', ...windowTable('7', 'claim_p99_ms', 1)]));
	steadyCsv('7');
}

if (steady['9']) {
	const syss = steadySystems('9');
	md.push(`## Scenario 9: ${SCENARIO[9]}`);
	md.push('');
	md.push(`Producers push ${meta.steady_rate} jobs/s (${meta.steady_rate_note}) in batches of at most ${meta.steady_batch_max} every ${meta.steady_interval_ms} ms; ${meta.s9_workers} workers each pull up to ${meta.s9_pull} jobs and ack each in its own transaction (an empty pull waits ${meta.steady_poll_ms} ms); the server's default autovacuum settings (taskq.jobs has its own storage parameters, part of the extension). Claim latency: from the push statement (the server's clock, stored in the job) to the lease (the server's clock in the pull), so the push's own commit is included. Per ${meta.s9_window} s window:`);
	md.push('');
	md.push('| system | done/s (mean) | pushed/s (mean) | claim p50 | p95 | p99 (ms, whole run) | worst window p99 (ms) | backlog, max | dead tuples, max / end | autovacuums |');
	md.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
	for (const sys of syss) {
		const w = steady['9'][sys];
		const secs = Number(meta.steady_seconds);
		md.push(`| ${LABEL[sys]} | ${fmt(get('9', sys, 'done') / secs)} | ${fmt(get('9', sys, 'pushed') / secs)} | ${fmt(get('9', sys, 'claim_p50_ms'), 1)} | ${fmt(get('9', sys, 'claim_p95_ms'), 1)} | ${fmt(get('9', sys, 'claim_p99_ms'), 1)} | ${fmt(maxOf(w.map((x) => x.claim_p99_ms).filter((v) => v !== null)), 1)} | ${fmt(maxOf(w.map((x) => x.backlog).filter((v) => v !== null)))} | ${fmt(maxOf(w.map((x) => x.dead_tuples).filter((v) => v !== null)))} / ${fmt(get('9', sys, 'dead_tuples_end'))} | ${fmt(get('9', sys, 'autovacuums_end'))} |`);
	}
	md.push('');
	md.push(...details('Completion rate (jobs done/s) per window', windowTable('9', 'done_per_s', 0)));
	md.push(...details('Claim latency p50 / p95 / p99 (ms) per window', [
		'p50:', '', ...windowTable('9', 'claim_p50_ms', 1), '', 'p95:', '', ...windowTable('9', 'claim_p95_ms', 1), '', 'p99:', '', ...windowTable('9', 'claim_p99_ms', 1)]));
	md.push(...details('Backlog (live rows of the hot table) per window', windowTable('9', 'backlog', 0)));
	md.push(...details('Dead tuples of the hot table per window', windowTable('9', 'dead_tuples', 0)));

	/* bytes per job */
	const withBytes = syss.filter((sys) => get('9', sys, 'hot_table_bytes') !== null);
	if (withBytes.length) {
		md.push('### Bytes per job after scenario 9');
		md.push('');
		md.push('| system | hot table | its indexes | per job through it | history table | its indexes | history rows | per job kept |');
		md.push('|---|---:|---:|---:|---:|---:|---:|---:|');
		const perJob = (b, n) => (b === null || !n ? 'n/a' : fmt(b / n));
		const HOT = { taskq: 'taskq.jobs', naive: 'naive_jobs', pgmq: 'pgmq.q_bench' };
		const HIST = { taskq: 'taskq.finished_jobs', pgmq: 'pgmq.a_bench' };
		for (const sys of withBytes) {
			const fam = sys.replace(/_.*$/, '');
			const ht = get('9', sys, 'hot_table_bytes');
			const hi = get('9', sys, 'hot_index_bytes');
			const st = get('9', sys, 'history_table_bytes');
			const si = get('9', sys, 'history_index_bytes');
			const rows = get('9', sys, 'history_rows');
			const pushed = get('9', sys, 'pushed');
			const hist = HIST[fam] ? `${HIST[fam]} ${bytes(st)}` : '–';
			md.push(`| ${LABEL[sys]} | ${HOT[fam]} ${bytes(ht)} | ${bytes(hi)} | ${perJob(ht + hi, pushed)} B | ${hist} | ${HIST[fam] ? bytes(si) : '–'} | ${fmt(rows)} | ${rows ? `${perJob(st + si, rows)} B` : 'n/a'} |`);
		}
		md.push('');
		md.push(`Right after the run, before any VACUUM: table = heap, TOAST, free-space and visibility maps (pg_table_size), indexes = pg_indexes_size. "Per job through it": the hot table and its indexes over the jobs pushed in the run (what the churn of ${meta.steady_seconds} s left behind; the live backlog is a few rows); "per job kept": the history and its indexes over the rows it holds. The job data is the ${meta.payload_bytes}-byte payload plus the push's time stamp.`);
		md.push('');
	}
	steadyCsv('9');
}

/* Targets (the performance issue's table), each from this run's figures. */
const targets = [];
{
	const pct = (r) => `${(r * 100).toFixed(1)}%`;
	const x = (r) => `${r.toFixed(2)}x`;
	const add = (what, fig, ok) => targets.push([what, fig, ok]);
	const t1 = get('1', 'taskq', 'jobs_per_s');
	const n1 = get('1', 'naive', 'jobs_per_s');
	const i1 = get('1', 'insert', 'jobs_per_s');
	if (t1 !== null && n1 !== null && i1 !== null)
		add('1. push 1/tx: >= 0.95x naive and >= 0.95x a plain INSERT of the same row',
			`${x(t1 / n1)} naive, ${x(t1 / i1)} INSERT`, t1 / n1 >= 0.95 && t1 / i1 >= 0.95);
	const t2 = get('2', 'taskq', 'jobs_per_s');
	const peers2 = ['naive', 'pgq', 'pgmq'].filter((p) => get('2', p, 'jobs_per_s') !== null);
	if (t2 !== null && peers2.length)
		add('2. push 100/tx: >= 1.0x naive, ahead of PgQ and pgmq',
			peers2.map((p) => `${x(t2 / get('2', p, 'jobs_per_s'))} ${LABEL[p]}`).join(', '),
			peers2.every((p) => t2 >= get('2', p, 'jobs_per_s')));
	const t3 = get('3', 'taskq', 'jobs_per_s');
	const b3 = get('3', 'taskq_bundled', 'jobs_per_s');
	const n3 = get('3', 'naive', 'jobs_per_s');
	const c = get('0', 'ceiling', 'commits_per_s');
	if (b3 !== null && n3 !== null)
		add('3. drain, one commit per job (pull with acks): >= 1.8x naive',
			`${fmt(b3)} vs ${fmt(n3)} jobs/s: ${x(b3 / n3)}`, b3 / n3 >= 1.8);
	if (b3 !== null && c !== null)
		add('3. drain, one commit per job: >= 80% of the commit ceiling',
			`${fmt(b3)} of ${fmt(c)}: ${pct(b3 / c)}`, b3 / c >= 0.8);
	if (t3 !== null && n3 !== null)
		add('3. drain, separate pull and ack transactions: >= 1.0x naive',
			`${fmt(t3)} vs ${fmt(n3)} jobs/s: ${x(t3 / n3)}`, t3 >= n3);
	for (const [g, what] of [['taskq_groups10', '10 groups'], ['taskq_groups10k', '10,000 groups']]) {
		const tg = get('3', g, 'jobs_per_s');
		if (tg !== null && t3 !== null)
			add(`flow control: scenario 3 with group_concurrency over ${what}: >= 85% of plain scenario 3`,
				`${fmt(tg)} vs ${fmt(t3)} jobs/s: ${pct(tg / t3)}`, tg / t3 >= 0.85);
	}
	const rl = get('3', 'taskq_rate', 'jobs_per_s');
	if (rl !== null && t3 !== null)
		add('flow control: scenario 3 with a rate_limit above the achievable rate: >= 85% of plain scenario 3',
			`${fmt(rl)} vs ${fmt(t3)} jobs/s: ${pct(rl / t3)}`, rl / t3 >= 0.85);
	const rr = get('3', 'taskq_rr10k', 'jobs_per_s');
	if (rr !== null && t3 !== null)
		add('flow control: scenario 3 with round-robin fairness over 10,000 groups: >= 80% of plain scenario 3',
			`${fmt(rr)} vs ${fmt(t3)} jobs/s: ${pct(rr / t3)}`, rr / t3 >= 0.8);
	const t4 = get('4', 'taskq', 'jobs_per_s');
	const peers4 = ['naive', 'pgq', 'pgmq'].filter((p) => get('4', p, 'jobs_per_s') !== null);
	if (t4 !== null && peers4.length)
		add('4. drain by 100: >= 1.2x naive, ahead of PgQ and pgmq',
			peers4.map((p) => `${x(t4 / get('4', p, 'jobs_per_s'))} ${LABEL[p]}`).join(', '),
			peers4.every((p) => t4 >= get('4', p, 'jobs_per_s') * (p === 'naive' ? 1.2 : 1)));
	const p5 = get('5', 'taskq', 'p99_ms');
	const q5 = get('5', 'taskq', 'push_p99_ms');
	if (p5 !== null)
		add('5. push -> pickup p99 <= 5 ms', `${fmt(p5, 1)} ms` + (q5 !== null ? ` (the push alone: p99 ${fmt(q5, 1)} ms)` : ''), p5 <= 5);
	const f6 = get('6', 'taskq', 'first_jobs_per_s');
	const l6 = get('6', 'taskq', 'last_jobs_per_s');
	if (f6 !== null && l6 !== null && f6 > 0)
		add('6. churn: last window >= 90% of the first', `${fmt(l6)} of ${fmt(f6)}: ${pct(l6 / f6)}`, l6 / f6 >= 0.9);
	const w7 = steady['7']?.taskq;
	const rate = Number(meta.steady_rate);
	if (w7 && w7.length && rate > 0) {
		const low = Math.min(...w7.map((w) => w.done_per_s));
		add('7. held snapshot: every window >= 90% of the offered rate (the snapshot is held from the start)',
			`lowest window ${fmt(low)} of ${fmt(rate)} jobs/s: ${pct(low / rate)}`, low / rate >= 0.9);
		const p0 = w7[0].pull_p99_ms;
		const pmax = Math.max(...w7.map((w) => w.pull_p99_ms));
		if (p0 > 0)
			add('7. held snapshot: pull p99 grows at most 2x', `${fmt(p0, 1)} -> at most ${fmt(pmax, 1)} ms: ${x(pmax / p0)}`, pmax / p0 <= 2);
	}
	const w9 = steady['9']?.taskq;
	const m9 = steady['9']?.pgmq;
	if (w9 && w9.length && rate > 0) {
		const low = Math.min(...w9.map((w) => w.done_per_s));
		add('9. steady load: no window below 95% of the offered rate',
			`lowest window ${fmt(low)} of ${fmt(rate)} jobs/s: ${pct(low / rate)}`, low / rate >= 0.95);
		if (m9 && m9.length === w9.length) {
			const worst = Math.max(...w9.map((w, i) => (m9[i].claim_p99_ms > 0 ? w.claim_p99_ms / m9[i].claim_p99_ms : 0)));
			add('9. steady load: claim p99 in every window <= 2x pgmq\'s', `worst window ${x(worst)}`, worst <= 2);
		}
	}
	const perJob = (sys) => {
		const pushed = get('9', sys, 'pushed');
		const parts = ['hot_table_bytes', 'hot_index_bytes', 'history_table_bytes', 'history_index_bytes'].map((m) => get('9', sys, m));
		return pushed && parts.every((v) => v !== null) ? parts.reduce((a, b) => a + b, 0) / pushed : null;
	};
	const tb = perJob('taskq');
	const pb = perJob('pgmq_archive');
	if (tb !== null && pb !== null)
		add('bytes per job (scenario 9): hot + history <= pgmq\'s queue + archive',
			`${fmt(tb)} vs ${fmt(pb)} bytes`, tb <= pb);
	for (const [prefix, what, scen] of [['', 'pull 1 + ack 1', 3], ['batch_', 'pull 100 + ack 100', 4]]) {
		const d = get('8', 'taskq', `${prefix}jobs_per_s`);
		const r = get('8', 'taskq', `${prefix}ref_jobs_per_s`);
		if (d !== null && r !== null)
			add(`8. backlog of ${fmt(Number(meta.s8_backlog))}: ${what} >= 90% of its rate on scenario ${scen}'s backlog`,
				`${fmt(d)} vs ${fmt(r)} jobs/s: ${pct(d / r)}`, d / r >= 0.9);
	}
	const e3 = get('3', 'taskq_events', 'jobs_per_s');
	if (t3 !== null && e3 !== null)
		add('events + webhook: cost <= 10% of scenario 3',
			`${fmt(e3)} vs ${fmt(t3)} jobs/s: cost ${pct(1 - e3 / t3)}`, 1 - e3 / t3 <= 0.1);
}
md.push('## Targets');
md.push('');
if (targets.length) {
	md.push('| target | measured | |');
	md.push('|---|---|---|');
	for (const [what, fig, ok] of targets) {
		md.push(`| ${what} | ${fig} | ${ok ? 'met' : 'NOT MET'} |`);
		csv.push(['target', 'taskq', `"${what}"`, '', '', `"${fig}"`, '', ok ? 'met' : 'not met'].join(','));
	}
} else {
	md.push('Not checked: the scenarios and systems they need were not run.');
}
md.push('');

/* Machine and versions. */
md.push('## Machine, versions, settings');
md.push('');
md.push('| | |');
md.push('|---|---|');
for (const k of ['cpu', 'memory', 'kernel', 'storage', 'postgresql', 'pgbench', 'taskq', 'pgmq', 'pgq', 'graphile-worker', 'pg-boss', 'node-postgres', 'node']) {
	if (meta[k] !== undefined)
		md.push(`| ${k} | ${meta[k].replace(/\|/g, '/')} |`);
}
md.push(`| settings | ${(meta.settings || '').replace(/\|/g, '/')} |`);
md.push(`| sizes | payload ${meta.payload_bytes} bytes; push runs ${meta.push_seconds} s; drains stop at ${meta.drain_cap_s} s; latency ${meta.latency_seconds} s; churn ${meta.churn_seconds} s; held snapshot ${meta.xmin_seconds} s; steady load ${meta.steady_seconds} s${meta.steady_rate ? ` at ${meta.steady_rate} jobs/s (${meta.steady_rate_note})` : ''} |`);
md.push('');

fs.writeFileSync(`${args.out}.md`, `${md.join('\n')}\n`);
fs.writeFileSync(`${args.out}.csv`, `${csv.join('\n')}\n`);

/* The chart: throughput per scenario (log scale) and the churn over time. */
if (args.gnuplot === '1') {
	const dat = `${args.out}.chart.dat`;
	const sdat = `${args.out}.series.dat`;
	const rows = ['scenario ' + thrSystems.map((s) => `"${LABEL[s]}"`).join(' ')];
	for (const scen of THR) {
		if (!values[scen])
			continue;
		rows.push(`"S${scen}" ${thrSystems.map((s) => { const v = get(scen, s, 'jobs_per_s'); return v === null ? '?' : v.toFixed(1); }).join(' ')}`);
	}
	fs.writeFileSync(dat, `${rows.join('\n')}\n`);
	const churnSystems = [...new Set(series.map((r) => r[0]))];
	const blocks = churnSystems.map((s) => series.filter((r) => r[0] === s).map((r) => `${r[1]} ${r[2]}`).join('\n'));
	fs.writeFileSync(sdat, `${blocks.join('\n\n\n')}\n`);
	const hasBars = rows.length > 1;
	const hasChurn = churnSystems.length > 0;
	const plots = [];
	if (hasBars) {
		plots.push(`
set title "Throughput, jobs/s (log scale): S1 push 1/tx, S2 push 100/tx, S3 drain 1+1, S4 drain 100+100"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [1:*]
set ylabel "jobs/s"
set key outside right top
set datafile missing "?"
set grid ytics
plot for [i=2:${thrSystems.length + 1}] "${dat}" using i:xtic(1) title columnheader(i)
unset logscale y
unset style data
`);
	}
	if (hasChurn) {
		plots.push(`
set title "Scenario 6, churn: jobs done per second while producers push (log scale)"
set xlabel "seconds"
set ylabel "jobs done/s"
set logscale y
set yrange [1:*]
set key outside right top
set grid
plot ${churnSystems.map((s, i) => `"${sdat}" index ${i} using 1:($2 > 1 ? $2 : 1) with lines lw 2 title "${LABEL[s] || s}"`).join(', ')}
`);
	}
	/* scenarios 7 and 9: a metric per window, one line per system */
	const steadyFiles = [];
	const steadyPlot = (scen, metric, title, ylabel, log) => {
		const syss = steadySystems(scen);
		if (!syss.length)
			return;
		const file = `${args.out}.s${scen}-${metric}.dat`;
		steadyFiles.push(file);
		fs.writeFileSync(file, `${syss.map((sys) => steady[scen][sys].map((w) => `${w.end_s} ${w[metric] === null ? '?' : w[metric]}`).join('\n')).join('\n\n\n')}\n`);
		plots.push(`
set title "${title}"
set xlabel "seconds"
set ylabel "${ylabel}"
${log ? 'set logscale y' : 'unset logscale y'}
set xrange [0:*]
set yrange [${log ? '0.1' : '0'}:*]
set key outside right top
set datafile missing "?"
set grid
plot ${syss.map((sys, i) => `"${file}" index ${i} using 1:2 with linespoints lw 2 title "${LABEL[sys]}"`).join(', ')}
`);
	};
	steadyPlot('7', 'done_per_s', 'Scenario 7, held snapshot: jobs done per second', 'jobs done/s', false);
	steadyPlot('7', 'pull_p99_ms', 'Scenario 7, held snapshot: pull latency p99 per window (ms, log scale)', 'ms', true);
	steadyPlot('9', 'claim_p99_ms', 'Scenario 9, steady load: claim latency p99 per window (ms, log scale)', 'ms', true);
	steadyPlot('9', 'dead_tuples', 'Scenario 9, steady load: dead tuples of the hot table', 'dead tuples', false);
	if (plots.length) {
		const cols = plots.length > 2 ? 2 : 1;
		const nrows = Math.ceil(plots.length / cols);
		const script = `set terminal pngcairo size ${cols === 2 ? 2200 : 1400},${450 * nrows} font "sans,10"
set output "${args.out}.png"
set multiplot layout ${nrows},${cols}
${plots.join('\n')}
unset multiplot
`;
		try {
			execFileSync('gnuplot', [], { input: script, stdio: ['pipe', 'inherit', 'inherit'] });
		} finally {
			fs.rmSync(dat, { force: true });
			fs.rmSync(sdat, { force: true });
			for (const f of steadyFiles)
				fs.rmSync(f, { force: true });
		}
	}
}
