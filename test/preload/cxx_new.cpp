// cxx_new.cpp - every operator new and operator delete, as a C++ program
// calls them, with the failure semantics of the standard: nothrow new
// returns nullptr, a new-handler runs until the request can be met, and
// without one std::bad_alloc is thrown. The same binary runs on glibc and
// with zpmalloc preloaded (compare.sh), so every expectation here is what
// libstdc++ over glibc does; cxx_bind.sh checks that the calls really bind
// to zpmalloc. Failures go to stderr and exit 1; stdout is a summary that
// both runs must print identically.
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace {

int nr_failed;

void
expect(bool ok, const char *what, size_t a = 0, size_t b = 0)
{
	if (!ok) {
		std::fprintf(stderr, "FAIL: %s (%zu, %zu)\n", what, a, b);
		nr_failed++;
	}
}

// Opaque to the optimiser, which may otherwise fold or drop a new/delete
// pair (it is allowed to) or warn about impossible sizes.
volatile size_t huge_size = SIZE_MAX / 2;
void *volatile sink;

void *
opaque(void *p)
{
	sink = p;
	return sink;
}

void
fill(void *p, size_t n, unsigned seed)
{
	auto *b = static_cast<unsigned char *>(p);

	for (size_t i = 0; i < n; i += 61)
		b[i] = (unsigned char)(i + seed);
	if (n)
		b[n - 1] = (unsigned char)(n + seed);
}

bool
check(const void *p, size_t n, unsigned seed)
{
	auto *b = static_cast<const unsigned char *>(p);

	for (size_t i = 0; i < n; i += 61)
		if (i != n - 1 && b[i] != (unsigned char)(i + seed))
			return false;
	return n == 0 || b[n - 1] == (unsigned char)(n + seed);
}

bool
is_aligned(const void *p, size_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

// Sizes across every route: slab classes and their edges, pages, blocks
// with a mapping of their own.
std::vector<size_t>
sizes()
{
	std::vector<size_t> v;

	for (size_t n = 0; n <= 1100; n++)
		v.push_back(n);
	for (size_t n = 1100; n <= 70000; n += 397)
		v.push_back(n);
	for (size_t n : { 4095, 4096, 4097, 16383, 16384, 16385, 65536,
			  100000, 1 << 20, (4 << 20) - 1, 4 << 20,
			  (4 << 20) + 1, 9 << 20 })
		v.push_back(n);
	return v;
}

// --- sized and unsized new/delete of every size --------------------------

void
plain_new_delete(const std::vector<size_t> &ns)
{
	// Several live at once, freed in another order than allocated.
	std::vector<void *> ps(ns.size()), as(ns.size());

	for (size_t i = 0; i < ns.size(); i++) {
		ps[i] = ::operator new(ns[i]);
		as[i] = ::operator new[](ns[i]);
		expect(is_aligned(ps[i], 16), "new is 16-aligned", ns[i]);
		expect(is_aligned(as[i], 16), "new[] is 16-aligned", ns[i]);
		fill(ps[i], ns[i], 1);
		fill(as[i], ns[i], 2);
	}
	for (size_t j = 0; j < ns.size(); j++) {
		size_t i = (j * 7919) % ns.size();

		expect(check(ps[i], ns[i], 1), "new block intact", ns[i]);
		expect(check(as[i], ns[i], 2), "new[] block intact", ns[i]);
		if (i % 2) {
			::operator delete(ps[i], ns[i]);
			::operator delete[](as[i], ns[i]);
		} else {
			::operator delete(ps[i]);
			::operator delete[](as[i]);
		}
	}
	for (size_t n : ns) {
		void *p = ::operator new(n, std::nothrow);
		void *q = ::operator new[](n, std::nothrow);

		expect(p && q, "nothrow new of a possible size", n);
		fill(p, n, 3);
		fill(q, n, 4);
		expect(check(p, n, 3) && check(q, n, 4), "nothrow block", n);
		::operator delete(p, std::nothrow);
		::operator delete[](q, std::nothrow);
	}
	std::printf("new/delete: %zu sizes, sized and unsized, plain and "
		    "array, throwing and nothrow\n", ns.size());
}

void
aligned_new_delete()
{
	static const size_t ns[] = { 0, 1, 16, 48, 100, 1000, 4096, 5000,
				     16384, 20000, 1 << 20, 5 << 20 };
	size_t count = 0;

	for (size_t a = 1; a <= (size_t)1 << 22; a <<= 1) {
		std::align_val_t al{a};

		for (size_t n : ns) {
			void *p = ::operator new(n, al);
			void *q = ::operator new[](n, al);
			void *r = ::operator new(n, al, std::nothrow);
			void *s = ::operator new[](n, al, std::nothrow);

			expect(p && q && r && s, "aligned new", a, n);
			expect(is_aligned(p, a) && is_aligned(q, a) &&
			       is_aligned(r, a) && is_aligned(s, a),
			       "aligned new is aligned", a, n);
			fill(p, n, 5);
			fill(q, n, 6);
			fill(r, n, 7);
			fill(s, n, 8);
			expect(check(p, n, 5) && check(q, n, 6) &&
			       check(r, n, 7) && check(s, n, 8),
			       "aligned block intact", a, n);
			if (n % 2) {
				::operator delete(p, n, al);
				::operator delete[](q, n, al);
			} else {
				::operator delete(p, al);
				::operator delete[](q, al);
			}
			::operator delete(r, al, std::nothrow);
			::operator delete[](s, al, std::nothrow);
			count += 4;
		}
	}
	std::printf("aligned new/delete: %zu blocks, alignments 1 to 4 MiB\n",
		    count);
}

// --- what the compiler calls: sized delete of objects and arrays ---------

struct Base {
	virtual ~Base() = default;
	virtual size_t size() const = 0;
};

template <size_t N>
struct Obj : Base {
	unsigned char bytes[N];
	Obj() { std::memset(bytes, (int)N, N); }
	size_t size() const override { return N; }
};

// A destructor makes new[] store the element count in front (a cookie),
// and delete[] pass the whole size to operator delete[](void *, size_t).
struct WithDtor {
	unsigned char b[24];
	WithDtor() { b[0] = 1; }
	~WithDtor() { sink = b; }
};

struct alignas(256) Wide {
	unsigned char b[300];
};

void
compiler_sized_deletes()
{
	std::vector<Base *> objs;
	size_t total = 0;

	for (int round = 0; round < 50; round++) {
		objs.push_back(new Obj<8>);
		objs.push_back(new Obj<100>);
		objs.push_back(new Obj<1000>);
		objs.push_back(new Obj<5000>);
		objs.push_back(new Obj<40000>);
		if (round % 10 == 0)
			objs.push_back(new Obj<(5 << 20)>);
	}
	for (Base *b : objs) {
		total += b->size();
		delete b;	// sized by the dynamic type's size
	}
	for (size_t n = 1; n < 3000; n += 37) {
		WithDtor *a = new WithDtor[n];
		Wide *w = new Wide[n % 50 + 1];
		Wide *one = new Wide;

		expect(is_aligned(w, 256) && is_aligned(one, 256),
		       "over-aligned type", n);
		expect(a[n - 1].b[0] == 1, "array constructed", n);
		delete[] a;
		delete[] w;
		delete one;
	}
	std::vector<std::vector<long>> vv;
	for (int i = 0; i < 200; i++) {
		vv.emplace_back();
		for (int k = 0; k < i * 37; k++)
			vv.back().push_back(k);
	}
	long sum = 0;
	for (auto &v : vv)
		for (long x : v)
			sum += x;
	std::printf("compiler-generated sized deletes: %zu object bytes, "
		    "vector sum %ld\n", total, sum);
}

// --- failure: nullptr, the new-handler, std::bad_alloc -------------------

void
nothrow_fails_with_nullptr()
{
	size_t n = huge_size;

	expect(!::operator new(n, std::nothrow), "nothrow new of huge");
	expect(!::operator new[](n, std::nothrow), "nothrow new[] of huge");
	expect(!::operator new(n, std::align_val_t{64}, std::nothrow),
	       "nothrow aligned new of huge");
	expect(!::operator new[](n, std::align_val_t{4096}, std::nothrow),
	       "nothrow aligned new[] of huge");
	std::printf("nothrow new of %zu bytes: nullptr\n", n);
}

template <class F>
bool
throws_bad_alloc(F f)
{
	try {
		opaque(f());
	} catch (const std::bad_alloc &) {
		return true;
	}
	return false;
}

void
no_handler_throws_bad_alloc()
{
	size_t n = huge_size;

	std::set_new_handler(nullptr);
	expect(throws_bad_alloc([n] { return ::operator new(n); }),
	       "new of huge throws");
	expect(throws_bad_alloc([n] { return ::operator new[](n); }),
	       "new[] of huge throws");
	expect(throws_bad_alloc([n] {
		return ::operator new(n, std::align_val_t{64});
	}), "aligned new of huge throws");
	expect(throws_bad_alloc([n] {
		return ::operator new[](n, std::align_val_t{8192});
	}), "aligned new[] of huge throws");
	expect(throws_bad_alloc([n] { return new char[n]; }),
	       "new char[huge] throws");
	std::printf("new of %zu bytes without a handler: std::bad_alloc\n",
		    n);
}

// A handler that throws ends the loop with its own exception.
int nr_throwing_calls;

void
throwing_handler()
{
	nr_throwing_calls++;
	throw std::bad_alloc();
}

void
handler_runs_before_bad_alloc()
{
	size_t n = huge_size;

	std::set_new_handler(throwing_handler);
	expect(throws_bad_alloc([n] { return ::operator new(n); }),
	       "throwing handler: new");
	expect(throws_bad_alloc([n] { return ::operator new[](n); }),
	       "throwing handler: new[]");
	expect(!::operator new(n, std::nothrow),
	       "throwing handler: nothrow new is nullptr");
	std::set_new_handler(nullptr);
	expect(nr_throwing_calls == 3, "handler called once per request",
	       (size_t)nr_throwing_calls);
	std::printf("throwing new-handler: called %d times\n",
		    nr_throwing_calls);
}

// The classic handler: give memory back, and the next try succeeds. An
// address-space limit makes a 64 MiB request fail while a 64 MiB reserve
// is held; the handler frees the reserve, and the request fits.
const size_t reserve_size = (size_t)64 << 20;
void *reserve;
int nr_freeing_calls;

void
freeing_handler()
{
	nr_freeing_calls++;
	if (!reserve)
		throw std::bad_alloc();	// nothing left to give: stop
	std::free(reserve);
	reserve = nullptr;
}

size_t
vm_size()
{
	FILE *f = std::fopen("/proc/self/status", "r");
	char line[256];
	size_t kb = 0;

	while (f && std::fgets(line, sizeof(line), f))
		if (std::sscanf(line, "VmSize: %zu kB", &kb) == 1)
			break;
	if (f)
		std::fclose(f);
	return kb << 10;
}

template <class New, class Delete>
void
handler_frees_memory(const char *what, New do_new, Delete do_delete)
{
	struct rlimit old, lim;
	void *p = nullptr;

	reserve = std::malloc(reserve_size);
	expect(reserve != nullptr, "reserve");
	std::memset(reserve, 1, 4096);
	nr_freeing_calls = 0;
	getrlimit(RLIMIT_AS, &old);
	lim = old;
	lim.rlim_cur = vm_size() + reserve_size / 2;
	if (setrlimit(RLIMIT_AS, &lim) != 0) {
		std::perror("setrlimit");
		std::exit(1);
	}
	std::set_new_handler(freeing_handler);
	try {
		p = do_new(reserve_size);
	} catch (const std::bad_alloc &) {
		p = nullptr;
	}
	std::set_new_handler(nullptr);
	setrlimit(RLIMIT_AS, &old);
	expect(p != nullptr, what, (size_t)nr_freeing_calls);
	expect(nr_freeing_calls == 1, what, (size_t)nr_freeing_calls);
	if (p) {
		std::memset(p, 2, reserve_size);
		do_delete(p);
	}
	std::free(reserve);
	reserve = nullptr;
	std::printf("%s: the new-handler freed memory once, then the request "
		    "succeeded\n", what);
}

void
handlers_free_memory()
{
	handler_frees_memory("new",
		[](size_t n) { return ::operator new(n); },
		[](void *p) { ::operator delete(p, reserve_size); });
	handler_frees_memory("new[]",
		[](size_t n) { return ::operator new[](n); },
		[](void *p) { ::operator delete[](p); });
	handler_frees_memory("aligned new",
		[](size_t n) {
			return ::operator new(n, std::align_val_t{1 << 16});
		},
		[](void *p) {
			::operator delete(p, reserve_size,
					  std::align_val_t{1 << 16});
		});
	handler_frees_memory("nothrow new",
		[](size_t n) { return ::operator new(n, std::nothrow); },
		[](void *p) { ::operator delete(p); });
}

} // namespace

int
main(int argc, char **argv)
{
	// cxx_bind.sh only needs the program's symbols bound.
	if (argc > 1 && !std::strcmp(argv[1], "--bind-only"))
		return 0;
	plain_new_delete(sizes());
	aligned_new_delete();
	compiler_sized_deletes();
	nothrow_fails_with_nullptr();
	no_handler_throws_bad_alloc();
	handler_runs_before_bad_alloc();
	handlers_free_memory();
	if (nr_failed) {
		std::fprintf(stderr, "%d check(s) failed\n", nr_failed);
		return 1;
	}
	return 0;
}
