// API keys: 256 random bits (libsodium), shown once, stored only as a BLAKE2b hash. A key has
// the full entropy of its random bytes, so a fast keyed-free hash is enough (no password KDF).
#pragma once

#include <string>
#include <string_view>

namespace ll::control {

// "ll_" + 64 hex digits. Aborts if libsodium cannot initialise (no entropy source).
std::string NewApiKey();
// Hex of BLAKE2b-256 of the key.
std::string HashApiKey(std::string_view key);
// A random hex string of `bytes` bytes (ids that must not be guessable).
std::string RandomHex(size_t bytes);

}  // namespace ll::control
