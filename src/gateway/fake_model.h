// A simulated model server: a real OpenAI-compatible HTTP server on loopback that "generates"
// tokens at a configured speed (no weights, no GPU: the text is filler). It stands in for the
// vLLM / SGLang / llama.cpp replicas that the sim fleet would place on its GPUs, and serves as
// the fixture upstream in tests and benchmarks. Usage is reported like OpenAI's: in the body,
// and in a last stream chunk only when `stream_options.include_usage` is set. Answers have `n`
// choices, a random id (`chatcmpl-` + 128 random bits in hex: unique across replicas and
// restarts) and `created` from the clock given.
//
// Faults for tests: crash (the process exits, or in-process: every connection is dropped)
// after reading a request but before answering it, or after streaming N tokens.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "core/clock.h"
#include "core/status.h"
#include "core/time.h"

namespace ll::gateway {

struct FakeModelOptions {
  std::string listen = "127.0.0.1:0";
  std::string model = "landlord-sim-8b";
  std::string name = "fake";      // sent back as `x-replica`
  double tokens_per_s = 50;       // generation speed per request; 0: all at once
  Duration first_token = Duration::Millis(0);  // time to the first token (prefill)
  int64_t default_output_tokens = 16;          // when the request sets no max_tokens
  bool crash_before_first_byte = false;
  int64_t crash_after_tokens = -1;  // ≥ 0: crash once a stream has sent this many tokens
  // Crash by exiting the process (a `landlord fake-model` process) or, in-process, by dropping
  // every connection and the listener.
  bool exit_on_crash = true;
  // The answers' `created` (unix seconds); nullptr: the system clock. Outlives the server.
  const Clock* clock = nullptr;
};

class FakeModel {
 public:
  static Result<std::unique_ptr<FakeModel>> Start(boost::asio::io_context& ioc, FakeModelOptions options);
  virtual ~FakeModel() = default;
  virtual std::string address() const = 0;  // "127.0.0.1:PORT"
  // Closes the listener and every connection at once (a replica that died).
  virtual void Kill() = 0;
  virtual int64_t requests() const = 0;
};

}  // namespace ll::gateway
