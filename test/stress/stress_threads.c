/*
 * stress_threads.c - many threads allocate, check, pass on and free.
 *
 * Persistent workers run random malloc/calloc/realloc/free/posix_memalign/
 * aligned_alloc/memalign over a table of slots (sizes mostly small, some up
 * to 4 MiB, rarely up to 16 MiB) and hand objects to each other through
 * locked queues, so most frees are remote. Meanwhile short-lived threads
 * are created and exit continuously, leaving objects behind in the
 * workers' queues. Every object is checked before it is freed, after a
 * realloc (the kept prefix) and when it changes hands.
 *
 * At the end the process compares its overhead (RSS minus the bytes the
 * program holds) after warm-up with the overhead at the end: memory lost
 * per exited thread or per remote free shows up as growth. When zpmalloc
 * is preloaded its slab capacity (zp_slab_info) is compared the same way.
 *
 * Env: STRESS_SECONDS (default 10), STRESS_THREADS (4), STRESS_SLOTS (1024),
 * STRESS_SEED, STRESS_MAX_GROWTH_MB (64).
 * Exit: 0 clean, 1 a check failed (message on stderr).
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common.h"
#include "zpmalloc.h"

#define QCAP		256
#define CHURN_SLOTS	64
#define FLUSH_EVERY	256

enum alloc_kind { K_MALLOC, K_CALLOC, K_MEMALIGN, K_ALIGNED, K_POSIX,
		  K_REALLOC };

struct obj {
	void *p;
	size_t size;
	size_t usable;
	size_t align;
	uint64_t tag;
};

struct queue {
	pthread_mutex_t lock;
	unsigned head, nr;
	struct obj ring[QCAP];
} __attribute__((aligned(64)));

struct worker {
	pthread_t tid;
	struct rng rng;
	unsigned idx;
	struct obj *slots;
	unsigned nr_slots;
	long live_delta;	/* bytes not yet added to live_bytes */
	unsigned long nr_ops;
} __attribute__((aligned(64)));

static struct queue *queues;
static unsigned nr_workers;
static atomic_bool stop;
static atomic_long live_bytes;
static atomic_ulong nr_ops_total, nr_remote;
static atomic_uint churn_running;
static atomic_ulong next_tag = 1;

static void
live_add(struct worker *w, long d)
{
	w->live_delta += d;
	if (++w->nr_ops % FLUSH_EVERY == 0) {
		atomic_fetch_add_explicit(&live_bytes, w->live_delta,
					  memory_order_relaxed);
		w->live_delta = 0;
	}
}

static void
live_flush(struct worker *w)
{
	atomic_fetch_add(&live_bytes, w->live_delta);
	w->live_delta = 0;
	atomic_fetch_add(&nr_ops_total, w->nr_ops);
	w->nr_ops = 0;
}

static size_t
pick_size(struct rng *r)
{
	unsigned k = rng_below(r, 10000);

	if (k == 0)
		return 0;
	if (k < 9000)
		return 1 + rng_below(r, k < 6000 ? 128 : 1024);
	if (k < 9950)
		return 1025 + rng_below(r, 64 << 10);
	if (k < 9995)
		return (64 << 10) + rng_below(r, (4 << 20) - (64 << 10));
	return (4 << 20) + rng_below(r, 12 << 20);
}

static void
check_obj(const struct obj *o, const char *when)
{
	size_t bad = pattern_check(o->p, o->size, o->tag);
	const unsigned char *s = o->p;

	if (bad != (size_t)-1)
		fail("stress: %s: block %p size %zu corrupted at offset %zu",
		     when, o->p, o->size, bad);
	/* The slack up to malloc_usable_size was filled too: it must be ours
	 * alone, not a neighbour's first bytes. */
	for (size_t i = o->size; i < o->usable; i++)
		if (s[i] != (unsigned char)(0xa5 ^ i))
			fail("stress: %s: slack of %p (size %zu usable %zu) "
			     "changed at %zu", when, o->p, o->size, o->usable,
			     i);
}

