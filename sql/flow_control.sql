-- flow control: the push option "group", queue settings concurrency and
-- group_concurrency, enforced by pull
CREATE EXTENSION taskq;

\set VERBOSITY default

--
-- the group key: stored, shown by get, peek, pull and flow
--
SELECT taskq.push('fc', 'a', '{}', '{"group": "tenant-1"}') AS a \gset
SELECT taskq.push('fc', 'b', '{}', '{"group": null}') AS b \gset
SELECT taskq.get(:'a') ->> 'group' AS get_group, taskq.get(:'b') ? 'group' AS has_key,
       taskq.get(:'b') -> 'group' AS null_group;
SELECT name, group_key FROM taskq.peek('fc');
SELECT name, group_key FROM taskq.pull('fc', 2) ORDER BY name;
SELECT taskq.push('fc', 'c', '{}', '{"group": "t", "flow_id": "f1"}') IS NOT NULL AS pushed;
SELECT jsonb_path_query(taskq.flow('f1'), '$.jobs[*].group') AS flow_group;
-- push_batch, per job
SELECT count(*) FROM taskq.push_batch('fc', '[{"name": "d", "options": {"group": "g2"}},
                                             {"name": "e"}]');
SELECT name, group_key FROM taskq.jobs WHERE queue = 'fc' AND name IN ('d', 'e') ORDER BY name;
-- it stays with the job in the history
SELECT taskq.ack(:'a');
SELECT group_key FROM taskq.finished_jobs WHERE id = :'a';

-- bad values
SELECT taskq.push('fc', 'x', '{}', '{"group": ""}');
SELECT taskq.push('fc', 'x', '{}', '{"group": 7}');
SELECT taskq.push('fc', 'x', '{}', jsonb_build_object('group', repeat('k', 257)));
SELECT taskq.push('fc', 'x', '{}', jsonb_build_object('group', repeat('k', 256))) AS x \gset
SELECT octet_length(group_key) FROM taskq.jobs WHERE id = :'x';

--
-- queue settings: validation
--
SELECT taskq.create_queue('lim', '{"concurrency": 0}');
SELECT taskq.create_queue('lim', '{"concurrency": "2"}');
SELECT taskq.create_queue('lim', '{"group_concurrency": -1}');
SELECT taskq.create_queue('lim', '{"group_concurrency": 1.5}');
SELECT taskq.create_queue('lim', '{"concurency": 2}');
SELECT taskq.create_queue('lim', '{"concurrency": 2, "group_concurrency": 1}');
SELECT concurrency, group_concurrency FROM taskq.queues WHERE name = 'lim';
SELECT taskq.alter_queue('lim', '{"concurrency": null}');
SELECT concurrency, group_concurrency FROM taskq.queues WHERE name = 'lim';
SELECT taskq.alter_queue('lim', '{"concurrency": 3}');
SELECT concurrency, group_concurrency FROM taskq.queues WHERE name = 'lim';
SELECT taskq.alter_queue('nosuch', '{"concurrency": 3}');

--
-- concurrency: at most 3 jobs of the queue active; a lease that ends frees
-- its slot
--
SELECT taskq.alter_queue('lim', '{"group_concurrency": null}');
SELECT count(taskq.push('lim', 'j' || i)) FROM generate_series(1, 6) i;
SELECT string_agg(name, ',' ORDER BY name) AS first FROM taskq.pull('lim', 5);
SELECT count(*) AS more FROM taskq.pull('lim', 5);
-- ack one, fail one (retry, delayed), expire one: three slots free
SELECT id AS j1, lease AS l1 FROM taskq.jobs WHERE queue = 'lim' AND name = 'j1' \gset
SELECT id AS j2, lease AS l2 FROM taskq.jobs WHERE queue = 'lim' AND name = 'j2' \gset
SELECT taskq.ack(:'j1', NULL, :'l1');
SELECT string_agg(name, ',') AS after_ack FROM taskq.pull('lim', 5);
SELECT taskq.fail(:'j2', 'boom', :'l2');
SELECT string_agg(name, ',') AS after_fail FROM taskq.pull('lim', 5);
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second'
 WHERE queue = 'lim' AND name = 'j3';
