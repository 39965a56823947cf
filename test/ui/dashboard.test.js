#!/usr/bin/env node
// Browser tests of taskq serve's dashboard (/ui), in Debian's chromium
// headless, driven by puppeteer-core.  test/t/107_serve_ui.pl starts the
// database and the server, makes the data and the tokens, and runs this;
// it prints TAP lines ("ok N - ..." / "not ok N - ...") that the Perl test
// passes on, and saves a screenshot of each view in --shots.
//
// Usage: node dashboard.test.js --url BASE --admin-token T --viewer-token T
//        --shots DIR [--chromium /usr/bin/chromium]
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const puppeteer = require('puppeteer-core');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];
const base = args.url;
const shots = args.shots;
const chromium = args.chromium || '/usr/bin/chromium';
const TIMEOUT = 20000;

let n = 0;
let failed = 0;
function ok(cond, what, diag) {
  n++;
  if (!cond) failed++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${what}`);
  if (!cond && diag) console.log(`# ${String(diag).split('\n').join('\n# ')}`);
}

async function api(token, method, p, body) {
  const res = await fetch(base + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined
  });
  const text = await res.text();
  let data = null;
  try { data = JSON.parse(text); } catch (e) { data = text; }
  return { status: res.status, data };
}

// wait until fn (run in the page) returns true; false at the timeout
async function until(page, fn, arg) {
  try {
    await page.waitForFunction(fn, { timeout: TIMEOUT, polling: 100 }, arg);
    return true;
  } catch (e) {
    return false;
  }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function signIn(page, token) {
  await page.goto(`${base}/ui`, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#token', { timeout: TIMEOUT });
  await page.type('#token', token);
  await click(page, '#login-form button[type=submit]');
  return until(page, () => document.querySelector('table[aria-label="Queues"]') !== null);
}

// click in the page itself: a live update may replace the element between
// finding it and clicking it from outside
async function click(page, sel) {
  await page.waitForSelector(sel, { timeout: TIMEOUT });
  await page.$eval(sel, (e) => e.click());
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent).catch(() => null);

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'taskq-ui-'));
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    userDataDir: profile,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage']
  });
  const errors = [];
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('dialog', (d) => d.accept());
    await page.setViewport({ width: 1280, height: 900 });

    // ---- sign-in
    await page.goto(`${base}/ui`, { waitUntil: 'domcontentloaded' });
    ok(await page.waitForSelector('#token', { timeout: TIMEOUT }).then(() => true, () => false),
      'the dashboard asks for a token');
    ok((await text(page, 'label')).includes('API token'), '... with a labelled field');
    await shot(page, 'login');
    await page.type('#token', 'tq_not_a_token');
    await click(page, '#login-form button[type=submit]');
    ok(await until(page, () => /not accepted/.test(document.querySelector('#login-error')?.textContent || '')),
      'a wrong token is refused on the page');
    await page.$eval('#token', (e) => { e.value = ''; });
    ok(await signIn(page, args['admin-token']), 'the admin token signs in to the overview');
    ok(await page.evaluate(() => sessionStorage.getItem('taskq_token') !== null && localStorage.length === 0),
      '... the token kept in the tab only (sessionStorage)');

    // ---- overview
    const first = await page.$eval('table[aria-label="Queues"] tbody tr td a', (a) => a.textContent);
    ok(first === 'build', 'the queue with dead jobs comes first', `first: ${first}`);
    const buildRow = await page.$$eval('table[aria-label="Queues"] tbody tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent.trim())).find((c) => c[0].startsWith('build')));
    ok(buildRow && buildRow[5] === '5', '... with its 5 dead jobs', JSON.stringify(buildRow));
    ok(await until(page, () => /live/.test(document.querySelector('#live').textContent)), 'the live stream is connected');
    await shot(page, 'overview');

    // ---- a queue, filtered
    await click(page, 'table[aria-label="Queues"] a[href="#/queue/build"]');
    ok(await until(page, () => document.querySelector('nav.tabs') && document.querySelectorAll('#jobs tr').length > 0),
      'the queue opens on its waiting jobs');
    const waitingRows = await page.$$eval('#jobs tr', (r) => r.length);
    ok(waitingRows === 12, 'all 12 waiting jobs are listed', `rows: ${waitingRows}`);
    await page.type('#filters input[name=name]', 'lint');
    await click(page, '#filters button[type=submit]');
    ok(await until(page, () => location.hash.includes('name=lint') && document.querySelectorAll('#jobs tr').length === 2),
      'filtering by name lists the 2 lint jobs');
    await shot(page, 'queue');
    await page.goto(`${base}/ui#/queue/build/completed`, { waitUntil: 'domcontentloaded' });
    ok(await until(page, () => document.querySelectorAll('#jobs tr').length === 50 && !document.querySelector('#more').hidden),
      'a page of 50 completed jobs, and more');
    await click(page, '#more');
    ok(await until(page, () => document.querySelectorAll('#jobs tr').length === 60 && document.querySelector('#more').hidden),
      'the next page appends the last 10');

    // ---- a job
    await page.goto(`${base}/ui#/queue/build/dlq`, { waitUntil: 'domcontentloaded' });
    // the dead jobs' rows, not those of the page before
    await until(page, () => document.querySelectorAll('#jobs tr .badge.dlq').length > 0);
    await click(page, '#jobs tr a.mono');
    ok(await until(page, () => /dlq/.test(document.querySelector('h1')?.textContent || '') && document.querySelector('.error-box')),
      'a dead job shows its state and error');
    ok((await text(page, '.error-box')).includes('boom: exit 1'), '... the error text');
    ok((await page.$$eval('pre.json', (p) => p.map((e) => e.textContent).join(' '))).includes('acme/app'), '... its data');
    ok(await page.$('#redrive') !== null, '... and a Redrive button for an admin');
    ok(await page.$$eval('table[aria-label="Failed attempts"] tbody tr', (r) => r.length) === 1, '... its failed attempt listed');
    await shot(page, 'job');

    // ---- live: a pushed job appears, then completes, without a reload
    await page.goto(`${base}/ui#/queue/live/waiting`, { waitUntil: 'domcontentloaded' });
    ok(await until(page, () => /No waiting jobs/.test(document.querySelector('main').textContent)), 'an empty queue says so');
    const pushed = await api(args['admin-token'], 'POST', '/api/v1/queues/live/jobs', { name: 'watch-me', data: { step: 1 } });
    ok(pushed.status === 201, 'a job pushed over the API', JSON.stringify(pushed));
    ok(await until(page, (id) => [...document.querySelectorAll('#jobs a')].some((a) => a.title === id), pushed.data.id),
      '... appears in the open queue page by itself');
    await page.goto(`${base}/ui#/job/${pushed.data.id}`, { waitUntil: 'domcontentloaded' });
    ok(await until(page, () => /waiting/.test(document.querySelector('h1')?.textContent || '')), '... its page says waiting');
    const pulled = await api(args['admin-token'], 'GET', '/api/v1/queues/live/jobs?count=1');
    await api(args['admin-token'], 'POST', `/api/v1/jobs/${pushed.data.id}/ack`, { lease: pulled.data[0].lease, result: { done: true } });
    ok(await until(page, () => /completed/.test(document.querySelector('h1')?.textContent || '') && /"done": true/.test(document.querySelector('main').textContent)),
      '... then completed, with its result, without a reload');

    // ---- retry a delayed job now
    const delayed = await api(args['admin-token'], 'GET', '/api/v1/queues/later/list?state=delayed');
    await page.goto(`${base}/ui#/job/${delayed.data.jobs[0].id}`, { waitUntil: 'domcontentloaded' });
    ok(await until(page, () => /delayed/.test(document.querySelector('h1')?.textContent || '') && document.querySelector('#retry')),
      'a delayed job offers Retry now');
    await click(page, '#retry');
    ok(await until(page, () => /waiting/.test(document.querySelector('h1')?.textContent || '')), '... which makes it waiting');

    // ---- dead letters: redrive a selection
    await page.goto(`${base}/ui#/dlq`, { waitUntil: 'domcontentloaded' });
    ok(await until(page, () => /boom: exit 1/.test(document.querySelector('details.group summary')?.textContent || '')),
      'the dead letters are grouped by error');
    ok((await text(page, 'details.group summary .badge')) === '5', '... 5 with that error');
    await shot(page, 'dlq');
    await click(page, 'details.group .pick');
    await click(page, '#redrive-selected');
    ok(await until(page, () => document.querySelector('details.group summary .badge')?.textContent === '4'),
      'redriving one selected job leaves 4');
    const stats = await api(args['admin-token'], 'GET', '/api/v1/queues/build/stats');
    ok(stats.data.counts.dlq === 4, '... as the API says', JSON.stringify(stats.data.counts));

    // ---- pause a queue
    await page.goto(`${base}/ui#/queue/build`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#pause', { timeout: TIMEOUT });
    await click(page, '#pause');
    ok(await until(page, () => /paused/.test(document.querySelector('h1').textContent) && document.querySelector('#resume')),
      'Pause pauses the queue, and offers Resume');
    ok((await api(args['admin-token'], 'GET', '/api/v1/queues/build/stats')).data.paused === true, '... the API agrees');
    await click(page, '#resume');
    ok(await until(page, () => !/paused/.test(document.querySelector('h1').textContent)), 'Resume resumes it');

    // ---- a flow
    await page.goto(`${base}/ui#/flow/release-1`, { waitUntil: 'domcontentloaded' });
    ok(await until(page, () => document.querySelectorAll('#flow-svg a.node').length === 3), 'the flow is drawn with its 3 jobs');
    ok(await page.$$eval('#flow-svg path.blocking', (p) => p.length) === 2, '... the blocking path highlighted (2 edges)');
    ok(await page.$$eval('#flow-svg a.node', (a) => a.map((e) => e.dataset.state).sort().join(',')) === 'blocked,blocked,waiting',
      '... its nodes coloured by state');
    await shot(page, 'flow');

    // ---- the other views render
    for (const [hash, name, sel] of [['#/leases', 'leases', 'h1'], ['#/webhooks', 'webhooks', 'h1'], ['#/schedules', 'schedules', 'h1']]) {
      await page.goto(`${base}/ui${hash}`, { waitUntil: 'domcontentloaded' });
      ok(await until(page, (s) => document.querySelector(s)?.textContent.length > 0 && !document.querySelector('.loading'), sel),
        `the ${name} view renders`);
      await shot(page, name);
    }
    await page.goto(`${base}/ui#/webhooks`, { waitUntil: 'domcontentloaded' });
    ok(await until(page, () => /failing/.test(document.querySelector('main').textContent) && document.querySelector('.redeliver')),
      'a webhook whose deliveries failed shows them, failing first, with Redeliver');
    await click(page, '.redeliver');
    ok(await until(page, () => /Queued for redelivery/.test(document.querySelector('#toast').textContent)), '... which queues one again');

    // ---- a phone
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await page.goto(`${base}/ui#/`, { waitUntil: 'domcontentloaded' });
    await until(page, () => document.querySelector('table[aria-label="Queues"]'));
    ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1),
      'on a phone the page does not scroll sideways');
    await shot(page, 'overview-phone');

    // ---- a read-only role
    const ctx = await browser.createBrowserContext();
    const viewer = await ctx.newPage();
    viewer.on('pageerror', (e) => errors.push(String(e)));
    await viewer.setViewport({ width: 1280, height: 900 });
    ok(await signIn(viewer, args['viewer-token']), 'a role that may only pull signs in');
    const seen = await viewer.$$eval('table[aria-label="Queues"] tbody tr td:first-child a', (a) => a.map((e) => e.textContent));
    ok(seen.join(',') === 'build', '... and sees only its queue', seen.join(','));
    await viewer.goto(`${base}/ui#/queue/build`, { waitUntil: 'domcontentloaded' });
    await until(viewer, () => document.querySelector('nav.tabs'));
    ok(await viewer.$('#pause') === null && await viewer.$('#purge') === null && await viewer.$('#redrive-all') === null,
      '... without the queue\'s action buttons');
    await viewer.goto(`${base}/ui#/queue/build/dlq`, { waitUntil: 'domcontentloaded' });
    await until(viewer, () => document.querySelectorAll('#jobs tr .badge.dlq').length > 0);
    await click(viewer, '#jobs tr a.mono');
    await until(viewer, () => /dlq/.test(document.querySelector('h1')?.textContent || ''));
    ok(await viewer.$('#redrive') === null, '... nor a Redrive button on a dead job');
    const refused = await viewer.evaluate(async () => {
      const res = await fetch('/api/v1/queues/build/pause', { method: 'POST', headers: { Authorization: `Bearer ${sessionStorage.getItem('taskq_token')}` } });
      return res.status;
    });
    ok(refused === 403, 'a forbidden action sent anyway is refused (403)', `status ${refused}`);
    await shot(viewer, 'read-only');
    await ctx.close();

    // ---- dead letters: redrive a whole group
    await page.goto(`${base}/ui#/dlq`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('.redrive-group', { timeout: TIMEOUT });
    ok((await text(page, '.redrive-group')) === 'Redrive these 4', 'a group offers to redrive all of its jobs');
    await click(page, '.redrive-group');
    ok(await until(page, () => /No dead jobs/.test(document.querySelector('main').textContent)), '... and then there are none');

    ok(errors.length === 0, 'no script errors in the pages', errors.join('\n'));
  } catch (e) {
    ok(false, 'the browser test ran to its end', e.stack);
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(`1..${n}`);
  process.exit(failed ? 1 : 0);
})();
