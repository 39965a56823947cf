# test/t/107_serve_ui.pl -- taskq serve's dashboard (/ui) in a real
# browser: Debian's chromium headless, driven by puppeteer-core
# (test/ui/dashboard.test.js, whose TAP lines are passed on here).  Sign-in,
# the overview, a queue filtered and paged, a job, a job pushed and
# completed live, a redrive from the dead letters, a pause, a flow graph, a
# phone-sized screen, and a role that may only pull (no action buttons, a
# forbidden action refused).  Screenshots of each view are saved in the
# test's log directory (tmp_check/log/ui-screenshots), not committed.  Also
# the dashboard's JSON endpoints and files over plain HTTP.
use strict;
use warnings;

use File::Basename qw(dirname);
use File::Path qw(make_path);
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node slurp create_gateway start_serve stop_serve http_request);

my $chromium = '/usr/bin/chromium';
my $ui_dir = dirname(__FILE__) . '/../ui';
plan skip_all => "chromium is not installed ($chromium): the dashboard's browser tests need Debian's chromium"
  unless -x $chromium;
plan skip_all => "puppeteer-core is not installed in $ui_dir (test/webhook-receiver/install.sh $ui_dir)"
  unless -d "$ui_dir/node_modules/puppeteer-core";

my $node = new_node('ui', extension => 1);
my $tmp = PostgreSQL::Test::Utils::tempdir;
sub sql { return $node->safe_psql('postgres', shift) }
my $gateway = create_gateway($node);

sql(q{
	CREATE ROLE ops IN ROLE taskq_admin;
	CREATE ROLE viewer IN ROLE taskq_worker;
	GRANT ops, viewer TO taskq_gateway;
	SELECT taskq.create_queue('build', '{"max_attempts": 1}');
	SELECT taskq.create_queue('live');
	SELECT taskq.create_queue('deploy');
	SELECT taskq.create_queue('later');
	SELECT taskq.push('later', 'wait', '{}', '{"delay_ms": 3600000}') FROM generate_series(1, 2);
	SELECT taskq.grant('build', 'viewer', 'pull');
	-- a webhook whose receiver is not there: its deliveries fail (one attempt each)
	SET ROLE ops;
	SELECT taskq.add_webhook('http://127.0.0.1:9/hook', ARRAY['job.dlq'], ARRAY['build'], NULL, 1, 100);
	RESET ROLE;
	-- 60 completed, 5 dead, then 12 waiting (10 compile, 2 lint)
	SELECT taskq.push('build', 'compile', jsonb_build_object('repo', 'acme/app', 'n', i)) FROM generate_series(1, 60) i;
	SELECT taskq.ack(id, '{"ok": true}', lease) FROM taskq.pull('build', 60);
	SELECT taskq.push('build', 'compile', jsonb_build_object('repo', 'acme/app', 'n', i)) FROM generate_series(61, 65) i;
	SELECT taskq.fail(id, 'boom: exit 1', lease) FROM taskq.pull('build', 5);
	SELECT taskq.push('build', CASE WHEN i <= 75 THEN 'compile' ELSE 'lint' END, jsonb_build_object('repo', 'acme/app', 'n', i))
	  FROM generate_series(66, 77) i;
	SELECT taskq.push_flow('{"flow_id": "release-1", "jobs": [
	    {"key": "a", "queue": "deploy", "name": "package"},
	    {"key": "b", "queue": "deploy", "name": "stage", "depends_on": ["a"]},
	    {"key": "c", "queue": "deploy", "name": "ship", "depends_on": ["b"]}]}');
});
my $admin_token = sql(q{SELECT taskq.create_api_token('ops', 'dashboard tests')});
my $viewer_token = sql(q{SELECT taskq.create_api_token('viewer', 'read-only')});
my ($serve, $serve_log, $base) = start_serve($gateway, $tmp, 'serve');

# ---------------------------------------------------------------------------
# the files and the JSON endpoints over plain HTTP
# ---------------------------------------------------------------------------

# (status, headers, body) of a request to the gateway
sub http { my ($method, $path, $tok) = @_; return http_request($method, $base . $path, $tok) }

my ($st, $head, $body) = http('GET', '/ui');
is($st, 200, 'GET /ui: the page, without a token');
like($head, qr{Content-Type: text/html}i, '... as HTML');
like($head, qr{Content-Security-Policy: default-src 'none'; script-src 'self'}i, '... with a strict Content-Security-Policy');
like($body, qr{<script src="/ui/app\.js" defer></script>}, '... loading its script from the program');
($st, $head) = http('GET', '/ui/app.js');
is($st, 200, 'GET /ui/app.js');
like($head, qr{Content-Type: text/javascript}i, '... as JavaScript');
($st) = http('GET', '/ui/app.css');
is($st, 200, 'GET /ui/app.css');
($st) = http('GET', '/ui/nope.js');
is($st, 404, 'an unknown file: 404');
($st) = http('POST', '/ui');
is($st, 405, 'POST /ui: 405');

($st, $head, $body) = http('GET', '/api/v1/whoami', $viewer_token);
is($st, 200, 'GET /api/v1/whoami');
is_deeply(decode_json($body), { role => 'viewer', admin => JSON::PP::false, queues => { build => ['pull'] } },
	'... the role, not an administrator, its privileges per queue');
($st, $head, $body) = http('GET', '/api/v1/whoami', $admin_token);
is(decode_json($body)->{admin}, JSON::PP::true, '... an administrator');
($st) = http('GET', '/api/v1/whoami');
is($st, 401, '... needs a token');

