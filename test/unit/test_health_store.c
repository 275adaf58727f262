/* test_health_store.c - the health store (c_src/health/hstore.c over c_src/store/): samples
 * folded into 1 min and 1 h rollups with min/max/avg, retention per table, the events cap, the
 * size bound, and rows surviving a close and reopen. Runs a real SQLite file in a temporary
 * directory through the store thread; the database is read back with the same loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "health/hstore.h"
#include "store/sqlite.h"

static char dir[256];

static bl_node *make_node(unsigned raw_s, unsigned m1_s, unsigned max_mb, unsigned events_max)
{
    bl_config cfg;
    bl_config_init(&cfg);
    snprintf(cfg.name, sizeof(cfg.name), "unit_hs@localhost");
    snprintf(cfg.cookie, sizeof(cfg.cookie), "c");
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
    cfg.log_level = BL_LOG_ERROR;
    cfg.history_raw_s = raw_s;
    cfg.history_1m_s = m1_s;
    cfg.store_max_mb = max_mb;
    cfg.events_max = events_max;
    bl_node *n = NULL;
    assert_int_equal(bl_node_new(&cfg, &n), BL_OK);
    return n;
}

/* run the loop until the store thread has finished every job */
static void settle(bl_node *n, bl__hstore *s)
{
    for (int i = 0; i < 2000 && bl__hstore_pending(s); i++)
        usleep(5000);
    assert_int_equal(bl__hstore_pending(s), 0);
    ev_run(n->loop, EVRUN_NOWAIT);
}

