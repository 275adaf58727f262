/* test_child.c - child processes on the loop (c_src/runtime/child.c), against real /bin/sh
 * children: exit status and output through the pipe, the output bound, the timeout killing the
 * whole process group, a grandchild holding the pipe not delaying the result, spawn failures,
 * kill, abandon (never told, still reaped) and bl_node_free with a child still running. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/child.h"

typedef struct got {
    int calls;
    bl__child_result r;
    char out[4096];
} got;

static void on_done(bl_node *n, const bl__child_result *r, void *ud)
{
    (void)n;
    got *g = ud;
    g->calls++;
    g->r = *r;
    size_t k = r->output_len < sizeof(g->out) - 1 ? r->output_len : sizeof(g->out) - 1;
    memcpy(g->out, r->output, k);
    g->out[k] = 0;
    g->r.output = NULL;
}

static void tick(struct ev_loop *l, ev_timer *w, int e)
{
    (void)l, (void)w, (void)e;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* turn the loop until *flag or (the generous bound) 20 s; 1 when flag was set */
static int run_until(bl_node *n, const int *flag)
{
    ev_timer t;
    ev_timer_init(&t, tick, 0.01, 0.01);
    ev_timer_start(n->loop, &t);
    double end = now_s() + 20;
    while (!*flag && now_s() < end)
        ev_run(n->loop, EVRUN_ONCE);
    ev_timer_stop(n->loop, &t);
    return *flag != 0;
}

static bl_node *node(void)
{
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof(cfg.name), "tc@localhost");
    bl_node *n;
    assert_int_equal(bl_node_new(&cfg, &n), BL_OK);
    return n;
}

static int sh(bl_node *n, const char *script, size_t max, unsigned tmo, got *g, bl__child **c)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    bl__child_spec s = {.argv = argv, .output_max = max, .timeout_ms = tmo};
    int e = 0;
    return bl__child_spawn(n, &s, on_done, g, c, &e);
}

static void test_output_and_status(void **state)
{
    (void)state;
    bl_node *n = node();
    got g = {0};
    assert_int_equal(sh(n, "printf hello; printf ' err' >&2; exit 3", 1024, 0, &g, NULL), BL_OK);
    assert_int_equal(g.calls, 0); /* spawned, not waited for */
    assert_true(run_until(n, &g.calls));
    assert_int_equal(g.calls, 1);
    assert_true(WIFEXITED(g.r.wstatus));
    assert_int_equal(WEXITSTATUS(g.r.wstatus), 3);
    assert_string_equal(g.out, "hello err");
    assert_false(g.r.truncated || g.r.timed_out || g.r.killed);
    /* without a pipe: output goes to /dev/null */
    got q = {0};
    assert_int_equal(sh(n, "echo lost; exit 0", 0, 0, &q, NULL), BL_OK);
    assert_true(run_until(n, &q.calls));
    assert_int_equal(q.r.output_len, 0);
    assert_int_equal(WEXITSTATUS(q.r.wstatus), 0);
    assert_null(n->children); /* both freed */
    bl_node_free(n);
}

static void test_output_bound(void **state)
{
    (void)state;
    bl_node *n = node();
    got g = {0};
    assert_int_equal(sh(n, "head -c 300000 /dev/zero | tr '\\0' x", 1000, 0, &g, NULL), BL_OK);
    assert_true(run_until(n, &g.calls));
    assert_int_equal(g.r.output_len, 1000);
    assert_true(g.r.truncated);
    assert_int_equal(strspn(g.out, "x"), 1000);
    assert_int_equal(WEXITSTATUS(g.r.wstatus), 0); /* read to the end, not killed */
    bl_node_free(n);
}

static int gone(pid_t p)
{
    for (int i = 0; i < 400; i++) {
        if (kill(p, 0) < 0 && errno == ESRCH) return 1;
        usleep(10000);
    }
    return 0;
}

static void test_timeout_kills_the_group(void **state)
{
    (void)state;
    bl_node *n = node();
    got g = {0};
    /* the shell starts a grandchild in its group and waits for it */
    assert_int_equal(sh(n, "sleep 60 & echo $!; wait", 64, 300, &g, NULL), BL_OK);
    assert_true(run_until(n, &g.calls));
    assert_true(g.r.timed_out);
    assert_true(WIFSIGNALED(g.r.wstatus) && WTERMSIG(g.r.wstatus) == SIGKILL);
    pid_t gc = (pid_t)atoi(g.out);
    assert_true(gc > 1);
    assert_true(gone(gc)); /* the grandchild went with it */
    bl_node_free(n);
}

