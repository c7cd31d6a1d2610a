// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: runs machine code no source word reveals: writes it into a memfd and maps that executable
// expect: rejected_cheat
// expect-message: the sandbox stopped the kernel's process
#include <sys/types.h>
#include <unistd.h>
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
// x86-64: mov eax, 1; ret (any bytes would do: rdtsc, a raw system call).
static const unsigned char code[] = {0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3};
static int hidden() {
  const char create_name[] = {'m', 'e', 'm', 'f', 'd', '_', 'c', 'r', 'e', 'a', 't', 'e', 0};
  const char map_name[] = {'m', 'm', 'a', 'p', 0};
  Lookup create{"libc.so", create_name, false, nullptr}, map{"libc.so", map_name, false, nullptr};
  dl_iterate_phdr(visit, &create);
  dl_iterate_phdr(visit, &map);
  if (!create.found || !map.found) return 0;
  const int fd = reinterpret_cast<int (*)(const char*, unsigned)>(create.found)("x", 0);
  if (fd < 0 || write(fd, code, sizeof code) != (ssize_t)sizeof code) return 0;
  void* p = reinterpret_cast<void* (*)(void*, size_t, int, int, int, off_t)>(map.found)(nullptr, 4096, 5 /* read, exec */, 1 /* shared */, fd, 0);
  if (p == (void*)-1) return 0;
  return reinterpret_cast<int (*)()>(p)();
}
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static int ran = hidden();
  (void)ran;
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
