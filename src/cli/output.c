/*-------------------------------------------------------------------------
 *
 * output.c
 *		Printing query results: aligned tables for people, JSON for scripts.
 *
 * Tables: a header, a line of dashes, one line per row, columns separated
 * by two spaces, numbers right-aligned, NULL as an empty cell.  A cell is
 * shown on one line (newlines and tabs become spaces) and cut to
 * MAX_CELL_WIDTH characters with "...", so a large payload cannot wreck
 * the layout; --json gives the whole values.
 *
 * JSON: the server builds it (to_jsonb of each row, jsonb_agg of the
 * rows), so every value keeps its type (numbers, booleans, nested JSON,
 * arrays, ISO 8601 timestamps) and strings are escaped correctly.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "pqexpbuffer.h"
#include "cli.h"

#define MAX_CELL_WIDTH 60

/* type OIDs of pg_type (stable across versions) */
#define INT2OID		21
#define INT4OID		23
#define INT8OID		20
#define FLOAT4OID	700
#define FLOAT8OID	701
#define NUMERICOID	1700

/*
 * utf8_width: number of characters (code points) in the first len bytes
 * of s, a good enough display width for aligning columns.
 */
int
utf8_width(const char *s, int len)
{
	int			w = 0;
	int			i;

	for (i = 0; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

/* cell text for display: one line, at most MAX_CELL_WIDTH characters */
static char *
cell_text(const PGresult *res, int row, int col)
{
	const char *v;
	char	   *out;
	int			i;
	int			chars = 0;
	int			o = 0;

	if (PQgetisnull(res, row, col))
		return pg_strdup("");
	v = PQgetvalue(res, row, col);
	out = pg_malloc(strlen(v) + 4);
	for (i = 0; v[i]; i++)
	{
		unsigned char ch = (unsigned char) v[i];

		if ((ch & 0xC0) != 0x80)
		{
			if (chars == MAX_CELL_WIDTH - 3)
			{
				/* does the rest fit in 3 characters? */
				if (utf8_width(v + i, strlen(v + i)) > 3)
				{
					memcpy(out + o, "...", 3);
					o += 3;
					break;
				}
			}
			chars++;
		}
		out[o++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : (char) ch;
	}
	out[o] = '\0';
	return out;
}

static bool
is_numeric_type(Oid type)
{
	return type == INT2OID || type == INT4OID || type == INT8OID ||
		type == FLOAT4OID || type == FLOAT8OID || type == NUMERICOID;
}

/*
 * print_table: the rows of res as an aligned table on stdout.
 */
void
print_table(const PGresult *res)
{
	int			nrows = PQntuples(res);
	int			ncols = PQnfields(res);
	int		   *width = pg_malloc0(sizeof(int) * (ncols + 1));
	char	  **cells = pg_malloc0(sizeof(char *) * ((size_t) nrows * ncols + 1));
	int			r,
				c;

	for (c = 0; c < ncols; c++)
	{
		const char *h = PQfname(res, c);

		width[c] = utf8_width(h, strlen(h));
	}
	for (r = 0; r < nrows; r++)
		for (c = 0; c < ncols; c++)
		{
			char	   *t = cell_text(res, r, c);
			int			w = utf8_width(t, strlen(t));

			cells[r * ncols + c] = t;
			if (w > width[c])
				width[c] = w;
		}

	for (c = 0; c < ncols; c++)
	{
		const char *h = PQfname(res, c);
		int			pad = width[c] - utf8_width(h, strlen(h));

		if (c == ncols - 1)
			pad = 0;
		printf("%s%s%*s", c ? "  " : "", h, pad, "");
	}
	putchar('\n');
	for (c = 0; c < ncols; c++)
	{
		int			i;

		printf("%s", c ? "  " : "");
		for (i = 0; i < width[c]; i++)
			putchar('-');
	}
	putchar('\n');
	for (r = 0; r < nrows; r++)
	{
		for (c = 0; c < ncols; c++)
		{
			const char *t = cells[r * ncols + c];
			int			pad = width[c] - utf8_width(t, strlen(t));

			if (c)
				printf("  ");
			if (is_numeric_type(PQftype(res, c)))
				printf("%*s%s", pad, "", t);
			else if (c == ncols - 1)
				printf("%s", t);
			else
				printf("%s%*s", t, pad, "");
		}
		putchar('\n');
	}
	if (nrows == 0)
		printf("(no rows)\n");

	for (r = 0; r < nrows * ncols; r++)
		free(cells[r]);
	free(cells);
	free(width);
}

/*
 * print_record: the first row of res vertically, one "field  value" line
 * per column (for a single object such as a job).
 */
void
print_record(const PGresult *res)
{
	int			ncols = PQnfields(res);
	int			wmax = 0;
	int			c;

	for (c = 0; c < ncols; c++)
	{
		int			w = utf8_width(PQfname(res, c), strlen(PQfname(res, c)));

		if (w > wmax)
			wmax = w;
	}
	for (c = 0; c < ncols && PQntuples(res) > 0; c++)
	{
		const char *h = PQfname(res, c);
		const char *v = PQgetisnull(res, 0, c) ? "" : PQgetvalue(res, 0, c);

		printf("%s%*s  %s\n", h, wmax - utf8_width(h, strlen(h)), "", v);
	}
}

/*
 * print_json_string: s as a JSON string literal (append_json_string).
 */
void
print_json_string(FILE *out, const char *s)
{
	PQExpBufferData buf;

	initPQExpBuffer(&buf);
	append_json_string(&buf, s);
	fputs(buf.data, out);
	termPQExpBuffer(&buf);
}

/*
 * print_rows: run a query and print its rows, as a table or (--json) as a
 * JSON array of objects.  Errors exit with status 1.
 */
void
print_rows(PGconn *conn, const char *sql, int nparams,
		   const char *const *params)
{
	PGresult   *res;

	if (common.json)
	{
		PQExpBufferData buf;

		initPQExpBuffer(&buf);
		appendPQExpBuffer(&buf,
						  "SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]')::text "
						  "FROM (%s) t", sql);
		res = run_query(conn, buf.data, nparams, params);
		printf("%s\n", PQgetvalue(res, 0, 0));
		termPQExpBuffer(&buf);
	}
	else
	{
		res = run_query(conn, sql, nparams, params);
		print_table(res);
	}
	PQclear(res);
}
