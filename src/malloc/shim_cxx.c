/*
 * shim_cxx.c - the C++ allocation operators: all twenty operator new and
 *              operator delete functions of libstdc++'s ABI, exported
 *              under their mangled names so that `new` takes the inline
 *              fast path instead of libstdc++ -> malloc's PLT entry, and
 *              sized delete keeps its size.
 * Owns:  the operators' entry points and the handoff of a failed new to
 *        the C++ runtime.
 * Locks: none; everything below locks for itself.
 * Path:  operator new -> alloc_malloc_fast (alloc.h) -> (empty bin)
 *        new_slow -> alloc_malloc -> (NULL) new_failed -> the runtime's
 *        own operator new; aligned: alloc_aligned -> new_aligned_failed
 *        operator delete(p, n) -> alloc_free_sized (alloc.h)
 *
 * A new that fails is the C++ runtime's business: it alone knows the
 * program's new-handler and how to throw std::bad_alloc. So the request
 * goes to the runtime's own operator (libstdc++.so.6's, or libc++abi's),
 * found in that library's symbol table (os_dso_symbol), never by symbol
 * lookup, which would find us again. That operator calls malloc (ours)
 * and runs the handler loop exactly as without us; its nothrow operators
 * call operator new (ours) and catch. std::bad_alloc unwinds through our
 * frames, hence unwind tables. Deletes never need the runtime.
 *
 * The names are C identifiers with asm labels (the mangled names start
 * with an underscore); std::nothrow_t const & is a pointer we pass on, and
 * std::align_val_t an enum class over size_t.
 */
#include "base/log.h"
#include "malloc/alloc.h"
#include "os/os.h"

/* Defined when the compiler emits unwind tables (CFI) for C. */
#if !defined(__GCC_HAVE_DWARF2_CFI_ASM)
#error "std::bad_alloc unwinds through these functions: needs unwind tables"
#endif

#define ZP_EXPORT __attribute__((visibility("default")))
#define CXX_NAME(mangled) __asm__(mangled)

/* The C++ runtimes that define the operators, in the order we ask them:
 * GNU's, then LLVM's (libc++abi, or libc++ where a build puts them
 * there). */
static const char *const cxx_runtimes[] = {
	"libstdc++.so.6", "libc++abi.so.1", "libc++.so.1",
};

/* Looked up at each failure, not cached: failures are rare, and libc++
 * may come and go with dlopen. */
static void *
runtime_operator(const char *sym)
{
	for (size_t i = 0; i < ZP_ARRAY_SIZE(cxx_runtimes); i++) {
		void *fn = os_dso_symbol(cxx_runtimes[i], sym);

		if (fn)
			return fn;
	}
	return NULL;
}

/* Without a runtime nobody can catch: fail as an uncaught bad_alloc. */
static zp_cold __attribute__((noreturn)) void
no_runtime(const char *op, size_t n)
{
	log_fatal("%s(): cannot allocate %zu bytes, and no C++ runtime is "
		  "loaded to throw std::bad_alloc", op, n);
}

typedef void *new_fn(size_t);
typedef void *new_nothrow_fn(size_t, const void *);
typedef void *new_aligned_fn(size_t, size_t);
typedef void *new_aligned_nothrow_fn(size_t, size_t, const void *);

static zp_cold void *
new_failed(const char *sym, const char *op, size_t n)
{
	new_fn *fn = (new_fn *)runtime_operator(sym);

	if (!fn)
		no_runtime(op, n);
	return fn(n);
}

/* Without a runtime there is no new-handler to run either. */
static zp_cold void *
new_nothrow_failed(const char *sym, size_t n, const void *nt)
{
	new_nothrow_fn *fn = (new_nothrow_fn *)runtime_operator(sym);

	return fn ? fn(n, nt) : NULL;
}

static zp_cold void *
new_aligned_failed(const char *sym, const char *op, size_t n, size_t al)
{
	new_aligned_fn *fn = (new_aligned_fn *)runtime_operator(sym);

	if (!fn)
		no_runtime(op, n);
	return fn(n, al);
}