static void
set_obj(struct obj *o, void *p, size_t size, size_t align, const char *fn)
{
	size_t usable = malloc_usable_size(p);
	unsigned char *s = p;

	if (!p)
		fail("stress: %s(%zu) returned NULL", fn, size);
	if ((uintptr_t)p % align)
		fail("stress: %s(%zu) = %p not aligned to %zu", fn, size, p,
		     align);
	if (usable < size)
		fail("stress: %s(%zu) = %p: malloc_usable_size %zu < size",
		     fn, size, p, usable);
	o->p = p;
	o->size = size;
	o->align = align;
	o->tag = atomic_fetch_add_explicit(&next_tag, 1, memory_order_relaxed);
	pattern_fill(p, size, o->tag);
	/* Only small blocks get their slack checked: large usable sizes can
	 * be whole pages that would cost a full write each time. */
	o->usable = size <= SPARSE_ABOVE && usable - size <= 4096 ? usable
								  : size;
	for (size_t i = size; i < o->usable; i++)
		s[i] = (unsigned char)(0xa5 ^ i);
}

static void
check_zero(const void *p, size_t size)
{
	const unsigned char *s = p;
	size_t step = size <= SPARSE_ABOVE ? 1 : 4093;

	for (size_t i = 0; i < size; i += step)
		if (s[i])
			fail("stress: calloc(%zu) = %p: byte %zu is %#x", size,
			     p, i, s[i]);
}

static void
obj_alloc(struct worker *w, struct obj *o)
{
	struct rng *r = &w->rng;
	size_t size = pick_size(r), align = 16;
	unsigned k = rng_below(r, 100);
	void *p = NULL;
	int err;

	if (k < 60) {
		p = malloc(size);
		set_obj(o, p, size, 16, "malloc");
	} else if (k < 80) {
		size_t n = 1 + rng_below(r, 8);

		p = calloc(n, size / n + 1);
		check_zero(p, n * (size / n + 1));
		set_obj(o, p, n * (size / n + 1), 16, "calloc");
	} else {
		align = (size_t)16 << rng_below(r, size > (1 << 20) ? 9 : 8);
		if (k < 90) {
			err = posix_memalign(&p, align, size);
			if (err)
				fail("stress: posix_memalign(%zu, %zu) = %d",
				     align, size, err);
			set_obj(o, p, size, align, "posix_memalign");
		} else if (k < 95) {
			/* C17 lets size be any multiple of the alignment. */
			size = (size + align - 1) / align * align;
			p = aligned_alloc(align, size);
			set_obj(o, p, size, align, "aligned_alloc");
		} else {
			p = memalign(align, size);
			set_obj(o, p, size, align, "memalign");
		}
	}
	live_add(w, (long)o->size);
}

static void
obj_free(struct worker *w, struct obj *o, const char *when)
{
	check_obj(o, when);
	free(o->p);
	live_add(w, -(long)o->size);
	o->p = NULL;
}

static void
obj_realloc(struct worker *w, struct obj *o)
{
	size_t size = pick_size(&w->rng);
	size_t keep = size < o->size ? size : o->size;
	void *old = o->p;
	uint64_t tag = o->tag;
	size_t osize = o->size;
	void *p;

	check_obj(o, "before realloc");
	p = realloc(old, size);
	if (!p && size == 0) {
		/* glibc frees and returns NULL for realloc(p, 0). */
		live_add(w, -(long)osize);
		o->p = NULL;
		return;
	}
	if (!p)
		fail("stress: realloc(%p, %zu) returned NULL", old, size);
	if (pattern_check_as(p, old, osize, tag, keep) != (size_t)-1)
		fail("stress: realloc(%p, %zu -> %zu) = %p lost contents at "
		     "%zu", old, osize, size, p,
		     pattern_check_as(p, old, osize, tag, keep));
	set_obj(o, p, size, 16, "realloc");
	live_add(w, (long)size - (long)osize);
}

/* Hand an object to another thread; false when its queue is full. */
static bool
obj_send(struct obj *o, unsigned to)
{
	struct queue *q = &queues[to];
	bool ok = false;

	check_obj(o, "before send");
	pthread_mutex_lock(&q->lock);
	if (q->nr < QCAP) {
		q->ring[(q->head + q->nr++) % QCAP] = *o;
		ok = true;
	}
	pthread_mutex_unlock(&q->lock);
	if (ok)
		o->p = NULL;
	return ok;
}

