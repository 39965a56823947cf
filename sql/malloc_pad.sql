-- taskq.malloc_top_pad: a backend that runs taskq's calls asks malloc to
-- keep that much free memory at the top of its heap (glibc's M_TOP_PAD),
-- so that a worker's loop does not give memory back to the kernel and
-- take it again at every statement.  taskq._malloc_padding() says what
-- this backend asked for (this suite runs on glibc; elsewhere the setting
-- does nothing and the function returns NULL).
CREATE EXTENSION taskq;
SELECT taskq.create_queue('pad');
SHOW taskq.malloc_top_pad;
SELECT setting, unit, context FROM pg_settings WHERE name = 'taskq.malloc_top_pad';

-- a new session has made no taskq call yet: malloc keeps its own settings
\c
SELECT taskq._malloc_padding() AS before_any_call;
-- its first taskq call applies the setting
SELECT taskq.push('pad', 'first') IS NOT NULL AS pushed;
SELECT taskq._malloc_padding() AS after_push;
-- a new value applies at once, and 0 gives glibc's own padding back
SET taskq.malloc_top_pad = '4MB';
SELECT taskq._malloc_padding() AS after_set;
SET taskq.malloc_top_pad = 0;
SELECT taskq._malloc_padding() AS glibc_default;
RESET taskq.malloc_top_pad;
SELECT taskq._malloc_padding() AS after_reset;

-- 0 at the first call: nothing is asked of malloc, and a later value is
-- (the pull is a taskq call as any other)
\c
SET taskq.malloc_top_pad = 0;
SELECT count(*) AS pulled FROM taskq.pull('pad', 10);
SELECT taskq._malloc_padding() AS with_zero;
SET taskq.malloc_top_pad = '2MB';
SELECT taskq._malloc_padding() AS later_value;

-- only a superuser sets it (it decides how much memory backends keep)
CREATE ROLE pad_user;
SET ROLE pad_user;
SET taskq.malloc_top_pad = '8MB';
RESET ROLE;
DROP ROLE pad_user;

DROP EXTENSION taskq;
