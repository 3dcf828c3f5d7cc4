/*
 * os_libc.c - find a loaded library's own definition of a function: glibc's
 *             malloc entry points in libc.so.6, the C++ runtime's operator
 *             new in libstdc++.so.6 or libc++abi.so.1; and a function of
 *             the vDSO (its clock_gettime).
 *
 * A preloaded allocator must hand pointers it never gave out back to the
 * allocator that did, and a failed operator new to the runtime that knows
 * the program's new-handler. Binding by symbol name cannot do that: our
 * exports are unversioned, so they also satisfy references to the others'
 * versioned names (a lookup would find us again), and dlsym may allocate.
 * Instead we read that one library's dynamic symbol table the way the
 * dynamic linker does (GNU hash, default version only).
 */
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>

#include "os/os.h"

struct dso_lookup {
	const char *dso;	/* file name without directory */
	const char *name;
	void *found;
};

struct dso_tables {
	uintptr_t base;
	const ElfW(Sym) *symtab;
	const char *strtab;
	const uint32_t *gnu_hash;
	const ElfW(Word) *sysv_hash;
	const ElfW(Half) *versym;
};

static bool
is_dso(const char *path, const char *dso)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;

	return strcmp(base, dso) == 0;
}

/* Some architectures leave .dynamic read-only and unrelocated. */
static const void *
dyn_ptr(uintptr_t base, ElfW(Addr) v)
{
	return (const void *)(v < base ? v + base : v);
}

/* The tables .dynamic names, t->base set; link_time: every address in
 * it is a link-time one (the vDSO's), moved by t->base. */
static void
read_dynamic(const ElfW(Dyn) *dyn, bool link_time, struct dso_tables *t)
{
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		const void *p = link_time
			? (const void *)(t->base + dyn->d_un.d_ptr)
			: dyn_ptr(t->base, dyn->d_un.d_ptr);

		if (dyn->d_tag == DT_SYMTAB)
			t->symtab = p;
		else if (dyn->d_tag == DT_STRTAB)
			t->strtab = p;
		else if (dyn->d_tag == DT_GNU_HASH)
			t->gnu_hash = p;
		else if (dyn->d_tag == DT_HASH)
			t->sysv_hash = p;
		else if (dyn->d_tag == DT_VERSYM)
			t->versym = p;
	}
}

static bool
read_tables(const struct dl_phdr_info *info, struct dso_tables *t)
{
	const ElfW(Dyn) *dyn = NULL;

	*t = (struct dso_tables){ .base = info->dlpi_addr };
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const void *)(t->base + info->dlpi_phdr[i].p_vaddr);
	read_dynamic(dyn, false, t);
	return t->symtab && t->strtab && t->gnu_hash;
}

static uint32_t
gnu_hash(const char *s)
{
	uint32_t h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static bool
sym_matches(const struct dso_tables *t, uint32_t idx, const char *name)
{
	const ElfW(Sym) *sym = &t->symtab[idx];

	if (sym->st_value == 0 || ELF64_ST_TYPE(sym->st_info) != STT_FUNC)
		return false;
	if (t->versym && (t->versym[idx] & 0x8000))
		return false;	/* a hidden, non-default version */
	return strcmp(t->strtab + sym->st_name, name) == 0;
}

static void *
lookup(const struct dso_tables *t, const char *name)
{
	const uint32_t *h = t->gnu_hash;
	uint32_t nbuckets = h[0], symoffset = h[1], bloom_words = h[2];
	const uint32_t *buckets =
		(const uint32_t *)((const ElfW(Addr) *)&h[4] + bloom_words);
	const uint32_t *chain = buckets + nbuckets;
	uint32_t hash = gnu_hash(name);

	for (uint32_t idx = buckets[hash % nbuckets]; idx >= symoffset; idx++) {
		uint32_t c = chain[idx - symoffset];

		if ((c | 1) == (hash | 1) && sym_matches(t, idx, name))
			return (void *)(t->base + t->symtab[idx].st_value);
		if (c & 1)
			break;
	}
	return NULL;
}

static int
visit(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct dso_lookup *q = arg;
	struct dso_tables t;

	(void)size;
	if (!info->dlpi_name || !is_dso(info->dlpi_name, q->dso))
		return 0;
	if (read_tables(info, &t))
		q->found = lookup(&t, q->name);
	return 1;
}

void *
os_dso_symbol(const char *dso, const char *name)
{
	struct dso_lookup q = { .dso = dso, .name = name };

	dl_iterate_phdr(visit, &q);
	return q.found;
}

void *
os_libc_symbol(const char *name)
{
	return os_dso_symbol("libc.so.6", name);
}

/* --- the vDSO ------------------------------------------------------------ */

/* The vDSO is read where the kernel mapped it, without dl_iterate_phdr:
 * boot looks for its clock, and boot may run while another thread that
 * waits for it holds the loader's lock (inside a dl_iterate_phdr
 * callback that allocates). Its .dynamic is never relocated: every
 * address in it is a link-time one, moved by the load bias. */
static bool
vdso_tables(const ElfW(Ehdr) *eh, struct dso_tables *t)
{
	const ElfW(Phdr) *ph = (const void *)((const char *)eh + eh->e_phoff);
	const ElfW(Dyn) *dyn = NULL;
	bool have_base = false;

	*t = (struct dso_tables){ .base = 0 };
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && !have_base) {
			t->base = (uintptr_t)eh + ph[i].p_offset -
				  ph[i].p_vaddr;
			have_base = true;
		} else if (ph[i].p_type == PT_DYNAMIC) {
			dyn = (const void *)((const char *)eh +
					     ph[i].p_offset);
		}
	}
	if (!have_base)
		return false;
	read_dynamic(dyn, true, t);
	return t->symtab && t->strtab && t->sysv_hash;
}

zp_boot_text void *
os_vdso_symbol(const char *name)
{
	const ElfW(Ehdr) *eh = (const void *)getauxval(AT_SYSINFO_EHDR);
	struct dso_tables t;

	if (eh == NULL || eh->e_ident[EI_MAG0] != ELFMAG0 ||
	    eh->e_ident[EI_MAG1] != ELFMAG1 ||
	    eh->e_ident[EI_MAG2] != ELFMAG2 ||
	    eh->e_ident[EI_MAG3] != ELFMAG3 ||
	    eh->e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64
							   : ELFCLASS32) ||
	    !vdso_tables(eh, &t))
		return NULL;
	/* The sysv table's chain count is the number of symbols. */
	for (ElfW(Word) i = 0; i < t.sysv_hash[1]; i++)
		if (t.symtab[i].st_shndx != SHN_UNDEF &&
		    sym_matches(&t, i, name))
			return (void *)(t.base + t.symtab[i].st_value);
	return NULL;
}
