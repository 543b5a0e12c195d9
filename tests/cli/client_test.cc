// The API client: URL parsing, the SSE parser, HttpClient against a loopback Beast server, and
// the `lease`/`quote`/`admin` commands end to end against that server.
#include <cstdlib>
#include <functional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "cli/http_client.h"

namespace ll::cli {

bool operator==(const SseEvent& a, const SseEvent& b) {
  return a.id == b.id && a.event == b.event && a.data == b.data;
}

void PrintTo(const SseEvent& e, std::ostream* os) {
  *os << "{id=" << testing::PrintToString(e.id) << " event=" << testing::PrintToString(e.event)
      << " data=" << testing::PrintToString(e.data) << "}";
}

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// --- ParseUrl ------------------------------------------------------------------------------------

TEST(ParseUrlTest, AcceptsHostPortAndPrefix) {
  auto u = ParseUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->base_path, "");
  EXPECT_EQ(UrlAddress(*u), "127.0.0.1:8080");

  u = ParseUrl("http://localhost");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "localhost");
  EXPECT_EQ(u->port, "80");

  u = ParseUrl("HTTP://gpu-box.example.com:9000/landlord/");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "gpu-box.example.com");
  EXPECT_EQ(u->port, "9000");
  EXPECT_EQ(u->base_path, "/landlord");

  u = ParseUrl("http://h:8080/");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->base_path, "");

  u = ParseUrl("http://[::1]:8080/api/v0");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->base_path, "/api/v0");
  EXPECT_EQ(UrlAddress(*u), "[::1]:8080");
}

TEST(ParseUrlTest, RejectsBadInput) {
  for (const char* bad :
       {"https://127.0.0.1:8080", "ftp://h:21", "127.0.0.1:8080", "http://", "http://:8080",
        "http://h:0", "http://h:65536", "http://h:80x", "http://h:", "http://h:8080?x=1",
        "http://h:8080/#top", "http://user@h:8080", "http://::1:8080", "http://h st:80",
        "http://[::1:8080", "http://h:8080/a b"}) {
    auto u = ParseUrl(bad);
    ASSERT_FALSE(u.ok()) << bad;
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(Contains(u.status().message(), bad)) << u.status().message();
  }
  EXPECT_TRUE(Contains(ParseUrl("https://h:1").status().message(), "https is not supported"));
}

// --- SseParser -----------------------------------------------------------------------------------

// Feeds `stream` in chunks of `chunk` bytes and returns the events.
std::vector<SseEvent> ParseInChunks(std::string_view stream, size_t chunk) {
  SseParser parser;
  std::vector<SseEvent> events;
  for (size_t i = 0; i < stream.size(); i += chunk) {
    EXPECT_TRUE(parser.Feed(stream.substr(i, chunk), [&](const SseEvent& e) {
      events.push_back(e);
      return true;
    }));
  }
  return events;
}

TEST(SseParserTest, SameEventsWhateverTheChunking) {
  const std::string stream =
      ": a comment, then an event\n"
      "id: 1\nevent: active\ndata: {\"a\": 1}\n\n"
      ":keep-alive\n"
      "event: reclaim_notice\r\nid: 2\r\ndata: line1\r\ndata: line2\r\n\r\n"  // CRLF, multi-line
      "data:no-space\rdata:  two spaces\r\r"                                  // bare CR
      "id: 3\nevent: no-data-so-no-event\n\n"
      "data\n\n"  // a field without a colon: empty data, still an event
      "retry: 100\nunknown: x\nevent: price_changed\ndata: last\n\n"
      "data: incomplete, never dispatched";
  const std::vector<SseEvent> want = {
      {"1", "active", "{\"a\": 1}"},
      {"2", "reclaim_notice", "line1\nline2"},
      {"2", "message", "no-space\n two spaces"},
      {"3", "message", ""},
      {"3", "price_changed", "last"},
  };
  EXPECT_EQ(ParseInChunks(stream, stream.size()), want);
  for (size_t chunk = 1; chunk < stream.size(); ++chunk) {
    ASSERT_EQ(ParseInChunks(stream, chunk), want) << "chunk size " << chunk;
  }
}

