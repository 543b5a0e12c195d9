// The gateway's request filters, in the shape of Envoy's decoder filters: the chain
// (filter_chain.h) hands the request to each filter in turn, first its headers
// (DecodeHeaders: method, path, Authorization), then its body (DecodeBody). A filter answers
// kContinue to let the next one have it, or kStopIteration: it is waiting for an answer (the
// ledger's, a replica's) and resumes the chain with ContinueDecoding when it comes, or it has
// ended the request (SendLocalReply, or the route filter's own answer).
//
// When the answer is done, each filter sees how the request ended (EncodeComplete, last filter
// first): the meter bills the usage there, and may hold the answer's last bytes until the
// usage is durable (kStopIteration, then ContinueEncoding).
//
// Everything runs on the gateway's one thread: a client that answers later posts its answer
// there. A filter that waits keeps the request alive by capturing KeepAlive().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "gateway/api_call.h"
#include "gateway/ledger_client.h"
#include "gateway/limits.h"

namespace ll::gateway {

using Headers = std::vector<std::pair<std::string, std::string>>;

// One extra response header (a function: GCC 12 misreads a braced list here, -Warray-bounds).
inline Headers OneHeader(std::string name, std::string value) {
  Headers h;
  h.emplace_back(std::move(name), std::move(value));
  return h;
}

struct ResponsesRequest;  // responses.h

struct GatewayRequest {
  std::string method;
  std::string target;
  std::string authorization;
  std::string body;
};

// The client side of one request, implemented by the HTTP server's connection.
class Downstream {
 public:
  struct Head {
    int status = 200;
    std::string content_type = "application/json";
    Headers headers;
  };
  virtual ~Downstream() = default;
  // A whole response.
  virtual void Send(Head head, std::string body) = 0;
  // A streamed one: the head, chunks, then End().
  virtual void Begin(Head head) = 0;
  virtual void Chunk(std::string data) = 0;
  virtual void End() = 0;
  // False once the client is gone (the gateway then stops the upstream).
  virtual bool open() const = 0;
};

// What one request has gathered on its way through the filters; each field is written by one
// filter and read by those after it.
struct RequestState {
  std::string id;  // req_…: unique across restarts (idempotency keys use it)
  GatewayRequest request;
  Key key;                        // auth
  ApiCall call;                   // parse
  Admission admission;            // parse: what it asks of the limits and the budget
  std::string model_label = "-";  // parse: the metrics' model label
  RateLimits::Decision limits;    // limits: the x-ratelimit-* headers of every answer
  bool held = false;              // budget: the balance holds `admission.amount`
  std::string replica;            // route: the replica answering (x-landlord-replica)
  int attempt = 0;                // route: replicas tried (the usage's idempotency key counts them)
  // responses: a `POST /v1/responses` translated to chat; the route filter translates back.
  std::shared_ptr<ResponsesRequest> responses;
};

enum class FilterStatus { kContinue, kStopIteration };

// An answer of the gateway's own (not a replica's): an OpenAI-style error.
// (Every member has an initializer: designated initializers may leave any out.)
struct LocalReply {
  int status = 400;
  std::string code{};
  std::string message{};
  std::string param{};  // the field at fault, or empty
  std::string type = "invalid_request_error";
  Headers headers{};
};

// How a request ended, for the filters that account for it.
struct Completion {
  int64_t input_tokens = 0, output_tokens = 0;  // what reached the client, as billed
  // The answer's last bytes wait for the filters (ContinueEncoding): a filter may hold them
  // until what it did is durable. False: the answer is already over (or never comes).
  bool last_bytes_wait = false;
};

// What the chain offers its filters (Envoy's StreamDecoderFilterCallbacks).
class FilterCallbacks {
 public:
  virtual ~FilterCallbacks() = default;
  // Resumes the chain after the filter that returned kStopIteration. Nothing once the request
  // has ended. A filter's client may answer before the filter returns: that is fine.
  virtual void ContinueDecoding() = 0;
  // Ends the request with `reply`: the filters see it complete (nothing used), then it is sent.
  virtual void SendLocalReply(LocalReply reply) = 0;
  // The request stays alive while this is held: what answers later captures it.
  virtual std::shared_ptr<void> KeepAlive() = 0;

  // The response, with the request's own headers added (x-request-id, x-ratelimit-*,
  // x-landlord-replica) and counted in the metrics by model and status.
  virtual void Send(int status, std::string content_type, std::string body, Headers extra = {}) = 0;
  // 200 application/json, not counted: the model catalog is no model request.
  virtual void SendListing(std::string body) = 0;
  virtual void BeginStream(Headers extra) = 0;  // 200 text/event-stream
  virtual void Chunk(std::string data) = 0;
  virtual void EndStream() = 0;
  virtual bool downstream_open() const = 0;

  // The request has ended with `c`: the filters account for it (EncodeComplete, last filter
  // first), then `last_bytes` (may be empty) runs with the first error a filter reported, or
  // Ok. Only the first call counts: later ones run `last_bytes` with Ok at once.
  virtual void Complete(Completion c, std::function<void(Status)> last_bytes) = 0;
  // Resumes completion after the filter that returned kStopIteration from EncodeComplete;
  // `st` not Ok: what it did could not be made durable.
  virtual void ContinueEncoding(Status st) = 0;
};

class StreamFilter {
 public:
  virtual ~StreamFilter() = default;
  // Called once, before anything else.
  void SetCallbacks(FilterCallbacks* cb) { cb_ = cb; }
  virtual FilterStatus DecodeHeaders(RequestState&) { return FilterStatus::kContinue; }
  virtual FilterStatus DecodeBody(RequestState&) { return FilterStatus::kContinue; }
  virtual FilterStatus EncodeComplete(RequestState&, const Completion&) { return FilterStatus::kContinue; }
  // The gateway is shutting down: drop what is pending (its handlers then end the request).
  virtual void Abort() {}

 protected:
  FilterCallbacks& callbacks() const { return *cb_; }

 private:
  FilterCallbacks* cb_ = nullptr;
};

}  // namespace ll::gateway
