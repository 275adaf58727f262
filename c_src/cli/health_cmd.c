/* health_cmd.c - the CLI commands of the health service (docs/health.md): `beamlet metrics`,
 * `beamlet events` and `beamlet history` call beamlet_health on the target node and print the
 * answer as a table (a sparkline for history) for people or as JSON (--format json). */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double num(json_t *o, const char *path);
static const char *str(json_t *o, const char *k);

static void dump_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(12));
    printf("%s\n", s ? s : "null");
    free(s);
}

/* options shared by events and history */
typedef struct hopts {
    unsigned long long since_ms, until_ms;
    char type[32], severity[16], metric[96], node[256];
    unsigned limit;
    int has_metric;
    int cluster; /* events --cluster: every member's log, merged */
    json_t *got; /* a reply kept by grab() */
} hopts;

static unsigned long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (unsigned long long)tv.tv_sec * 1000ULL + (unsigned long long)tv.tv_usec / 1000ULL;
}

/* "90s", "15m", "1h", "7d", "2w" or plain seconds -> ms; 0 on a bad value */
static unsigned long long parse_ago(const char *v)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || x <= 0) return 0;
    double mul = 1000;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        mul = 60e3, end++;
    else if (*end == 'h')
        mul = 3600e3, end++;
    else if (*end == 'd')
        mul = 86400e3, end++;
    else if (*end == 'w')
        mul = 7 * 86400e3, end++;
    if (*end) return 0;
    return (unsigned long long)(x * mul);
}

static int hopt(admin *a, int argc, char **argv, int i)
{
    hopts *o = a->ud;
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(k, "--cluster")) {
        o->cluster = 1;
        return 1;
    }
    if (!v) return 0;
    if (!strcmp(k, "--since") || !strcmp(k, "--until")) {
        unsigned long long ago = parse_ago(v);
        if (!ago) {
            snprintf(a->err, sizeof(a->err), "%s '%s': give a duration like 90s, 15m, 24h, 7d", k,
                     v);
            return 0;
        }
        if (k[2] == 's')
            o->since_ms = now_ms() - ago;
        else
            o->until_ms = now_ms() - ago;
        return 2;
    }
    if (!strcmp(k, "--severity")) {
        if (strcmp(v, "info") && strcmp(v, "warn") && strcmp(v, "warning") &&
            strcmp(v, "critical")) {
            snprintf(a->err, sizeof(a->err), "--severity '%s': info, warn or critical", v);
            return 0;
        }
        snprintf(o->severity, sizeof(o->severity), "%s", v);
        return 2;
    }
    if (!strcmp(k, "--type") && strlen(v) < sizeof(o->type)) {
        snprintf(o->type, sizeof(o->type), "%s", v);
        return 2;
    }
    if (!strcmp(k, "--from") && strlen(v) < sizeof(o->node)) {
        snprintf(o->node, sizeof(o->node), "%s", v);
        return 2;
    }
    if (!strcmp(k, "--metric") && strlen(v) < sizeof(o->metric)) {
        snprintf(o->metric, sizeof(o->metric), "%s", v);
        o->has_metric = 1;
        return 2;
    }
    if (!strcmp(k, "--limit")) {
        long l = atol(v);
        if (l < 1 || l > 100000) {
            snprintf(a->err, sizeof(a->err), "--limit '%s': 1..100000", v);
            return 0;
        }
        o->limit = (unsigned)l;
        return 2;
    }
    return 0;
}

static void kv_bin(ei_x_buff *x, const char *k, const char *v)
{
    ei_x_encode_atom(x, k);
    ei_x_encode_binary(x, v, (long)strlen(v));
}

static int enc_events(admin *a, ei_x_buff *x)
{
    hopts *o = a->ud;
    int n = 2 + (o->until_ms > 0) + (o->type[0] != 0) + (o->severity[0] != 0) + (o->node[0] != 0);
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "events");
    ei_x_encode_map_header(x, n);
    ei_x_encode_atom(x, "since_ms");
    ei_x_encode_ulonglong(x, o->since_ms);
    ei_x_encode_atom(x, "limit");
    ei_x_encode_ulong(x, o->limit ? o->limit : 100);
    if (o->until_ms) {
        ei_x_encode_atom(x, "until_ms");
        ei_x_encode_ulonglong(x, o->until_ms);
    }
    if (o->type[0]) kv_bin(x, "type", o->type);
    if (o->severity[0]) {
        ei_x_encode_atom(x, "severity");
        ei_x_encode_atom(x, o->severity);
    }
    if (o->node[0]) kv_bin(x, "node", o->node);
    return 0;
}

