/*
 * stats.c - statistics of the whole allocator, gathered from each layer's
 *           own printers and info calls.
 * Owns:  the report layouts (text, JSON, glibc's malloc_stats and
 *        malloc_info), the exit-time ZPMALLOC_STATS report.
 * Locks: none of its own; each layer locks while it copies its figures.
 * Path:  zp_stats_print / exit destructor -> stats_print -> zone_print_*,
 *        slab_print_*, large_get_stats, zero_print
 */
#include <string.h>

#include "base/log.h"
#include "base/options.h"
#include "heap/heap.h"
#include "malloc/init.h"
#include "malloc/large.h"
#include "malloc/stats.h"
#include "os/os.h"
#include "page/zone.h"
#include "slab/sizeclass.h"
#include "slab/tcache.h"
#include "zpmalloc.h"
#if ZP_HAVE_ZERO
#include "zero/zero.h"
#endif

void
stats_usage(struct stats_usage *u)
{
	struct zp_zone_info zi;
	struct zp_slab_info si;
	struct large_stats ls;
	struct heap_stats hs;

	memset(u, 0, sizeof(*u));
	for (unsigned i = 0; zone_info(i, &zi) == 0; i++) {
		u->arena += zi.committed_bytes;
		u->reserved += zi.span_bytes;
		/* Free pages of steps given back are not in the arena. */
		u->free_pages += (zi.nr_free_pages << ZP_PAGE_SHIFT) -
				 (zi.grown_bytes - zi.committed_bytes);
		for (unsigned o = 0; o <= ZP_MAX_ORDER; o++)
			u->nr_free_blocks += zi.nr_free_by_order[o];
	}
	for (unsigned sc = 0; sc < SC_NR; sc++) {
		if (slab_info(sc, &si))
			break;
		u->nr_slab_free += si.total_objects - si.active_objects;
		u->slab_free += (si.total_objects - si.active_objects) *
				si.object_size;
	}
	heap_get_stats(&hs);
	u->heap_free = hs.nr_chunks * HEAP_CHUNK_BYTES - hs.used_bytes;
	large_get_stats(&ls);
	u->nr_large = ls.nr_blocks;
	u->large_bytes = ls.bytes;
	u->large_peak = ls.peak_bytes;
	u->in_use = u->arena - ZP_MIN(u->arena, u->free_pages + u->slab_free +
						     u->heap_free);
}

int
stats_zero_info(struct zp_zero_info *out)
{
#if ZP_HAVE_ZERO
	return zero_info(out);
#else
	struct large_stats ls;

	/* Without the engine large blocks are plain anonymous mappings:
	 * untouched pages are the kernel's zero page, nothing reclaims. */
	memset(out, 0, sizeof(*out));
	large_get_stats(&ls);
	out->level = ZP_ZERO_LEVEL_KERNEL;
	fmt_buf(out->level_reason, sizeof(out->level_reason),
		"zero-page engine not linked");
	out->nr_regions = ls.nr_blocks;
	out->region_bytes = ls.bytes;
	return 0;
#endif
}

/* --- text and JSON ------------------------------------------------------- */

static void
print_heap(struct outbuf *o, bool json)
{
	struct heap_stats hs;

	heap_get_stats(&hs);
	out_printf(o, json ? "{\"chunks\":%llu,\"chunk_bytes\":%llu,"
			     "\"used_blocks\":%llu,\"used_bytes\":%llu,"
			     "\"nr_alloc\":%llu,\"nr_free\":%llu,"
			     "\"purged_bytes\":%llu}"
			   : "chunks %llu (%llu bytes) used blocks %llu "
			     "(%llu bytes)\nnr_alloc %llu nr_free %llu "
			     "purged %llu bytes\n",
		   (unsigned long long)hs.nr_chunks,
		   (unsigned long long)(hs.nr_chunks * HEAP_CHUNK_BYTES),
		   (unsigned long long)hs.nr_used,
		   (unsigned long long)hs.used_bytes,
		   (unsigned long long)hs.nr_alloc,
		   (unsigned long long)hs.nr_free,
		   (unsigned long long)hs.purged_bytes);
}

