/* tasks_exec.c - the `exec` and `health.check` task types (docs/tasks.md). Placeholder-free
 * start: exec is registered only when task_exec_allow names commands. */
#include "tasks_int.h"

void *bl__tasks_exec_start(bl_node *n)
{
    (void)n;
    return NULL;
}

void bl__tasks_exec_stop(void *x)
{
    (void)x;
}
