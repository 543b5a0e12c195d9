// Small HTTP helpers shared by the gateway, the fake model server and the control plane's server.
#pragma once

#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

#include "core/status.h"

namespace ll::gateway {

// "HOST:PORT" (port 0: any free port) → an endpoint; errors name the text.
Result<boost::asio::ip::tcp::endpoint> ParseListen(const std::string& listen);

// Opens, binds (reuse_address) and listens `acceptor` on `listen` ("HOST:PORT", port 0: any
// free one); errors name the address. With `reuse_port` (SO_REUSEPORT) other listeners of this
// user may bind the same port and the kernel spreads new connections over them (a gateway's
// event loops).
Status OpenAcceptor(boost::asio::ip::tcp::acceptor& acceptor, const std::string& listen, bool reuse_port = false);

// The bearer token of an Authorization header value ("" if none), spaces trimmed.
std::string_view BearerToken(std::string_view authorization);

// An HTTP method as a metrics label: the standard ones, else "OTHER" (labels stay a bounded set).
std::string_view MethodLabel(std::string_view method);

// "http://HOST:PORT" → host and port; errors name the text.
Status ParseHttpUrl(const std::string& url, std::string* host, std::string* port);

// `%XX` escapes decoded (a path segment: `org%2Fname` is `org/name`); malformed ones kept as
// they are.
std::string PercentDecode(std::string_view s);

// OpenAI-style error body: {"error": {"message", "type", "code", "param"}} (param null when
// empty). `type` defaults from nothing: pass "invalid_request_error", "server_error", ...
std::string ErrorJson(std::string_view code, std::string_view message, std::string_view param,
                      std::string_view type);

}  // namespace ll::gateway
