/* tasks_exec.c - the `exec` and `health.check` task types (docs/tasks.md).
 *
 * exec runs a command, only on nodes whose task_exec_allow lists it (off by default: the type is
 * not even advertised then). Payload #{argv => [Path | Args]}: Path must be one of the allowed
 * absolute paths, byte for byte (no PATH search, no shell: argv goes to posix_spawn as given).
 * stdin is /dev/null; stdout and stderr go to one non-blocking pipe read on the loop, keeping
 * at most task_exec_output_max bytes (the rest is read and dropped, `truncated` says so). The
 * child is reaped through a pidfd watched by the loop (a 100 ms waitpid(WNOHANG) poll where
 * pidfd_open is missing), as health checks do: never a blocking wait. Cancel or timeout kills
 * its process group; the record is freed once the child is reaped. Result #{exit_status,
 * output, truncated}: success for exit 0, else the same map as the error.
 *
 * health.check runs one of this node's health checks now (payload #{name => Check}) and
 * succeeds with #{status, output} when it passes, fails with it otherwise. */
#include "tasks_int.h"
#include "beamlet/health.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_ARGV 64

typedef struct child {
    struct child *next;
    struct exec_state *x;
    uint64_t ref;
    int live; /* the attempt still wants the result */
    pid_t pid;
    int pidfd, outfd, exited, eof, wstatus;
    ev_io pio, oio;
    ev_timer poll;
    char *out;
    size_t len, cap;
    int truncated;
} child;

typedef struct exec_state {
    bl_node *n;
    char allow[2048];
    child *kids;
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

static void kid_unlink(exec_state *x, child *k)
{
    for (child **pp = &x->kids; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            return;
        }
}

static void kid_free(exec_state *x, child *k)
{
    ev_io_stop(x->n->loop, &k->pio);
    ev_io_stop(x->n->loop, &k->oio);
    ev_timer_stop(x->n->loop, &k->poll);
    if (k->pidfd >= 0) close(k->pidfd);
    if (k->outfd >= 0) close(k->outfd);
    kid_unlink(x, k);
    free(k->out);
    free(k);
}

static void report(exec_state *x, child *k)
{
    ei_x_buff r;
    ei_x_new(&r);
    int ok = WIFEXITED(k->wstatus) && WEXITSTATUS(k->wstatus) == 0;
    ei_x_encode_map_header(&r, 3);
    if (WIFEXITED(k->wstatus)) {
        ei_x_encode_atom(&r, "exit_status");
        ei_x_encode_long(&r, WEXITSTATUS(k->wstatus));
    } else {
        ei_x_encode_atom(&r, "exit_signal");
        ei_x_encode_long(&r, WIFSIGNALED(k->wstatus) ? WTERMSIG(k->wstatus) : 0);
    }
    ei_x_encode_atom(&r, "output");
    ei_x_encode_binary(&r, k->out ? k->out : "", (long)k->len);
    ei_x_encode_atom(&r, "truncated");
    ei_x_encode_atom(&r, k->truncated ? "true" : "false");
    (void)bl_task_done(x->n, k->ref, ok, r.buff, r.index);
    ei_x_free(&r);
}

/* both the exit and the end of output seen (or the attempt is dead): done with it */
static void maybe_end(exec_state *x, child *k)
{
    if (!k->exited || (!k->eof && k->live)) return;
    if (k->live) report(x, k);
    kid_free(x, k);
}

static void try_reap(exec_state *x, child *k)
{
    int ws;
    pid_t r = waitpid(k->pid, &ws, WNOHANG);
    if (r == k->pid || (r < 0 && errno == ECHILD)) {
        k->exited = 1;
        k->wstatus = r == k->pid ? ws : 0xff00;
        ev_io_stop(x->n->loop, &k->pio);
        ev_timer_stop(x->n->loop, &k->poll);
        maybe_end(x, k);
    }
}

static void on_pidfd(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    child *k = w->data;
    try_reap(k->x, k);
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    child *k = w->data;
    try_reap(k->x, k);
}

static void on_out(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    child *k = w->data;
    exec_state *x = k->x;
    size_t max = x->n->cfg.task_exec_output_max;
    char buf[8192];
    for (;;) {
        ssize_t r = read(k->outfd, buf, sizeof(buf));
        if (r > 0) {
            size_t take = k->len < max ? max - k->len : 0;
            if ((size_t)r > take) k->truncated = 1;
            if (take > (size_t)r) take = (size_t)r;
            if (take) {
                if (k->len + take > k->cap) {
                    size_t cap = k->cap ? k->cap * 2 : 4096;
                    while (cap < k->len + take)
                        cap *= 2;
                    if (cap > max) cap = max;
                    char *p = realloc(k->out, cap);
                    if (!p) {
                        k->truncated = 1;
                        continue;
                    }
                    k->out = p;
                    k->cap = cap;
                }
                memcpy(k->out + k->len, buf, take);
                k->len += take;
            }
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
        k->eof = 1; /* EOF or an error: no more output */
        ev_io_stop(x->n->loop, &k->oio);
        maybe_end(x, k);
        return;
    }
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
            if (ei_skip_term(b, &i) < 0) goto bad;
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
    int fds[2];
    /* only our end is non-blocking: the child writes to a plain blocking pipe */
    if (pipe2(fds, O_CLOEXEC) < 0 || fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
        rc = BL_ESYS;
        goto out;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid;
    int e = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(fds[1]);
    if (e != 0) {
        close(fds[0]);
        fail_now(n, t->ref, "spawn_failed", strerror(e));
        rc = BL_OK;
        goto out;
    }
    child *k = calloc(1, sizeof(*k));
    if (!k) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0); /* killed: returns at once */
        close(fds[0]);
        rc = BL_ENOMEM;
        goto out;
    }
    k->x = x;
    k->ref = t->ref;
    k->live = 1;
    k->pid = pid;
    k->outfd = fds[0];
    k->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    k->next = x->kids;
    x->kids = k;
    ev_io_init(&k->oio, on_out, k->outfd, EV_READ);
    k->oio.data = k;
    ev_io_start(n->loop, &k->oio);
    if (k->pidfd >= 0) {
        ev_io_init(&k->pio, on_pidfd, k->pidfd, EV_READ);
        k->pio.data = k;
        ev_io_start(n->loop, &k->pio);
    } else {
        ev_timer_init(&k->poll, on_poll, 0.1, 0.1);
        k->poll.data = k;
        ev_timer_start(n->loop, &k->poll);
    }
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
    for (child *k = x->kids; k; k = k->next) {
        if (k->ref != ref || !k->live) continue;
        k->live = 0; /* reaped later through its pidfd; nothing more is reported */
        kill(-k->pid, SIGKILL);
        kill(k->pid, SIGKILL);
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
            } else if (ei_skip_term(b, &i) < 0) {
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
    while (x->kids) {
        child *k = x->kids;
        if (!k->exited) {
            kill(-k->pid, SIGKILL);
            kill(k->pid, SIGKILL);
            waitpid(k->pid, NULL, 0); /* killed: returns at once (node shutdown) */
        }
        kid_free(x, k);
    }
    while (x->hruns) {
        struct hrun *h = x->hruns;
        x->hruns = h->next;
        bl_health_check_run_cancel(x->n, h->id);
        free(h);
    }
    free(x);
}