TEST(SseParserTest, CrlfSplitBetweenChunksEndsOneLine) {
  SseParser parser;
  std::vector<SseEvent> events;
  auto collect = [&](const SseEvent& e) {
    events.push_back(e);
    return true;
  };
  EXPECT_TRUE(parser.Feed("data: a\r", collect));
  EXPECT_TRUE(parser.Feed("\ndata: b\r", collect));
  EXPECT_TRUE(parser.Feed("\n\r", collect));
  EXPECT_TRUE(parser.Feed("\n", collect));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "a\nb");
}

TEST(SseParserTest, SkipsByteOrderMark) {
  std::vector<SseEvent> events = ParseInChunks(
      "\xEF\xBB\xBF"
      "data: x\n\n",
      1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "x");
}

TEST(SseParserTest, StopsWhenTheCallbackSaysSo) {
  SseParser parser;
  int calls = 0;
  EXPECT_FALSE(parser.Feed("data: 1\n\ndata: 2\n\n", [&](const SseEvent&) {
    ++calls;
    return false;
  }));
  EXPECT_EQ(calls, 1);
}

// --- StatusFromResponse --------------------------------------------------------------------------

HttpResponse Resp(int status, std::string body, std::string content_type) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

TEST(HttpClientTest, StatusFromResponseUsesTheServerMessage) {
  EXPECT_TRUE(StatusFromResponse(Resp(200, "{}", "application/json")).ok());
  Status st = StatusFromResponse(Resp(409, R"({"error": {"message": "no capacity for 64 GPUs", "type": "conflict_error",
                "code": "insufficient_capacity", "param": null}})",
       "application/json"));
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(st.message(), "no capacity for 64 GPUs");
  st = StatusFromResponse(Resp(409, R"({"error": {"message": "term too long", "code": "forecast_conflict"}})", ""));
  EXPECT_EQ(st.code(), StatusCode::kConflict);
  st = StatusFromResponse(Resp(404, R"({"error": {"message": "no lease `x`"}})", ""));
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "no lease `x`");
  st = StatusFromResponse(Resp(502, "<html>Bad Gateway</html>\nmore", "text/html"));
  EXPECT_EQ(st.message(), "HTTP 502: <html>Bad Gateway</html>");
  st = StatusFromResponse(Resp(401, "", ""));
  EXPECT_EQ(st.message(), "HTTP 401");
}

// --- HttpClient against a loopback server
// ---------------------------------------------------------

