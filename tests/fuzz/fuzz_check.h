// tests/fuzz/fuzz_check.h — a property check that stops the fuzzer with a message.
//
// libFuzzer reports any abort() as a crash and saves the input, so a violated property is
// found, minimised and replayed exactly like a memory error.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