static void
print_large(struct outbuf *o, bool json)
{
	struct large_stats ls;

	large_get_stats(&ls);
	if (json) {
		out_printf(o, "{\"blocks\":%zu,\"bytes\":%zu,"
			   "\"peak_bytes\":%zu,"
			   "\"nr_alloc\":%llu,\"nr_free\":%llu,"
			   "\"nr_remap\":%llu,\"nr_failed\":%llu,"
			   "\"nr_huge\":%llu,\"table_capacity\":%zu}",
			   ls.nr_blocks, ls.bytes, ls.peak_bytes,
			   (unsigned long long)ls.nr_alloc,
			   (unsigned long long)ls.nr_free,
			   (unsigned long long)ls.nr_remap,
			   (unsigned long long)ls.nr_failed,
			   (unsigned long long)ls.nr_huge, ls.table_capacity);
		return;
	}
	out_printf(o, "blocks %zu bytes %zu peak %zu\n", ls.nr_blocks,
		   ls.bytes, ls.peak_bytes);
	out_printf(o, "nr_alloc %llu nr_free %llu nr_remap %llu nr_failed "
		   "%llu nr_huge %llu table_capacity %zu\n",
		   (unsigned long long)ls.nr_alloc,
		   (unsigned long long)ls.nr_free,
		   (unsigned long long)ls.nr_remap,
		   (unsigned long long)ls.nr_failed,
		   (unsigned long long)ls.nr_huge, ls.table_capacity);
}

static void
print_zero(struct outbuf *o, bool json)
{
#if ZP_HAVE_ZERO
	if (json)
		zero_print_json(o);
	else
		zero_print(o);
#else
	struct zp_zero_info zi;

	stats_zero_info(&zi);
	if (json)
		out_printf(o, "{\"level\":\"kernel\",\"reason\":\"%s\","
			   "\"nr_regions\":%llu,\"region_bytes\":%llu}",
			   zi.level_reason,
			   (unsigned long long)zi.nr_regions,
			   (unsigned long long)zi.region_bytes);
	else
		out_printf(o, "level kernel (%s), regions %llu, bytes %llu\n",
			   zi.level_reason,
			   (unsigned long long)zi.nr_regions,
			   (unsigned long long)zi.region_bytes);
#endif
}

static void
print_text(struct outbuf *o)
{
	struct stats_usage u;

	stats_usage(&u);
	out_printf(o, "zpmalloc %s statistics (pid %d)\n", ZP_VERSION,
		   os_getpid());
	out_printf(o, "mode: %s\n", init_mode());
	out_printf(o, "rss %zu committed %zu in_use %zu free_pages %zu "
		   "slab_free %zu large %zu\n",
		   os_rss_bytes(), u.arena, u.in_use, u.free_pages,
		   u.slab_free, u.large_bytes);
	out_puts(o, "--- options ---\n");
	options_print(o);
	out_puts(o, "--- buddyinfo ---\n");
	zone_print_buddyinfo(o);
	out_puts(o, "--- zoneinfo ---\n");
	zone_print_limit(o, false);
	zone_print_zoneinfo(o);
	out_puts(o, "--- slabinfo ---\n");
	slab_print_slabinfo(o);
	out_puts(o, "--- heap of light classes ---\n");
	print_heap(o, false);
	out_puts(o, "--- large blocks ---\n");
	print_large(o, false);
	out_puts(o, "--- zero-page engine ---\n");
	print_zero(o, false);
}

static void
print_json(struct outbuf *o)
{
	struct stats_usage u;

	stats_usage(&u);
	out_printf(o, "{\"version\":\"%s\",\"pid\":%d,\"rss_bytes\":%zu,",
		   ZP_VERSION, os_getpid(), os_rss_bytes());
	out_printf(o, "\"usage\":{\"committed\":%zu,\"in_use\":%zu,"
		   "\"free_pages\":%zu,\"slab_free\":%zu,\"reserved\":%zu},",
		   u.arena, u.in_use, u.free_pages, u.slab_free, u.reserved);
	out_puts(o, "\"limit\":");
	zone_print_limit(o, true);
	out_puts(o, ",\"zones\":");
	zone_print_json(o);
	out_puts(o, ",\"slabs\":");
	slab_print_json(o);
	out_puts(o, ",\"heap\":");
	print_heap(o, true);
	out_puts(o, ",\"large\":");
	print_large(o, true);
	out_puts(o, ",\"zero\":");
	print_zero(o, true);
	out_puts(o, "}\n");
}

void
stats_print(int fd, bool json)
{
	struct outbuf o;

	if (!init_is_booted())
		init_boot();
	out_init(&o, fd);
	if (json)
		print_json(&o);
	else
		print_text(&o);
	out_flush(&o);
}

void
stats_malloc_stats(int fd)
{
	struct stats_usage u;
	struct outbuf o;

	if (!init_is_booted())
		init_boot();
	stats_usage(&u);
	out_init(&o, fd);
	out_printf(&o, "Arena 0:\n");
	out_printf(&o, "system bytes     = %10zu\n", u.arena);
	out_printf(&o, "in use bytes     = %10zu\n", u.in_use);
	out_printf(&o, "Total (incl. mmap):\n");
	out_printf(&o, "system bytes     = %10zu\n", u.arena + u.large_bytes);
	out_printf(&o, "in use bytes     = %10zu\n",
		   u.in_use + u.large_bytes);
	out_printf(&o, "max mmap regions = %10zu\n", u.nr_large);
	out_printf(&o, "max mmap bytes   = %10zu\n", u.large_peak);
	print_text(&o);
	out_flush(&o);
}

