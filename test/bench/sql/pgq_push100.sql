SELECT count(pgq.insert_event('bench', j.name, j.data::text)) FROM jsonb_to_recordset(:jobs) AS j(name text, data jsonb);
