/* tasks_builtin.c - the built-in task types, registered on every member that is not a
 * coordinator or a gateway (docs/tasks.md), through the public handler API like any user's:
 *   echo    the payload back as the result
 *   sleep   payload #{ms => N} (or N): succeeds after N ms with #{slept_ms, node}; for tests and
 *           demos also fail_attempts => K (attempts 1..K fail with slept_then_failed)
 *   health.check / exec: tasks_exec.c */
#include "tasks_int.h"

#include <stdlib.h>
#include <string.h>

static int run_echo(bl_node *n, const bl_task_info *t, void *ud)
{
    (void)ud;
    int i = t->payload_index;
    if (bl__skip_term(t->payload, &i) < 0) return BL_EINVAL;
    return bl_task_done(n, t->ref, 1, t->payload + t->payload_index, i - t->payload_index);
}

typedef struct sleeper {
    struct sleeper *next;
    struct builtins *st;
    uint64_t ref;
    int timer, fail;
    unsigned ms;
} sleeper;

struct builtins {
    bl_node *n;
    sleeper *sleepers;
    void *exec;
};

static void sleeper_unlink(bl__builtins *st, sleeper *z)
{
    sleeper **pp;
    for (pp = &st->sleepers; *pp && *pp != z; pp = &(*pp)->next)
        ;
    if (*pp) *pp = z->next;
}

static void sleep_fire(bl_node *n, void *ud)
{
    sleeper *z = ud;
    sleeper_unlink(z->st, z);
    ei_x_buff x;
    ei_x_new(&x);
    if (z->fail) {
        ei_x_encode_atom(&x, "slept_then_failed");
    } else {
        ei_x_encode_map_header(&x, 2);
        ei_x_encode_atom(&x, "slept_ms");
        ei_x_encode_ulong(&x, z->ms);
        ei_x_encode_atom(&x, "node");
        ei_x_encode_atom(&x, n->name);
    }
    uint64_t ref = z->ref;
    int ok = !z->fail;
    free(z);
    (void)bl_task_done(n, ref, ok, x.buff, x.index);
    ei_x_free(&x);
}

static int run_sleep(bl_node *n, const bl_task_info *t, void *ud)
{
    bl__builtins *st = ud;
    const char *b = t->payload;
    int i = t->payload_index, ar;
    unsigned long ms = 0, fail_att = 0;
    if (ei_decode_ulong(b, &i, &ms) < 0) {
        i = t->payload_index;
        if (ei_decode_map_header(b, &i, &ar) < 0) return BL_EINVAL;
        for (int k = 0; k < ar; k++) {
            char key[MAXATOMLEN_UTF8] = "";
            int type, size;
            if (ei_get_type(b, &i, &type, &size) < 0) return BL_EINVAL;
            if (type == ERL_BINARY_EXT) {
                if (bl__get_bin(b, &i, key, sizeof(key)) < 0) return BL_EINVAL;
            } else if (ei_decode_atom(b, &i, key) < 0) {
                return BL_EINVAL;
            }
            if (!strcmp(key, "ms")) {
                if (ei_decode_ulong(b, &i, &ms) < 0) return BL_EINVAL;
            } else if (!strcmp(key, "fail_attempts")) {
                if (ei_decode_ulong(b, &i, &fail_att) < 0) return BL_EINVAL;
            } else if (bl__skip_term(b, &i) < 0) {
                return BL_EINVAL;
            }
        }
    }
    if (ms > 86400000ul) return BL_EINVAL;
    sleeper *z = calloc(1, sizeof(*z));
    if (!z) return BL_ENOMEM;
    z->st = st;
    z->ref = t->ref;
    z->ms = (unsigned)ms;
    z->fail = t->attempt <= fail_att;
    int id = bl_timer(n, z->ms ? z->ms : 1, 0, sleep_fire, z);
    if (id <= 0) {
        free(z);
        return BL_ENOMEM;
    }
    z->timer = id;
    z->next = st->sleepers;
    st->sleepers = z;
    return BL_OK;
}

static void cancel_sleep(bl_node *n, uint64_t ref, void *ud)
{
    bl__builtins *st = ud;
    for (sleeper *z = st->sleepers; z; z = z->next) {
        if (z->ref != ref) continue;
        if (z->timer > 0) bl_timer_cancel(n, z->timer);
        sleeper_unlink(st, z);
        free(z);
        return;
    }
}

bl__builtins *bl__tasks_builtins_start(bl_node *n)
{
    bl__builtins *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->n = n;
    if (!strcmp(n->cfg.role, "coordinator") || !strcmp(n->cfg.role, "gateway")) return b;
    int rc = bl_task_handler(n, "echo", run_echo, NULL, NULL);
    if (rc == BL_OK) rc = bl_task_handler(n, "sleep", run_sleep, cancel_sleep, b);
    if (rc == BL_OK) b->exec = bl__tasks_exec_start(n);
    return b;
}

void bl__tasks_builtins_stop(bl__builtins *b)
{
    if (!b) return;
    for (sleeper *z = b->sleepers, *nx; z; z = nx) {
        nx = z->next;
        if (z->timer > 0) bl_timer_cancel(b->n, z->timer);
        free(z);
    }
    bl__tasks_exec_stop(b->exec);
    free(b);
}
