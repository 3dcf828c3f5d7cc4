/*
 * zone_fixture.h - what the page-layer unit tests share: a zone's
 * figures, asserted to exist.
 */
#ifndef ZP_TEST_ZONE_FIXTURE_H
#define ZP_TEST_ZONE_FIXTURE_H

#include <criterion/criterion.h>
#include <zpmalloc.h>

#include "page/zone.h"

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

#endif /* ZP_TEST_ZONE_FIXTURE_H */
