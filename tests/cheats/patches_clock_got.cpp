// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: finds the GOT slot through which the harness reaches steady_clock::now, makes its page writable again (RELRO is only a page protection) and points it at a clock running 3x slow
// expect: rejected_cheat
// expect-message: the kernel's process reported less time than passed outside it
#include <link.h>
#include <cmath>
#include <cstring>
// No forbidden word: symbols are found by walking the loaded objects' dynamic sections.
struct Lookup { const char* object; const char* name; bool slot; void* found; };
static int visit(dl_phdr_info* info, size_t, void* data) {
  auto* q = static_cast<Lookup*>(data);
  if (!std::strstr(info->dlpi_name, q->object)) return 0;
  const ElfW(Dyn)* dyn = nullptr;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn)*)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
  const ElfW(Sym)* syms = nullptr; const char* strs = nullptr; const ElfW(Rela)* rel[2] = {}; size_t size[2] = {};
  for (; dyn && dyn->d_tag != DT_NULL; ++dyn) {
    if (dyn->d_tag == DT_SYMTAB) syms = (const ElfW(Sym)*)dyn->d_un.d_ptr;
    if (dyn->d_tag == DT_STRTAB) strs = (const char*)dyn->d_un.d_ptr;
    if (dyn->d_tag == DT_JMPREL) rel[0] = (const ElfW(Rela)*)dyn->d_un.d_ptr;
    if (dyn->d_tag == DT_PLTRELSZ) size[0] = dyn->d_un.d_val;
    if (dyn->d_tag == DT_RELA) rel[1] = (const ElfW(Rela)*)dyn->d_un.d_ptr;
    if (dyn->d_tag == DT_RELASZ) size[1] = dyn->d_un.d_val;
  }
  if (!syms || !strs) return 0;
  if (q->slot) {
    for (int k = 0; k < 2; ++k)
      for (size_t i = 0; rel[k] && i < size[k] / sizeof(ElfW(Rela)); ++i)
        if (ELF64_R_SYM(rel[k][i].r_info) && !std::strcmp(strs + syms[ELF64_R_SYM(rel[k][i].r_info)].st_name, q->name))
          q->found = (void*)(info->dlpi_addr + rel[k][i].r_offset);
    return 1;  // the first object is the program
  }
  for (const ElfW(Sym)* s = syms; (const char*)s < strs; ++s)
    if (s->st_value && !std::strcmp(strs + s->st_name, q->name)) { q->found = (void*)(info->dlpi_addr + s->st_value); return 1; }
  return 0;
}
static long (*real_now)();
static long base;
static long slow_now() { const long t = real_now(); return base + (t - base) / 3; }
static void patch() {
  static bool done = false;
  if (done) return;
  done = true;
  Lookup slot{"", "_ZNSt6chrono3_V212steady_clock3nowEv", true, nullptr};
  dl_iterate_phdr(visit, &slot);
  const char protect_name[] = {'m', 'p', 'r', 'o', 't', 'e', 'c', 't', 0};
  Lookup protect{"libc.so", protect_name, false, nullptr};
  dl_iterate_phdr(visit, &protect);
  if (!slot.found || !protect.found) return;
  auto** got = static_cast<long (**)()>(slot.found);
  auto change = reinterpret_cast<int (*)(void*, size_t, int)>(protect.found);
  if (change((void*)((unsigned long)got & ~4095ul), 4096, 3 /* read, write */) != 0) return;
  real_now = *got;
  base = real_now();
  *got = slow_now;
}
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  patch();
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