-- the expired lease is reclaimed and its job leased again in the same pull
SELECT string_agg(name || '#' || attempt, ',') AS after_expiry FROM taskq.pull('lim', 5);
SELECT count(*) AS active FROM taskq.jobs WHERE queue = 'lim' AND state = 'active';
-- lowering the limit below the active count leases nothing until enough end
SELECT taskq.alter_queue('lim', '{"concurrency": 1}');
SELECT taskq.ack(id, NULL, lease) FROM taskq.jobs
 WHERE queue = 'lim' AND state = 'active' AND name IN ('j3', 'j4');
SELECT count(*) AS still_full FROM taskq.pull('lim', 5);
SELECT taskq.ack(id, NULL, lease) FROM taskq.jobs WHERE queue = 'lim' AND state = 'active';
SELECT string_agg(name, ',') AS one_at_a_time FROM taskq.pull('lim', 5);
-- no limit again
SELECT taskq.alter_queue('lim', '{"concurrency": null}');
SELECT count(taskq.push('lim', 'k' || i)) FROM generate_series(1, 4) i;
SELECT count(*) AS unlimited FROM taskq.pull('lim', 5);

--
-- group_concurrency: at most N active per group; jobs without a group
-- only count against the queue's limit
--
SELECT taskq.create_queue('grp', '{"group_concurrency": 2}');
SELECT count(taskq.push('grp', g || '-' || i, '{}', jsonb_build_object('group', g)))
  FROM (VALUES ('a'), ('b')) v(g), generate_series(1, 4) i;
SELECT count(taskq.push('grp', 'free-' || i)) FROM generate_series(1, 2) i;
SELECT string_agg(name, ',' ORDER BY name) AS first FROM taskq.pull('grp', 10);
SELECT string_agg(name, ',' ORDER BY name) AS nothing FROM taskq.pull('grp', 10);
-- a higher priority job of a full group waits; one of a group with room goes
SELECT taskq.push('grp', 'a-urgent', '{}', '{"group": "a", "priority": 5}') IS NOT NULL;
SELECT taskq.push('grp', 'c-1', '{}', '{"group": "c"}') IS NOT NULL;
SELECT string_agg(name, ',' ORDER BY name) AS c_only FROM taskq.pull('grp', 10);
-- stats: limits, active and throttled jobs, groups with the most waiting
SELECT jsonb_pretty(taskq.stats('grp') -> 'limits');
SELECT taskq.stats('fc') ? 'limits' AS unlimited_has_limits;
-- queues(): active, throttled and the limits, per queue
SELECT name, waiting, active, throttled, limits FROM taskq.queues()
 WHERE name IN ('grp', 'fc') ORDER BY name;
-- acking a job of group a lets its highest-priority waiting job go
SELECT taskq.ack(id, NULL, lease) FROM taskq.jobs WHERE queue = 'grp' AND name = 'a-1';
SELECT string_agg(name, ',' ORDER BY name) AS a_next FROM taskq.pull('grp', 10);
SELECT group_key, count(*) FROM taskq.jobs
 WHERE queue = 'grp' AND state = 'active' GROUP BY 1 ORDER BY 1;
-- both limits: the queue's limit caps what the groups allow
SELECT taskq.alter_queue('grp', '{"concurrency": 8, "group_concurrency": 3}');
SELECT string_agg(name, ',' ORDER BY name) AS up_to_eight FROM taskq.pull('grp', 10);
SELECT count(*) AS active FROM taskq.jobs WHERE queue = 'grp' AND state = 'active';
-- at the queue's limit every waiting job is throttled
SELECT taskq.stats('grp') #> '{limits,throttled}' AS throttled,
       taskq.stats('grp') #> '{counts,waiting}' AS waiting;
