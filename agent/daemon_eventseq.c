/*
 * daemon_eventseq.c - event sequence numbers that survive restarts (daemon_eventseq.h). The file
 * <state_dir>/event-seq holds one decimal number, above every number handed out so far, written
 * as every file of the state directory is (agent_seqstore_file_write) before numbers of the range
 * it covers are used.
 */
#include "daemon_eventseq.h"
#include "seqstore.h"

#include "pgr/log.h"

#include <stdio.h>
#include <time.h>

/* How many numbers one write of the floor covers: about a second of the clock's microseconds, so
 * that a crash loop moves the numbers only a second per restart ahead of the clock; a clean stop
 * writes the exact next number. */
#define EVENTSEQ_RESERVE (1LL << 20)

/* Far below the limit of a long long: the reserve is added to a floor read from the file. */
#define EVENTSEQ_FLOOR_MAX (1LL << 60)

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void floor_path(const daemon_eventseq *s, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/event-seq", s->state_dir);
}

pgr_code daemon_eventseq_start(daemon_eventseq *s, const char *state_dir, pgr_error *err)
{
    char path[4096];
    long long floor = 0;
    s->state_dir = state_dir;
    s->next = now_us();
    s->reserved = 0;
    if (state_dir == NULL)
        return PGR_OK;
    floor_path(s, path, sizeof(path));
    pgr_code rc = agent_seqstore_file_read(path, EVENTSEQ_FLOOR_MAX, &floor, err);
    if (rc != PGR_OK)
        return rc;
    s->next = floor > s->next ? floor : s->next;
    rc = agent_seqstore_file_write(state_dir, path, s->next + EVENTSEQ_RESERVE, err);
    if (rc == PGR_OK)
        s->reserved = s->next + EVENTSEQ_RESERVE;
    return rc;
}

long long daemon_eventseq_next(daemon_eventseq *s)
{
    if (s->state_dir != NULL && s->next >= s->reserved) {
        char path[4096];
        pgr_error err;
        floor_path(s, path, sizeof(path));
        if (agent_seqstore_file_write(s->state_dir, path, s->next + EVENTSEQ_RESERVE, &err) ==
            PGR_OK) {
            s->reserved = s->next + EVENTSEQ_RESERVE;
        } else {
            pgr_log_ctx ctx = {"events", NULL, NULL};
            pgr_log_error(&ctx, "event sequence floor: %s", err.msg);
            s->reserved = s->next + EVENTSEQ_RESERVE; /* logged once per range */
        }
    }
    return s->next++;
}

void daemon_eventseq_stop(daemon_eventseq *s)
{
    char path[4096];
    pgr_error err;
    if (s->state_dir == NULL)
        return;
    floor_path(s, path, sizeof(path));
    if (agent_seqstore_file_write(s->state_dir, path, s->next, &err) != PGR_OK) {
        pgr_log_ctx ctx = {"events", NULL, NULL};
        pgr_log_error(&ctx, "event sequence floor: %s", err.msg);
    }
}