static void fmt_time(unsigned long long ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

/* {ok, X} -> X, or print {error, Why} and fail */
static json_t *ok_value(admin *a, json_t *j)
{
    if (json_is_array(j) && json_array_size(j) == 2 && json_is_string(json_array_get(j, 0))) {
        const char *tag = json_string_value(json_array_get(j, 0));
        if (!strcmp(tag, "ok")) return json_array_get(j, 1);
        if (!strcmp(tag, "error")) {
            json_t *why = json_array_get(j, 1);
            fprintf(stderr, "beamlet %s: %s: %s\n", a->cmd, a->target,
                    json_is_string(why) ? json_string_value(why) : "error");
            a->exit_code = 1;
            return NULL;
        }
    }
    fprintf(stderr, "beamlet %s: %s: unexpected reply\n", a->cmd, a->target);
    a->exit_code = 1;
    return NULL;
}

static void show_events(admin *a, json_t *j)
{
    json_t *evs = ok_value(a, j);
    if (!evs) return;
    size_t i, n = json_array_size(evs);
    if (a->json) {
        /* bodies are JSON text on the wire: print them as objects */
        json_t *out = json_array();
        json_t *e;
        json_array_foreach(evs, i, e)
        {
            json_t *c = json_deep_copy(e);
            json_t *b = json_loads(json_string_value(json_object_get(e, "body"))
                                       ? json_string_value(json_object_get(e, "body"))
                                       : "{}",
                                   0, NULL);
            json_object_set_new(c, "body", b ? b : json_object());
            json_array_append_new(out, c);
        }
        dump_json(out);
        json_decref(out);
        return;
    }
    printf("%-19s %-8s %-8s %-28s %-12s %s\n", "TIME", "SEVERITY", "TYPE", "NODE", "WHO",
           "DETAILS");
    /* newest first on the wire: print oldest first */
    for (size_t k = n; k-- > 0;) {
        json_t *e = json_array_get(evs, k);
        char t[32];
        fmt_time((unsigned long long)json_integer_value(json_object_get(e, "time_ms")), t,
                 sizeof(t));
        const char *who = json_string_value(json_object_get(e, "who"));
        printf("%-19s %-8s %-8s %-28s %-12s %s\n", t, str(e, "severity"), str(e, "type"),
               str(e, "node"), who ? who : "-", str(e, "body"));
    }
    if (!n) printf("(no events)\n");
}

static void grab(admin *a, json_t *j)
{
    hopts *o = a->ud;
    json_decref(o->got);
    o->got = json_incref(j);
}

static int by_time_desc(const void *x, const void *y)
{
    json_int_t a = json_integer_value(json_object_get(*(json_t *const *)x, "time_ms"));
    json_int_t b = json_integer_value(json_object_get(*(json_t *const *)y, "time_ms"));
    return a < b ? 1 : a > b ? -1 : 0;
}

/* --cluster: ask --node for the members, then every active beamlet member with encode, and hand
 * each member's {ok, V} to add. The cluster-wide queries fan out from here. Returns how many
 * members did not answer, or -1 when the member list could not be had (the reason printed). */
static int fan_out(hopts *o, int argc, char **argv, const char *cmd,
                   int (*encode)(admin *, ei_x_buff *),
                   void (*add)(json_t *v, const char *member, void *acc), void *acc)
{
    admin a = {.cmd = cmd,
               .proc = "beamlet_health",
               .request = "health",
               .opt = hopt,
               .show = grab,
               .ud = o};
    int rc = bl__cli_admin(&a, argc, argv);
    if (rc || !o->got) return -1;
    json_t *nodes = json_incref(json_object_get(o->got, "nodes"));
    int ni = -1;
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--node")) ni = i + 1;
    if (ni < 0) {
        fprintf(stderr, "beamlet %s --cluster: give the node with --node\n", cmd);
        json_decref(nodes);
        return -1;
    }
    size_t i;
    json_t *m;
    int failed = 0;
    char **av = calloc((size_t)argc + 1, sizeof(*av));
    json_array_foreach(nodes, i, m)
    {
        /* BEAM members (role beam) have no beamlet_health */
        if (strcmp(str(m, "state"), "active") || !strcmp(str(m, "role"), "beam") || !av) continue;
        memcpy(av, argv, sizeof(*av) * (size_t)argc);
        av[ni] = (char *)str(m, "node");
        admin b = {.cmd = cmd,
                   .proc = "beamlet_health",
                   .opt = hopt,
                   .encode = encode,
                   .show = grab,
                   .ud = o};
        json_decref(o->got);
        o->got = NULL;
        if (bl__cli_admin(&b, argc, av) || !o->got || !json_is_array(o->got) ||
            strcmp(json_string_value(json_array_get(o->got, 0)) ?: "", "ok")) {
            failed++;
            continue;
        }
        add(json_array_get(o->got, 1), str(m, "node"), acc);
    }
    free(av);
    json_decref(nodes);
    json_decref(o->got);
    o->got = NULL;
    if (failed) fprintf(stderr, "beamlet %s --cluster: %d member(s) did not answer\n", cmd, failed);
    return failed;
}

static int want_json(int argc, char **argv)
{
    int j = 0;
    for (int k = 0; k < argc; k++) {
        if (!strcmp(argv[k], "--format=json")) j = 1;
        if (k + 1 < argc && !strcmp(argv[k], "--format")) j = !strcmp(argv[k + 1], "json");
    }
    return j;
}

/* json_array of arrays/objects -> sorted copy (newest first or oldest first by cmp) */
static json_t *sorted_by(json_t *all, int (*cmp)(const void *, const void *), size_t limit)
{
    size_t n = json_array_size(all), i;
    json_t **v = calloc(n ? n : 1, sizeof(*v));
    for (i = 0; v && i < n; i++)
        v[i] = json_array_get(all, i);
    if (v) qsort(v, n, sizeof(*v), cmp);
    json_t *out = json_array();
    for (i = 0; v && i < n && i < limit; i++)
        json_array_append(out, v[i]);
    free(v);
    return out;
}

static void add_events(json_t *evs, const char *member, void *acc)
{
    size_t k;
    json_t *e;
    json_array_foreach(evs, k, e)
    {
        json_object_set_new(e, "logged_by", json_string(member));
        json_array_append(acc, e);
    }
}

/* events --cluster: every active member's log, merged newest first */
static int cluster_events(hopts *o, int argc, char **argv)
{
    json_t *all = json_array();
    if (fan_out(o, argc, argv, "events", enc_events, add_events, all) < 0) {
        json_decref(all);
        return 1;
    }
    json_t *wrapped =
        json_pack("[s, o]", "ok", sorted_by(all, by_time_desc, o->limit ? o->limit : 100));
    json_decref(all);
    admin show = {.cmd = "events", .target = "cluster", .ud = o, .json = want_json(argc, argv)};
    show_events(&show, wrapped);
    json_decref(wrapped);
    return show.exit_code;
}

int bl__cli_events(int argc, char **argv)
{
    hopts o = {0};
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--cluster")) o.cluster = 1;
    o.since_ms = now_ms() - 86400000ULL;
    if (o.cluster) return cluster_events(&o, argc, argv);
    admin a = {.cmd = "events",
               .proc = "beamlet_health",
               .opt = hopt,
               .encode = enc_events,
               .show = show_events,
               .ud = &o};
    return bl__cli_admin(&a, argc, argv);
}

static int enc_history(admin *a, ei_x_buff *x)
{
    hopts *o = a->ud;
    ei_x_encode_tuple_header(x, o->until_ms ? 4 : 3);
    ei_x_encode_atom(x, "history");
    ei_x_encode_binary(x, o->metric, (long)strlen(o->metric));
    ei_x_encode_ulonglong(x, o->since_ms);
    if (o->until_ms) ei_x_encode_ulonglong(x, o->until_ms);
    return 0;
}

/* a sparkline of the averages, in at most width columns */
static void sparkline(json_t *pts, int width)
{
    static const char *const BARS[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                       "\u2585", "\u2586", "\u2587", "\u2588"};
    size_t n = json_array_size(pts);
    if (!n) return;
    int cols = (int)n < width ? (int)n : width;
    double lo = 1e300, hi = -1e300, col[256];
    for (int c = 0; c < cols; c++) {
        size_t a = (size_t)c * n / (size_t)cols, b = (size_t)(c + 1) * n / (size_t)cols;
        double sum = 0;
        for (size_t i = a; i < b; i++)
            sum += json_number_value(json_array_get(json_array_get(pts, i), 2));
        col[c] = sum / (double)(b - a);
        if (col[c] < lo) lo = col[c];
        if (col[c] > hi) hi = col[c];
    }
    for (int c = 0; c < cols; c++) {
        int k = hi > lo ? (int)((col[c] - lo) / (hi - lo) * 7.0 + 0.5) : 3;
        fputs(BARS[k < 0 ? 0 : k > 7 ? 7 : k], stdout);
    }
    putchar('\n');
}

static void show_history(admin *a, json_t *j)
{
    hopts *o = a->ud;
    json_t *v = ok_value(a, j);
    if (!v) return;
    if (a->json) {
        dump_json(v);
        return;
    }
    if (!o->has_metric) {
        size_t i;
        json_t *m;
        printf("metrics recorded on %s (use --metric NAME):\n", a->target);
        json_array_foreach(v, i, m) printf("  %s\n", json_string_value(m));
        return;
    }
    json_t *pts = json_object_get(v, "points");
    size_t n = json_array_size(pts);
    double res = num(v, "resolution_ms");
    printf("%s on %s, %zu points (%s)\n", o->metric, a->target, n,
           res == 0       ? "raw samples"
           : res == 60000 ? "1 min averages"
                          : "1 h averages");
    if (!n) {
        printf("(no data in that range)\n");
        return;
    }
    double lo = 1e300, hi = -1e300, sum = 0;
    size_t i;
    json_t *p;
    json_array_foreach(pts, i, p)
    {
        double mn = json_number_value(json_array_get(p, 1)),
               mx = json_number_value(json_array_get(p, 3));
        if (mn < lo) lo = mn;
        if (mx > hi) hi = mx;
        sum += json_number_value(json_array_get(p, 2));
    }
    char t0[32], t1[32];
    fmt_time((unsigned long long)json_integer_value(json_array_get(json_array_get(pts, 0), 0)), t0,
             sizeof(t0));
    fmt_time((unsigned long long)json_integer_value(json_array_get(json_array_get(pts, n - 1), 0)),
             t1, sizeof(t1));
    sparkline(pts, 72);
    printf("%s .. %s   min %.6g  avg %.6g  max %.6g  last %.6g\n", t0, t1, lo, sum / (double)n, hi,
           json_number_value(json_array_get(json_array_get(pts, n - 1), 2)));
}

static void add_history(json_t *v, const char *member, void *acc)
{
    json_object_set(acc, member, v);
}

static int by_time_asc(const void *x, const void *y)
{
    json_int_t a = json_integer_value(json_array_get(*(json_t *const *)x, 0));
    json_int_t b = json_integer_value(json_array_get(*(json_t *const *)y, 0));
    return a < b ? -1 : a > b ? 1 : 0;
}

/* history --cluster: the metric on every active member, merged by time: JSON
 * {metric, since_ms, until_ms, nodes => {Node => {resolution_ms, points}},
 *  points => [[TimeMs, Min, Avg, Max, Node]] oldest first}; the table, a sparkline per member.
 * Without --metric: every metric recorded on some member, with the members recording it. */
static int cluster_history(hopts *o, int argc, char **argv)
{
    json_t *per = json_object();
    int failed = fan_out(o, argc, argv, "history", enc_history, add_history, per);
    if (failed < 0) {
        json_decref(per);
        return 1;
    }
    int js = want_json(argc, argv), rc = 0;
    const char *node;
    json_t *v;
    if (!o->has_metric) {
        json_t *names = json_object();
        json_object_foreach(per, node, v)
        {
            size_t i;
            json_t *m;
            json_array_foreach(v, i, m)
            {
                const char *mn = json_string_value(m);
                if (!mn) continue;
                if (!json_object_get(names, mn)) json_object_set_new(names, mn, json_array());
                json_array_append_new(json_object_get(names, mn), json_string(node));
            }
        }
        if (js) {
            dump_json(names);
        } else {
            const char *mn;
            printf("metrics recorded in the cluster (use --metric NAME):\n");
            json_object_foreach(names, mn, v)
                printf("  %-40s %zu member(s)\n", mn, json_array_size(v));
        }
        json_decref(names);
        json_decref(per);
        return 0;
    }
    json_t *all = json_array(), *nodes = json_object();
    json_object_foreach(per, node, v)
    {
        json_t *pts = json_object_get(v, "points");
        json_object_set_new(
            nodes, node,
            json_pack("{s:I, s:o}", "resolution_ms",
                      (json_int_t)json_integer_value(json_object_get(v, "resolution_ms")), "points",
                      pts ? json_incref(pts) : json_array()));
        size_t i;
        json_t *p;
        json_array_foreach(pts, i, p)
        {
            json_t *q = json_copy(p);
            json_array_append_new(q, json_string(node));
            json_array_append_new(all, q);
        }
    }
    json_t *merged = sorted_by(all, by_time_asc, (size_t)-1);
    json_decref(all);
    if (js) {
        json_t *out = json_pack("{s:s, s:I, s:I, s:o, s:o}", "metric", o->metric, "since_ms",
                                (json_int_t)o->since_ms, "until_ms",
                                (json_int_t)(o->until_ms ? o->until_ms : now_ms()), "nodes", nodes,
                                "points", merged);
        dump_json(out);
        json_decref(out);
    } else {
        printf("%s in the cluster: %zu points from %zu member(s)\n", o->metric,
               json_array_size(merged), json_object_size(nodes));
        json_object_foreach(nodes, node, v)
        {
            json_t *wrapped = json_pack("[s, {s:s, s:O, s:O}]", "ok", "metric", o->metric,
                                        "resolution_ms", json_object_get(v, "resolution_ms"),
                                        "points", json_object_get(v, "points"));
            admin show = {.cmd = "history", .target = node, .ud = o};
            printf("\n");
            show_history(&show, wrapped);
            json_decref(wrapped);
            rc |= show.exit_code;
        }
        json_decref(nodes);
        json_decref(merged);
    }
    json_decref(per);
    return rc;
}

int bl__cli_history(int argc, char **argv)
{
    hopts o = {0};
    o.since_ms = now_ms() - 86400000ULL;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--cluster")) o.cluster = 1;
    if (o.cluster) {
        for (int i = 0; i + 1 < argc; i++)
            if (!strcmp(argv[i], "--metric")) {
                snprintf(o.metric, sizeof(o.metric), "%s", argv[i + 1]);
                o.has_metric = 1;
            }
        return cluster_history(&o, argc, argv);
    }
    admin a = {.cmd = "history",
               .proc = "beamlet_health",
               .opt = hopt,
               .encode = enc_history,
               .show = show_history,
               .ud = &o};
    return bl__cli_admin(&a, argc, argv);
}

static double num(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *v = o;
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    return v && json_is_number(v) ? json_number_value(v) : 0.0;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

/* 1536 -> "1.5 KiB" */
static const char *human(double b, char *out, size_t cap)
{
    static const char *const U[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (b >= 1024 && u < 5)
        b /= 1024, u++;
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", b, U[u]);
    return out;
}

static void psi_part(json_t *p, const char *name, char *out, size_t cap)
{
    json_t *o = json_object_get(p, name);
    if (!json_is_object(o)) {
        snprintf(out, cap, "%s n/a", name);
        return;
    }
    if (json_object_get(o, "full_avg10"))
        snprintf(out, cap, "%s some %.2f%% full %.2f%%", name, num(o, "some_avg10"),
                 num(o, "full_avg10"));
    else
        snprintf(out, cap, "%s some %.2f%%", name, num(o, "some_avg10"));
}

static void show_metrics(admin *a, json_t *j)
{
    if (a->json) {
        dump_json(j);
        return;
    }
    char b1[32], b2[32], b3[32], b4[32], b5[32];
    double up = num(j, "uptime_s");
    printf("node       %s   (machine up %dd %dh %dm, sampled every %.0f ms)\n", str(j, "node"),
           (int)(up / 86400), (int)(up / 3600) % 24, (int)(up / 60) % 60, num(j, "interval_ms"));
    printf("cpu        %.1f%% busy of %.0f CPUs (user %.1f, system %.1f, iowait %.1f, steal "
           "%.1f)\n",
           num(j, "cpu.percent"), num(j, "cpu.count"), num(j, "cpu.modes.user"),
           num(j, "cpu.modes.system"), num(j, "cpu.modes.iowait"), num(j, "cpu.modes.steal"));
    printf("load       %.2f %.2f %.2f\n", num(j, "load.load1"), num(j, "load.load5"),
           num(j, "load.load15"));
    printf("memory     used %s of %s, available %s (%.1f%%), swap used %s of %s\n",
           human(num(j, "memory.used_bytes"), b1, sizeof(b1)),
           human(num(j, "memory.total_bytes"), b2, sizeof(b2)),
           human(num(j, "memory.available_bytes"), b3, sizeof(b3)),
           num(j, "memory.available_percent"),
           human(num(j, "memory.swap_used_bytes"), b4, sizeof(b4)),
           human(num(j, "memory.swap_total_bytes"), b5, sizeof(b5)));
    json_t *p = json_object_get(j, "pressure");
    char c[64], m[64], io[64];
    psi_part(p, "cpu", c, sizeof(c));
    psi_part(p, "memory", m, sizeof(m));
    psi_part(p, "io", io, sizeof(io));
    printf("pressure   %s, %s, %s (avg10)\n", c, m, io);
    printf("\n%-28s %-18s %-8s %10s %10s %10s %5s %7s\n", "MOUNT", "DEVICE", "TYPE", "SIZE", "USED",
           "AVAIL", "USE%", "INODES%");
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(j, "disks"), i, d)
    {
        double size = num(d, "size_bytes"), fr = num(d, "free_bytes");
        double it = num(d, "inodes_total"), ifr = num(d, "inodes_free");
        printf("%-28s %-18s %-8s %10s %10s %10s %4.0f%% %6.0f%%\n", str(d, "mount"),
               str(d, "device"), str(d, "fstype"), human(size, b1, sizeof(b1)),
               human(size - fr, b2, sizeof(b2)), human(num(d, "avail_bytes"), b3, sizeof(b3)),
               num(d, "used_percent"), it > 0 ? 100.0 * (it - ifr) / it : 0.0);
    }
    printf("\n%-16s %12s %12s %14s\n", "DISK", "READ/s", "WRITE/s", "IO TIME (ms)");
    json_array_foreach(json_object_get(j, "disk_io"), i, d)
    {
        printf("%-16s %12s %12s %14.0f\n", str(d, "device"),
               human(num(d, "read_bytes_per_s"), b1, sizeof(b1)),
               human(num(d, "write_bytes_per_s"), b2, sizeof(b2)), num(d, "io_time_ms"));
    }
    printf("\n%-16s %12s %12s %10s %10s\n", "INTERFACE", "RX/s", "TX/s", "RX ERR", "TX ERR");
    json_array_foreach(json_object_get(j, "network"), i, d)
    {
        printf("%-16s %12s %12s %10.0f %10.0f\n", str(d, "interface"),
               human(num(d, "rx_bytes_per_s"), b1, sizeof(b1)),
               human(num(d, "tx_bytes_per_s"), b2, sizeof(b2)), num(d, "rx_errors"),
               num(d, "tx_errors"));
    }
    printf("\nprocess    rss %s, %.0f fds, %.0f threads, %.0f connections, %s queued\n",
           human(num(j, "process.rss_bytes"), b1, sizeof(b1)), num(j, "process.fds"),
           num(j, "process.threads"), num(j, "process.connections"),
           human(num(j, "process.queue_bytes"), b2, sizeof(b2)));
}

int bl__cli_metrics(int argc, char **argv)
{
    admin a = {
        .cmd = "metrics", .proc = "beamlet_health", .request = "metrics", .show = show_metrics};
    return bl__cli_admin(&a, argc, argv);
}

static void print_alerts(json_t *list, int all);

static void show_health(admin *a, json_t *j)
{
    if (a->json) {
        dump_json(j);
        return;
    }
    json_t *c = json_object_get(j, "components");
    const char *leader = json_string_value(json_object_get(j, "leader"));
    printf("cluster    %s, score %.2f, leader %s (term %.0f), quorum %s\n", str(j, "status"),
           num(j, "score"), leader ? leader : "none", num(j, "term"),
           json_is_true(json_object_get(c, "quorum")) ? "yes" : "NO");
    printf("parts      availability %.2f, node health %.2f, services %.2f%s\n",
           num(c, "availability"), num(c, "node_health"), num(c, "services"),
           json_is_true(json_object_get(c, "leader_ok")) ? "" : ", NO LEADER");
    printf("\n%-28s %-12s %-10s %-9s %-5s %6s %9s %9s %6s  %s\n", "NODE", "ROLE", "STATE", "STATUS",
           "MAINT", "CPU%", "MEMAVAIL%", "DISKMAX%", "LOAD1", "REASONS");
    size_t i, k;
    json_t *m, *r;
    json_array_foreach(json_object_get(j, "nodes"), i, m)
    {
        char reasons[512] = "";
        size_t off = 0;
        json_array_foreach(json_object_get(m, "reasons"), k, r) off += (size_t)snprintf(
            reasons + off, off < sizeof(reasons) ? sizeof(reasons) - off : 0, "%s%s", k ? "; " : "",
            json_string_value(r) ? json_string_value(r) : "");
        printf("%-28s %-12s %-10s %-9s %-5s %6.1f %9.1f %9.1f %6.2f  %s\n", str(m, "node"),
               str(m, "role"), str(m, "state"), str(m, "status"),
               json_is_true(json_object_get(m, "maintenance")) ? "yes" : "-", num(m, "cpu_percent"),
               num(m, "mem_available_percent"), num(m, "disk_max_used_percent"), num(m, "load1"),
               reasons[0] ? reasons : "-");
    }
    printf("\nALERTS\n");
    print_alerts(json_object_get(j, "alerts"), 0);
    printf("\nRECOMMENDATIONS\n");
    json_t *recs = json_object_get(j, "recommendations");
    json_array_foreach(recs, i, m) printf("  [%s] %s\n      -> %s\n", str(m, "severity"),
                                          str(m, "condition"), str(m, "action"));
    if (!json_array_size(recs)) printf("  (none)\n");
}

int bl__cli_health(int argc, char **argv)
{
    admin a = {.cmd = "health", .proc = "beamlet_health", .request = "health", .show = show_health};
    return bl__cli_admin(&a, argc, argv);
}

/* beamlet node maintenance on|off --node N [--who NAME] */
typedef struct maint_opts {
    int on, set;
} maint_opts;

static int maint_opt(admin *a, int argc, char **argv, int i)
{
    (void)argc;
    maint_opts *o = a->ud;
    if (!strcmp(argv[i], "on") || !strcmp(argv[i], "off")) {
        o->on = !strcmp(argv[i], "on");
        o->set = 1;
        return 1;
    }
    return 0;
}

static int maint_encode(admin *a, ei_x_buff *x)
{
    maint_opts *o = a->ud;
    if (!o->set) {
        snprintf(a->err, sizeof(a->err), "say on or off");
        return -1;
    }
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, "maintenance");
    ei_x_encode_boolean(x, o->on);
    ei_x_encode_binary(x, a->who, (long)strlen(a->who));
    return 0;
}

static void maint_show(admin *a, json_t *j)
{
    maint_opts *o = a->ud;
    if (json_is_string(j) && !strcmp(json_string_value(j), "ok")) {
        printf("%s: maintenance %s\n", a->target, o->on ? "on" : "off");
        return;
    }
    fprintf(stderr, "beamlet node maintenance: %s: refused\n", a->target);
    a->exit_code = 1;
}

int bl__cli_maintenance(int argc, char **argv)
{
    maint_opts o = {0};
    admin a = {.cmd = "node maintenance",
               .proc = "beamlet_health",
               .with_who = 1,
               .opt = maint_opt,
               .encode = maint_encode,
               .show = maint_show,
               .ud = &o};
    /* "on"/"off" must not be taken for the target node */
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "on") || !strcmp(argv[i], "off")) {
            maint_opt(&a, argc, argv, i);
            for (int k = i; k + 1 < argc; k++)
                argv[k] = argv[k + 1];
            argc--;
            break;
        }
    return bl__cli_admin(&a, argc, argv);
}

