/* tasks_exec.c - the `exec` and `health.check` task types (docs/tasks.md).
 *
 * exec runs a command, only on nodes whose task_exec_allow lists it (off by default: the type is
 * not even advertised then). Payload #{argv => [Path | Args]}: Path must be one of the allowed
 * absolute paths, byte for byte (no PATH search, no shell: argv goes to posix_spawn as given).
 * The child is the runtime's (runtime/child.c, as health checks' commands are): stdin is
 * /dev/null; stdout and stderr go to one non-blocking pipe read on the loop, keeping at most
 * task_exec_output_max bytes (the rest is read and dropped, `truncated` says so); it is reaped
 * through a pidfd watched by the loop, never a blocking wait. Cancel or timeout (the
 * dispatcher's, which cancels) kills its process group and nothing more is reported. Result
 * #{exit_status, output, truncated}: success for exit 0, else the same map as the error.
 *
 * health.check runs one of this node's health checks now (payload #{name => Check}) and
 * succeeds with #{status, output} when it passes, fails with it otherwise. */
#include "tasks_int.h"
#include "beamlet/health.h"
#include "../runtime/child.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MAX_ARGV 64

/* one exec attempt: its child (runtime/child.c) until it ends or is cancelled */
typedef struct run {
    struct run *next;
    struct exec_state *x;
    uint64_t ref;
    bl__child *child;
} run;

typedef struct exec_state {
    bl_node *n;
    char allow[2048];
    run *runs;
    struct hrun *hruns;
} exec_state;

static int allowed(const exec_state *x, const char *path)
{
    char buf[sizeof(x->allow)];
    snprintf(buf, sizeof(buf), "%s", x->allow);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (!strcmp(t, path)) return 1;
    }
    return 0;
}

static void run_unlink(exec_state *x, run *k)
{
    for (run **pp = &x->runs; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            return;
        }
}