static void test_grandchild_holding_the_pipe(void **state)
{
    (void)state;
    bl_node *n = node();
    got g = {0};
    /* the shell exits at once; its grandchild keeps the pipe open for a minute */
    assert_int_equal(sh(n, "sleep 60 & echo $!; exit 0", 64, 0, &g, NULL), BL_OK);
    double t0 = now_s();
    assert_true(run_until(n, &g.calls));
    assert_true(now_s() - t0 < 30); /* not the grandchild's minute */
    assert_int_equal(WEXITSTATUS(g.r.wstatus), 0);
    pid_t gc = (pid_t)atoi(g.out);
    assert_true(gc > 1);
    kill(gc, SIGKILL);
    bl_node_free(n);
}

static void test_spawn_failures(void **state)
{
    (void)state;
    bl_node *n = node();
    got g = {0};
    int e = 0;
    char *a1[] = {"/nonexistent/prog", NULL};
    bl__child_spec s = {.argv = a1, .output_max = 64};
    bl__child *c = (bl__child *)&g;
    assert_int_equal(bl__child_spawn(n, &s, on_done, &g, &c, &e), BL_ESYS);
    assert_int_equal(e, ENOENT);
    assert_null(c);
    char *a2[] = {"beamlet-no-such-program", NULL};
    bl__child_spec p = {.argv = a2, .search_path = 1};
    assert_int_equal(bl__child_spawn(n, &p, on_done, &g, NULL, &e), BL_ESYS);
    assert_int_equal(e, ENOENT);
    char *a3[] = {NULL};
    bl__child_spec z = {.argv = a3};
    assert_int_equal(bl__child_spawn(n, &z, on_done, &g, NULL, &e), BL_EINVAL);
    assert_int_equal(bl__child_spawn(n, &s, NULL, &g, NULL, &e), BL_EINVAL);
    assert_int_equal(g.calls, 0);
    assert_null(n->children);
    /* PATH search finds sh */
    char *a4[] = {"sh", "-c", "exit 7", NULL};
    bl__child_spec q = {.argv = a4, .search_path = 1};
    assert_int_equal(bl__child_spawn(n, &q, on_done, &g, NULL, &e), BL_OK);
    assert_true(run_until(n, &g.calls));
    assert_int_equal(WEXITSTATUS(g.r.wstatus), 7);
    bl_node_free(n);
}

static void test_kill_and_abandon(void **state)
{
    (void)state;
    bl_node *n = node();
    got g = {0}, a = {0};
    bl__child *c = NULL, *d = NULL;
    assert_int_equal(sh(n, "sleep 60", 64, 0, &g, &c), BL_OK);
    bl__child_kill(c);
    assert_true(run_until(n, &g.calls));
    assert_true(g.r.killed && !g.r.timed_out);
    assert_true(WIFSIGNALED(g.r.wstatus));
    /* abandoned: never told, still reaped (the list empties) */
    assert_int_equal(sh(n, "sleep 60", 64, 0, &a, &d), BL_OK);
    bl__child_abandon(d);
    int empty = 0;
    ev_timer t;
    ev_timer_init(&t, tick, 0.01, 0.01);
    ev_timer_start(n->loop, &t);
    for (double end = now_s() + 20; !(empty = n->children == NULL) && now_s() < end;)
        ev_run(n->loop, EVRUN_ONCE);
    ev_timer_stop(n->loop, &t);
    assert_true(empty);
    assert_int_equal(a.calls, 0);
    bl_node_free(n);
}

static void test_node_free_with_a_child(void **state)
{
    (void)state;
    bl_node *n = node();
    got g = {0};
    bl__child *c = NULL;
    assert_int_equal(sh(n, "sleep 60", 0, 0, &g, &c), BL_OK);
    assert_non_null(n->children);
    bl_node_free(n); /* killed and reaped, nobody told */
    assert_int_equal(g.calls, 0);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* no child of ours left, not even a zombie */
    assert_int_equal(errno, ECHILD);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as a node runs */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_and_status),
        cmocka_unit_test(test_output_bound),
        cmocka_unit_test(test_timeout_kills_the_group),
        cmocka_unit_test(test_grandchild_holding_the_pipe),
        cmocka_unit_test(test_spawn_failures),
        cmocka_unit_test(test_kill_and_abandon),
        cmocka_unit_test(test_node_free_with_a_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