/* beamlet alerts --node N [--all] | beamlet alerts ack ID --node N [--who NAME] */
typedef struct alert_opts {
    int all, ack;
    unsigned long long id;
} alert_opts;

static void print_alerts(json_t *list, int all)
{
    size_t i;
    json_t *a;
    int shown = 0;
    printf("%-5s %-9s %-8s %-16s %-22s %-19s %-14s %s\n", "ID", "STATE", "SEVERITY", "RULE", "NODE",
           "SINCE", "ACKED BY", "SUMMARY");
    json_array_foreach(list, i, a)
    {
        if (!all && !strcmp(str(a, "state"), "resolved")) continue;
        char t[32];
        fmt_time((unsigned long long)num(a, "since_ms"), t, sizeof(t));
        const char *by = json_string_value(json_object_get(a, "acked_by"));
        printf("%-5.0f %-9s %-8s %-16s %-22s %-19s %-14s %s\n", num(a, "id"), str(a, "state"),
               str(a, "severity"), str(a, "rule"), str(a, "node"), t, by ? by : "-",
               str(a, "summary"));
        shown++;
    }
    if (!shown) printf("(no %salerts)\n", all ? "" : "pending or firing ");
}

static int alert_opt(admin *a, int argc, char **argv, int i)
{
    alert_opts *o = a->ud;
    (void)argc;
    if (!strcmp(argv[i], "--all")) {
        o->all = 1;
        return 1;
    }
    return 0;
}