static zp_cold void *
new_aligned_nothrow_failed(const char *sym, size_t n, size_t al,
			   const void *nt)
{
	new_aligned_nothrow_fn *fn =
		(new_aligned_nothrow_fn *)runtime_operator(sym);

	return fn ? fn(n, al, nt) : NULL;
}

/* A non-power-of-two alignment fails here; the runtime then throws (or
 * returns NULL) for it as the standard asks. */
static zp_always_inline void *
new_aligned(size_t n, size_t al)
{
	return zp_likely(zp_is_pow2(al)) ? alloc_aligned(al, n) : NULL;
}

/* --- operator new ------------------------------------------------------- */

ZP_EXPORT void *cxx_new(size_t n) CXX_NAME("_Znwm");
ZP_EXPORT void *cxx_new_array(size_t n) CXX_NAME("_Znam");
ZP_EXPORT void *cxx_new_nothrow(size_t n, const void *nt)
	CXX_NAME("_ZnwmRKSt9nothrow_t");
ZP_EXPORT void *cxx_new_array_nothrow(size_t n, const void *nt)
	CXX_NAME("_ZnamRKSt9nothrow_t");
ZP_EXPORT void *cxx_new_aligned(size_t n, size_t al)
	CXX_NAME("_ZnwmSt11align_val_t");
ZP_EXPORT void *cxx_new_array_aligned(size_t n, size_t al)
	CXX_NAME("_ZnamSt11align_val_t");
ZP_EXPORT void *cxx_new_aligned_nothrow(size_t n, size_t al, const void *nt)
	CXX_NAME("_ZnwmSt11align_val_tRKSt9nothrow_t");
ZP_EXPORT void *cxx_new_array_aligned_nothrow(size_t n, size_t al,
					      const void *nt)
	CXX_NAME("_ZnamSt11align_val_tRKSt9nothrow_t");

/* Everything but a bin pop: alloc_malloc's own slow paths, then the
 * runtime's operator when they fail. Apart from the operators so that
 * theirs make no call (no register saved around one). */
static zp_noinline void *
new_slow(size_t n, const char *sym, const char *op)
{
	void *p = alloc_malloc(n);

	if (zp_likely(p != NULL))
		return p;
	return new_failed(sym, op, n);
}

static zp_noinline void *
new_nothrow_slow(size_t n, const void *nt, const char *sym)
{
	void *p = alloc_malloc(n);

	if (zp_likely(p != NULL))
		return p;
	return new_nothrow_failed(sym, n, nt);
}

void *
cxx_new(size_t n)
{
	void *p;

	if (zp_likely(alloc_malloc_fast(n, &p)))
		return p;
	return new_slow(n, "_Znwm", "operator new");
}

void *
cxx_new_array(size_t n)
{
	void *p;

	if (zp_likely(alloc_malloc_fast(n, &p)))
		return p;
	return new_slow(n, "_Znam", "operator new[]");
}

void *
cxx_new_nothrow(size_t n, const void *nt)
{
	void *p;

	if (zp_likely(alloc_malloc_fast(n, &p)))
		return p;
	return new_nothrow_slow(n, nt, "_ZnwmRKSt9nothrow_t");
}

void *
cxx_new_array_nothrow(size_t n, const void *nt)
{
	void *p;

	if (zp_likely(alloc_malloc_fast(n, &p)))
		return p;
	return new_nothrow_slow(n, nt, "_ZnamRKSt9nothrow_t");
}

void *
cxx_new_aligned(size_t n, size_t al)
{
	void *p = new_aligned(n, al);

	if (zp_likely(p != NULL))
		return p;
	return new_aligned_failed("_ZnwmSt11align_val_t", "operator new", n,
				  al);
}

void *
cxx_new_array_aligned(size_t n, size_t al)
{
	void *p = new_aligned(n, al);

	if (zp_likely(p != NULL))
		return p;
	return new_aligned_failed("_ZnamSt11align_val_t", "operator new[]",
				  n, al);
}