// A loopback server for one test: `serve` runs on its own thread with the bound acceptor and
// does the accepting and answering the test needs. The destructor joins it, so a test declares
// its HttpClient after the server (the client closes its connection first).
class TestServer {
 public:
  explicit TestServer(std::function<void(tcp::acceptor&)> serve)
      : acceptor_(ioc_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
        port_(acceptor_.local_endpoint().port()),
        thread_([this, serve = std::move(serve)] {
          try {
            serve(acceptor_);
          } catch (const std::exception& e) {
            ADD_FAILURE() << "test server: " << e.what();
          }
        }) {}
  ~TestServer() { thread_.join(); }

  std::string url_text(std::string_view prefix = "") const {
    return fmt::format("http://127.0.0.1:{}{}", port_, prefix);
  }
  Url url(std::string_view prefix = "") const { return *ParseUrl(url_text(prefix)); }

 private:
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  const uint16_t port_;
  std::thread thread_;
};

http::request<http::string_body> ReadRequest(tcp::socket& sock, beast::flat_buffer& buf) {
  http::request<http::string_body> req;
  http::read(sock, buf, req);
  return req;
}

void WriteJson(tcp::socket& sock, http::status status, std::string body) {
  http::response<http::string_body> res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.keep_alive(true);
  res.body() = std::move(body);
  res.prepare_payload();
  http::write(sock, res);
}

// Blocks until the peer closes the connection.
void WaitForClose(tcp::socket& sock) {
  char c;
  beast::error_code ec;
  while (!ec) sock.read_some(asio::buffer(&c, 1), ec);
}

std::string Header(const http::request<http::string_body>& req, http::field f) {
  auto v = req[f];
  return std::string(v.data(), v.size());
}

TEST(HttpClientTest, SendsBearerKeyAndJsonBody) {
  http::request<http::string_body> seen;
  {
    TestServer server([&](tcp::acceptor& acceptor) {
      tcp::socket sock = acceptor.accept();
      beast::flat_buffer buf;
      seen = ReadRequest(sock, buf);
      WriteJson(sock, http::status::created, R"({"id": "lease_000001"})");
    });
    HttpClient client(server.url("/api/"), "sk_test_123");
    auto res = client.Request("POST", "/v1/leases", R"({"kind": "spot", "gpus": 8})");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 201);
    EXPECT_EQ(res->content_type, "application/json");
    EXPECT_EQ(res->body, R"({"id": "lease_000001"})");
  }
  EXPECT_EQ(seen.method(), http::verb::post);
  EXPECT_EQ(std::string(seen.target().data(), seen.target().size()), "/api/v1/leases");
  EXPECT_EQ(Header(seen, http::field::authorization), "Bearer sk_test_123");
  EXPECT_EQ(Header(seen, http::field::content_type), "application/json");
  EXPECT_TRUE(Contains(Header(seen, http::field::host), "127.0.0.1:"));
  EXPECT_EQ(seen.body(), R"({"kind": "spot", "gpus": 8})");
}

TEST(HttpClientTest, NoKeyNoAuthorizationHeader) {
  http::request<http::string_body> seen;
  {
    TestServer server([&](tcp::acceptor& acceptor) {
      tcp::socket sock = acceptor.accept();
      beast::flat_buffer buf;
      seen = ReadRequest(sock, buf);
      WriteJson(sock, http::status::ok, R"({"status": "ok"})");
    });
    HttpClient moved_from(server.url(), "");
    HttpClient client = std::move(moved_from);
    auto res = client.Request("GET", "/healthz");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 200);
  }
  EXPECT_EQ(seen.method(), http::verb::get);
  EXPECT_EQ(seen.count(http::field::authorization), 0u);
  EXPECT_EQ(seen.body(), "");
}

TEST(HttpClientTest, ReusesTheConnectionAndReconnectsOnceWhenTheServerClosedIt) {
  std::vector<std::string> targets;
  {
    TestServer server([&](tcp::acceptor& acceptor) {
      {
        tcp::socket first = acceptor.accept();
        beast::flat_buffer buf;
        for (int i = 0; i < 2; ++i) {  // two requests on one connection
          auto req = ReadRequest(first, buf);
          targets.emplace_back(req.target().data(), req.target().size());
          WriteJson(first, http::status::ok, "{}");
        }
      }  // closed without `Connection: close`, as an idle timeout would
      tcp::socket second = acceptor.accept();
      beast::flat_buffer buf;
      auto req = ReadRequest(second, buf);
      targets.emplace_back(req.target().data(), req.target().size());
      WriteJson(second, http::status::ok, "{}");
    });
    HttpClient client(server.url(), "k");
    for (const char* target : {"/a", "/b", "/c"}) {
      auto res = client.Request("GET", target);
      ASSERT_TRUE(res.ok()) << target << ": " << res.status().ToString();
      EXPECT_EQ(res->status, 200);
    }
  }
  EXPECT_EQ(targets, (std::vector<std::string>{"/a", "/b", "/c"}));
}

