#include "gateway/gateway.h"

#include <algorithm>
#include <array>
#include <limits>
#include <random>

#include <simdjson.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gateway/api_call.h"
#include "gateway/http_util.h"

namespace ll::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct Gateway::Pool {
  static constexpr size_t kMaxIdle = 256;
  std::map<std::string, std::vector<std::unique_ptr<beast::tcp_stream>>> idle;  // by replica id
  std::map<std::string, tcp::resolver::results_type> endpoints;
  tcp::resolver resolver;
  explicit Pool(net::io_context& ioc) : resolver(ioc) {}
};

namespace {

std::string_view Sv(beast::string_view s) { return {s.data(), s.size()}; }

// Micro-dollars for `tokens` at `per_mtok`, rounded up (a hold must cover any rounding).
Money CostCeil(int64_t tokens, Money per_mtok) {
  const __int128 v = static_cast<__int128>(tokens) * per_mtok.micros;
  return Money::Micros(static_cast<int64_t>((v + 999'999) / 1'000'000));
}

// The `usage` object's token counts in a response body or stream chunk, if it has one.
bool ReadUsage(std::string_view json, int64_t* prompt, int64_t* completion) {
  if (json.find("\"usage\"") == std::string_view::npos) return false;
  simdjson::padded_string padded(json);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  simdjson::ondemand::object usage;
  if (parser.iterate(padded).get(doc) || doc["usage"].get_object().get(usage)) return false;
  int64_t p = 0, c = 0;
  for (auto f_r : usage) {
    simdjson::ondemand::field f;
    std::string_view k;
    if (std::move(f_r).get(f) || f.unescaped_key().get(k)) return false;
    if (k == "prompt_tokens") {
      if (f.value().get_int64().get(p)) return false;
    } else if (k == "completion_tokens") {
      if (f.value().get_int64().get(c)) return false;
    }
  }
  *prompt = std::max<int64_t>(0, p);
  *completion = std::max<int64_t>(0, c);
  return true;
}

constexpr std::string_view kModelPrefix = "/v1/models/";

// One extra response header (a function: GCC 12 misreads a braced list here, -Warray-bounds).
std::vector<std::pair<std::string, std::string>> Header(std::string name, std::string value) {
  std::vector<std::pair<std::string, std::string>> v;
  v.emplace_back(std::move(name), std::move(value));
  return v;
}

}  // namespace

// One request through the filter chain and its attempts upstream.
class Gateway::Call : public std::enable_shared_from_this<Call> {
 public:
  Call(Gateway& g, GatewayRequest req, std::shared_ptr<Downstream> down)
      : g_(g), req_(std::move(req)), down_(std::move(down)) {
    id_ = fmt::format("req_{:016x}{:08x}", g_.boot_id_, ++g_.next_request_);
    ++g_.in_flight_;
    g_.live_.insert(this);
  }
  ~Call() {
    --g_.in_flight_;
    g_.live_.erase(this);
  }
  // Shutdown: drops the upstream connection (its pending operations end as aborted).
  void Abort() { CloseConn(); }

  void Start();

 private:
  // Filters. Auth and Admit may answer later (a remote ledger): they go on with `next`.
  void Auth(std::function<void()> next);
  bool Parse(Endpoint e);
  void Admit(std::function<void()> next);
  void RefuseLimits(int64_t needed);
  // Upstream.
  void MakeUpstreamRequest();
  void Attempt();
  void Connect();
  void Send();
  void OnHeader();
  void ReadBody();
  void OnBytes(const char* data, size_t n);
  void Finish();
  // The answer's last bytes, once its usage is durable (or could not be made so).
  void EndStream(const Status& durable);
  void Answer(const Status& durable, const std::string& content_type);
  void FailedBeforeFirstByte(const std::string& why);
  void TimedOut();
  void FailedMidStream(const std::string& why);
  // Settles the hold to the usage (once); `durable` runs when it is committed (at once for no
  // usage: nothing to lose).
  void Meter(int64_t input, int64_t output, std::function<void(Status)> durable = {});
  void Refuse(int status, std::string_view code, std::string message, std::string_view param, std::string_view type,
              std::vector<std::pair<std::string, std::string>> extra = {});
  void Models();
  void Model(const std::string& id);
  Downstream::Head HeadFor(int status, std::string content_type);
  void CloseConn() {
    if (conn_) {
      beast::error_code ec;
      conn_->socket().shutdown(tcp::socket::shutdown_both, ec);
      conn_->close();
      conn_.reset();
    }
  }
  void EndRoute() {
    if (!replica_.empty()) g_.router_.End(replica_, route_tokens_);
  }

  Gateway& g_;
  GatewayRequest req_;
  std::shared_ptr<Downstream> down_;
  std::string id_;
  Accounts::Key key_;
  ApiCall call_;
  std::string model_label_ = "-";
  // What the ledger admitted.
  RateLimits::Decision limits_;
  int64_t admitted_tokens_ = 0;  // the prompt's estimate + the output ceiling
  bool held_ = false;
  // Attempts.
  int attempt_ = 0;
  std::vector<std::string> tried_;
  std::string errors_;  // why each tried replica failed
  std::string replica_, host_, port_;  // the replica may leave the router while we talk to it
  int64_t route_tokens_ = 0;
  std::unique_ptr<beast::tcp_stream> conn_;
  bool reused_ = false, stale_retried_ = false;
  beast::flat_buffer buf_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  // The upstream request: its head (per attempt: the Host differs) and body, written together.
  std::string uphead_, upbody_;
  char chunk_[16 * 1024];
  // The response.
  int status_ = 0;
  bool streaming_ = false;
  std::string body_;     // a whole (non-streamed) response
  std::string pending_;  // a partial stream event
  bool done_seen_ = false;
  // From the usage chunk or `[DONE]` on, events wait here for the usage's commit.
  bool holding_ = false;
  std::string tail_;
  int64_t delivered_ = 0;  // content events sent to the client
  bool has_usage_ = false;
  int64_t usage_in_ = 0, usage_out_ = 0;
  bool metered_ = false;
};

void Gateway::Call::Start() {
  const std::string_view target = req_.target;
  const std::string_view path = target.substr(0, target.find('?'));
  auto self = shared_from_this();
  if (path == "/v1/models" || path.starts_with(kModelPrefix)) {
    if (req_.method != "GET") {
      Refuse(405, "method_not_allowed", fmt::format("use GET on `{}`", path), "", "invalid_request_error");
      return;
    }
    if (path == "/v1/models") {
      Auth([self] { self->Models(); });
    } else {
      Auth([self, id = PercentDecode(path.substr(kModelPrefix.size()))] { self->Model(id); });
    }
    return;
  }
  Endpoint e = path == "/v1/chat/completions" ? Endpoint::kChatCompletions
               : path == "/v1/completions"    ? Endpoint::kCompletions
                                              : Endpoint::kEmbeddings;
  if (req_.method != "POST") {
    Refuse(405, "method_not_allowed", fmt::format("use POST on `{}`", path), "", "invalid_request_error");
    return;
  }
  Auth([self, e] {
    if (!self->Parse(e)) return;
    self->Admit([self] {
      self->MakeUpstreamRequest();
      self->Attempt();
    });
  });
}

void Gateway::Call::Auth(std::function<void()> next) {
  const std::string_view token = BearerToken(req_.authorization);
  auto refuse = [this](bool none) {
    Refuse(401, "invalid_api_key", none ? "no API key: send `Authorization: Bearer <key>`" : "incorrect API key provided",
           "", "invalid_request_error", Header("www-authenticate", "Bearer"));
  };
  if (token.empty() || token.size() > 256) {
    refuse(token.empty());
    return;
  }
  g_.accounts_->Authenticate(std::string(token), [self = shared_from_this(), next = std::move(next),
                                                  refuse](Status st, std::optional<Accounts::Key> k) {
    if (!st.ok()) {  // the ledger could not say: not the client's fault, and worth a retry
      self->Refuse(503, "ledger_unavailable", fmt::format("the API key cannot be checked now: {}", st.message()), "",
                   "server_error");
      return;
    }
    if (!k) {
      refuse(false);
      return;
    }
    self->key_ = std::move(*k);
    next();
  });
}

bool Gateway::Call::Parse(Endpoint e) {
  ParseError pe;
  auto c = ParseApiCall(e, req_.body, g_.options_.prefix_bytes, &pe);
  if (!c.ok()) {
    Refuse(400, pe.code, pe.message, pe.param, "invalid_request_error");
    return false;
  }
  call_ = std::move(*c);
  if (!g_.router_.Serves(call_.model)) {
    Refuse(404, "model_not_found", fmt::format("the model `{}` does not exist", call_.model), "model",
           "invalid_request_error");
    return false;
  }
  model_label_ = call_.model;
  return true;
}

void Gateway::Call::Admit(std::function<void()> next) {
  const int64_t out = call_.endpoint == Endpoint::kEmbeddings ? 0
                      : call_.max_tokens > 0                  ? call_.max_tokens * call_.Generated()
                                                              : g_.options_.max_output_tokens * call_.Generated();
  const auto tp = g_.prices_.TokenPricesFor(call_.model);
  Accounts::Admission a{.hold_id = id_,
                        .tenant_id = key_.tenant_id,
                        .key_id = key_.key_id,
                        .rpm = key_.rpm > 0 ? key_.rpm : g_.options_.rpm,
                        .tpm = key_.tpm > 0 ? key_.tpm : g_.options_.tpm,
                        .tokens = call_.EstimatedPromptTokens() + out,
                        .amount = CostCeil(call_.WorstPromptTokens(), tp.input_per_mtok) + CostCeil(out, tp.output_per_mtok)};
  admitted_tokens_ = a.tokens;
  g_.accounts_->Admit(a, [self = shared_from_this(), next = std::move(next), a](Status st, RateLimits::Decision d) {
    self->limits_ = d;
    if (!d.ok) {
      self->RefuseLimits(a.tokens);
      return;
    }
    if (st.ok()) {
      self->held_ = true;
      next();
      return;
    }
    if (st.code() == StatusCode::kResourceExhausted) {
      self->Refuse(429, "insufficient_quota",
                   fmt::format("you exceeded your current quota: the prepaid balance does not cover this request's "
                               "worst case (${}); {}",
                               FormatMoney(a.amount), st.message()),
                   "", "insufficient_quota", Header("x-should-retry", "false"));
    } else {
      self->Refuse(503, "ledger_unavailable", fmt::format("the ledger cannot hold the request's budget: {}", st.message()),
                   "", "server_error");
    }
  });
}

void Gateway::Call::RefuseLimits(int64_t needed) {
  std::vector<std::pair<std::string, std::string>> extra;
  extra.reserve(2);  // (GCC 12 warns falsely on growing an empty vector here: -Warray-bounds)
  if (limits_.never) {
    Refuse(429, "rate_limit_exceeded",
           fmt::format("this request needs {} tokens, over the key's limit of {} tokens per minute: lower "
                       "`max_tokens` or the prompt",
                       needed, limits_.limit_tokens),
           "", "tokens", Header("x-should-retry", "false"));
    return;
  }
  const int64_t ms = std::max<int64_t>(1, limits_.retry_after.ms);
  extra.emplace_back("retry-after", std::to_string((ms + 999) / 1000));
  extra.emplace_back("retry-after-ms", std::to_string(ms));
  Refuse(429, "rate_limit_exceeded",
         limits_.tokens ? fmt::format("rate limit reached: {} tokens per minute; retry in {}", limits_.limit_tokens,
                                      FormatResetDuration(limits_.retry_after))
                        : fmt::format("rate limit reached: {} requests per minute; retry in {}", limits_.limit_requests,
                                      FormatResetDuration(limits_.retry_after)),
         "", limits_.tokens ? "tokens" : "requests", std::move(extra));
}

std::string Gateway::ModelJson(const std::string& model) const {
  auto it = model_created_.find(model);
  const int64_t created = it != model_created_.end() ? it->second : started_s_;
  return fmt::format("{{\"id\":{},\"object\":\"model\",\"created\":{},\"owned_by\":\"landlord\"}}",
                     nlohmann::json(model).dump(), created);
}

void Gateway::Call::Models() {
  std::string data;
  for (const std::string& m : g_.router_.Models()) data += (data.empty() ? "" : ",") + g_.ModelJson(m);
  down_->Send(HeadFor(200, "application/json"), fmt::format("{{\"object\":\"list\",\"data\":[{}]}}", data));
}

void Gateway::Call::Model(const std::string& id) {
  if (!g_.router_.Serves(id)) {
    Refuse(404, "model_not_found", fmt::format("the model `{}` does not exist", id), "model", "invalid_request_error");
    return;
  }
  down_->Send(HeadFor(200, "application/json"), g_.ModelJson(id));
}

Downstream::Head Gateway::Call::HeadFor(int status, std::string content_type) {
  Downstream::Head h;
  h.status = status;
  h.content_type = std::move(content_type);
  h.headers.emplace_back("x-request-id", id_);
  if (limits_.limit_requests > 0) {
    h.headers.emplace_back("x-ratelimit-limit-requests", std::to_string(limits_.limit_requests));
    h.headers.emplace_back("x-ratelimit-remaining-requests", std::to_string(limits_.remaining_requests));
    h.headers.emplace_back("x-ratelimit-reset-requests", FormatResetDuration(limits_.reset_requests));
  }
  if (limits_.limit_tokens > 0) {
    h.headers.emplace_back("x-ratelimit-limit-tokens", std::to_string(limits_.limit_tokens));
    h.headers.emplace_back("x-ratelimit-remaining-tokens", std::to_string(limits_.remaining_tokens));
    h.headers.emplace_back("x-ratelimit-reset-tokens", FormatResetDuration(limits_.reset_tokens));
  }
  if (!replica_.empty()) h.headers.emplace_back("x-landlord-replica", replica_);
  return h;
}

void Gateway::Call::Refuse(int status, std::string_view code, std::string message, std::string_view param,
                           std::string_view type, std::vector<std::pair<std::string, std::string>> extra) {
  ++g_.by_code_[{model_label_, status}];
  Downstream::Head h = HeadFor(status, "application/json");
  for (auto& kv : extra) h.headers.push_back(std::move(kv));
  down_->Send(std::move(h), ErrorJson(code, message, param, type));
}

void Gateway::Call::Attempt() {
  const Time now = g_.clock_->Now();
  Replica* r = attempt_ < g_.options_.max_attempts && !g_.stopping_
                   ? g_.router_.Pick(call_.model, call_.prefix_hash, tried_, now)
                   : nullptr;
  if (r == nullptr) {
    replica_.clear();
    Meter(0, 0);
    Refuse(503, "no_replica_available",
           tried_.empty() ? fmt::format("no replica of `{}` is available", call_.model)
                          : fmt::format("no replica of `{}` could take the request ({})", call_.model, errors_),
           "",
           "server_error");
    return;
  }
  ++attempt_;
  replica_ = r->id;
  host_ = r->host;
  port_ = r->port;
  route_tokens_ = std::max<int64_t>(1, admitted_tokens_);
  g_.router_.Begin(r, route_tokens_);
  auto& idle = g_.pool_->idle[replica_];
  reused_ = !idle.empty();
  if (reused_) {
    conn_ = std::move(idle.back());
    idle.pop_back();
    Send();
    return;
  }
  Connect();
}

void Gateway::Call::Connect() {
  conn_ = std::make_unique<beast::tcp_stream>(g_.ioc_);
  auto& eps = g_.pool_->endpoints[replica_];
  if (eps.empty()) {
    beast::error_code ec;
    eps = g_.pool_->resolver.resolve(host_, port_, ec);
    if (ec) {
      FailedBeforeFirstByte(fmt::format("resolve {}:{}: {}", host_, port_, ec.message()));
      return;
    }
  }
  conn_->expires_after(std::chrono::milliseconds(g_.options_.connect_timeout.ms));
  conn_->async_connect(eps, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
    if (ec) {
      self->FailedBeforeFirstByte(fmt::format("connect: {}", ec.message()));
      return;
    }
    beast::error_code ignored;
    self->conn_->socket().set_option(tcp::no_delay(true), ignored);
    self->Send();
  });
}

// Built once; every attempt sends it (with its replica's Host).
void Gateway::Call::MakeUpstreamRequest() {
  upbody_ = UpstreamBody(req_.body, call_, g_.options_.max_output_tokens);
  req_.body = std::string();
}

void Gateway::Call::Send() {
  // What a failed attempt read is dropped.
  status_ = 0;
  streaming_ = false;
  body_.clear();
  pending_.clear();
  has_usage_ = done_seen_ = false;
  delivered_ = 0;
  // One string and one gather write rather than Beast's fields and serializer: this is the hot
  // path, and every value here is the gateway's own (host and port from the config or a replica
  // registration, the request id, the length).
  uphead_.clear();
  fmt::format_to(std::back_inserter(uphead_),
                 "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nx-request-id: {}\r\n"
                 "Content-Length: {}\r\n\r\n",
                 EndpointPath(call_.endpoint), host_, port_, id_, upbody_.size());
  conn_->expires_after(std::chrono::milliseconds(g_.options_.first_byte_timeout.ms));
  std::array<net::const_buffer, 2> buffers{net::buffer(uphead_), net::buffer(upbody_)};
  net::async_write(*conn_, buffers, [self = shared_from_this()](beast::error_code ec, size_t) {
    if (ec) {
      self->FailedBeforeFirstByte(fmt::format("send: {}", ec.message()));
      return;
    }
    self->buf_.clear();
    self->parser_.emplace();
    self->parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // streams are unbounded; whole bodies are capped in ReadBody
    http::async_read_header(*self->conn_, self->buf_, *self->parser_, [self](beast::error_code e, size_t) {
      if (e == beast::error::timeout) {
        // Slow, not broken: a server sends a whole answer's header when it is done, so a long
        // generation looks like this. Trying another replica would only generate it again.
        self->TimedOut();
        return;
      }
      if (e) {
        self->FailedBeforeFirstByte(fmt::format("no response: {}", e.message()));
        return;
      }
      self->OnHeader();
    });
  });
}

void Gateway::Call::TimedOut() {
  CloseConn();
  EndRoute();
  Meter(0, 0);  // what the replica may have generated never reached anyone
  Refuse(504, "upstream_timeout",
         fmt::format("the model replica `{}` sent no answer within {} s (`[gateway] first_byte_timeout_s`)", replica_,
                     g_.options_.first_byte_timeout.ms / 1000),
         "", "server_error");
}

void Gateway::Call::FailedBeforeFirstByte(const std::string& why) {
  CloseConn();
  EndRoute();
  if (!down_->open()) {  // the client left while we were trying
    Meter(0, 0);
    return;
  }
  if (reused_ && !stale_retried_ && !g_.stopping_ && status_ == 0) {
    // A kept-alive connection the replica had closed: once more on a fresh one, same replica.
    stale_retried_ = true;
    --attempt_;
    Replica* r = g_.router_.Find(replica_);
    if (r != nullptr) {
      g_.router_.Begin(r, route_tokens_);
      reused_ = false;
      Connect();
      return;
    }
  }
  ++g_.stats_.upstream_failures;
  ++g_.stats_.retries;
  g_.router_.Failed(replica_, g_.clock_->Now());
  tried_.push_back(replica_);
  errors_ += fmt::format("{}{}: {}", errors_.empty() ? "" : "; ", replica_, why);
  stale_retried_ = false;
  Attempt();
}

void Gateway::Call::OnHeader() {
  auto& res = parser_->get();
  status_ = static_cast<int>(res.result_int());
  // A replica that is overloaded or broken answers 502/503/504: try another while nothing has
  // reached the client.
  if (status_ == 502 || status_ == 503 || status_ == 504) {
    FailedBeforeFirstByte(fmt::format("HTTP {}", status_));
    return;
  }
  const std::string_view ct = Sv(res[http::field::content_type]);
  streaming_ = status_ == 200 && ct.rfind("text/event-stream", 0) == 0;
  if (streaming_) {
    Downstream::Head h = HeadFor(200, "text/event-stream");
    h.headers.emplace_back("cache-control", "no-cache");
    ++g_.by_code_[{model_label_, 200}];
    down_->Begin(std::move(h));
  }
  if (parser_->is_done()) {  // no body (Content-Length: 0, 204): nothing more to read
    Finish();
    return;
  }
  ReadBody();
}

void Gateway::Call::ReadBody() {
  if (streaming_ && !down_->open()) {
    FailedMidStream("the client went away");
    return;
  }
  parser_->get().body().data = chunk_;
  parser_->get().body().size = sizeof(chunk_);
  conn_->expires_after(std::chrono::milliseconds(g_.options_.idle_timeout.ms));
  // read_some: whatever arrived, not a full buffer (a stream's events go on as they come).
  http::async_read_some(*conn_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      if (self->streaming_) {
        self->FailedMidStream(ec.message());
      } else {
        self->FailedBeforeFirstByte(fmt::format("response body: {}", ec.message()));
      }
      return;
    }
    const size_t n = sizeof(self->chunk_) - self->parser_->get().body().size;
    self->OnBytes(self->chunk_, n);
    if (self->parser_->is_done()) {
      self->Finish();
    } else if (!self->streaming_ && self->body_.size() > self->g_.options_.max_response_bytes) {
      self->FailedBeforeFirstByte("the response is too large");
    } else {
      self->ReadBody();
    }
  });
}

