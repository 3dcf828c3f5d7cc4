/*
 * cxx_map.cc - a C++ program heavy in the standard containers: a
 * std::map from std::string keys to std::vector<int> values is built
 * (vectors grown by push_back), looked up, half erased, rebuilt with new
 * values, and its keys joined and split into a vector of strings, every
 * round. Nodes, keys longer than the small-string buffer and vector
 * growth make many small and medium allocations, freed in tree order.
 *
 * Usage: cxx_map [keys=200000] [rounds=3]
 * Prints ops_per_sec (container operations per second: inserts, lookups,
 * erases, pushes and splits) and a checksum of what was looked up.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "bench.h"

typedef std::map<std::string, std::vector<int>> table;

/* Keys of 6..40 characters: some fit the small-string buffer, most not. */
static std::string
make_key(uint64_t x)
{
	std::string k = "k" + std::to_string(x % 1000003);

	for (unsigned i = 0; i < (x >> 20) % 5; i++)
		k += "-segment" + std::to_string(i);
	return k;
}

static uint64_t
fill(table &t, std::vector<std::string> &keys, uint64_t *seed, long salt)
{
	uint64_t ops = 0;

	for (const std::string &k : keys) {
		std::vector<int> &v = t[k];
		long n = 1 + (long)(rng_next(seed) % 48);

		v.clear();
		for (long i = 0; i < n; i++)
			v.push_back((int)(i * salt + (long)k.size()));
		ops += 1 + (uint64_t)n;
	}
	return ops;
}

static uint64_t
lookup(const table &t, const std::vector<std::string> &keys, uint64_t *sum)
{
	for (const std::string &k : keys) {
		auto it = t.find(k);

		if (it != t.end())
			*sum += it->second.size() + (uint64_t)it->second.back();
		if (t.count(k + "?"))
			abort();
	}
	return 2 * keys.size();
}

/* Joins a sample of keys into one string and splits it again. */
static uint64_t
join_split(const table &t, uint64_t *sum)
{
	std::string all;
	std::vector<std::string> words;
	long i = 0;

	for (const auto &kv : t)
		if (i++ % 4 == 0)
			all += kv.first + " ";
	for (size_t pos = 0, end; pos < all.size(); pos = end + 1) {
		end = all.find(' ', pos);
		words.emplace_back(all, pos, end - pos);
	}
	*sum += all.size() + words.size() + words.back().size();
	return words.size();
}

int
main(int argc, char **argv)
{
	long nr_keys = arg_long(argc, argv, 1, 200000);
	long nr_rounds = arg_long(argc, argv, 2, 3);
	uint64_t seed = 0x2545f4914f6cdd1dULL, sum = 0, ops = 0;
	double t0, t1;

	if (nr_keys < 2 || nr_rounds < 1) {
		fprintf(stderr, "usage: cxx_map [keys>=2] [rounds]\n");
		return 2;
	}
	t0 = now_s();
	for (long r = 0; r < nr_rounds; r++) {
		std::vector<std::string> keys, odd;
		table t;

		for (long i = 0; i < nr_keys; i++)
			keys.push_back(make_key(rng_next(&seed)));
		ops += fill(t, keys, &seed, r + 1);
		ops += lookup(t, keys, &sum);
		for (const std::string &k : keys)
			if (k.size() % 2)
				odd.push_back(k);
		for (const std::string &k : odd)
			ops += t.erase(k);
		ops += lookup(t, keys, &sum);
		ops += fill(t, odd, &seed, r + 7);
		ops += join_split(t, &sum);
		sum += t.size();
	}
	t1 = now_s();
	printf("workload cxx_map\nkeys %ld\nrounds %ld\nops %llu\n", nr_keys,
	       nr_rounds, (unsigned long long)ops);
	printf("ops_per_sec %.0f\n", (double)ops / (t1 - t0));
	printf("checksum %llu\n", (unsigned long long)sum);
	return 0;
}
