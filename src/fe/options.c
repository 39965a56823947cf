/*-------------------------------------------------------------------------
 *
 * options.c
 *		Integer option values, parsed by PostgreSQL's own option_parse_int
 *		(fe_utils/option_utils.h, from libpgfeutils).
 *
 * The programs word the error themselves, naming what the value is for
 * and its range ("invalid pool size "0" (an integer from 1 to 1000)"), and
 * exit with the usage status.  option_parse_int would also say it in its
 * own words through PostgreSQL's front-end logging, which is kept quiet
 * for the call.  It takes leading and trailing blanks; taskq never has:
 * a value ending in a blank stays invalid.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <ctype.h>

#include "common/logging.h"
#include "fe_utils/option_utils.h"
#include "fe.h"

/*
 * parse_int_option: arg as an integer from min to max, or a usage error
 * ("invalid WHAT ...") for the subcommand cmd (NULL: the program).
 */
int
parse_int_option(const char *cmd, const char *what, const char *arg,
				 int min, int max)
{
	size_t		len = strlen(arg);
	enum pg_log_level saved = __pg_log_level;
	int			value = 0;
	bool		ok;

	pg_logging_set_level(PG_LOG_OFF);
	ok = len > 0 && !isspace((unsigned char) arg[len - 1]) &&
		option_parse_int(arg, what, min, max, &value);
	pg_logging_set_level(saved);
	if (!ok)
		usage_error(cmd, "invalid %s \"%s\" (an integer from %d to %d)",
					what, arg, min, max);
	return value;
}
