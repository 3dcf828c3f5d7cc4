/*
 * zone_fixture.h - what the page-layer unit tests share: a zone's
 * figures, asserted to exist.
 */
#ifndef ZP_TEST_ZONE_FIXTURE_H
#define ZP_TEST_ZONE_FIXTURE_H

#include <criterion/criterion.h>
#include <zpmalloc.h>

#include "page/zone.h"
#include "page/zone_priv.h"

static inline struct zp_zone_info
info(unsigned idx)
{
	struct zp_zone_info zi;

	cr_assert_eq(zone_info(idx, &zi), 0);
	return zi;
}

/* One node's zones of 1 GiB with a small page cache: what the slab,
 * tcache and heap suites allocate from. */
static inline void
boot_small_zone(void)
{
	struct zone_config cfg = {
		.nr_nodes = 1,
		.normal_reserve = (size_t)1 << 30,
		.pcp_high = 16,
		.pcp_batch = 4,
	};

	cr_assert_eq(zone_boot(&cfg), 0);
}

/* What lists the free block that holds pg's page (its head's descriptor,
 * or its big-block entry: buddy.h): its flags and order are the block's.
 * pg is a page of zone 0. */
static inline const struct page *
free_block(const struct page *pg)
{
	struct zone *z = zone_of(0);
	const struct page *f =
		buddy_find_free(&z->buddy, buddy_index(&z->buddy, pg));

	cr_assert_not_null(f, "page %zu is not free",
			   buddy_index(&z->buddy, pg));
	return f;
}

#endif /* ZP_TEST_ZONE_FIXTURE_H */