TEST(HttpClientTest, ReportsAnAnswerSentBeforeTheBodyWasRead) {
  TestServer server([&](tcp::acceptor& acceptor) {
    tcp::socket sock = acceptor.accept();
    beast::flat_buffer buf;
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    http::read_header(sock, buf, parser);
    http::response<http::string_body> res{http::status::payload_too_large, 11};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(false);
    res.body() = R"({"error": {"message": "body over 1 MiB", "code": "body_too_large"}})";
    res.prepare_payload();
    http::write(sock, res);
  });  // closed with the body unread
  HttpClient client(server.url(), "k");
  auto res = client.Request("POST", "/v1/leases", std::string(8 << 20, ' '));
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 413);
  EXPECT_EQ(StatusFromResponse(*res).message(), "body over 1 MiB");
}

TEST(HttpClientTest, ConnectionRefusedNamesTheAddress) {
  uint16_t port;
  {
    asio::io_context ioc;
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    port = acceptor.local_endpoint().port();
  }  // closed: nothing listens there now
  HttpClient client(Url{"127.0.0.1", std::to_string(port), ""}, "k");
  auto res = client.Request("GET", "/v1/leases");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kUnavailable) << "nothing was sent";
  EXPECT_EQ(res.status().message(),
            fmt::format("cannot connect to 127.0.0.1:{}: Connection refused", port));
}

TEST(HttpClientTest, TimesOutWhenTheServerDoesNotAnswer) {
  TestServer server([&](tcp::acceptor& acceptor) {
    tcp::socket sock = acceptor.accept();
    beast::flat_buffer buf;
    ReadRequest(sock, buf);
    WaitForClose(sock);  // never answers
  });
  HttpClient client(server.url(), "k");
  auto res = client.Request("GET", "/v1/leases", "", Duration::Millis(100));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kIoError);
  EXPECT_TRUE(Contains(res.status().message(), "timed out after 100ms")) << res.status().message();
  EXPECT_TRUE(Contains(res.status().message(), "127.0.0.1:")) << res.status().message();
}

TEST(HttpClientTest, UnknownMethodIsInvalid) {
  HttpClient client(Url{"127.0.0.1", "1", ""}, "k");
  auto res = client.Request("FETCH", "/");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kInvalidArgument);
}

// Writes `parts` as the chunks of a chunked text/event-stream response.
void WriteEventStream(tcp::socket& sock, const std::vector<std::string>& parts, bool finish) {
  asio::write(sock, asio::buffer(std::string(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                        "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")));
  for (const std::string& p : parts) {
    asio::write(sock, asio::buffer(fmt::format("{:x}\r\n{}\r\n", p.size(), p)));
  }
  if (finish) asio::write(sock, asio::buffer(std::string("0\r\n\r\n")));
}

