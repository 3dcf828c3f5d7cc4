/*
 * oom.c - allocate until the address-space limit, then recover.
 *
 * Run under `prlimit --as=...` (check_oom.sh). Each phase allocates until
 * NULL and requires errno == ENOMEM; every block carries a pattern that is
 * checked before it is freed, so an allocator that hands out memory twice
 * or corrupts its structures on the failure path is caught. After freeing,
 * allocation must work again: the allocator's state stayed consistent.
 *
 * Env: OOM_SMALL_CAP (max small blocks, default 8M) bounds the run when no
 * limit is set.
 */
#include <malloc.h>
#include <pthread.h>

#include "common.h"

struct blk {
	struct blk *next;
	size_t size;
	uint64_t tag;
};

static uint64_t next_tag = 1;

/* Allocates blocks of `size` until NULL (or cap); returns the chain. */
static struct blk *
fill_until_null(size_t size, unsigned long cap, unsigned long *count,
		bool use_calloc)
{
	struct blk *head = NULL, *b;
	unsigned long n = 0;

	for (;;) {
		errno = 0;
		b = use_calloc ? calloc(1, size) : malloc(size);
		if (!b)
			break;
		b->next = head;
		b->size = size;
		b->tag = next_tag++;
		pattern_fill(b + 1, size - sizeof(*b), b->tag);
		head = b;
		if (++n == cap)
			break;
	}
	if (n != cap && errno != ENOMEM)
		fail("oom: %s(%zu) returned NULL with errno %d (%s), not "
		     "ENOMEM, after %lu blocks", use_calloc ? "calloc" :
		     "malloc", size, errno, strerror(errno), n);
	*count = n;
	return head;
}

static void
check_blk(const struct blk *b)
{
	size_t bad = pattern_check(b + 1, b->size - sizeof(*b), b->tag);

	if (bad != (size_t)-1)
		fail("oom: block %p size %zu corrupted at %zu", (void *)b,
		     b->size, bad);
}

/* Frees every other block (or all); returns the kept chain. */
static struct blk *
free_some(struct blk *head, bool all)
{
	struct blk *keep = NULL, *next;
	unsigned long i = 0;

	for (; head; head = next, i++) {
		next = head->next;
		check_blk(head);
		if (all || i % 2 == 0) {
			free(head);
		} else {
			head->next = keep;
			keep = head;
		}
	}
	return keep;
}

static void *
thread_fill(void *arg)
{
	unsigned long n;
	struct blk *h = fill_until_null(4096 + 64, 1UL << 22, &n, false);

	*(unsigned long *)arg = n;
	free_some(h, true);
	return NULL;
}

int
main(void)
{
	unsigned long cap = env_long("OOM_SMALL_CAP", 8L << 20);
	unsigned long n_big, n_small, n_again, n_t[2];
	struct blk *big, *small, *again;
	char *p, *q;
	pthread_t t[2];
	unsigned nr_problems = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	big = fill_until_null(1 << 20, 1UL << 20, &n_big, false);
	small = fill_until_null(64, cap, &n_small, false);
	printf("oom: %lu blocks of 1 MiB, then %lu of 64 bytes before "
	       "ENOMEM\n", n_big, n_small);
	if (n_big < 8)
		fail("oom: only %lu MiB before the first NULL", n_big);

	/* At the limit: failing calls leave everything as it was. */
	errno = 0;
	p = calloc(1, 1 << 20);
	if (p)
		free(p);
	else if (errno != ENOMEM)
		fail("oom: calloc at the limit: errno %d", errno);
	q = small ? (char *)small : NULL;
	if (q) {
		errno = 0;
		p = realloc(q, 64 << 20);
		if (p) {
			/* Small blocks can run out before the address space
			 * does (an allocator's small-object region is full):
			 * then the moved block must be intact. */
			small = (struct blk *)p;
			if (pattern_check_as(small + 1, (struct blk *)q + 1,
					     small->size - sizeof(*small),
					     small->tag, small->size) !=
			    (size_t)-1)
				fail("oom: realloc at the limit lost contents");
			pattern_fill(small + 1, small->size - sizeof(*small),
				     small->tag);
		} else if (errno != ENOMEM) {
			fail("oom: realloc at the limit: errno %d", errno);
		}
		check_blk(small);
	}

	/* Give back half the big blocks: at least a quarter must come back
	 * as new blocks of the same size. */
	big = free_some(big, false);
	small = free_some(small, true);
	again = fill_until_null(1 << 20, 1UL << 20, &n_again, true);
	printf("oom: after freeing half, %lu more blocks of 1 MiB\n",
	       n_again);
	if (n_again < n_big / 4)
		fail("oom: only %lu of %lu MiB came back after free", n_again,
		     n_big / 2);
	free_some(again, true);
	free_some(big, true);

	/* Everything freed: half of what fitted fits again in one block. */
	p = malloc(n_big / 2 << 20);
	if (p) {
		memset(p, 7, n_big / 2 << 20);
		free(p);
	} else {
		/* Reported at the end, so the later phases still run. */
		fprintf(stderr, "oom: malloc(%lu MiB) failed after everything "
			"was freed\n", n_big / 2);
		nr_problems++;
	}

	/* Two threads race to the limit. */
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, thread_fill, &n_t[i]))
			fail("oom: pthread_create failed");
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("oom: two threads got %lu + %lu blocks of 4 KiB\n", n_t[0],
	       n_t[1]);

	/* Thread arenas or caches may keep some address space; a modest
	 * block and many small ones must work again. */
	p = malloc(8 << 20);
	if (!p)
		fail("oom: malloc(8 MiB) failed after the threads exited");
	memset(p, 7, 8 << 20);
	free(p);
	small = fill_until_null(64, 100000, &n_small, false);
	if (n_small != 100000)
		fail("oom: small allocations fail after recovery");
	free_some(small, true);
	if (nr_problems)
		fail("oom: %u problem(s), see above", nr_problems);
	printf("oom: ok\n");
	return 0;
}