-- serial execution per key
SELECT taskq.alter_queue('grp', '{"concurrency": null, "group_concurrency": 1}');
SELECT taskq.ack(id, NULL, lease) FROM taskq.jobs WHERE queue = 'grp' AND state = 'active';
SELECT string_agg(name, ',' ORDER BY name) AS one_per_group FROM taskq.pull('grp', 10);
-- a pull looks past the jobs of full groups, reading more of the queue
-- each time (16, 64, 256, then 1000 jobs), but not past 1000: with 'deep'
-- active, its 300 waiting jobs ahead of 'late-1' do not hide it, and 'far-1'
-- behind 1000 more waits
SELECT taskq.create_queue('deep', '{"group_concurrency": 1}');
SELECT count(*) FROM taskq.push_batch('deep', (SELECT jsonb_agg(jsonb_build_object(
  'name', 'deep-' || i, 'options', '{"group": "deep"}'::jsonb)) FROM generate_series(1, 301) i));
SELECT taskq.push('deep', 'late-1', '{}', '{"group": "late"}') IS NOT NULL;
SELECT count(*) FROM taskq.push_batch('deep', (SELECT jsonb_agg(jsonb_build_object(
  'name', 'deep-' || i, 'options', '{"group": "deep"}'::jsonb)) FROM generate_series(302, 1001) i));
SELECT taskq.push('deep', 'far-1', '{}', '{"group": "far"}') IS NOT NULL;
SELECT string_agg(name, ',' ORDER BY name) AS deep_first FROM taskq.pull('deep', 1);
SELECT string_agg(name, ',' ORDER BY name) AS late_only FROM taskq.pull('deep', 5);
SELECT string_agg(name, ',' ORDER BY name) AS nothing FROM taskq.pull('deep', 5);
SELECT taskq.drop_queue('deep');

--
-- rate_limit: at most N leases per fixed window of period_ms (a period of
-- 24.8 days here, so that no window ends during the test)
--
SELECT taskq.create_queue('rl', '{"rate_limit": {"limit": 3}}');
SELECT taskq.create_queue('rl', '{"rate_limit": 5}');
SELECT taskq.create_queue('rl', '{"rate_limit": {"limit": 0, "period_ms": 1000}}');
SELECT taskq.create_queue('rl', '{"rate_limit": {"limit": 1, "period_ms": 1000, "burst": 2}}');
SELECT taskq.create_queue('rl', '{"group_rate_limit": {"period_ms": 1000}}');
SELECT taskq.create_queue('rl', '{"rate_limit": {"limit": 3, "period_ms": 2147483647}}');
SELECT rate_limit, rate_period_ms FROM taskq.queues WHERE name = 'rl';
SELECT count(taskq.push('rl', 'r' || i)) FROM generate_series(1, 6) i;
SELECT string_agg(name, ',' ORDER BY name) AS two FROM taskq.pull('rl', 2);
SELECT string_agg(name, ',' ORDER BY name) AS one_more FROM taskq.pull('rl', 5);
-- the limit counts leases, not active jobs: acking frees nothing
SELECT count(taskq.ack(id, NULL, lease)) FROM taskq.jobs WHERE queue = 'rl' AND state = 'active';
SELECT count(*) AS fourth_gets_nothing FROM taskq.pull('rl', 5);
SELECT taskq.stats('rl') #> '{limits,rate_limit}' AS rate;
-- its window used up, every waiting job is throttled
SELECT taskq.stats('rl') #> '{limits,throttled}' AS throttled,
       taskq.stats('rl') #> '{counts,waiting}' AS waiting;