void *
cxx_new_aligned_nothrow(size_t n, size_t al, const void *nt)
{
	void *p = new_aligned(n, al);

	if (zp_likely(p != NULL))
		return p;
	return new_aligned_nothrow_failed(
		"_ZnwmSt11align_val_tRKSt9nothrow_t", n, al, nt);
}

void *
cxx_new_array_aligned_nothrow(size_t n, size_t al, const void *nt)
{
	void *p = new_aligned(n, al);

	if (zp_likely(p != NULL))
		return p;
	return new_aligned_nothrow_failed(
		"_ZnamSt11align_val_tRKSt9nothrow_t", n, al, nt);
}

/* --- operator delete ---------------------------------------------------- */

ZP_EXPORT void cxx_delete(void *p) CXX_NAME("_ZdlPv");
ZP_EXPORT void cxx_delete_array(void *p) CXX_NAME("_ZdaPv");
ZP_EXPORT void cxx_delete_sized(void *p, size_t n) CXX_NAME("_ZdlPvm");
ZP_EXPORT void cxx_delete_array_sized(void *p, size_t n) CXX_NAME("_ZdaPvm");
ZP_EXPORT void cxx_delete_nothrow(void *p, const void *nt)
	CXX_NAME("_ZdlPvRKSt9nothrow_t");
ZP_EXPORT void cxx_delete_array_nothrow(void *p, const void *nt)
	CXX_NAME("_ZdaPvRKSt9nothrow_t");
ZP_EXPORT void cxx_delete_aligned(void *p, size_t al)
	CXX_NAME("_ZdlPvSt11align_val_t");
ZP_EXPORT void cxx_delete_array_aligned(void *p, size_t al)
	CXX_NAME("_ZdaPvSt11align_val_t");
ZP_EXPORT void cxx_delete_sized_aligned(void *p, size_t n, size_t al)
	CXX_NAME("_ZdlPvmSt11align_val_t");
ZP_EXPORT void cxx_delete_array_sized_aligned(void *p, size_t n, size_t al)
	CXX_NAME("_ZdaPvmSt11align_val_t");
ZP_EXPORT void cxx_delete_aligned_nothrow(void *p, size_t al, const void *nt)
	CXX_NAME("_ZdlPvSt11align_val_tRKSt9nothrow_t");
ZP_EXPORT void cxx_delete_array_aligned_nothrow(void *p, size_t al,
						const void *nt)
	CXX_NAME("_ZdaPvSt11align_val_tRKSt9nothrow_t");

void
cxx_delete(void *p)
{
	alloc_free(p);
}

void
cxx_delete_array(void *p)
{
	alloc_free(p);
}

void
cxx_delete_sized(void *p, size_t n)
{
	alloc_free_sized(p, n, "operator delete");
}

void
cxx_delete_array_sized(void *p, size_t n)
{
	alloc_free_sized(p, n, "operator delete[]");
}

void
cxx_delete_nothrow(void *p, const void *nt)
{
	(void)nt;
	alloc_free(p);
}

void
cxx_delete_array_nothrow(void *p, const void *nt)
{
	(void)nt;
	alloc_free(p);
}

void
cxx_delete_aligned(void *p, size_t al)
{
	(void)al;
	alloc_free(p);
}

void
cxx_delete_array_aligned(void *p, size_t al)
{
	(void)al;
	alloc_free(p);
}

void
cxx_delete_sized_aligned(void *p, size_t n, size_t al)
{
	alloc_free_aligned_sized(p, al, n, "operator delete");
}

void
cxx_delete_array_sized_aligned(void *p, size_t n, size_t al)
{
	alloc_free_aligned_sized(p, al, n, "operator delete[]");
}

void
cxx_delete_aligned_nothrow(void *p, size_t al, const void *nt)
{
	(void)al;
	(void)nt;
	alloc_free(p);
}

void
cxx_delete_array_aligned_nothrow(void *p, size_t al, const void *nt)
{
	(void)al;
	(void)nt;
	alloc_free(p);
}
