-- backlog: :per_tick events, committed, then a tick, so that each batch
-- holds :per_tick events (the queue's ticker_max_count is :per_tick)
SELECT count(pgq.insert_event('bench', 'send_email', :payload)) FROM generate_series(1, :per_tick);
SELECT pgq.ticker('bench');
