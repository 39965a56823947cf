/*-------------------------------------------------------------------------
 *
 * json.c
 *		JSON strings and UTF-8 validation for taskq's front-end programs.
 *
 * Most JSON the programs print is built by the server (to_jsonb,
 * jsonb_build_object).  What they build themselves, names and error
 * messages, goes through append_json_string, the one JSON string escaper:
 * the escapes of PostgreSQL's escape_json, and UTF-8 checked with
 * PostgreSQL's pg_utf8_islegal, so that the output is valid JSON whatever
 * bytes it is given.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "mb/pg_wchar.h"
#include "fe.h"

/*
 * utf8_char_length: the length in bytes of the UTF-8 character at s (1 to
 * 4), of which avail bytes may be read; 0 when the bytes there are not a
 * legal UTF-8 character (an invalid or cut sequence, an overlong form, a
 * surrogate or beyond U+10FFFF).  A NUL byte is a character of length 1.
 */
int
utf8_char_length(const unsigned char *s, size_t avail)
{
	int			len;

	if (avail == 0)
		return 0;
	len = pg_utf_mblen(s);
	if ((size_t) len > avail || !pg_utf8_islegal(s, len))
		return 0;
	return len;
}

/*
 * append_json_string: s as a JSON string literal: quotes, backslashes and
 * control characters escaped (\b \f \n \r \t, else \u00XX), and each byte
 * that is not part of a legal UTF-8 character replaced by U+FFFD.
 */
void
append_json_string(PQExpBuffer buf, const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	appendPQExpBufferChar(buf, '"');
	while (*p)
	{
		int			len;

		switch (*p)
		{
			case '"':
				appendPQExpBufferStr(buf, "\\\"");
				break;
			case '\\':
				appendPQExpBufferStr(buf, "\\\\");
				break;
			case '\b':
				appendPQExpBufferStr(buf, "\\b");
				break;
			case '\f':
				appendPQExpBufferStr(buf, "\\f");
				break;
			case '\n':
				appendPQExpBufferStr(buf, "\\n");
				break;
			case '\r':
				appendPQExpBufferStr(buf, "\\r");
				break;
			case '\t':
				appendPQExpBufferStr(buf, "\\t");
				break;
			default:
				if (*p < 0x20)
				{
					appendPQExpBuffer(buf, "\\u%04x", (unsigned int) *p);
					break;
				}
				/* never reads past the NUL: a cut character is not legal */
				len = utf8_char_length(p, strnlen((const char *) p, 4));
				if (len == 0)
					appendPQExpBufferStr(buf, "\\ufffd");
				else
				{
					appendBinaryPQExpBuffer(buf, (const char *) p, len);
					p += len - 1;
				}
				break;
		}
		p++;
	}
	appendPQExpBufferChar(buf, '"');
}
