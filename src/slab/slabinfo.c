/*
 * slabinfo.c - slab statistics for the malloc layer's reports: a
 * /proc/slabinfo-style table, JSON, and struct zp_slab_info.
 * Owns:  nothing; reads slab_caches[] and the tcache registry.
 * Locks: the registry lock (through tcache_class_stats); counters of
 *        other threads are read relaxed, so figures are a snapshot.
 * Path:  zp_stats_print -> slab_print_slabinfo | slab_print_json;
 *        zp_slab_info -> slab_info.
 */
#include <zpmalloc.h>

#include "base/log.h"
#include "slab/cache.h"
#include "slab/tcache.h"

int
slab_info(unsigned sc, struct zp_slab_info *out)
{
	const struct slab_cache *c;
	struct tcache_class_stats st;
	uint64_t allocs, frees, total;

	if (sc >= SC_NR)
		return -1;
	c = cache_peek(sc);
	tcache_class_stats(sc, &st);
	allocs = st.nr_alloc_fast + st.nr_alloc_slow;
	frees = st.nr_free_local + st.nr_free_remote;
	total = __atomic_load_n(&c->nr_objs, __ATOMIC_RELAXED);
	*out = (struct zp_slab_info){
		.object_size = slab_class[sc].size,
		.objects_per_slab = slab_class[sc].nr_objs,
		.pages_per_slab = 1u << slab_class[sc].order,
		/* Exact in stats builds. Without the counters every
		 * object of a slab counts (mallinfo2's in-use bytes then
		 * include the free objects of slabs still held). */
		.active_objects = !ZP_IS_STATS ? total
				: allocs > frees ? allocs - frees : 0,
		.total_objects = total,
		/* Every slab is in use: empty ones go back to the zone. */
		.active_slabs = __atomic_load_n(&c->nr_slabs, __ATOMIC_RELAXED),
		.total_slabs = __atomic_load_n(&c->nr_slabs, __ATOMIC_RELAXED),
		.nr_alloc_fast = st.nr_alloc_fast,
		.nr_alloc_slow = st.nr_alloc_slow,
		.nr_free_local = st.nr_free_local,
		.nr_free_remote = st.nr_free_remote,
	};
	return 0;
}

void
slab_print_slabinfo(struct outbuf *o)
{
	struct tcache_path_stats ps;

	out_printf(o, "slabinfo - version: 2.1 (zpmalloc)\n");
	out_printf(o, "# name            <active_objs> <num_objs> <objsize> "
		   "<objperslab> <pagesperslab> : slabdata <active_slabs> "
		   "<num_slabs> : paths <alloc_fast> <alloc_slow> "
		   "<free_local> <free_remote>\n");
	for (unsigned sc = 0; sc < SC_NR; sc++) {
		struct zp_slab_info si;
		char name[24];

		slab_info(sc, &si);
		/* The aligned classes take memalign's requests alone. */
		fmt_buf(name, sizeof(name), sc < SC_NR_PLAIN ? "size-%u"
							: "aligned-%u",
			si.object_size);
		out_printf(o, "%-17s %13lu %10lu %9u %12u %15u : slabdata "
			   "%14lu %11lu : paths %12lu %12lu %12lu %13lu\n",
			   name, (unsigned long)si.active_objects,
			   (unsigned long)si.total_objects, si.object_size,
			   si.objects_per_slab, si.pages_per_slab,
			   (unsigned long)si.active_slabs,
			   (unsigned long)si.total_slabs,
			   (unsigned long)si.nr_alloc_fast,
			   (unsigned long)si.nr_alloc_slow,
			   (unsigned long)si.nr_free_local,
			   (unsigned long)si.nr_free_remote);
	}
	tcache_path_stats(&ps);
	out_printf(o, "# slab paths: threads %lu refill %lu flush %lu "
		   "mail %lu new_slab %lu adopt %lu orphan %lu rescue %lu "
		   "taken %lu\n",
		   (unsigned long)ps.nr_threads, (unsigned long)ps.nr_refill,
		   (unsigned long)ps.nr_flush, (unsigned long)ps.nr_mail,
		   (unsigned long)ps.nr_new, (unsigned long)ps.nr_adopt,
		   (unsigned long)ps.nr_orphan, (unsigned long)ps.nr_rescue,
		   (unsigned long)ps.nr_taken);
}

void
slab_print_json(struct outbuf *o)
{
	struct tcache_path_stats ps;

	out_printf(o, "{\"classes\":[");
	for (unsigned sc = 0; sc < SC_NR; sc++) {
		const struct slab_cache_stats *c = cache_stats_peek(sc);
		struct zp_slab_info si;

		slab_info(sc, &si);
		out_printf(o, "%s{\"class\":%u,\"objsize\":%u,"
			   "\"aligned_only\":%s,"
			   "\"objperslab\":%u,\"pagesperslab\":%u,"
			   "\"active_objs\":%lu,\"num_objs\":%lu,"
			   "\"active_slabs\":%lu,\"num_slabs\":%lu,"
			   "\"alloc_fast\":%lu,\"alloc_slow\":%lu,"
			   "\"free_local\":%lu,\"free_remote\":%lu,"
			   "\"rescue\":%lu}",
			   sc ? "," : "", sc, si.object_size,
			   sc < SC_NR_PLAIN ? "false" : "true",
			   si.objects_per_slab, si.pages_per_slab,
			   (unsigned long)si.active_objects,
			   (unsigned long)si.total_objects,
			   (unsigned long)si.active_slabs,
			   (unsigned long)si.total_slabs,
			   (unsigned long)si.nr_alloc_fast,
			   (unsigned long)si.nr_alloc_slow,
			   (unsigned long)si.nr_free_local,
			   (unsigned long)si.nr_free_remote,
			   (unsigned long)c->nr_rescue);
	}
	tcache_path_stats(&ps);
	out_printf(o, "],\"paths\":{\"threads\":%lu,\"refill\":%lu,"
		   "\"flush\":%lu,\"mail\":%lu,\"new_slab\":%lu,"
		   "\"adopt\":%lu,\"orphan\":%lu,\"rescue\":%lu,"
		   "\"taken\":%lu}}",
		   (unsigned long)ps.nr_threads, (unsigned long)ps.nr_refill,
		   (unsigned long)ps.nr_flush, (unsigned long)ps.nr_mail,
		   (unsigned long)ps.nr_new, (unsigned long)ps.nr_adopt,
		   (unsigned long)ps.nr_orphan, (unsigned long)ps.nr_rescue,
		   (unsigned long)ps.nr_taken);
}