void Gateway::Call::OnBytes(const char* data, size_t n) {
  if (!streaming_) {
    body_.append(data, n);
    return;
  }
  pending_.append(data, n);
  std::string out;
  size_t start = 0;
  for (;;) {
    size_t end = pending_.find("\n\n", start);
    size_t sep = 2;
    const size_t crlf = pending_.find("\r\n\r\n", start);
    if (crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
      end = crlf;
      sep = 4;
    }
    if (end == std::string::npos) break;
    const std::string_view event(pending_.data() + start, end + sep - start);
    start = end + sep;
    const size_t data_at = event.find("data:");
    std::string_view payload = data_at == std::string_view::npos ? std::string_view() : event.substr(data_at + 5);
    while (!payload.empty() && (payload.front() == ' ')) payload.remove_prefix(1);
    while (!payload.empty() && (payload.back() == '\n' || payload.back() == '\r')) payload.remove_suffix(1);
    bool forward = true;
    if (payload == "[DONE]") {
      done_seen_ = true;
      holding_ = true;
    } else if (!payload.empty()) {
      int64_t p = 0, c = 0;
      if (payload.find("\"usage\":{") != std::string_view::npos || payload.find("\"usage\": {") != std::string_view::npos) {
        if (ReadUsage(payload, &p, &c)) {
          has_usage_ = true;
          usage_in_ = p;
          usage_out_ = c;
        }
      }
      // The usage-only chunk (no choices) goes to the client only if it asked for usage.
      const bool usage_only = has_usage_ && (payload.find("\"choices\":[]") != std::string_view::npos ||
                                             payload.find("\"choices\": []") != std::string_view::npos);
      if (usage_only) {
        forward = call_.client_wants_usage;
        holding_ = true;
      } else {
        ++delivered_;
      }
    }
    if (forward) (holding_ ? tail_ : out).append(event);
  }
  pending_.erase(0, start);
  if (!out.empty()) down_->Chunk(std::move(out));
}

