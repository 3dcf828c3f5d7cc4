/*
 * os_proc.h - the process-level calls the zero-page engine needs to stay
 * out of a program's way: signal masks around its critical sections,
 * noticing a seccomp sandbox, waiting until a thread has really left the
 * thread group, and glibc's own versions of the calls the shim interposes.
 * Like os.h: calls return 0 or a positive errno value and leave errno
 * alone, unless stated.
 */
#ifndef ZP_OS_OS_PROC_H
#define ZP_OS_OS_PROC_H

#include "base/util.h"

/* Block every signal in the calling thread (rt_sigprocmask), saving the
 * old mask in *old; os_sig_restore puts it back. A handler can then never
 * run in a thread that holds one of the engine's locks. A refused call
 * (a sandbox) is ignored: the mask then simply stays as it was. */
void os_sig_block_all(uint64_t *old);
void os_sig_restore(uint64_t old);

/* True once thread tid no longer belongs to this process (the kernel
 * has released it: unshare(CLONE_NEWUSER) and setns count it until then). */
bool os_thread_is_gone(int tid);

/*
 * The calling thread's seccomp mode from the "Seccomp:" line of a status
 * file kept open (os_status_open: /proc/thread-self/status): 0 none,
 * 1 strict, 2 filter; a negative errno when it cannot be read.
 */
int os_status_open(bool keep, int *fd);
int os_seccomp_mode(int status_fd);
/* The same for the calling thread, opening and closing the file. */
int os_seccomp_mode_self(void);

/*
 * A function libc.so.6 defines, found once through os_libc_symbol and
 * cached in *slot: how the shim calls through to glibc's own close, prctl,
 * syscall... with their exact semantics (errno, cancellation). NULL when
 * libc lacks it.
 */
void *os_libc_fn(void **slot, const char *name);

/* Sleep while *word == val, for at most ns (a wake, a signal or a
 * changed value ends it sooner). */
void os_futex_wait_ns(uint32_t *word, uint32_t val, uint64_t ns);

/* PTHREAD_STACK_MIN plus the static TLS glibc carves from every thread's
 * stack (glibc's __pthread_get_minstack); 0 when unknown. */
size_t os_thread_min_stack(void);

#endif /* ZP_OS_OS_PROC_H */
