/*-------------------------------------------------------------------------
 *
 * ui.c
 *		taskq-serve's dashboard under /ui: its files, which the program
 *		carries (ui_assets.c, made by embed.pl from src/serve/ui).
 *
 * The files need no token: the page asks for one and sends it with every
 * call of the JSON API, which checks it as for any client.  They are sent
 * with a Content-Security-Policy that allows only the program's own
 * scripts, styles and connections, and may not be framed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "serve.h"

#define UI_CSP "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';" \
	" connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none';" \
	" frame-ancestors 'none'"

/*
 * Answer a request for /ui or a file under it; false when the path is not
 * the dashboard's.
 */
bool
serve_ui(Request *req)
{
	const char *path = req->path;

	if (strcmp(path, "/ui") != 0 && strncmp(path, "/ui/", 4) != 0)
		return false;
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
	{
		char	   *body = error_body("0A000", "the dashboard's files are read with GET",
									  NULL, NULL);

		respond(req, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", body, strlen(body),
				MHD_HTTP_HEADER_ALLOW, "GET, HEAD", NULL);
		free(body);
		return true;
	}
	if (strcmp(path, "/ui") == 0 || strcmp(path, "/ui/") == 0)
		path = "/ui/index.html";
	for (const UiAsset *a = ui_assets; a->path; a++)
	{
		if (strcmp(a->path, path) != 0)
			continue;
		respond(req, MHD_HTTP_OK, a->type, (const char *) a->data, a->len,
				MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache",
				"Content-Security-Policy", UI_CSP,
				"X-Content-Type-Options", "nosniff",
				"Referrer-Policy", "no-referrer", NULL);
		return true;
	}
	respond_error(req, MHD_HTTP_NOT_FOUND, "42883", NULL,
				  "The dashboard is at /ui.", "no dashboard file %s", path);
	return true;
}
