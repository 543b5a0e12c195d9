/* malloc_count.so: counts the calls of malloc, calloc, realloc and aligned allocations of a
 * process (LD_PRELOAD), all threads together, and writes the running total to stderr on
 * SIGUSR2: "malloc_count: N". bench/gateway_allocs.sh reads it before and after a run of
 * requests to tell the allocations per request.
 *   cc -O2 -shared -fPIC -o malloc_count.so bench/malloc_count.c -ldl */
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);

static uint64_t count;

static void Report(int sig) {
  (void)sig;
  char buf[64] = "malloc_count: ";
  char digits[24];
  int n = 0;
  uint64_t v = __atomic_load_n(&count, __ATOMIC_RELAXED);
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  size_t at = strlen(buf);
  while (n > 0) buf[at++] = digits[--n];
  buf[at++] = '\n';
  ssize_t ignored = write(2, buf, at);
  (void)ignored;
}

__attribute__((constructor)) static void Init(void) { signal(SIGUSR2, Report); }

void* malloc(size_t n) {
  __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
  return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) {
  __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
  __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
  *out = __libc_memalign(a, n);
  return *out ? 0 : 12;
}
void* aligned_alloc(size_t a, size_t n) {
  __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
  return __libc_memalign(a, n);
}