void Gateway::Call::Finish() {
  const bool keep = parser_->get().keep_alive();
  EndRoute();
  if (keep && conn_) {
    auto& idle = g_.pool_->idle[replica_];
    if (idle.size() < Pool::kMaxIdle) {
      conn_->expires_never();
      idle.push_back(std::move(conn_));
    }
  }
  CloseConn();
  auto self = shared_from_this();
  if (streaming_) {
    tail_ += pending_;
    pending_.clear();
    Meter(has_usage_ ? usage_in_ : call_.EstimatedPromptTokens(), has_usage_ ? usage_out_ : delivered_,
          [self](Status st) { self->EndStream(st); });
    return;
  }
  std::string ct(Sv(parser_->get()[http::field::content_type]));
  auto answer = [self, ct](Status st) { self->Answer(st, ct); };
  int64_t p = 0, c = 0;
  if (status_ >= 200 && status_ < 300 && ReadUsage(body_, &p, &c)) {
    Meter(p, c, answer);
  } else if (status_ >= 200 && status_ < 300) {
    // An upstream that reports no usage: the prompt's estimate and the answer's bytes / 4.
    Meter(call_.EstimatedPromptTokens(), static_cast<int64_t>(body_.size() + 3) / 4, answer);
  } else {
    Meter(0, 0, answer);  // an error answer: nothing was generated
  }
}