SELECT name, waiting, throttled, limits FROM taskq.queues() WHERE name = 'rl';
-- a pull that rolls back does not give its leases back (the window can
-- only lease fewer than its limit, never more)
SELECT taskq.alter_queue('rl', '{"rate_limit": {"limit": 2, "period_ms": 2147483647}}');
BEGIN;
SELECT count(*) AS leased FROM taskq.pull('rl', 1);
ROLLBACK;
SELECT count(*) AS one_left FROM taskq.pull('rl', 5);
SELECT count(*) AS none_left FROM taskq.pull('rl', 5);
-- no limit again
SELECT taskq.alter_queue('rl', '{"rate_limit": null}');
SELECT count(*) AS unlimited FROM taskq.pull('rl', 5);

--
-- group_rate_limit: the same per group key
--
SELECT taskq.create_queue('grl', '{"group_rate_limit": {"limit": 2, "period_ms": 2147483647}}');
SELECT count(taskq.push('grl', g || '-' || i, '{}', jsonb_build_object('group', g)))
  FROM (VALUES ('a'), ('b')) v(g), generate_series(1, 3) i;
SELECT taskq.push('grl', 'free', '{}') IS NOT NULL;
SELECT string_agg(name, ',' ORDER BY name) AS two_each FROM taskq.pull('grl', 10);
SELECT count(taskq.ack(id, NULL, lease)) FROM taskq.jobs WHERE queue = 'grl' AND state = 'active';
SELECT count(*) AS window_used FROM taskq.pull('grl', 10);
SELECT taskq.push('grl', 'c-1', '{}', '{"group": "c"}') IS NOT NULL;
SELECT string_agg(name, ',') AS new_group FROM taskq.pull('grl', 10);
SELECT taskq.stats('grl') #> '{limits,group_rate_limit}' AS group_rate;

--
-- priority_aging_ms: a waiting job's priority rises by one per interval it
-- has been runnable (driven with run_at in the past, not by sleeping)
--
SELECT taskq.create_queue('age', '{"priority_aging_ms": -1}');
SELECT taskq.create_queue('age', '{"priority_aging_ms": 60000}');
SELECT taskq.push('age', 'old-low', '{}', '{"priority": 0}') IS NOT NULL;
SELECT taskq.push('age', 'new-high', '{}', '{"priority": 5}') IS NOT NULL;
SELECT taskq.push('age', 'new-mid', '{}', '{"priority": 2}') IS NOT NULL;
-- runnable for 10 minutes: effective priority 10, ahead of 5
UPDATE taskq.jobs SET run_at = now() - interval '10 minutes' WHERE name = 'old-low';
SELECT name FROM taskq.pull('age', 1);
SELECT name FROM taskq.pull('age', 1);
-- runnable for 3 minutes: effective priority 3, between 5 and 2
SELECT taskq.push('age', 'old-low-2', '{}', '{"priority": 0}') IS NOT NULL;
SELECT taskq.push('age', 'new-high-2', '{}', '{"priority": 5}') IS NOT NULL;
UPDATE taskq.jobs SET run_at = now() - interval '3 minutes' WHERE name = 'old-low-2';
SELECT name FROM taskq.pull('age', 1);
SELECT name FROM taskq.pull('age', 1);
SELECT name FROM taskq.pull('age', 1);
-- off again: priority only
SELECT taskq.alter_queue('age', '{"priority_aging_ms": 0}');
SELECT taskq.push('age', 'low', '{}', '{"priority": 0}') IS NOT NULL;
SELECT taskq.push('age', 'high', '{}', '{"priority": 5}') IS NOT NULL;
UPDATE taskq.jobs SET run_at = now() - interval '1 day' WHERE name = 'low';
SELECT name FROM taskq.pull('age', 1);