/* the child ended: the attempt's result */
static void exec_done(bl_node *n, const bl__child_result *res, void *ud)
{
    run *k = ud;
    run_unlink(k->x, k);
    uint64_t ref = k->ref;
    free(k);
    int ws = res->wstatus;
    ei_x_buff r;
    ei_x_new(&r);
    int ok = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
    ei_x_encode_map_header(&r, 3);
    if (WIFEXITED(ws)) {
        ei_x_encode_atom(&r, "exit_status");
        ei_x_encode_long(&r, WEXITSTATUS(ws));
    } else {
        ei_x_encode_atom(&r, "exit_signal");
        ei_x_encode_long(&r, WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
    }
    ei_x_encode_atom(&r, "output");
    ei_x_encode_binary(&r, res->output, (long)res->output_len);
    ei_x_encode_atom(&r, "truncated");
    ei_x_encode_atom(&r, res->truncated ? "true" : "false");
    (void)bl_task_done(n, ref, ok, r.buff, r.index);
    ei_x_free(&r);
}

static void fail_now(bl_node *n, uint64_t ref, const char *why, const char *detail)
{
    ei_x_buff r;
    ei_x_new(&r);
    ei_x_encode_tuple_header(&r, 2);
    ei_x_encode_atom(&r, why);
    ei_x_encode_binary(&r, detail, (long)strlen(detail));
    (void)bl_task_done(n, ref, 0, r.buff, r.index);
    ei_x_free(&r);
}

static int get_key(const char *b, int *i, char *key, size_t cap)
{
    int type, size;
    if (ei_get_type(b, i, &type, &size) < 0) return -1;
    if (type == ERL_BINARY_EXT) return bl__get_bin(b, i, key, cap);
    return ei_decode_atom(b, i, key);
}

static int run_exec(bl_node *n, const bl_task_info *t, void *ud)
{
    exec_state *x = ud;
    const char *b = t->payload;
    int i = t->payload_index, ar;
    char *argv[MAX_ARGV + 1] = {0};
    int argc = 0, rc = BL_EINVAL;
    if (ei_decode_map_header(b, &i, &ar) < 0) {
        fail_now(n, t->ref, "bad_payload", "#{argv => [Path | Args]}");
        return BL_OK;
    }
    for (int k = 0; k < ar; k++) {
        char key[MAXATOMLEN_UTF8];
        if (get_key(b, &i, key, sizeof(key)) < 0) goto bad;
        if (strcmp(key, "argv")) {
            if (bl__skip_term(b, &i) < 0) goto bad;
            continue;
        }
        bl__list_it it;
        int more;
        if (bl__list_begin(&it, b, &i) < 0) goto bad;
        while ((more = bl__list_next(&it)) > 0) {
            int type, size;
            if (argc >= MAX_ARGV || ei_get_type(b, &i, &type, &size) < 0 ||
                type != ERL_BINARY_EXT || size > 65536 ||
                !(argv[argc] = malloc((size_t)size + 1)) ||
                bl__get_bin(b, &i, argv[argc], (size_t)size + 1) < 0)
                goto bad;
            argc++;
        }
        if (more < 0) goto bad;
    }
    if (!argc) goto bad;
    if (argv[0][0] != '/' || !allowed(x, argv[0])) {
        fail_now(n, t->ref, "not_allowed", argv[0]);
        rc = BL_OK;
        goto out;
    }
    run *k = calloc(1, sizeof(*k));
    if (!k) {
        rc = BL_ENOMEM;
        goto out;
    }
    k->x = x;
    k->ref = t->ref;
    /* the path as allowed, no PATH search; the attempt's timeout is the dispatcher's (a cancel) */
    bl__child_spec spec = {.argv = argv, .output_max = n->cfg.task_exec_output_max};
    int e = 0;
    rc = bl__child_spawn(n, &spec, exec_done, k, &k->child, &e);
    if (rc != BL_OK) {
        free(k);
        if (rc == BL_ESYS) {
            fail_now(n, t->ref, "spawn_failed", strerror(e));
            rc = BL_OK;
        }
        goto out;
    }
    k->next = x->runs;
    x->runs = k;
    rc = BL_OK;
    goto out;
bad:
    fail_now(n, t->ref, "bad_payload", "#{argv => [Path | Args]}, binaries");
    rc = BL_OK;
out:
    for (int a = 0; a <= MAX_ARGV; a++)
        free(argv[a]);
    return rc;
}

static void cancel_exec(bl_node *n, uint64_t ref, void *ud)
{
    (void)n;
    exec_state *x = ud;
    for (run *k = x->runs; k; k = k->next) {
        if (k->ref != ref) continue;
        bl__child_abandon(k->child); /* killed, reaped later; nothing more is reported */
        run_unlink(x, k);
        free(k);
        return;
    }
}

/* ---- health.check ---- */

typedef struct hrun {
    struct hrun *next;
    exec_state *x;
    uint64_t ref;
    int id;
} hrun;

static void hrun_unlink(exec_state *x, hrun *h)
{
    for (hrun **pp = &x->hruns; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            return;
        }
}

/* the check's one callback: the attempt's result; the record goes with it */
static void hc_done(bl_node *n, const char *name, const char *status, const char *output, void *ud)
{
    hrun *h = ud;
    (void)name;
    hrun_unlink(h->x, h);
    uint64_t ref = h->ref;
    free(h);
    ei_x_buff r;
    ei_x_new(&r);
    ei_x_encode_map_header(&r, 2);
    ei_x_encode_atom(&r, "status");
    ei_x_encode_atom(&r, status);
    ei_x_encode_atom(&r, "output");
    ei_x_encode_binary(&r, output, (long)strlen(output));
    (void)bl_task_done(n, ref, !strcmp(status, "passing"), r.buff, r.index);
    ei_x_free(&r);
}

static int run_health(bl_node *n, const bl_task_info *t, void *ud)
{
    exec_state *x = ud;
    const char *b = t->payload;
    int i = t->payload_index, ar;
    char name[64] = "";
    if (ei_decode_map_header(b, &i, &ar) == 0) {
        for (int k = 0; k < ar; k++) {
            char key[MAXATOMLEN_UTF8];
            if (get_key(b, &i, key, sizeof(key)) < 0) break;
            if (!strcmp(key, "name")) {
                if (bl__get_bin(b, &i, name, sizeof(name)) < 0) name[0] = 0;
            } else if (bl__skip_term(b, &i) < 0) {
                break;
            }
        }
    }
    if (!name[0]) {
        fail_now(n, t->ref, "bad_payload", "#{name => Check}");
        return BL_OK;
    }
    hrun *h = calloc(1, sizeof(*h));
    if (!h) return BL_ENOMEM;
    h->ref = t->ref;
    h->x = x;
    h->next = x->hruns;
    x->hruns = h;
    uint64_t ref = t->ref;
    int id = bl_health_check_run(n, name, hc_done, h);
    hrun *still = NULL;
    for (hrun *q = x->hruns; q; q = q->next)
        if (q->ref == ref) still = q;
    if (id < 0) {
        if (still) {
            hrun_unlink(x, still);
            free(still);
        }
        fail_now(n, ref, id == BL_ENOPROC ? "no_such_check" : "check_failed", name);
        return BL_OK;
    }
    if (still) still->id = id; /* else answered at once */
    return BL_OK;
}

static void cancel_health(bl_node *n, uint64_t ref, void *ud)
{
    exec_state *x = ud;
    for (hrun *h = x->hruns; h; h = h->next)
        if (h->ref == ref) {
            bl_health_check_run_cancel(n, h->id);
            hrun_unlink(x, h);
            free(h);
            return;
        }
}

void *bl__tasks_exec_start(bl_node *n)
{
    exec_state *x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->n = n;
    snprintf(x->allow, sizeof(x->allow), "%s", n->cfg.task_exec_allow);
    if (x->allow[0]) (void)bl_task_handler(n, "exec", run_exec, cancel_exec, x);
    (void)bl_task_handler(n, "health.check", run_health, cancel_health, x);
    return x;
}

void bl__tasks_exec_stop(void *p)
{
    exec_state *x = p;
    if (!x) return;
    while (x->runs) {
        run *k = x->runs;
        x->runs = k->next;
        bl__child_abandon(k->child); /* reaped on the loop, or at bl_node_free */
        free(k);
    }
    while (x->hruns) {
        struct hrun *h = x->hruns;
        x->hruns = h->next;
        bl_health_check_run_cancel(x->n, h->id);
        free(h);
    }
    free(x);
}
