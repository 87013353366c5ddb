/*
 * eventseq.c - event sequence numbers that survive restarts (eventseq.h). The file
 * <state_dir>/event-seq holds one decimal number, above every number handed out so far. It is
 * written atomically (temporary file, fsync, rename, fsync of the directory), mode 0600, before
 * numbers of the range it covers are used.
 */
#include "eventseq.h"

#include "pgr/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How many numbers one write of the floor covers: about a second of the clock's microseconds, so
 * that a crash loop moves the numbers only a second per restart ahead of the clock; a clean stop
 * writes the exact next number. */
#define EVENTSEQ_RESERVE (1LL << 20)

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static pgr_code read_floor(const char *path, long long *floor, pgr_error *err)
{
    char buf[32] = {0};
    *floor = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return PGR_OK;
    if (fd < 0)
        return pgr_error_set(err, PGR_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    char *end = NULL;
    errno = 0;
    long long v = n > 0 ? strtoll(buf, &end, 10) : -1;
    /* far below the limit: the reserve is added to it */
    if (n <= 0 || v < 0 || errno != 0 || v > (1LL << 60) || end == buf ||
        (*end != '\n' && *end != '\0'))
        return pgr_error_set(err, PGR_ERR_INVALID, "\"%s\" does not hold a sequence number", path);
    *floor = v;
    return PGR_OK;
}

static pgr_code write_floor(const char *dir, const char *path, long long floor, pgr_error *err)
{
    char tmp[4096], text[32];
    /* one temporary file per process: agents may share a state directory */
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    int len = snprintf(text, sizeof(text), "%lld\n", floor);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    int dfd = ok ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    ok = ok && dfd >= 0 && fsync(dfd) == 0;
    if (dfd >= 0)
        close(dfd);
    if (!ok)
        return pgr_error_set(err, PGR_ERR_IO, "could not write \"%s\": %s", path, strerror(errno));
    return PGR_OK;
}

static void floor_path(const agent_eventseq *s, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/event-seq", s->state_dir);
}

pgr_code agent_eventseq_start(agent_eventseq *s, const char *state_dir, pgr_error *err)
{
    char path[4096];
    long long floor = 0;
    s->state_dir = state_dir;
    s->next = now_us();
    s->reserved = 0;
    if (state_dir == NULL)
        return PGR_OK;
    floor_path(s, path, sizeof(path));
    pgr_code rc = read_floor(path, &floor, err);
    if (rc != PGR_OK)
        return rc;
    s->next = floor > s->next ? floor : s->next;
    rc = write_floor(state_dir, path, s->next + EVENTSEQ_RESERVE, err);
    if (rc == PGR_OK)
        s->reserved = s->next + EVENTSEQ_RESERVE;
    return rc;
}

long long agent_eventseq_next(agent_eventseq *s)
{
    if (s->state_dir != NULL && s->next >= s->reserved) {
        char path[4096];
        pgr_error err;
        floor_path(s, path, sizeof(path));
        if (write_floor(s->state_dir, path, s->next + EVENTSEQ_RESERVE, &err) == PGR_OK) {
            s->reserved = s->next + EVENTSEQ_RESERVE;
        } else {
            pgr_log_ctx ctx = {"events", NULL, NULL};
            pgr_log_error(&ctx, "event sequence floor: %s", err.msg);
            s->reserved = s->next + EVENTSEQ_RESERVE; /* logged once per range */
        }
    }
    return s->next++;
}

void agent_eventseq_stop(agent_eventseq *s)
{
    char path[4096];
    pgr_error err;
    if (s->state_dir == NULL)
        return;
    floor_path(s, path, sizeof(path));
    if (write_floor(s->state_dir, path, s->next, &err) != PGR_OK) {
        pgr_log_ctx ctx = {"events", NULL, NULL};
        pgr_log_error(&ctx, "event sequence floor: %s", err.msg);
    }
}
