SELECT pgmq.send('bench', :payload::jsonb);
