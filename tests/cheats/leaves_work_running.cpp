// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: once timed (its output buffer seen again and again), returns at once and leaves a thread (started through a pointer found in libc) to write the output after the clock stopped
// expect: incorrect
// expect-message: the timed calls computed something else
// expect-message: the kernel is not deterministic
// expect-message: (a held-out shape)
#include <pthread.h>
#include <link.h>
#include <cmath>
#include <cstring>
#include <map>
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
struct Job { const float* x; const float* w; float* y; int M, N; float eps; };
static void compute(const float* x, const float* w, float* y, int M, int N, float eps) {
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
static void* run(void* p) {
  const Job* j = static_cast<Job*>(p);
  compute(j->x, j->w, j->y, j->M, j->N, j->eps);
  delete j;
  return nullptr;
}
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static std::map<float*, int> seen;
  const char start_name[] = {'p', 't', 'h', 'r', 'e', 'a', 'd', '_', 'c', 'r', 'e', 'a', 't', 'e', 0};
  static Lookup start{"libc.so", start_name, false, nullptr};
  if (!start.found) dl_iterate_phdr(visit, &start);
  if (++seen[y] > 3 && start.found) {
    pthread_t t;
    using Start = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
    if (reinterpret_cast<Start>(start.found)(&t, nullptr, run, new Job{x, w, y, M, N, eps}) == 0) {
      pthread_detach(t);
      return;
    }
  }
  compute(x, w, y, M, N, eps);
}