TEST(HttpClientTest, StreamReadsEventsUntilTheServerEndsTheStream) {
  http::request<http::string_body> seen;
  std::vector<SseEvent> events;
  {
    TestServer server([&](tcp::acceptor& acceptor) {
      tcp::socket sock = acceptor.accept();
      beast::flat_buffer buf;
      seen = ReadRequest(sock, buf);
      WriteEventStream(sock,
                       {": hi\n\nid: 8\nev", "ent: active\ndata: {\"x\":", "1}\n\nid: 9\n",
                        "event: released\ndata: {}\n\n"},
                       /*finish=*/true);
    });
    HttpClient client(server.url(), "k");
    Status st = client.Stream(
        "/v1/leases/lease_1/events",
        [&](const SseEvent& e) {
          events.push_back(e);
          return true;
        },
        "7");
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(Header(seen, http::field::accept), "text/event-stream");
  EXPECT_EQ(seen["Last-Event-ID"], "7");
  EXPECT_EQ(Header(seen, http::field::authorization), "Bearer k");
  EXPECT_EQ(events, (std::vector<SseEvent>{{"8", "active", "{\"x\":1}"}, {"9", "released", "{}"}}));
}

TEST(HttpClientTest, StreamStopsWhenTheCallbackReturnsFalse) {
  int calls = 0;
  TestServer server([&](tcp::acceptor& acceptor) {
    tcp::socket sock = acceptor.accept();
    beast::flat_buffer buf;
    ReadRequest(sock, buf);
    WriteEventStream(sock, {"data: 1\n\n", "data: 2\n\n"}, /*finish=*/false);
    WaitForClose(sock);  // the stream stays open until the client hangs up
  });
  HttpClient client(server.url(), "k");
  Status st = client.Stream("/events", [&](const SseEvent&) {
    ++calls;
    return false;
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(calls, 1);
}

TEST(HttpClientTest, StreamErrorCarriesTheServerMessage) {
  TestServer server([&](tcp::acceptor& acceptor) {
    tcp::socket sock = acceptor.accept();
    beast::flat_buffer buf;
    ReadRequest(sock, buf);
    WriteJson(
        sock, http::status::not_found,
        R"({"error": {"message": "no lease `lease_9`", "type": "not_found_error", "code": null, "param": null}})");
  });
  HttpClient client(server.url(), "k");
  Status st = client.Stream("/v1/leases/lease_9/events", [](const SseEvent&) { return true; });
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "no lease `lease_9`");
}

// --- the commands
// ---------------------------------------------------------------------------------

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `landlord <args>` through AddClientCommands, capturing stdout and stderr.
CliResult RunCli(const std::string& args) {
  CLI::App app{"landlord"};
  app.require_subcommand(1);
  auto run = AddClientCommands(app);
  CliResult r;
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  try {
    app.parse(args);
    r.exit_code = run().value_or(-1);
  } catch (const CLI::ParseError& e) {
    r.exit_code = 100 + e.get_exit_code();
  }
  r.out = testing::internal::GetCapturedStdout();
  r.err = testing::internal::GetCapturedStderr();
  return r;
}

constexpr const char* kLease1 =
    R"({"id": "lease_000002", "object": "lease", "kind": "spot", "state": "noticed", "gpus": 16,
        "pool": "vc0", "price_per_gpu_hour": "0.2256", "max_price_per_gpu_hour": "2.00",
        "created_at": "2020-05-01T00:10:00Z", "started_at": "2020-05-01T00:10:00Z",
        "noticed_at": "2020-05-01T01:00:00Z", "reclaim_at": "2020-05-01T01:02:00Z",
        "term_end": null, "ended_at": null, "end_reason": null,
        "nodes": [{"node": "n003", "gpus": 8}, {"node": "n004", "gpus": 8}]})";
constexpr const char* kLease2 =
    R"({"id": "lease_000001", "object": "lease", "kind": "reserved", "state": "active", "gpus": 8,
        "pool": "vc1", "price_per_gpu_hour": "0.18", "max_price_per_gpu_hour": null,
        "created_at": "2020-05-01T00:00:00Z", "started_at": "2020-05-01T00:00:00Z",
        "noticed_at": null, "reclaim_at": null, "term_end": "2020-05-01T04:00:00Z",
        "ended_at": null, "end_reason": null, "nodes": [{"node": "n001", "gpus": 8}]})";

// Answers one request with `status` and `body`, recording the request.
std::function<void(tcp::acceptor&)> AnswerOnce(http::request<http::string_body>* seen,
                                               http::status status, std::string body) {
  return [=](tcp::acceptor& acceptor) {
    tcp::socket sock = acceptor.accept();
    beast::flat_buffer buf;
    *seen = ReadRequest(sock, buf);
    WriteJson(sock, status, body);
  };
}

TEST(ClientCommandsTest, LeaseListPrintsAnAlignedTable) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(
        AnswerOnce(&seen, http::status::ok,
                   fmt::format(R"({{"object": "list", "data": [{}, {}]}})", kLease1, kLease2)));
    r = RunCli(fmt::format("lease list --url {} --key sk_1", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::string(seen.target().data(), seen.target().size()), "/v1/leases");
  EXPECT_EQ(Header(seen, http::field::authorization), "Bearer sk_1");
  EXPECT_EQ(
      r.out,
      "ID            KIND      STATE    GPUS  POOL  PRICE/GPU-H   MAX  CREATED               "
      "RECLAIM AT\n"
      "lease_000002  spot      noticed    16  vc0        0.2256  2.00  2020-05-01T00:10:00Z  "
      "2020-05-01T01:02:00Z\n"
      "lease_000001  reserved  active      8  vc1          0.18     -  2020-05-01T00:00:00Z  -\n");
}

