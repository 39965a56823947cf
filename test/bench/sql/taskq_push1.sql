SELECT taskq.push('bench', 'send_email', :payload);
