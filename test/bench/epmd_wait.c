/* epmd_wait.c - start-up figures for `make bench`: time from exec to published in EPMD, and VmRSS.
 *
 * usage: bench_epmd_wait ALIVE RSS_AFTER_MS -- PROGRAM ARGS...
 * Forks and execs PROGRAM (stdout/stderr to /dev/null, dies with us via PR_SET_PDEATHSIG), then
 * asks EPMD (127.0.0.1, ERL_EPMD_PORT or 4369) for ALIVE with PORT_PLEASE2_REQ every 100 us until
 * it answers. At RSS_AFTER_MS after the exec it reads VmRSS of the process and of its direct
 * children (BEAM's erl_child_setup), plus its RssAnon (private memory) and Pss (shared pages
 * divided among their users) and its thread count, then SIGTERMs it (SIGKILL after 5 s) and
 * prints one line:
 *   publish_us=N rss_kb=N rss_anon_kb=N pss_kb=N children_rss_kb=N threads=N comm=NAME
 * publish_us=-1 when the name never showed up within 30 s. Exit status 0 unless it could not run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* 1: ALIVE is registered, 0: not (yet), -1: EPMD unreachable. */
static int epmd_has(const char *alive, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    size_t len = strlen(alive);
    unsigned char req[300];
    req[0] = (unsigned char)((len + 1) >> 8);
    req[1] = (unsigned char)(len + 1);
    req[2] = 122; /* PORT_PLEASE2_REQ */
    memcpy(req + 3, alive, len);
    int found = 0;
    if (write(fd, req, len + 3) == (ssize_t)(len + 3)) {
        unsigned char resp[2];
        if (read(fd, resp, 2) == 2 && resp[0] == 119 && resp[1] == 0) found = 1;
    }
    close(fd);
    return found;
}

/* The value of a "Key:   N kB" line of a /proc file, or -1. */
static long proc_kb(pid_t pid, const char *file, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0) kb = strtol(line + kl, NULL, 10);
    fclose(f);
    return kb;
}

static long children_rss_kb(pid_t parent)
{
    DIR *d = opendir("/proc");
    if (!d) return 0;
    long sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        long ppid = -1, kb = 0;
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "PPid:", 5) == 0) ppid = strtol(line + 5, NULL, 10);
            if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
        }
        fclose(f);
        if (ppid == parent) sum += kb;
    }
    closedir(d);
    return sum;
}

static void comm_of(pid_t pid, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    snprintf(out, cap, "?");
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fgets(out, (int)cap, f)) out[strcspn(out, "\n")] = 0;
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[3], "--") != 0) {
        fprintf(stderr, "usage: bench_epmd_wait ALIVE RSS_AFTER_MS -- PROGRAM ARGS...\n");
        return 2;
    }
    const char *alive = argv[1];
    long rss_after_ms = atol(argv[2]);
    const char *pe = getenv("ERL_EPMD_PORT");
    int port = pe && *pe ? atoi(pe) : 4369;
    if (strlen(alive) > 255) return 2;
    if (epmd_has(alive, port) != 0) {
        fprintf(stderr, "bench_epmd_wait: EPMD unreachable or %s already registered\n", alive);
        return 1;
    }
    pid_t parent = getpid();
    int64_t t0 = now_us();
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        execvp(argv[4], argv + 4);
        _exit(127);
    }
    int64_t published = -1;
    while (now_us() - t0 < 30000000) {
        if (epmd_has(alive, port) == 1) {
            published = now_us() - t0;
            break;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            pid = -1;
            break;
        }
        sleep_us(100);
    }
    long rss = -1, anon = -1, pss = -1, crss = 0, threads = -1;
    char comm[64] = "exited";
    if (pid > 0) {
        int64_t left = t0 + rss_after_ms * 1000 - now_us();
        if (left > 0) sleep_us((long)left);
        rss = proc_kb(pid, "status", "VmRSS:");
        anon = proc_kb(pid, "status", "RssAnon:");
        pss = proc_kb(pid, "smaps_rollup", "Pss:");
        threads = proc_kb(pid, "status", "Threads:");
        crss = children_rss_kb(pid);
        comm_of(pid, comm, sizeof(comm));
        kill(pid, SIGTERM);
        int64_t until = now_us() + 5000000;
        while (waitpid(pid, NULL, WNOHANG) != pid) {
            if (now_us() > until) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                break;
            }
            sleep_us(10000);
        }
    }
    printf("publish_us=%lld rss_kb=%ld rss_anon_kb=%ld pss_kb=%ld children_rss_kb=%ld threads=%ld "
           "comm=%s\n",
           (long long)published, rss, anon, pss, crss, threads, comm);
    return 0;
}
