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

#endif /* ZP_TEST_ZONE_FIXTURE_H */