void Gateway::Call::EndStream(const Status& durable) {
  if (durable.ok()) {
    if (!tail_.empty()) down_->Chunk(std::move(tail_));
  } else {
    // Never `[DONE]` for an answer whose usage may be lost.
    down_->Chunk(fmt::format(
        "data: {}\n\n",
        ErrorJson("ledger_unavailable", fmt::format("the answer's usage could not be recorded: {}", durable.message()),
                  "", "server_error")));
  }
  down_->End();
}

void Gateway::Call::Answer(const Status& durable, const std::string& content_type) {
  if (!durable.ok()) {
    Refuse(503, "ledger_unavailable",
           fmt::format("the answer's usage could not be recorded: {}", durable.message()), "", "server_error");
    return;
  }
  ++g_.by_code_[{model_label_, status_}];
  down_->Send(HeadFor(status_, content_type.empty() ? "application/json" : content_type), std::move(body_));
}

void Gateway::Call::FailedMidStream(const std::string& why) {
  CloseConn();
  EndRoute();
  ++g_.stats_.interrupted_streams;
  if (down_->open()) {
    // Not a client going away: the replica failed.
    ++g_.stats_.upstream_failures;
    g_.router_.Failed(replica_, g_.clock_->Now());
    down_->Chunk(fmt::format("data: {}\n\n",
                             ErrorJson("upstream_failed",
                                       fmt::format("the model replica failed mid-stream ({}); {} chunks were delivered "
                                                   "and only they are billed",
                                                   why, delivered_),
                                       "", "server_error")));
    down_->End();
  }
  // What reached the client: the prompt (it was read) and the chunks delivered.
  Meter(call_.EstimatedPromptTokens(), delivered_);
}