static double q1(const char *sql)
{
    bl__sqlite sq;
    char err[256], path[512];
    assert_int_equal(bl__sqlite_load(&sq, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/health-unit_hs@localhost.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sq.open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    double v = -1;
    if (sq.prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sq.step(q) == SQLITE_ROW)
        v = sq.column_double(q, 0);
    else
        fail_msg("query failed: %s: %s", sql, sq.errmsg(db));
    sq.finalize(q);
    sq.close(db);
    bl__sqlite_unload(&sq);
    return v;
}

static bl_health_metrics *sample_at(unsigned long long t, double cpu)
{
    static bl_health_metrics m;
    memset(&m, 0, sizeof(m));
    m.time_ms = t;
    m.cpu_pct.busy = cpu;
    m.mem_total = 1000;
    m.mem_used = 250;
    return &m;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/bl_unit_hs.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_rollups(void **state)
{
    (void)state;
    bl_node *n = make_node(21600, 172800, 64, 100000);
    bl__hstore *s = bl__hstore_open(n);
    assert_non_null(s);
    unsigned long long now = bl_now_ms();
    unsigned long long m0 = now - now % 60000 - 10 * 60000; /* a whole minute ten minutes ago */
    for (int i = 0; i < 6; i++)
        bl__hstore_sample(s, sample_at(m0 + (unsigned)i * 10000, i + 1));
    bl__hstore_sample(s, sample_at(m0 + 60000, 100)); /* the next minute */
    bl__hstore_tick(s);
    settle(n, s);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT min FROM rollup_1m WHERE metric='cpu.percent' AND bucket_ms=%llu", m0);
    assert_true(q1(sql) == 1.0);
    snprintf(sql, sizeof(sql),
             "SELECT max FROM rollup_1m WHERE metric='cpu.percent' AND bucket_ms=%llu", m0);
    assert_true(q1(sql) == 6.0);
    snprintf(sql, sizeof(sql),
             "SELECT sum/count FROM rollup_1m WHERE metric='cpu.percent' AND bucket_ms=%llu", m0);
    assert_true(q1(sql) == 3.5);
    assert_true(q1("SELECT count(*) FROM rollup_1m WHERE metric='cpu.percent'") == 2.0);
    /* 1 h: one or two buckets depending on where the hour falls; all 7 samples counted */
    assert_true(q1("SELECT sum(count) FROM rollup_1h WHERE metric='cpu.percent'") == 7.0);
    assert_true(q1("SELECT max(max) FROM rollup_1h WHERE metric='cpu.percent'") == 100.0);
    assert_true(q1("SELECT count(*) FROM samples WHERE metric='cpu.percent'") == 7.0);
    assert_true(q1("SELECT value FROM samples WHERE metric='memory.used_percent'") == 25.0);
    bl__hstore_close(s);
    bl_node_free(n);
}

static void test_retention(void **state)
{
    (void)state;
    bl_node *n = make_node(60, 600, 64, 10); /* raw 1 min, 1 min rollups 10 min, 10 events */
    bl__hstore *s = bl__hstore_open(n);
    assert_non_null(s);
    unsigned long long now = bl_now_ms();
    bl__hstore_sample(s, sample_at(now - 30000, 1));      /* kept everywhere */
    bl__hstore_sample(s, sample_at(now - 5 * 60000, 2));  /* raw gone, 1 min kept */
    bl__hstore_sample(s, sample_at(now - 30 * 60000, 3)); /* raw and 1 min gone */
    for (int i = 0; i < 25; i++)
        bl__hstore_event(s, now - 1000 + (unsigned)i, "n@h", "admin", "info", "tester", NULL, "{}");
    bl__hstore_tick(s); /* the first tick writes, then maintains */
    settle(n, s);
    bl__hstore_maintain(s);
    settle(n, s);
    assert_true(q1("SELECT count(*) FROM samples WHERE metric='cpu.percent'") == 1.0);
    assert_true(q1("SELECT count(*) FROM rollup_1m WHERE metric='cpu.percent'") >= 1.0);
    assert_true(q1("SELECT min(min) FROM rollup_1m WHERE metric='cpu.percent'") == 1.0);
    assert_true(q1("SELECT max(max) FROM rollup_1m WHERE metric='cpu.percent'") == 2.0);
    assert_true(q1("SELECT max(max) FROM rollup_1h WHERE metric='cpu.percent'") == 3.0);
    assert_true(q1("SELECT count(*) FROM events") == 10.0); /* events_max */
    assert_true(q1("SELECT min(time_ms) FROM events") == (double)(now - 1000 + 15));
    bl__hstore_close(s);
    bl_node_free(n);
}

static void test_size_bound(void **state)
{
    (void)state;
    bl_node *n = make_node(31536000, 31536000, 1, 100000000); /* 1 MiB, nothing expires */
    bl__hstore *s = bl__hstore_open(n);
    assert_non_null(s);
    unsigned long long now = bl_now_ms();
    /* a long synthetic run: 30 000 samples x 13 series ~ 390 000 rows (~ 20 MiB unbounded) */
    for (int i = 0; i < 30000; i++) {
        bl__hstore_sample(s,
                          sample_at(now - 30000ULL * 5000 + (unsigned long long)i * 5000, i % 100));
        if (i % 1000 == 999) {
            bl__hstore_tick(s);
            settle(n, s);
        }
    }
    bl__hstore_tick(s);
    settle(n, s);
    bl__hstore_maintain(s);
    settle(n, s);
    double bytes = q1("SELECT (SELECT page_count FROM pragma_page_count()) *"
                      " (SELECT page_size FROM pragma_page_size())");
    assert_true(bytes <= 1.25 * 1024 * 1024);
    /* the newest data is what remains */
    assert_true(q1("SELECT max(time_ms) FROM samples") >= (double)(now - 10000));
    char path[512];
    snprintf(path, sizeof(path), "%s/health-unit_hs@localhost.db-wal", dir);
    FILE *f = fopen(path, "r");
    long wal = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        wal = ftell(f);
        fclose(f);
    }
    assert_true(wal <= 4 * 1024 * 1024); /* the WAL is checkpointed too */
    bl__hstore_close(s);
    bl_node_free(n);
}

static void test_reopen(void **state)
{
    (void)state;
    bl_node *n = make_node(21600, 172800, 64, 100000);
    bl__hstore *s = bl__hstore_open(n);
    bl__hstore_event(s, bl_now_ms(), "n@h", "admin", "warn", "alice", NULL, "{\"a\":1}");
    bl__hstore_close(s); /* close writes what is buffered */
    s = bl__hstore_open(n);
    bl__hstore_event(s, bl_now_ms(), "n@h", "admin", "info", NULL, NULL, NULL);
    bl__hstore_event(s, bl_now_ms(), "n@h", "trace", "info", NULL,
                     "4bf92f3577b34da6a3ce929d0e0e4736", "{\"what\":\"call\"}");
    bl__hstore_close(s);
    bl_node_free(n);
    assert_true(q1("SELECT count(*) FROM events WHERE trace_id='4bf92f3577b34da6a3ce929d0e0e4736'"
                   " AND type='trace'") == 1.0);
    assert_true(q1("SELECT count(*) FROM events WHERE trace_id IS NULL") == 2.0);
    assert_true(q1("SELECT count(*) FROM events WHERE who='alice' AND severity=1") == 1.0);
    assert_true(q1("SELECT count(*) FROM events WHERE who IS NULL AND body='{}'") == 1.0);
}

static void test_paths(void **state)
{
    (void)state;
    bl_config cfg;
    bl_config_init(&cfg);
    char p[1024];
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "/srv/bl");
    bl__hstore_path(&cfg, "a@h", p, sizeof(p));
    assert_string_equal(p, "/srv/bl/health-a@h.db");
    cfg.data_dir[0] = 0;
    setenv("XDG_STATE_HOME", "/x/state", 1);
    bl__hstore_path(&cfg, "a@h", p, sizeof(p));
    assert_string_equal(p, "/x/state/beamlet/a@h/health.db");
    unsetenv("XDG_STATE_HOME");
    if (getuid() != 0) {
        setenv("HOME", "/home/u", 1);
        bl__hstore_path(&cfg, "a@h", p, sizeof(p));
        assert_string_equal(p, "/home/u/.local/state/beamlet/a@h/health.db");
    } else {
        setenv("INVOCATION_ID", "x", 1); /* root under systemd: a system service */
        bl__hstore_path(&cfg, "a@h", p, sizeof(p));
        assert_string_equal(p, "/var/lib/beamlet/a@h/health.db");
        unsetenv("INVOCATION_ID");
    }
    assert_int_equal(bl__severity_level("warn"), 1);
    assert_int_equal(bl__severity_level("critical"), 2);
    assert_int_equal(bl__severity_level("bogus"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rollups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test(test_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
