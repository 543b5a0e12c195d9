#include "gateway/fake_model.h"

#include <cstdlib>
#include <set>

#include <sodium.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "core/check.h"
#include "gateway/api_call.h"
#include "gateway/http_util.h"

namespace ll::gateway {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class Server;

// 128 random bits in hex (libsodium's CSPRNG): completion ids no other replica or restart repeats.
std::string RandomId() {
  static const bool ok = sodium_init() >= 0;
  LL_CHECK(ok);
  unsigned char raw[16];
  randombytes_buf(raw, sizeof raw);
  char hex[2 * sizeof raw + 1];
  sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
  return hex;
}

class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(tcp::socket s, std::shared_ptr<Server> server);
  ~Conn();
  void Start() { Read(); }
  void Drop() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    if (timer_) timer_->cancel();
  }

 private:
  void Read();
  void Handle();
  void Reply(http::status status, std::string body, std::string content_type = "application/json");
  void Generate();
  void Stream();
  void NextToken();
  void WriteChunk(std::string text, bool last_after);
  void Crash();
  std::string Id() const;
  std::string Usage() const;

  beast::tcp_stream stream_;
  std::shared_ptr<Server> owner_;  // connections keep the server alive (shutdown in any order)
  Server& server_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::unique_ptr<net::steady_timer> timer_;
  // The request being answered.
  ApiCall call_;
  int64_t prompt_tokens_ = 0, tokens_ = 0, sent_ = 0;
  std::string id_;        // 128 random bits in hex
  int64_t created_ = 0;   // unix seconds
  std::shared_ptr<http::response<http::empty_body>> head_;
  std::shared_ptr<http::response_serializer<http::empty_body>> sr_;
};

class Server final : public std::enable_shared_from_this<Server> {
 public:
  Server(net::io_context& ioc, FakeModelOptions o) : o_(std::move(o)), acceptor_(ioc) {
    if (o_.clock == nullptr) {
      own_clock_ = NewSystemClock();
      o_.clock = own_clock_.get();
    }
    started_ = Created();
  }
  // Unix seconds now: an answer's `created`.
  int64_t Created() const { return o_.clock->Now().ms / 1000; }
  int64_t started() const { return started_; }

  Status Listen() {
    LL_RETURN_IF_ERROR(OpenAcceptor(acceptor_, o_.listen));
    bound_ = acceptor_.local_endpoint();
    Accept();
    return Status::Ok();
  }
  std::string address() const { return fmt::format("{}:{}", bound_.address().to_string(), bound_.port()); }
  void Kill() {
    killed_ = true;
    beast::error_code ec;
    acceptor_.close(ec);
    auto conns = conns_;
    for (Conn* c : conns) c->Drop();
  }
  int64_t requests() const { return requests_; }

  const FakeModelOptions& options() const { return o_; }
  bool killed() const { return killed_; }
  void Add(Conn* c) { conns_.insert(c); }
  void Remove(Conn* c) { conns_.erase(c); }
  void Count() { ++requests_; }

 private:
  void Accept() {
    acceptor_.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket s) {
      if (ec || self->killed_) return;
      s.set_option(tcp::no_delay(true), ec);
      std::make_shared<Conn>(std::move(s), self)->Start();
      self->Accept();
    });
  }

  FakeModelOptions o_;
  std::unique_ptr<Clock> own_clock_;
  int64_t started_ = 0;
  tcp::acceptor acceptor_;
  tcp::endpoint bound_;
  std::set<Conn*> conns_;
  int64_t requests_ = 0;
  bool killed_ = false;
};

Conn::Conn(tcp::socket s, std::shared_ptr<Server> server)
    : stream_(std::move(s)), owner_(std::move(server)), server_(*owner_) {
  server_.Add(this);
}
Conn::~Conn() { server_.Remove(this); }

void Conn::Read() {
  req_ = {};
  http::async_read(stream_, buffer_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
    if (ec || self->server_.killed()) return;
    self->Handle();
  });
}

void Conn::Crash() {
  if (server_.options().exit_on_crash) std::_Exit(3);
  server_.Kill();
}

void Conn::Reply(http::status status, std::string body, std::string content_type) {
  auto res = std::make_shared<http::response<http::string_body>>(status, req_.version());
  res->set(http::field::content_type, content_type);
  res->set("x-replica", server_.options().name);
  res->body() = std::move(body);
  res->keep_alive(req_.keep_alive());
  res->prepare_payload();
  http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
    if (ec) return;
    if (res->keep_alive()) {
      self->Read();
    } else {
      beast::error_code e;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, e);
    }
  });
}

