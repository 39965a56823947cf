SELECT count(*) FROM taskq.push_batch('bench', :jobs);