void Gateway::Call::Meter(int64_t input, int64_t output, std::function<void(Status)> durable) {
  const bool settle = !metered_ && held_;
  metered_ = true;
  const bool used = input > 0 || output > 0;
  if (settle) {
    Accounts::Usage u{.key = fmt::format("{}:{}", id_, std::max(attempt_, 1)),
                      .tenant_id = key_.tenant_id,
                      .model = call_.model,
                      .input_tokens = input,
                      .output_tokens = output};
    // Nothing used, nothing billed: the answer does not wait for the hold's release.
    g_.accounts_->Settle(id_, u, used ? std::move(durable) : nullptr);
    g_.stats_.input_tokens += input;
    g_.stats_.output_tokens += output;
    if (used) return;
  }
  if (durable) durable(Status::Ok());
}

// ---- Gateway ----

Gateway::Gateway(net::io_context& ioc, GatewayOptions options, market::PriceBook prices, Accounts* accounts,
                 const Clock* clock)
    : ioc_(ioc),
      options_(std::move(options)),
      prices_(std::move(prices)),
      accounts_(accounts),
      clock_(clock),
      router_(options_.router),
      pool_(std::make_unique<Pool>(ioc)) {
  std::random_device rd;
  boot_id_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  started_s_ = clock_->Now().ms / 1000;
}