static bool
obj_recv(unsigned idx, struct obj *o)
{
	struct queue *q = &queues[idx];
	bool ok = false;

	pthread_mutex_lock(&q->lock);
	if (q->nr) {
		*o = q->ring[q->head];
		q->head = (q->head + 1) % QCAP;
		q->nr--;
		ok = true;
	}
	pthread_mutex_unlock(&q->lock);
	if (ok)
		check_obj(o, "after receive");
	return ok;
}

static void
step(struct worker *w, bool can_recv)
{
	struct obj *o = &w->slots[rng_below(&w->rng, w->nr_slots)];
	unsigned k;

	if (!o->p) {
		if (can_recv && rng_below(&w->rng, 4) == 0 &&
		    obj_recv(w->idx, o)) {
			atomic_fetch_add_explicit(&nr_remote, 1,
						  memory_order_relaxed);
			return;
		}
		obj_alloc(w, o);
		return;
	}
	k = rng_below(&w->rng, 100);
	if (k < 50) {
		obj_free(w, o, "before free");
	} else if (k < 70) {
		obj_realloc(w, o);
	} else if (k < 90) {
		obj_send(o, rng_below(&w->rng, nr_workers));
	} else {
		check_obj(o, "idle check");
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct obj o;

	w->slots = calloc(w->nr_slots, sizeof(*w->slots));
	if (!w->slots)
		fail("stress: calloc of the slot table failed");
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		for (int i = 0; i < 1024; i++)
			step(w, true);
	for (unsigned i = 0; i < w->nr_slots; i++)
		if (w->slots[i].p)
			obj_free(w, &w->slots[i], "final free");
	while (obj_recv(w->idx, &o))
		obj_free(w, &o, "final free");
	free(w->slots);
	live_flush(w);
	return NULL;
}

/* A short-lived thread: some work, some objects left for the workers,
 * then exit (half of them detached, so both exit paths run). */
static void *
churn_main(void *arg)
{
	struct worker w = { .idx = (unsigned)-1, .nr_slots = CHURN_SLOTS };
	struct obj slots[CHURN_SLOTS] = { 0 };
	unsigned n;

	rng_seed(&w.rng, (uintptr_t)arg);
	w.slots = slots;
	n = 200 + rng_below(&w.rng, 2000);
	for (unsigned i = 0; i < n; i++)
		step(&w, false);
	for (unsigned i = 0; i < CHURN_SLOTS; i++) {
		if (!slots[i].p)
			continue;
		if (i % 2 == 0 ||
		    !obj_send(&slots[i], rng_below(&w.rng, nr_workers)))
			obj_free(&w, &slots[i], "churn exit");
	}
	live_flush(&w);
	atomic_fetch_sub(&churn_running, 1);
	return NULL;
}

/* Slab capacity in bytes when zpmalloc is preloaded, else 0. */
static uint64_t
zp_slab_bytes(void)
{
	int (*info)(unsigned, struct zp_slab_info *) =
		(int (*)(unsigned, struct zp_slab_info *))dlsym(RTLD_DEFAULT,
							"zp_slab_info");
	struct zp_slab_info si;
	uint64_t sum = 0;

	if (!info)
		return 0;
	for (unsigned i = 0; info(i, &si) == 0; i++)
		sum += si.total_objects * si.object_size;
	return sum;
}

int
main(void)
{
	double secs = stress_seconds(10);
	unsigned long seed = env_long("STRESS_SEED", (long)now_ns());
	long max_growth = env_long("STRESS_MAX_GROWTH_MB", 64) << 20;
	/* A leak that starts before warm-up hides from the relative bound;
	 * zpmalloc ends near 100 MiB of overhead here, glibc near 250. */
	long max_over = env_long("STRESS_MAX_OVERHEAD_MB", 1024) << 20;
	struct worker *ws;
	uint64_t t0 = now_ns(), warm_at, end_at, now;
	long warm_over = -1, end_over, warm_rss = 0, end_rss;
	uint64_t warm_slab = 0, end_slab;
	pthread_t churn[2] = { 0 };
	unsigned long spawned = 0;
	pthread_attr_t detached;

	nr_workers = env_long("STRESS_THREADS", 4);
	if (nr_workers < 1)
		nr_workers = 1;
	printf("stress_threads: %u workers, %.1f s, seed %lu\n", nr_workers,
	       secs, seed);
	fflush(stdout);
	queues = calloc(nr_workers, sizeof(*queues));
	ws = aligned_alloc(64, nr_workers * sizeof(*ws));
	if (!queues || !ws)
		fail("stress: setup allocation failed");
	memset(ws, 0, nr_workers * sizeof(*ws));
	for (unsigned i = 0; i < nr_workers; i++) {
		pthread_mutex_init(&queues[i].lock, NULL);
		ws[i].idx = i;
		ws[i].nr_slots = env_long("STRESS_SLOTS", 1024);
		rng_seed(&ws[i].rng, seed + i);
		if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]))
			fail("stress: pthread_create failed");
	}
	pthread_attr_init(&detached);
	pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
	warm_at = t0 + (uint64_t)(secs * 0.25e9);
	end_at = t0 + (uint64_t)(secs * 1e9);
	while ((now = now_ns()) < end_at) {
		unsigned slot = spawned % 2;
		void *arg = (void *)(uintptr_t)(seed ^ mix64(spawned));

		if (atomic_load(&churn_running) >= 3) {
			usleep(200);
			continue;
		}
		atomic_fetch_add(&churn_running, 1);
		if (spawned % 4 == 3) {
			pthread_t t;

			if (pthread_create(&t, &detached, churn_main, arg))
				fail("stress: pthread_create failed");
		} else {
			if (churn[slot] && pthread_join(churn[slot], NULL))
				fail("stress: pthread_join failed");
			if (pthread_create(&churn[slot], NULL, churn_main, arg))
				fail("stress: pthread_create failed");
		}
		spawned++;
		if (warm_over < 0 && now >= warm_at) {
			warm_rss = rss_bytes();
			warm_over = warm_rss - atomic_load(&live_bytes);
			warm_slab = zp_slab_bytes();
		}
	}
	end_rss = rss_bytes();
	end_over = end_rss - atomic_load(&live_bytes);
	end_slab = zp_slab_bytes();
	atomic_store(&stop, true);
	for (unsigned i = 0; i < 2; i++)
		if (churn[i])
			pthread_join(churn[i], NULL);
	while (atomic_load(&churn_running))
		usleep(1000);
	for (unsigned i = 0; i < nr_workers; i++)
		pthread_join(ws[i].tid, NULL);
	/* Objects sent after their receiver stopped. */
	{
		struct worker drain = { .nr_slots = 0 };
		struct obj o;

		for (unsigned i = 0; i < nr_workers; i++)
			while (obj_recv(i, &o))
				obj_free(&drain, &o, "final free");
		live_flush(&drain);
	}
	printf("stress_threads: %lu ops, %lu remote receives, %lu threads "
	       "created\n", atomic_load(&nr_ops_total),
	       atomic_load(&nr_remote), spawned);
	printf("stress_threads: overhead (RSS - live) after warm-up %ld KiB "
	       "(RSS %ld KiB), at end %ld KiB (RSS %ld KiB)\n",
	       warm_over >> 10, warm_rss >> 10, end_over >> 10,
	       end_rss >> 10);
	if (atomic_load(&live_bytes) != 0)
		fail("stress: bookkeeping error: %ld live bytes after drain",
		     atomic_load(&live_bytes));
	if (end_over > max_over)
		fail("stress: overhead %ld KiB at the end, above %ld KiB: "
		     "memory lost", end_over >> 10, max_over >> 10);
	if (warm_over >= 0 && end_over > 2 * warm_over + max_growth)
		fail("stress: overhead grew from %ld KiB to %ld KiB (bound "
		     "2x + %ld KiB): memory lost per thread or per free",
		     warm_over >> 10, end_over >> 10, max_growth >> 10);
	if (warm_slab) {
		printf("stress_threads: zpmalloc slab capacity after warm-up "
		       "%lu KiB, at end %lu KiB\n",
		       (unsigned long)(warm_slab >> 10),
		       (unsigned long)(end_slab >> 10));
		if (end_slab > 2 * warm_slab + (uint64_t)max_growth)
			fail("stress: slab capacity grew from %lu KiB to "
			     "%lu KiB", (unsigned long)(warm_slab >> 10),
			     (unsigned long)(end_slab >> 10));
	}
	free(ws);
	free(queues);
	printf("stress_threads: ok\n");
	return 0;
}
