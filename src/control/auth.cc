#include "control/auth.h"

#include <sodium.h>

#include <vector>

#include "core/check.h"

namespace ll::control {
namespace {

std::string Hex(const unsigned char* p, size_t n) {
  std::string out(2 * n + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), p, n);
  out.pop_back();
  return out;
}

void Init() {
  static const bool ok = sodium_init() >= 0;
  LL_CHECK(ok);
}

}  // namespace

std::string RandomHex(size_t bytes) {
  Init();
  std::vector<unsigned char> buf(bytes);
  randombytes_buf(buf.data(), buf.size());
  return Hex(buf.data(), buf.size());
}

std::string NewApiKey() { return "ll_" + RandomHex(32); }

std::string HashApiKey(std::string_view key) {
  Init();
  unsigned char out[crypto_generichash_BYTES];
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(key.data()), key.size(), nullptr, 0);
  return Hex(out, sizeof out);
}

}  // namespace ll::control
