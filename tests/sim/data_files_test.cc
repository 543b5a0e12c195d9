// Where the shared data resolves (sim/data_files.h): the defaults' "data/…" paths from any
// working directory, and every other path untouched.
#include "sim/data_files.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace ll::sim {
namespace {

namespace fs = std::filesystem;

// Runs the test body in another working directory, and comes back.
class ElsewhereTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = fs::current_path();
    fs::current_path(fs::temp_directory_path());
  }
  void TearDown() override { fs::current_path(home_); }
  fs::path home_;
};

TEST_F(ElsewhereTest, DefaultTracesResolveFromAnyDirectory) {
  // A test binary lives in the build tree: the sources' data/ (an install has share/landlord/).
  ASSERT_FALSE(SharedDataDir().empty());
  const std::string helios = DataPath("data/helios_earth_2020_05/earth_vc_sequence_2020-05_changepoints.csv");
  EXPECT_TRUE(fs::exists(helios)) << helios;
  EXPECT_EQ(helios, SharedDataDir() + "/helios_earth_2020_05/earth_vc_sequence_2020-05_changepoints.csv");
  EXPECT_TRUE(fs::is_directory(DataPath("./data/azure_llm_2023")));
}

TEST_F(ElsewhereTest, OtherPathsAreLeftAsGiven) {
  EXPECT_EQ(DataPath("data/no-such-file.csv"), "data/no-such-file.csv") << "errors name what was asked for";
  EXPECT_EQ(DataPath("/tmp/data/x.csv"), "/tmp/data/x.csv");
  EXPECT_EQ(DataPath("mydata/x.csv"), "mydata/x.csv");
  EXPECT_EQ(DataPath("traces/data/x.csv"), "traces/data/x.csv");
}

}  // namespace
}  // namespace ll::sim