Gateway::~Gateway() = default;

Result<std::unique_ptr<Gateway>> Gateway::Create(net::io_context& ioc, GatewayOptions options,
                                                 market::PriceBook prices, Accounts* accounts, const Clock* clock) {
  std::unique_ptr<Gateway> g(new Gateway(ioc, std::move(options), std::move(prices), accounts, clock));
  for (const UpstreamConfig& u : g->options_.upstreams) {
    Replica r;
    r.id = fmt::format("rep_up{}", ++g->next_replica_);
    r.model = u.model;
    LL_RETURN_IF_ERROR(ParseHttpUrl(u.url, &r.host, &r.port));
    g->AddReplica(std::move(r));
  }
  for (const SimModelConfig& m : g->options_.sim_models) {
    if (m.gpus_per_replica > 0) {
      // Placed by the fleet: known to the router (a model with no replica running yet is
      // unavailable, 503, rather than unknown, 404) through a placeholder that never routes.
      Replica r;
      r.id = "rep_" + m.model + "_unplaced";
      r.model = m.model;
      r.draining = true;
      g->AddReplica(std::move(r));
      continue;
    }
    for (int i = 0; i < m.replicas; ++i) LL_RETURN_IF_ERROR(g->StartSim(m).status());
  }
  return g;
}

