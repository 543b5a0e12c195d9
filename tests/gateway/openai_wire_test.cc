// Regression tests (issue 15).
#include <gtest/gtest.h>