TEST(ClientCommandsTest, LeaseListPagesWithLimitAndAfter) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(AnswerOnce(
        &seen, http::status::ok,
        fmt::format(R"({{"object": "list", "data": [{}], "has_more": true}})", kLease2)));
    r = RunCli(fmt::format("lease list --url {} --key sk_1 --limit 1 --after lease_000003", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::string(seen.target().data(), seen.target().size()), "/v1/leases?limit=1&after=lease_000003");
  EXPECT_NE(r.out.find("more: --after lease_000001\n"), std::string::npos) << r.out;
}

TEST(ClientCommandsTest, LeaseListJsonPrintsTheBodyAsIs) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(AnswerOnce(&seen, http::status::ok, R"({"object": "list", "data": []})"));
    r = RunCli(fmt::format("lease list --url {} --key sk_1 --json", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"object\": \"list\", \"data\": []}\n");
}

TEST(ClientCommandsTest, LeaseShowPrintsKeyValueLines) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(AnswerOnce(&seen, http::status::ok, kLease1));
    r = RunCli(fmt::format("lease show lease_000002 --url {} --key sk_1", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::string(seen.target().data(), seen.target().size()), "/v1/leases/lease_000002");
  EXPECT_TRUE(Contains(r.out, "id:                     lease_000002\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "reclaim_at:             2020-05-01T01:02:00Z\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "term_end:               -\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "nodes:                  n003 (8 GPUs), n004 (8 GPUs)\n")) << r.out;
  EXPECT_FALSE(Contains(r.out, "object")) << r.out;
}

TEST(ClientCommandsTest, LeaseCreateSendsTheRequestBody) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(AnswerOnce(&seen, http::status::created, kLease1));
    r = RunCli(fmt::format("lease create --gpus 16 --max-price 2.5 --pool vc0 --url {} --key sk_1",
                           server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(seen.method(), http::verb::post);
  EXPECT_EQ(
      nlohmann::json::parse(seen.body()),
      nlohmann::json::parse(
          R"({"kind": "spot", "gpus": 16, "max_price_per_gpu_hour": "2.50", "pool": "vc0"})"));
  EXPECT_TRUE(Contains(r.out, "state:")) << r.out;
}

TEST(ClientCommandsTest, LeaseCreateReservedWithStartAt) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(AnswerOnce(&seen, http::status::created, kLease1));
    r = RunCli(fmt::format(
        "lease create --kind reserved --gpus 8 --duration 3600 --start-at 2024-01-16T08:00:00Z --url {} --key sk_1",
        server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(seen.body()),
            nlohmann::json::parse(R"({"kind": "reserved", "gpus": 8, "duration_s": 3600,
                                      "start_at": "2024-01-16T08:00:00Z"})"));
  r = RunCli("lease create --gpus 8 --start-at 2024-01-16T08:00:00Z --url http://127.0.0.1:1 --key k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "`--start-at` applies to `--kind reserved` only")) << r.err;
  r = RunCli("lease create --kind reserved --gpus 8 --duration 60 --start-at tomorrow --url http://127.0.0.1:1 --key k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "--start-at")) << r.err;
}

TEST(ClientCommandsTest, InvoiceShowPrintsItemsOrRawCsv) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(AnswerOnce(&seen, http::status::ok, R"({"object": "invoice", "tenant_id": "ten_a",
        "period": "2024-01", "status": "closed", "total": "6.20", "total_micros": 6200000, "items": [
        {"lease_id": "lease_000001", "kind": "spot", "price_per_gpu_hour": "1.50", "gpu_ms": 14400000,
         "amount": "6.00", "amount_micros": 6000000},
        {"model": "llama-3-8b", "kind": "input_tokens", "price_per_mtok": "0.20", "tokens": 1000000,
         "amount": "0.20", "amount_micros": 200000}]})"));
    r = RunCli(fmt::format("invoice show 2024-01 --url {} --key sk_1", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::string(seen.target().data(), seen.target().size()), "/v1/invoices/2024-01");
  EXPECT_TRUE(Contains(r.out, "invoice 2024-01 for ten_a (closed)")) << r.out;
  EXPECT_TRUE(Contains(r.out, "4.000 GPU-h")) << r.out;
  EXPECT_TRUE(Contains(r.out, "1000000 tok")) << r.out;
  EXPECT_TRUE(Contains(r.out, "6.20\n")) << r.out;
  {
    TestServer server(AnswerOnce(&seen, http::status::ok, "tenant_id,period\nten_a,2024-01\n"));
    r = RunCli(fmt::format("invoice show 2024-01 --csv --tenant ten_a --url {} --key sk_1", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::string(seen.target().data(), seen.target().size()), "/v1/invoices/2024-01?tenant_id=ten_a&format=csv");
  EXPECT_EQ(r.out, "tenant_id,period\nten_a,2024-01\n");
}

TEST(ClientCommandsTest, UsageErrorsExitTwoWithoutAsking) {
  // Nothing listens on port 1: these must fail before connecting.
  CliResult r = RunCli("lease create --gpus 8 --kind reserved --url http://127.0.0.1:1 --key k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "landlord: `--kind reserved` needs `--duration SECONDS`\n");
  r = RunCli("lease create --gpus 8 --max-price abc --url http://127.0.0.1:1 --key k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "--max-price")) << r.err;
  r = RunCli("lease list --url https://127.0.0.1:1 --key k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "https is not supported")) << r.err;

  const char* saved = std::getenv("LANDLORD_API_KEY");
  std::string saved_key = saved != nullptr ? saved : "";
  unsetenv("LANDLORD_API_KEY");
  r = RunCli("lease list --url http://127.0.0.1:1");
  if (saved != nullptr) setenv("LANDLORD_API_KEY", saved_key.c_str(), 1);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "LANDLORD_API_KEY")) << r.err;
}

TEST(ClientCommandsTest, ServerErrorPrintsItsMessageAndExitsOne) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(
        AnswerOnce(&seen, http::status::conflict,
                   R"({"error": {"message": "no capacity for 64 GPUs now", "type": "conflict_error",
                                     "code": "insufficient_capacity", "param": null}})"));
    r = RunCli(fmt::format("lease create --gpus 64 --url {} --key sk_1", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "landlord: no capacity for 64 GPUs now\n");
}

TEST(ClientCommandsTest, TransportErrorExitsOne) {
  uint16_t port;
  {
    asio::io_context ioc;
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    port = acceptor.local_endpoint().port();
  }
  CliResult r = RunCli(fmt::format("quote --url http://127.0.0.1:{} --key k", port));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            fmt::format("landlord: cannot connect to 127.0.0.1:{}: Connection refused\n", port));
}

TEST(ClientCommandsTest, QuotePrintsSpotAndReservedTerms) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(
        AnswerOnce(&seen, http::status::ok,
                   R"({"spot": {"price_per_gpu_hour": "0.2256", "available_gpus": 120},
                                     "reserved": [{"duration_s": 14400, "price_per_gpu_hour": "0.18", "max_gpus": 64},
                                                  {"duration_s": 86400, "price_per_gpu_hour": "0.15", "max_gpus": 8}]})"));
    r = RunCli(fmt::format("quote --gpus 8 --url {} --key sk_1", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::string(seen.target().data(), seen.target().size()), "/v1/quotes?gpus=8");
  EXPECT_EQ(r.out,
            "spot: 0.2256 USD/GPU-h, 120 GPUs available\n"
            "reserved:\n"
            "TERM  PRICE/GPU-H  MAX GPUS\n"
            "4h           0.18        64\n"
            "1d           0.15         8\n");
}

TEST(ClientCommandsTest, AdminKeyCreateShowsTheKeyOnce) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(
        AnswerOnce(&seen, http::status::created,
                   R"({"id": "key_01", "tenant_id": "ten_01", "key": "ll_sk_secret"})"));
    r = RunCli(
        fmt::format("admin key create --tenant ten_01 --url {} --key admin_k", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::string(seen.target().data(), seen.target().size()), "/admin/keys");
  EXPECT_EQ(nlohmann::json::parse(seen.body()),
            nlohmann::json::parse(R"({"tenant_id": "ten_01"})"));
  EXPECT_TRUE(Contains(r.out, "\n    ll_sk_secret\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "only time")) << r.out;
}

TEST(ClientCommandsTest, AdminTenantCreate) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server(
        AnswerOnce(&seen, http::status::created,
                   R"({"id": "ten_01", "name": "acme", "created_at": "2020-05-01T00:00:00Z"})"));
    r = RunCli(fmt::format("admin tenant create acme --url {} --key admin_k", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(seen.body()), nlohmann::json::parse(R"({"name": "acme"})"));
  EXPECT_EQ(r.out, "id:         ten_01\nname:       acme\ncreated_at: 2020-05-01T00:00:00Z\n");
}

std::string EventData(const std::string& type, const std::string& state, const std::string& extra) {
  return fmt::format(
      R"({{"type": "{}", "at": "2020-05-01T01:00:00Z", "lease": {{"id": "lease_000002", "state": "{}",)"
      R"( "gpus": 16, "reclaim_at": {}, "end_reason": {}, "nodes": [{{"node": "n003", "gpus": 16}}]}},)"
      R"( "now": "2020-05-01T01:00:00Z", "clock_speed": 60{}}})",
      type, state,
      state == "noticed" || state == "reclaimed" ? R"("2020-05-01T01:02:00Z")" : "null",
      state == "reclaimed" ? R"("internal_demand")" : "null", extra);
}

TEST(ClientCommandsTest, LeaseWatchPrintsEventsUntilAFinalState) {
  http::request<http::string_body> seen;
  CliResult r;
  {
    TestServer server([&](tcp::acceptor& acceptor) {
      tcp::socket sock = acceptor.accept();
      beast::flat_buffer buf;
      seen = ReadRequest(sock, buf);
      WriteEventStream(
          sock,
          {"id: 1\nevent: active\ndata: " + EventData("active", "active", "") + "\n\n",
           "id: 2\nevent: reclaim_notice\ndata: " +
               EventData("reclaim_notice", "noticed",
                         R"(, "reclaim_at": "2020-05-01T01:02:00Z", "reason": "internal_demand")") +
               "\n\n",
           "id: 3\nevent: reclaimed\ndata: " + EventData("reclaimed", "reclaimed", "") + "\n\n"},
          /*finish=*/false);
      WaitForClose(sock);  // the client must stop on its own at the final state
    });
    r = RunCli(fmt::format("lease watch lease_000002 --url {} --key sk_1", server.url_text()));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::string(seen.target().data(), seen.target().size()),
            "/v1/leases/lease_000002/events");
  EXPECT_TRUE(Contains(
      r.out, "2020-05-01T01:00:00Z  active          active     16 GPUs on n003 (16 GPUs)\n"))
      << r.out;
  EXPECT_TRUE(Contains(
      r.out, "reclaim_notice  noticed    reclaim at 2020-05-01T01:02:00Z (internal_demand)\n"))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "  reclaim in ")) << r.out;  // the countdown, server seconds
  EXPECT_TRUE(Contains(r.out, "reclaimed       reclaimed  internal_demand\n")) << r.out;
}

}  // namespace
}  // namespace ll::cli
