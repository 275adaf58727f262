/* child.c - child processes run from the loop (child.h): posix_spawn into a process group of
 * its own, output through one non-blocking pipe with a bound, a timeout that kills the group,
 * reaping through a pidfd watched by the loop (or a 100 ms waitpid(WNOHANG) poll), never a
 * blocking wait on the loop. One place for what the exec task type and command health checks
 * both need (they had a copy each).
 *
 * Ending: once the child is reaped, what it wrote is all in the pipe already (a writer blocked
 * on a full pipe cannot exit), so the pipe is drained to EAGAIN and closed instead of waiting
 * for EOF, which a grandchild still holding the pipe would delay forever. */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct bl__child {
    struct bl__child *next; /* n->children */
    bl_node *n;
    pid_t pid;
    int pidfd, outfd;
    ev_io pio, oio;
    ev_timer poll, tmo;
    int timed_out, killed;
    size_t max;
    char *out;
    size_t len, cap;
    int truncated;
    bl__child_done_fn done; /* NULL once abandoned */
    void *ud;
};

static void unlink_child(bl_node *n, bl__child *c)
{
    for (bl__child **pp = &n->children; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

static void stop_watchers(bl__child *c)
{
    struct ev_loop *loop = c->n->loop;
    ev_io_stop(loop, &c->pio);
    ev_io_stop(loop, &c->oio);
    ev_timer_stop(loop, &c->poll);
    ev_timer_stop(loop, &c->tmo);
}

static void child_free(bl__child *c)
{
    stop_watchers(c);
    if (c->pidfd >= 0) close(c->pidfd);
    if (c->outfd >= 0) close(c->outfd);
    unlink_child(c->n, c);
    free(c->out);
    free(c);
}

static void kill_group(bl__child *c)
{
    kill(-c->pid, SIGKILL); /* its process group: what it started too */
    kill(c->pid, SIGKILL);
}

static void keep(bl__child *c, const char *buf, size_t r)
{
    size_t take = c->len < c->max ? c->max - c->len : 0;
    if (r > take) c->truncated = 1;
    if (take > r) take = r;
    if (!take) return;
    if (c->len + take > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        while (cap < c->len + take)
            cap *= 2;
        if (cap > c->max) cap = c->max;
        char *p = realloc(c->out, cap);
        if (!p) {
            c->truncated = 1;
            return;
        }
        c->out = p;
        c->cap = cap;
    }
    memcpy(c->out + c->len, buf, take);
    c->len += take;
}

/* read what is there; 1 at EOF or an error (no more output), 0 when it would block */
static int drain(bl__child *c)
{
    char buf[8192];
    for (;;) {
        ssize_t r = read(c->outfd, buf, sizeof(buf));
        if (r > 0) {
            if (c->done) keep(c, buf, (size_t)r);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        return !(r < 0 && errno == EAGAIN);
    }
}

static void close_output(bl__child *c)
{
    if (c->outfd < 0) return;
    ev_io_stop(c->n->loop, &c->oio);
    close(c->outfd);
    c->outfd = -1;
}

static void on_out(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    bl__child *c = w->data;
    if (drain(c)) close_output(c);
}

static void finish(bl__child *c, int wstatus)
{
    if (c->outfd >= 0) {
        drain(c); /* all it wrote is in the pipe by now */
        close_output(c);
    }
    if (c->done) {
        bl__child_result r = {.wstatus = wstatus,
                              .timed_out = c->timed_out,
                              .killed = c->killed,
                              .output = c->out ? c->out : "",
                              .output_len = c->len,
                              .truncated = c->truncated};
        c->done(c->n, &r, c->ud);
    }
    child_free(c);
}

static void try_reap(bl__child *c)
{
    int ws;
    pid_t r = waitpid(c->pid, &ws, WNOHANG);
    if (r == c->pid)
        finish(c, ws);
    else if (r < 0 && errno == ECHILD)
        finish(c, 0xff00); /* someone else reaped it */
}

static void on_pidfd(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    try_reap(w->data);
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    try_reap(w->data);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bl__child *c = w->data;
    c->timed_out = 1;
    kill_group(c); /* reaped through its pidfd next */
}

int bl__child_spawn(bl_node *n, const bl__child_spec *spec, bl__child_done_fn done, void *ud,
                    bl__child **out, int *spawn_err)
{
    if (out) *out = NULL;
    if (spawn_err) *spawn_err = 0;
    if (!n || !spec || !spec->argv || !spec->argv[0] || !done) return BL_EINVAL;
    bl__child *c = calloc(1, sizeof(*c));
    if (!c) return BL_ENOMEM;
    c->n = n;
    c->pidfd = c->outfd = -1;
    c->max = spec->output_max;
    c->done = done;
    c->ud = ud;
    int fds[2] = {-1, -1}, e = 0;
    /* only our end is non-blocking: the child writes to a plain blocking pipe */
    if (c->max && (pipe2(fds, O_CLOEXEC) < 0 || fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0)) {
        e = errno;
        if (fds[0] >= 0) close(fds[0]), close(fds[1]);
        free(c);
        if (spawn_err) *spawn_err = e;
        return BL_ESYS;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (c->max) {
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    } else {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE); /* an ignored SIGPIPE would be inherited through exec */
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    e = spec->search_path ? posix_spawnp(&c->pid, spec->argv[0], &fa, &at, spec->argv, environ)
                          : posix_spawn(&c->pid, spec->argv[0], &fa, &at, spec->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (c->max) close(fds[1]);
    if (e != 0) {
        if (c->max) close(fds[0]);
        free(c);
        if (spawn_err) *spawn_err = e;
        return BL_ESYS;
    }
    c->outfd = c->max ? fds[0] : -1;
    c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
    c->next = n->children;
    n->children = c;
    ev_io_init(&c->oio, on_out, c->outfd, EV_READ);
    c->oio.data = c;
    if (c->outfd >= 0) ev_io_start(n->loop, &c->oio);
    ev_io_init(&c->pio, on_pidfd, c->pidfd, EV_READ);
    c->pio.data = c;
    ev_timer_init(&c->poll, on_poll, 0.1, 0.1);
    c->poll.data = c;
    if (c->pidfd >= 0)
        ev_io_start(n->loop, &c->pio);
    else
        ev_timer_start(n->loop, &c->poll);
    ev_timer_init(&c->tmo, on_timeout, spec->timeout_ms / 1000.0, 0.);
    c->tmo.data = c;
    if (spec->timeout_ms) ev_timer_start(n->loop, &c->tmo);
    if (out) *out = c;
    return BL_OK;
}

void bl__child_kill(bl__child *c)
{
    if (!c) return;
    c->killed = 1;
    kill_group(c);
}

void bl__child_abandon(bl__child *c)
{
    if (!c) return;
    c->done = NULL;
    kill_group(c);
    close_output(c); /* its output is of no use now */
    ev_timer_stop(c->n->loop, &c->tmo);
}

void bl__children_free(bl_node *n)
{
    while (n->children) {
        bl__child *c = n->children;
        kill_group(c);
        /* killed: it is a zombie within moments; up to about 1 s for each, with the loop
         * already stopped (a child stuck in the kernel stays a zombie of this process) */
        for (int i = 0; i < 1000 && waitpid(c->pid, NULL, WNOHANG) == 0; i++)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        c->done = NULL;
        child_free(c);
    }
}