void Gateway::AddReplica(Replica r) {
  model_created_.emplace(r.model, clock_->Now().ms / 1000);  // a model's first replica: when it was registered
  router_.Add(std::move(r));
}

Result<std::string> Gateway::StartSim(const SimModelConfig& m) {
  FakeModelOptions fo;
  fo.model = m.model;
  fo.name = fmt::format("rep_sim{}", ++next_replica_);
  fo.tokens_per_s = m.tokens_per_s;
  fo.first_token = m.first_token;
  fo.exit_on_crash = false;
  fo.clock = clock_;  // `created` in the gateway's clock
  LL_ASSIGN_OR_RETURN(auto fake, FakeModel::Start(ioc_, fo));
  Replica r;
  r.id = fo.name;
  r.model = m.model;
  const std::string addr = fake->address();
  r.host = addr.substr(0, addr.rfind(':'));
  r.port = addr.substr(addr.rfind(':') + 1);
  AddReplica(std::move(r));
  sim_.emplace_back(fo.name, std::move(fake));
  return fo.name;
}

Result<std::string> Gateway::StartReplica(const std::string& model) {
  for (const SimModelConfig& m : options_.sim_models) {
    if (m.model == model) return StartSim(m);
  }
  return Status::NotFound(fmt::format("no simulated model `{}` in [[gateway.sim_models]]", model));
}