static int alert_encode(admin *a, ei_x_buff *x)
{
    alert_opts *o = a->ud;
    if (!o->ack) return ei_x_encode_atom(x, "alerts");
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, "ack");
    ei_x_encode_ulonglong(x, o->id);
    ei_x_encode_binary(x, a->who, (long)strlen(a->who));
    return 0;
}

static void alert_show(admin *a, json_t *j)
{
    alert_opts *o = a->ud;
    if (o->ack) {
        if (json_is_string(j) && !strcmp(json_string_value(j), "ok")) {
            printf("alert %llu acknowledged by %s\n", o->id, a->who);
            return;
        }
        fprintf(stderr, "beamlet alerts ack: %s: no alert %llu\n", a->target, o->id);
        a->exit_code = 1;
        return;
    }
    json_t *list = ok_value(a, j);
    if (!list) return;
    if (a->json)
        dump_json(list);
    else
        print_alerts(list, o->all);
}

int bl__cli_alerts(int argc, char **argv)
{
    alert_opts o = {0};
    if (argc >= 1 && !strcmp(argv[0], "ack")) {
        char *end = NULL;
        if (argc < 2 || !(o.id = strtoull(argv[1], &end, 10)) || *end) {
            fprintf(stderr,
                    "beamlet alerts ack: give the alert's ID (beamlet alerts lists them)\n");
            return 1;
        }
        o.ack = 1;
        argc -= 2, argv += 2;
    }
    admin a = {.cmd = o.ack ? "alerts ack" : "alerts",
               .proc = "beamlet_health",
               .with_who = o.ack,
               .opt = alert_opt,
               .encode = alert_encode,
               .show = alert_show,
               .ud = &o};
    return bl__cli_admin(&a, argc, argv);
}

static void show_checks(admin *a, json_t *j)
{
    json_t *list = ok_value(a, j);
    if (!list) return;
    if (a->json) {
        dump_json(list);
        return;
    }
    printf("%-20s %-8s %-9s %-16s %-19s %s\n", "CHECK", "KIND", "STATUS", "SERVICE", "SINCE",
           "OUTPUT");
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        char t[32] = "-";
        if (num(c, "changed_ms") > 0)
            fmt_time((unsigned long long)num(c, "changed_ms"), t, sizeof(t));
        const char *svc = str(c, "service");
        printf("%-20s %-8s %-9s %-16s %-19s %s\n", str(c, "name"), str(c, "kind"), str(c, "status"),
               *svc ? svc : "-", t, str(c, "output"));
    }
    if (!json_array_size(list)) printf("(no checks: see health_checks in docs/health.md)\n");
}

int bl__cli_checks(int argc, char **argv)
{
    admin a = {.cmd = "checks", .proc = "beamlet_health", .request = "checks", .show = show_checks};
    return bl__cli_admin(&a, argc, argv);
}
