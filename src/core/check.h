// Broken invariants abort loudly. Expected failures use Status/Result instead.
#pragma once

#include <cstdio>
#include <cstdlib>

#define LL_CHECK(cond)                                                                  \
  do {                                                                                  \
    if (!(cond)) [[unlikely]] {                                                         \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