--
-- fairness "round_robin": each pull takes the best job (priority, then
-- FIFO) of the next group after the last one this session served, in key
-- order, wrapping around; jobs without a group fill what the rotation
-- cannot
--
SELECT taskq.create_queue('rr', '{"fairness": "fair"}');
SELECT taskq.create_queue('rr', '{"fairness": 1}');
SELECT taskq.create_queue('rr', '{"fairness": "round_robin"}');
SELECT count(taskq.push('rr', name, '{}', jsonb_build_object('group', g, 'priority', p)))
  FROM (VALUES ('a-1', 'a', 0), ('a-2', 'a', 5), ('a-3', 'a', 0),
               ('b-1', 'b', 0), ('b-2', 'b', 0), ('c-1', 'c', 0)) v(name, g, p);
SELECT taskq.push('rr', 'none-1') IS NOT NULL;
SELECT name FROM taskq.pull('rr', 1);
SELECT name FROM taskq.pull('rr', 1);
SELECT name FROM taskq.pull('rr', 1);
SELECT name FROM taskq.pull('rr', 1);
SELECT name FROM taskq.pull('rr', 1);
SELECT name FROM taskq.pull('rr', 1);
SELECT name FROM taskq.pull('rr', 1);
SELECT count(*) AS nothing_left FROM taskq.pull('rr', 1);
-- a pull of several takes one job from each of the next groups first
SELECT count(taskq.push('rr', name, '{}', jsonb_build_object('group', g)))
  FROM (VALUES ('x-1', 'x'), ('x-2', 'x'), ('x-3', 'x'), ('y-1', 'y'), ('z-1', 'z')) v(name, g);
SELECT string_agg(name, ',' ORDER BY name) AS one_each_then_fill FROM taskq.pull('rr', 4);
-- the same with big groups, whose first rows in key order are all of one
-- group (the rotation reads the next rows, then skips from group to group)
SELECT count(taskq.push('rr', g || '-' || i, '{}', jsonb_build_object('group', g)))
  FROM (VALUES ('big1'), ('big2')) v(g), generate_series(1, 20) i;
SELECT taskq.push('rr', 'small-1', '{}', '{"group": "small"}') IS NOT NULL;
SELECT string_agg(name, ',' ORDER BY name) AS one_of_each_group FROM taskq.pull('rr', 3);
SELECT count(*) AS left_waiting FROM taskq.jobs WHERE queue = 'rr' AND state = 'waiting';
-- back to priority order
SELECT taskq.alter_queue('rr', '{"fairness": "priority"}');
SELECT fairness FROM taskq.queues WHERE name = 'rr';

--
-- taskq.metrics(): the limits each queue has set, and the jobs they hold back
--
SELECT line FROM regexp_split_to_table(taskq.metrics(), E'\n') AS line
 WHERE line LIKE '%taskq_queue_limit%' OR line LIKE '%taskq_queue_throttled%'
 ORDER BY line COLLATE "C";

--
-- flow control counts active jobs by the leading columns of jobs_lease_idx
-- (queue) and jobs_active_idx (queue, group_key): an index not as taskq
-- makes it is a clear error, never a wrong count
--
SELECT taskq.create_queue('shape', '{"concurrency": 1, "group_concurrency": 1}');
SELECT count(taskq.push('shape', 'j' || i, '{}', jsonb_build_object('group', 'g' || i)))
  AS pushed FROM generate_series(1, 2) i;
BEGIN;
DROP INDEX taskq.jobs_lease_idx;
CREATE INDEX jobs_lease_idx ON taskq.jobs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
SELECT count(*) FROM taskq.pull('shape', 1);
ROLLBACK;
BEGIN;
DROP INDEX taskq.jobs_active_idx;
CREATE INDEX jobs_active_idx ON taskq.jobs (group_key, queue) WHERE lease IS NOT NULL;
SELECT count(*) FROM taskq.pull('shape', 1);
ROLLBACK;
-- as made, both count: one job, then the queue is at its limit
SELECT count(*) AS pulled FROM taskq.pull('shape', 2);
SELECT count(*) AS pulled FROM taskq.pull('shape', 2);

DROP EXTENSION taskq;