($st, $head, $body) = http('GET', '/api/v1/queues/build/list?state=completed&count=50', $viewer_token);
is($st, 200, 'GET /api/v1/queues/{queue}/list');
my $page = decode_json($body);
is(scalar @{ $page->{jobs} }, 50, '... a page of 50');
ok(defined $page->{next}, '... and a cursor for the next');
(my $cursor = $page->{next}) =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
($st, $head, $body) = http('GET', "/api/v1/queues/build/list?state=completed&count=50&after=$cursor", $viewer_token);
my $page2 = decode_json($body);
is(scalar @{ $page2->{jobs} }, 10, '... the next page: the last 10');
ok(!defined $page2->{next}, '... and no cursor after it');
my %seen = map { $_->{id} => 1 } @{ $page->{jobs} }, @{ $page2->{jobs} };
is(scalar keys %seen, 60, '... 60 different jobs in all');
($st, $head, $body) = http('GET', '/api/v1/queues/build/list?state=waiting&name=lint', $viewer_token);
is(scalar @{ decode_json($body)->{jobs} }, 2, '... filtered by name');
($st, $head, $body) = http('GET', '/api/v1/queues/build/list?state=waiting&search=%22n%22%3A%2077', $viewer_token);
is(scalar @{ decode_json($body)->{jobs} }, 1, '... by text in the data');
($st, $head, $body) = http('GET', '/api/v1/queues/build/list?state=bogus', $viewer_token);
is($st, 400, '... an unknown state: 400');
like($body, qr/invalid job state \\"bogus\\"/, '... naming it');
($st) = http('GET', '/api/v1/queues/build/list?state=waiting&after=x', $viewer_token);
is($st, 400, '... a bad cursor: 400');
($st) = http('GET', '/api/v1/queues/deploy/list', $viewer_token);
is($st, 403, '... a queue the role may not see: 403');
($st) = http('GET', '/api/v1/queues/nope/list', $admin_token);
is($st, 404, '... an unknown queue: 404');

my $dead = sql(q{SELECT id FROM taskq.dead_jobs WHERE queue = 'build' ORDER BY id LIMIT 1});
($st, $head, $body) = http('GET', "/api/v1/jobs/$dead/errors", $viewer_token);
is($st, 200, 'GET /api/v1/jobs/{id}/errors');
my $errs = decode_json($body);
is_deeply([ map { "$_->{attempt} $_->{error}" } @$errs ], ['1 boom: exit 1'], '... the failed attempts, with their errors');
like($errs->[0]{at}, qr/^\d{4}-/, '... and when');
($st) = http('GET', '/api/v1/jobs/00000000-0000-0000-0000-000000000000/errors', $viewer_token);
is($st, 404, '... an unknown job: 404');

my $later = sql(q{SELECT id FROM taskq.jobs WHERE queue = 'later' ORDER BY id LIMIT 1});
($st) = http('POST', "/api/v1/jobs/$later/retry", $viewer_token);
is($st, 404, 'POST /api/v1/jobs/{id}/retry: a role that does not administer the queue: 404');
($st, $head, $body) = http('POST', "/api/v1/jobs/$later/retry", $admin_token);
is($st, 200, '... an administrator: 200');
is_deeply(decode_json($body), { id => $later, state => 'waiting' }, '... the job is waiting');
is(sql(qq{SELECT state || ' ' || (run_at <= now()) FROM taskq.jobs WHERE id = '$later'}), 'waiting true', '... due now');
($st) = http('POST', "/api/v1/jobs/$later/retry", $admin_token);
is($st, 404, '... a job that is not delayed: 404');

($st, $head, $body) = http('GET', '/api/v1/throughput?minutes=5', $viewer_token);
is($st, 200, 'GET /api/v1/throughput');
my $tp = decode_json($body);
is_deeply([ sort keys %{ $tp->{queues} } ], ['build'], '... the queues the role may see');
is(scalar @{ $tp->{queues}{build}{completed} }, 5, '... one count per minute');
is(eval { my $t = 0; $t += $_ for @{ $tp->{queues}{build}{completed} }; $t }, 60, '... the 60 completed');
is(eval { my $t = 0; $t += $_ for @{ $tp->{queues}{build}{dlq} }; $t }, 5, '... the 5 dead');
($st) = http('GET', '/api/v1/throughput?minutes=0', $viewer_token);
is($st, 400, '... minutes out of range: 400');

# ---------------------------------------------------------------------------
# the browser
# ---------------------------------------------------------------------------

my $shots = $PostgreSQL::Test::Utils::log_path . '/ui-screenshots';
make_path($shots);
my ($out, $err) = ('', '');
my $ran = IPC::Run::run(
	[ 'node', "$ui_dir/dashboard.test.js", '--url', $base, '--admin-token', $admin_token,
	  '--viewer-token', $viewer_token, '--shots', $shots, '--chromium', $chromium ],
	'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(300));
my @lines = split /\n/, $out;
my $browser_tests = 0;
for my $i (0 .. $#lines)
{
	next unless $lines[$i] =~ /^(not )?ok \d+ - (.*)$/;
	my ($failed, $what) = ($1, $2);
	$browser_tests++;
	my @diag;
	for (my $j = $i + 1; $j <= $#lines && $lines[$j] =~ /^# (.*)$/; $j++)
	{
		push @diag, $1;
	}
	ok(!$failed, "browser: $what") or diag(join("\n", @diag));
}
ok($browser_tests >= 40, "the browser test ran ($browser_tests checks)") or diag("stdout:\n$out\nstderr:\n$err");
note "screenshots in $shots";

is(stop_serve($serve), 0, 'the server stops');
done_testing();
