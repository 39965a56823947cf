-- taskq on a queue with a rate limit far above what scenario 3 reaches
-- (1,000,000 leases a second): what counting the window costs each pull
CREATE EXTENSION taskq;
SELECT taskq.create_queue('bench', '{"rate_limit": {"limit": 1000000, "period_ms": 1000}}');
