INSERT INTO naive_jobs (name, data) VALUES ('send_email', :payload);
