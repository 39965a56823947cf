SELECT pgq.insert_event('bench', 'send_email', :payload);
