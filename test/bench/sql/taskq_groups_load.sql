-- backlog: 1000 jobs per push_batch, each in one of :groups groups (push
-- option "group"), spread at random
SELECT count(*) FROM taskq.push_batch('bench',
    (SELECT jsonb_agg(jsonb_build_object('name', 'send_email', 'data', :payload::jsonb,
                      'options', jsonb_build_object('group', 'g' || floor(random() * :groups)::int)))
     FROM generate_series(1, 1000)));