void Conn::Handle() {
  const std::string_view target(req_.target().data(), req_.target().size());
  const std::string& model = server_.options().model;
  if (req_.method() == http::verb::get && target == "/v1/models") {
    Reply(http::status::ok, fmt::format(R"({{"object":"list","data":[{{"id":"{}","object":"model","created":{},"owned_by":"landlord"}}]}})",
                                        model, server_.started()));
    return;
  }
  if (req_.method() == http::verb::get && target == "/healthz") {
    Reply(http::status::ok, R"({"status":"ok"})");
    return;
  }
  Endpoint e;
  if (target == "/v1/chat/completions") {
    e = Endpoint::kChatCompletions;
  } else if (target == "/v1/completions") {
    e = Endpoint::kCompletions;
  } else if (target == "/v1/embeddings") {
    e = Endpoint::kEmbeddings;
  } else {
    Reply(http::status::not_found, ErrorJson("not_found", fmt::format("no route `{}`", target), "", "invalid_request_error"));
    return;
  }
  if (req_.method() != http::verb::post) {
    Reply(http::status::method_not_allowed, ErrorJson("method_not_allowed", "use POST", "", "invalid_request_error"));
    return;
  }
  ParseError pe;
  auto call = ParseApiCall(e, req_.body(), 0, &pe);
  if (!call.ok()) {
    Reply(http::status::bad_request, ErrorJson(pe.code, pe.message, pe.param, "invalid_request_error"));
    return;
  }
  call_ = std::move(*call);
  server_.Count();
  id_ = RandomId();
  created_ = server_.Created();
  if (server_.options().crash_before_first_byte) {
    Crash();
    return;
  }
  prompt_tokens_ = call_.EstimatedPromptTokens();
  tokens_ = call_.max_tokens > 0 ? call_.max_tokens : server_.options().default_output_tokens;
  sent_ = 0;
  if (e == Endpoint::kEmbeddings) {
    std::string data;
    for (int64_t i = 0; i < std::max<int64_t>(1, call_.messages); ++i) {
      data += fmt::format(R"({}{{"object":"embedding","index":{},"embedding":[0.125,-0.25,0.5,0.0625,-0.5,0.25,0.375,-0.125]}})",
                          i == 0 ? "" : ",", i);
    }
    Reply(http::status::ok, fmt::format(R"({{"object":"list","data":[{}],"model":"{}","usage":{{"prompt_tokens":{},"total_tokens":{}}}}})",
                                        data, call_.model, prompt_tokens_, prompt_tokens_));
    return;
  }
  // Prefill, then the tokens.
  const FakeModelOptions& o = server_.options();
  Duration wait = o.first_token;
  if (!call_.stream && o.tokens_per_s > 0) wait += Duration::Millis(static_cast<int64_t>(1000.0 * tokens_ / o.tokens_per_s));
  if (wait.ms <= 0) {
    call_.stream ? Stream() : Generate();
    return;
  }
  timer_ = std::make_unique<net::steady_timer>(stream_.get_executor());
  timer_->expires_after(std::chrono::milliseconds(wait.ms));
  timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->server_.killed()) return;
    self->call_.stream ? self->Stream() : self->Generate();
  });
}

std::string Filler(int64_t tokens) {
  std::string s;
  s.reserve(static_cast<size_t>(tokens) * 4);
  for (int64_t i = 0; i < tokens; ++i) s += "tok ";
  return s;
}

// The answer's id: "chatcmpl-…" or "cmpl-…".
std::string Conn::Id() const {
  return fmt::format("{}-{}", call_.endpoint == Endpoint::kChatCompletions ? "chatcmpl" : "cmpl", id_);
}

std::string Conn::Usage() const {
  const int64_t out = tokens_ * call_.n;  // every choice's tokens
  return fmt::format(R"("usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}})", prompt_tokens_, out,
                     prompt_tokens_ + out);
}

void Conn::Generate() {
  const bool chat = call_.endpoint == Endpoint::kChatCompletions;
  const std::string finish = call_.max_tokens == tokens_ ? "length" : "stop";
  const std::string text = Filler(tokens_);
  std::string choices;
  for (int64_t i = 0; i < call_.n; ++i) {
    if (i > 0) choices += ',';
    choices += chat ? fmt::format(R"({{"index":{},"message":{{"role":"assistant","content":"{}"}},"finish_reason":"{}"}})", i,
                                  text, finish)
                    : fmt::format(R"({{"index":{},"text":"{}","logprobs":null,"finish_reason":"{}"}})", i, text, finish);
  }
  Reply(http::status::ok,
        fmt::format(R"({{"id":"{}","object":"{}","created":{},"model":"{}","choices":[{}],{}}})", Id(),
                    chat ? "chat.completion" : "text_completion", created_, call_.model, choices, Usage()));
}

