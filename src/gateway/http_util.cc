#include "gateway/http_util.h"

#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ll::gateway {

Result<boost::asio::ip::tcp::endpoint> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return Status::Invalid(fmt::format("listen address `{}`: expected HOST:PORT", listen));
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(host, ec);
  if (ec) return Status::Invalid(fmt::format("listen address `{}`: {}", listen, ec.message()));
  const std::string port_text = listen.substr(colon + 1);
  int port = -1;
  auto [p, e] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (e != std::errc() || p != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return Status::Invalid(fmt::format("listen address `{}`: bad port", listen));
  }
  return boost::asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(port));
}

Status OpenAcceptor(boost::asio::ip::tcp::acceptor& acceptor, const std::string& listen, bool reuse_port) {
  LL_ASSIGN_OR_RETURN(boost::asio::ip::tcp::endpoint ep, ParseListen(listen));
  boost::system::error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec);
  using ReusePort = boost::asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
  if (!ec && reuse_port) acceptor.set_option(ReusePort(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Io(fmt::format("cannot listen on {}: {}", listen, ec.message()));
  return Status::Ok();
}

std::string_view BearerToken(std::string_view a) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (a.size() <= kPrefix.size() || a.substr(0, kPrefix.size()) != kPrefix) return {};
  a.remove_prefix(kPrefix.size());
  while (!a.empty() && a.front() == ' ') a.remove_prefix(1);
  while (!a.empty() && a.back() == ' ') a.remove_suffix(1);
  return a;
}

std::string_view MethodLabel(std::string_view m) {
  for (std::string_view k : {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}) {
    if (m == k) return k;
  }
  return "OTHER";
}

Status ParseHttpUrl(const std::string& url, std::string* host, std::string* port) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) return Status::Invalid(fmt::format("`{}`: expected http://HOST:PORT", url));
  std::string rest = url.substr(kScheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.size() >= 3 && rest.substr(rest.size() - 3) == "/v1") rest.resize(rest.size() - 3);
  if (rest.find('/') != std::string::npos) return Status::Invalid(fmt::format("`{}`: expected http://HOST:PORT", url));
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || rest.back() == ']') {
    *host = rest;
    *port = "80";
  } else {
    *host = rest.substr(0, colon);
    *port = rest.substr(colon + 1);
  }
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  int p = -1;
  auto [end, e] = std::from_chars(port->data(), port->data() + port->size(), p);
  if (host->empty() || e != std::errc() || end != port->data() + port->size() || p <= 0 || p > 65535) {
    return Status::Invalid(fmt::format("`{}`: expected http://HOST:PORT", url));
  }
  return Status::Ok();
}

std::string ErrorJson(std::string_view code, std::string_view message, std::string_view param, std::string_view type) {
  nlohmann::json e = {{"message", message}, {"type", type}, {"code", code}, {"param", nullptr}};
  if (!param.empty()) e["param"] = param;
  return nlohmann::json{{"error", e}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string PercentDecode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace ll::gateway
