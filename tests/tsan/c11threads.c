/*
 * c11threads.c - linked into every executable of the ThreadSanitizer build only (PGR_TSAN).
 * librdkafka starts its threads with C11 thrd_create, which the ThreadSanitizer runtimes of this
 * toolchain (GCC 12, LLVM 14 and 16) do not intercept: such a thread has no sanitizer state and
 * crashes in its first malloc. These definitions take precedence over glibc's for the library
 * and start, join and detach its threads through the intercepted pthread functions.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

typedef struct c11_start {
    thrd_start_t fn;
    void *arg;
} c11_start;

static void *trampoline(void *p)
{
    c11_start s = *(c11_start *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    c11_start *s = malloc(sizeof(*s));
    if (s == NULL)
        return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    if (pthread_create(thr, NULL, trampoline, s) != 0) {
        free(s);
        return thrd_error;
    }
    return thrd_success;
}

int thrd_join(thrd_t thr, int *res)
{
    void *ret = NULL;
    if (pthread_join(thr, &ret) != 0)
        return thrd_error;
    if (res != NULL)
        *res = (int)(intptr_t)ret;
    return thrd_success;
}

int thrd_detach(thrd_t thr)
{
    return pthread_detach(thr) == 0 ? thrd_success : thrd_error;
}