void Conn::Stream() {
  head_ = std::make_shared<http::response<http::empty_body>>(http::status::ok, req_.version());
  head_->set(http::field::content_type, "text/event-stream");
  head_->set(http::field::cache_control, "no-cache");
  head_->set("x-replica", server_.options().name);
  head_->chunked(true);
  head_->keep_alive(req_.keep_alive());
  sr_ = std::make_shared<http::response_serializer<http::empty_body>>(*head_);
  http::async_write_header(stream_, *sr_, [self = shared_from_this()](beast::error_code ec, size_t) {
    if (ec) return;
    self->NextToken();
  });
}

// One token per chunk at the configured speed; with no speed set, all of them in one write.
void Conn::NextToken() {
  const FakeModelOptions& o = server_.options();
  const bool chat = call_.endpoint == Endpoint::kChatCompletions;
  const std::string usage_null = call_.client_wants_usage ? R"(,"usage":null)" : "";
  const char* object = chat ? "chat.completion.chunk" : "text_completion";
  std::string out;
  do {
    if (o.crash_after_tokens >= 0 && sent_ >= o.crash_after_tokens) {
      if (out.empty()) {
        Crash();
        return;
      }
      break;  // send what is generated, then crash
    }
    if (sent_ < tokens_) {
      const bool last = sent_ + 1 == tokens_;
      const std::string finish = !last ? "null" : call_.max_tokens == tokens_ ? R"("length")" : R"("stop")";
      for (int64_t i = 0; i < call_.n; ++i) {  // one chunk per choice
        const std::string choice =
            chat ? fmt::format(R"({{"index":{},"delta":{{{}"content":"tok "}},"finish_reason":{}}})", i,
                               sent_ == 0 ? R"("role":"assistant",)" : "", finish)
                 : fmt::format(R"({{"index":{},"text":"tok ","logprobs":null,"finish_reason":{}}})", i, finish);
        out += fmt::format(R"(data: {{"id":"{}","object":"{}","created":{},"model":"{}","choices":[{}]{}}})"
                           "\n\n",
                           Id(), object, created_, call_.model, choice, usage_null);
      }
      ++sent_;
    }
    if (sent_ == tokens_) {
      if (call_.client_wants_usage) {
        out += fmt::format(R"(data: {{"id":"{}","object":"{}","created":{},"model":"{}","choices":[],{}}})"
                           "\n\n",
                           Id(), object, created_, call_.model, Usage());
      }
      out += "data: [DONE]\n\n";
      WriteChunk(std::move(out), true);
      return;
    }
  } while (o.tokens_per_s <= 0);
  WriteChunk(std::move(out), false);
}

void Conn::WriteChunk(std::string text, bool last_after) {
  auto buf = std::make_shared<std::string>(std::move(text));
  net::async_write(stream_, http::make_chunk(net::buffer(*buf)),
                   [self = shared_from_this(), buf, last_after](beast::error_code ec, size_t) {
                     if (ec || self->server_.killed()) return;
                     if (last_after) {
                       net::async_write(self->stream_, http::make_chunk_last(), [self](beast::error_code e, size_t) {
                         if (e) return;
                         if (self->head_->keep_alive()) {
                           self->Read();
                         } else {
                           beast::error_code ignored;
                           self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                         }
                       });
                       return;
                     }
                     const double tps = self->server_.options().tokens_per_s;
                     if (tps <= 0) {
                       self->NextToken();
                       return;
                     }
                     self->timer_ = std::make_unique<net::steady_timer>(self->stream_.get_executor());
                     self->timer_->expires_after(std::chrono::microseconds(static_cast<int64_t>(1e6 / tps)));
                     self->timer_->async_wait([self](beast::error_code e) {
                       if (e || self->server_.killed()) return;
                       self->NextToken();
                     });
                   });
}

// The owner's handle: killing the server when dropped.
class Handle final : public FakeModel {
 public:
  explicit Handle(std::shared_ptr<Server> s) : s_(std::move(s)) {}
  ~Handle() override { s_->Kill(); }
  std::string address() const override { return s_->address(); }
  void Kill() override { s_->Kill(); }
  int64_t requests() const override { return s_->requests(); }

 private:
  std::shared_ptr<Server> s_;
};

}  // namespace

Result<std::unique_ptr<FakeModel>> FakeModel::Start(net::io_context& ioc, FakeModelOptions options) {
  auto s = std::make_shared<Server>(ioc, std::move(options));
  LL_RETURN_IF_ERROR(s->Listen());
  return std::unique_ptr<FakeModel>(new Handle(std::move(s)));
}

}  // namespace ll::gateway
