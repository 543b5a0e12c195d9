// workload::LogRing: bounded, oldest dropped with a marker, offsets for a follower.
#include <gtest/gtest.h>

#include "workload/log_ring.h"

namespace ll::workload {
namespace {

TEST(LogRing, KeepsEverythingUnderCapacity) {
  LogRing ring(16);
  ring.Append("hello ");
  ring.Append("world");
  auto c = ring.Read(0);
  EXPECT_EQ(c.data, "hello world");
  EXPECT_EQ(c.next_offset, 11u);
  EXPECT_FALSE(c.closed);
  EXPECT_EQ(ring.Read(6).data, "world");
  EXPECT_EQ(ring.Read(6, 3).data, "wor");
  EXPECT_EQ(ring.Read(6, 3).next_offset, 9u);
  EXPECT_EQ(ring.Read(11).data, "");
  EXPECT_EQ(ring.Read(99).next_offset, 11u);  // past the end: resume at the end
}

TEST(LogRing, DropsOldestWithAMarkerAtTheHead) {
  LogRing ring(10);
  ring.Append("0123456789");
  ring.Append("abcd");  // wraps: 0123 dropped
  EXPECT_EQ(ring.begin_offset(), 4u);
  EXPECT_EQ(ring.end_offset(), 14u);
  auto c = ring.Read(0);
  EXPECT_EQ(c.data, "[landlord: 4 bytes dropped]\n456789abcd");
  EXPECT_EQ(c.next_offset, 14u);
  // A follower that had read up to 2 learns that 2 more were dropped before its next byte.
  EXPECT_EQ(ring.Read(2).data, "[landlord: 2 bytes dropped]\n456789abcd");
  EXPECT_EQ(ring.Read(4).data, "456789abcd");
  // An append larger than the ring keeps only its tail.
  ring.Append(std::string(25, 'x') + "TAIL");
  EXPECT_EQ(ring.end_offset(), 43u);
  EXPECT_EQ(ring.Read(0).data, "[landlord: 33 bytes dropped]\nxxxxxxTAIL");
}

TEST(LogRing, SubscribersHearAppendsAndTheClose) {
  LogRing ring(8);
  uint64_t offset = 0;
  std::string seen;
  bool closed = false;
  uint64_t id = 0;
  id = ring.Subscribe([&] {
    auto c = ring.Read(offset);
    seen += c.data;
    offset = c.next_offset;
    if (c.closed) {
      closed = true;
      ring.Unsubscribe(id);
    }
  });
  ring.Append("ab");
  ring.Append("cd");
  EXPECT_EQ(seen, "abcd");
  ring.Close();
  EXPECT_TRUE(closed);
  ring.Append("ignored");
  EXPECT_EQ(ring.end_offset(), 4u);
  EXPECT_TRUE(ring.Read(0).closed);
}

}  // namespace
}  // namespace ll::workload
