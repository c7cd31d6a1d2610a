#include <gtest/gtest.h>

#include "evaluator/evaluator.hpp"

using kforge::static_check;

namespace {

TEST(StaticCheck, HonestKernelsPass) {
  EXPECT_FALSE(static_check("#include <cmath>\nextern \"C\" void f(const float* x, float* y, int n) {\n"
                            "#pragma omp parallel for simd\n  for (int i = 0; i < n; ++i) y[i] = std::exp(x[i]);\n}\n"));
  // Words that merely contain a refused one, and refused words inside comments, are fine.
  EXPECT_FALSE(static_check("int forked_rows = 0; // we never fork() here\n/* system( */ int threads = 2;"));
  EXPECT_FALSE(static_check("#include <signal.h>\n#include <thread>\nint f() { return 1; }"));
  EXPECT_FALSE(static_check("int f() { const int thread = omp_get_thread_num(); return thread; }"));
}

TEST(StaticCheck, EachEscapeIsRefusedWithItsReasonAndLine) {
  struct Case {
    const char* source;
    const char* expect;
  };
  for (const Case& c : {Case{"void f() {\n  fork();\n}", "line 2: 'fork' starts processes"},
                        Case{"void f() { system(\"rm -rf /\"); }", "'system' starts programs"},
                        Case{"#include <thread>\nvoid f() { std::thread t; }", "'std::thread' starts threads that outlive"},
                        Case{"void f() { auto t = std::chrono::steady_clock::now(); }", "'std::chrono' reads timers"},
                        Case{"void f() { dlopen(0, 0); }", "'dlopen' loads code"},
                        Case{"void f() { const char* p = \"/proc/self/maps\"; }", "'/proc/' reads /proc"},
                        Case{"void f() { asm volatile(\"\" ::: \"memory\"); }", "'asm' uses inline assembly"},
                        Case{"void f() { syscall(60, 0); }", "'syscall' makes raw system calls"}}) {
    auto reason = static_check(c.source);
    ASSERT_TRUE(reason.has_value()) << c.source;
    EXPECT_NE(reason->find(c.expect), std::string::npos) << *reason;
  }
}

// The same calls spelled around the words above: a prefix of underscores, a suffix of digits, a
// raw system call number, or the call hidden in inline assembly.
TEST(StaticCheck, SpelledAroundTokensAreRefused) {
  struct Case {
    const char* source;
    const char* expect;
  };
  for (const Case& c : {Case{"void f() { void* p = mmap64(0, 4096, 7, 0x22, -1, 0); }", "'mmap64' maps memory"},
                        Case{"void f() { __mmap(0, 1, 7, 0x22, -1, 0); }", "'__mmap' maps memory"},
                        Case{"long f() { return __syscall(39); }", "'__syscall' makes raw system calls"},
                        Case{"long f() { return __NR_mmap; }", "'__NR_mmap' makes raw system calls"},
                        Case{"long f() { return SYS_memfd_create; }", "'SYS_memfd_create' makes raw system calls"},
                        Case{"void f() { __asm__ volatile(\"syscall\"); }", "'__asm__' uses inline assembly"},
                        Case{"void f() { asm(\"mov $60, %eax; syscall\"); }", "'asm' uses inline assembly"},
                        Case{"int f() { return memfd_create(\"x\", 0); }", "'memfd_create' makes code of its own"},
                        Case{"void f() { thrd_t t; thrd_create(&t, 0, 0); }", "'thrd_create' starts threads"},
                        Case{"void f() { __clone(0, 0, 0, 0); }", "'__clone' starts processes or threads"}}) {
    auto reason = static_check(c.source);
    ASSERT_TRUE(reason.has_value()) << c.source;
    EXPECT_NE(reason->find(c.expect), std::string::npos) << *reason;
  }
  // Words that only begin like a refused one stay fine.
  EXPECT_FALSE(static_check("int mmapped = 0, system_size = 1, forks_seen = 2, clones = 3, syscalls_left = 4;"));
}

}  // namespace

TEST(StaticCheck, OnlyLibraryHeadersMayBeIncluded) {
  for (const char* ok : {"#include <cmath>\n", "  #  include <immintrin.h>\n", "#include <cuda/std/atomic>\n"})
    EXPECT_FALSE(kforge::include_check(ok).has_value()) << ok;
  for (const char* bad : {"#include \"/etc/hostname\"\n", "#include </etc/passwd>\n", "#include <../../secret.h>\n",
                          "#include \"helper.h\"\n", "#define F </tmp/f>\n#include F\n"}) {
    auto reason = kforge::include_check(std::string("int x;\n") + bad);
    ASSERT_TRUE(reason.has_value()) << bad;
    EXPECT_NE(reason->find("only #include <header> is allowed"), std::string::npos) << *reason;
    EXPECT_TRUE(kforge::static_check(std::string("int x;\n") + bad).has_value()) << bad;
  }
}
