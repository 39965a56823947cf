INSERT INTO naive_jobs (name, data) SELECT name, data FROM jsonb_to_recordset(:jobs) AS j(name text, data jsonb);
