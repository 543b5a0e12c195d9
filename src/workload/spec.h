// A lease's workload as the tenant asks for it: the command, its environment, an optional image
// (for backends that run containers) and optional SSH keys for an interactive login. Parsing is
// pure and validates every field; an error names the field (`workload.command[2]`).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace ll::workload {

// Bounds on what a tenant may ask for (they size memory the server holds per lease and the
// argv/environment the kernel accepts).
inline constexpr size_t kMaxArgs = 256;
inline constexpr size_t kMaxCommandBytes = 64 * 1024;  // all args together
inline constexpr size_t kMaxEnv = 128;
inline constexpr size_t kMaxEnvNameBytes = 128;
inline constexpr size_t kMaxEnvValueBytes = 4096;
inline constexpr size_t kMaxImageBytes = 255;
inline constexpr size_t kMaxSshKeys = 16;
inline constexpr size_t kMaxSshKeyBytes = 8192;  // an RSA-16384 public key line fits

struct Spec {
  std::vector<std::string> command;                      // argv, never given to a shell
  std::vector<std::pair<std::string, std::string>> env;  // sorted by name
  std::string image;                                     // empty: none
  std::vector<std::string> ssh_public_keys;              // "TYPE BASE64 [comment]" lines

  nlohmann::json ToJson() const;
};

// Why a field was refused: `reason` is the API's error code (`missing_field`, `invalid_type`,
// `invalid_value`), `param` the field (`workload.env.FOO`), as the API's error body names them.
struct SpecError {
  std::string reason;
  std::string param;
};

// Parses and validates `workload` (the JSON object of a lease request). On a refusal the Status
// is kInvalidArgument with a message that names the field, and `error` (if given) says which.
Result<Spec> ParseSpec(const nlohmann::json& workload, SpecError* error = nullptr);

// Checks one OpenSSH public key line: a known type (ssh-ed25519,
// ecdsa-sha2-nistp256/384/521, ssh-rsa), a base64 body that decodes and whose embedded type
// string is the same type, an optional comment without control characters.
Status CheckSshPublicKey(std::string_view line);

}  // namespace ll::workload