Status Gateway::AddEndpoint(const std::string& id, const std::string& model, const std::string& url) {
  Replica r;
  r.id = id;
  r.model = model;
  LL_RETURN_IF_ERROR(ParseHttpUrl(url, &r.host, &r.port));
  if (router_.Find(id) != nullptr) router_.Remove(id);
  AddReplica(std::move(r));
  return Status::Ok();
}

void Gateway::StopReplica(const std::string& id) {
  router_.Remove(id);
  pool_->idle.erase(id);
  pool_->endpoints.erase(id);
  for (auto it = sim_.begin(); it != sim_.end(); ++it) {
    if (it->first == id) {
      it->second->Kill();
      sim_.erase(it);
      return;
    }
  }
}

bool Gateway::Handles(std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  if (path.starts_with(kModelPrefix) && path.size() > kModelPrefix.size()) return true;  // GET /v1/models/{id}
  return path == "/v1/models" || path == "/v1/chat/completions" || path == "/v1/completions" ||
         path == "/v1/embeddings";
}

void Gateway::Handle(GatewayRequest req, std::shared_ptr<Downstream> down) {
  ++stats_.requests;
  std::make_shared<Call>(*this, std::move(req), std::move(down))->Start();
}

void Gateway::Shutdown() {
  stopping_ = true;  // aborted calls do not try another replica
  for (auto& [name, fake] : sim_) fake->Kill();
  auto live = live_;
  for (Call* c : live) c->Abort();
  pool_->idle.clear();
}

void Gateway::DrainReplica(const std::string& id) {
  router_.Drain(id);
  pool_->idle.erase(id);  // idle connections go; in-flight requests finish on theirs
}

FakeModel* Gateway::SimReplica(const std::string& id) {
  for (auto& [name, fake] : sim_) {
    if (name == id) return fake.get();
  }
  return nullptr;
}

std::string Gateway::MetricsText() const {
  std::string out =
      "# HELP landlord_gateway_requests_total model API requests by model and status\n"
      "# TYPE landlord_gateway_requests_total counter\n";
  for (const auto& [k, n] : by_code_) {
    out += fmt::format("landlord_gateway_requests_total{{model=\"{}\",code=\"{}\"}} {}\n", k.first, k.second, n);
  }
  out += fmt::format(
      "# HELP landlord_gateway_tokens_total tokens metered\n# TYPE landlord_gateway_tokens_total counter\n"
      "landlord_gateway_tokens_total{{kind=\"input\"}} {}\nlandlord_gateway_tokens_total{{kind=\"output\"}} {}\n"
      "# HELP landlord_gateway_retries_total attempts retried on another replica before the first byte\n"
      "# TYPE landlord_gateway_retries_total counter\nlandlord_gateway_retries_total {}\n"
      "# HELP landlord_gateway_upstream_failures_total replica failures seen\n"
      "# TYPE landlord_gateway_upstream_failures_total counter\nlandlord_gateway_upstream_failures_total {}\n"
      "# HELP landlord_gateway_interrupted_streams_total streams that ended early\n"
      "# TYPE landlord_gateway_interrupted_streams_total counter\nlandlord_gateway_interrupted_streams_total {}\n"
      "# HELP landlord_gateway_prefix_affinity_total requests sent to their prefix's preferred replica\n"
      "# TYPE landlord_gateway_prefix_affinity_total counter\nlandlord_gateway_prefix_affinity_total {}\n"
      "# HELP landlord_gateway_in_flight requests in flight\n# TYPE landlord_gateway_in_flight gauge\n"
      "landlord_gateway_in_flight {}\n",
      stats_.input_tokens, stats_.output_tokens, stats_.retries, stats_.upstream_failures, stats_.interrupted_streams,
      router_.affinity_hits(), in_flight_);
  out += "# HELP landlord_gateway_replica_outstanding_tokens tokens in flight per replica\n"
         "# TYPE landlord_gateway_replica_outstanding_tokens gauge\n";
  for (const Replica& r : router_.replicas()) {
    if (r.host.empty()) continue;  // a placeholder for a model with no replica placed yet
    out += fmt::format("landlord_gateway_replica_outstanding_tokens{{replica=\"{}\",model=\"{}\",draining=\"{}\"}} {}\n",
                       r.id, r.model, r.draining ? 1 : 0, r.outstanding_tokens);
  }
  return out;
}

}  // namespace ll::gateway
