// cxx_threads.cpp - a multi-threaded C++ program for the preload suite:
// std::thread workers build maps, vectors and strings, hand objects to
// each other through a queue (so blocks are freed by threads that did not
// allocate them), and the result is printed in a fixed order.
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct Queue {
	std::mutex m;
	std::condition_variable cv;
	std::deque<std::unique_ptr<std::vector<std::string>>> items;
	int producers_left = 0;
};

unsigned long
checksum(const std::string &s)
{
	unsigned long h = 1469598103934665603ul;
	for (unsigned char c : s)
		h = (h ^ c) * 1099511628211ul;
	return h;
}

void
produce(Queue &q, int id, int batches)
{
	for (int b = 0; b < batches; b++) {
		auto v = std::make_unique<std::vector<std::string>>();
		for (int i = 0; i < 50 + (b * 7 + id) % 200; i++)
			v->push_back(std::string((i * 13 + b) % 300, 'a' + id) +
				     std::to_string(b * 1000 + i));
		std::lock_guard<std::mutex> lock(q.m);
		q.items.push_back(std::move(v));
		q.cv.notify_one();
	}
	std::lock_guard<std::mutex> lock(q.m);
	q.producers_left--;
	q.cv.notify_all();
}

void
consume(Queue &q, unsigned long &sum, size_t &strings)
{
	for (;;) {
		std::unique_ptr<std::vector<std::string>> v;
		{
			std::unique_lock<std::mutex> lock(q.m);
			q.cv.wait(lock, [&] {
				return !q.items.empty() || q.producers_left == 0;
			});
			if (q.items.empty())
				return;
			v = std::move(q.items.front());
			q.items.pop_front();
		}
		for (const auto &s : *v)
			sum += checksum(s);
		strings += v->size();
	}	// v (and every string) is freed here, on this thread
}

std::map<std::string, std::vector<int>>
build_map(int id)
{
	std::map<std::string, std::vector<int>> m;
	std::unordered_map<int, std::string> u;
	for (int i = 0; i < 40000; i++) {
		m["k" + std::to_string((i * 7919 + id) % 10007)].push_back(i);
		u[i % 5003] += static_cast<char>('a' + i % 26);
	}
	for (auto &kv : u)
		m["u" + std::to_string(kv.first % 17)].push_back(
		    static_cast<int>(kv.second.size()));
	return m;
}

}  // namespace

int
main()
{
	const int nr_producers = 3, nr_consumers = 2, batches = 400;
	Queue q;
	q.producers_left = nr_producers;
	std::vector<unsigned long> sums(nr_consumers);
	std::vector<size_t> counts(nr_consumers);
	std::vector<std::thread> threads;

	for (int i = 0; i < nr_producers; i++)
		threads.emplace_back(produce, std::ref(q), i, batches);
	for (int i = 0; i < nr_consumers; i++)
		threads.emplace_back(consume, std::ref(q), std::ref(sums[i]),
				     std::ref(counts[i]));
	for (auto &t : threads)
		t.join();
	unsigned long total = 0;
	size_t nr_strings = 0;
	for (int i = 0; i < nr_consumers; i++) {
		total += sums[i];
		nr_strings += counts[i];
	}
	std::printf("queue: %zu strings, checksum %lu\n", nr_strings, total);

	// Maps built on worker threads, returned to and destroyed on main.
	std::vector<std::map<std::string, std::vector<int>>> maps(4);
	threads.clear();
	for (int i = 0; i < 4; i++)
		threads.emplace_back([&maps, i] { maps[i] = build_map(i); });
	for (auto &t : threads)
		t.join();
	for (int i = 0; i < 4; i++) {
		size_t n = 0;
		long s = 0;
		for (auto &kv : maps[i]) {
			n += kv.second.size();
			for (int x : kv.second)
				s += x;
		}
		std::printf("map %d: %zu keys, %zu values, sum %ld\n", i,
			    maps[i].size(), n, s);
	}

	// Short-lived threads: state created and retired many times.
	std::vector<size_t> lens(64);
	for (int round = 0; round < 8; round++) {
		threads.clear();
		for (int i = 0; i < 8; i++)
			threads.emplace_back([&lens, round, i] {
				std::string s;
				for (int k = 0; k < 1000 + i * 10; k++)
					s += std::to_string(k + round);
				lens[round * 8 + i] = s.size();
			});
		for (auto &t : threads)
			t.join();
	}
	size_t total_len = 0;
	for (size_t l : lens)
		total_len += l;
	std::printf("short threads: %zu bytes\n", total_len);
	return 0;
}