/* --- malloc_info --------------------------------------------------------- */

static void
sink_printf(void (*sink)(void *, const char *), void *ctx, const char *fmt,
	    ...) __attribute__((format(printf, 3, 4)));

static void
sink_printf(void (*sink)(void *, const char *), void *ctx, const char *fmt,
	    ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	fmt_vbuf(line, sizeof(line), fmt, ap);
	va_end(ap);
	sink(ctx, line);
}

/* One <heap> per zone, its free buddy blocks as the size list. */
static void
info_zone(void (*sink)(void *, const char *), void *ctx, unsigned idx,
	  const struct zp_zone_info *zi)
{
	uint64_t nr = 0, bytes = 0;

	sink_printf(sink, ctx, "<heap nr=\"%u\">\n<sizes>\n", idx);
	for (unsigned o = 0; o <= ZP_MAX_ORDER; o++) {
		uint64_t size = ZP_PAGE_SIZE << o;
		uint64_t count = zi->nr_free_by_order[o];

		if (!count)
			continue;
		sink_printf(sink, ctx, "<size from=\"%llu\" to=\"%llu\" "
			    "total=\"%llu\" count=\"%llu\"/>\n",
			    (unsigned long long)size,
			    (unsigned long long)size,
			    (unsigned long long)(size * count),
			    (unsigned long long)count);
		nr += count;
		bytes += size * count;
	}
	sink_printf(sink, ctx, "</sizes>\n<total type=\"fast\" count=\"0\" "
		    "size=\"0\"/>\n<total type=\"rest\" count=\"%llu\" "
		    "size=\"%llu\"/>\n", (unsigned long long)nr,
		    (unsigned long long)bytes);
	sink_printf(sink, ctx, "<system type=\"current\" size=\"%llu\"/>\n"
		    "<system type=\"max\" size=\"%llu\"/>\n",
		    (unsigned long long)zi->committed_bytes,
		    (unsigned long long)zi->committed_bytes);
	sink_printf(sink, ctx, "<aspace type=\"total\" size=\"%llu\"/>\n"
		    "<aspace type=\"mprotect\" size=\"%llu\"/>\n</heap>\n",
		    (unsigned long long)zi->span_bytes,
		    (unsigned long long)zi->committed_bytes);
}

void
stats_malloc_info(void (*sink)(void *ctx, const char *line), void *ctx)
{
	struct zp_zone_info zi;
	struct stats_usage u;

	if (!init_is_booted())
		init_boot();
	sink(ctx, "<malloc version=\"1\">\n");
	for (unsigned i = 0; zone_info(i, &zi) == 0; i++)
		info_zone(sink, ctx, i, &zi);
	stats_usage(&u);
	sink_printf(sink, ctx, "<total type=\"fast\" count=\"%zu\" "
		    "size=\"%zu\"/>\n", u.nr_slab_free, u.slab_free);
	sink_printf(sink, ctx, "<total type=\"rest\" count=\"%zu\" "
		    "size=\"%zu\"/>\n", u.nr_free_blocks, u.free_pages);
	sink_printf(sink, ctx, "<total type=\"mmap\" count=\"%zu\" "
		    "size=\"%zu\"/>\n", u.nr_large, u.large_bytes);
	sink_printf(sink, ctx, "<system type=\"current\" size=\"%zu\"/>\n"
		    "<system type=\"max\" size=\"%zu\"/>\n",
		    u.arena + u.large_bytes, u.arena + u.large_peak);
	sink_printf(sink, ctx, "<aspace type=\"total\" size=\"%zu\"/>\n"
		    "<aspace type=\"mprotect\" size=\"%zu\"/>\n</malloc>\n",
		    u.reserved + u.large_bytes, u.arena + u.large_bytes);
}

/* --- at exit ------------------------------------------------------------- */

/* ZPMALLOC_STATS_FILE with each %p replaced by the pid. */
static void
stats_path(char *buf, size_t size)
{
	const char *s = zp_opt.stats_file;
	size_t n = 0;

	for (; *s && n + 1 < size; s++) {
		if (s[0] == '%' && s[1] == 'p') {
			n += fmt_buf(buf + n, size - n, "%d", os_getpid());
			s++;
			continue;
		}
		buf[n++] = *s;
	}
	buf[ZP_MIN(n, size - 1)] = '\0';
}

void
stats_at_exit(void)
{
	char path[sizeof(zp_opt.stats_file) + 16];
	int fd = 2;

	if (zp_opt.stats_file[0]) {
		stats_path(path, sizeof(path));
		if (os_open_write(path, &fd)) {
			log_msg("cannot write statistics to %s", path);
			return;
		}
	}
	stats_print(fd, zp_opt.stats == OPT_STATS_JSON);
	if (fd != 2)
		os_close(fd);
}
