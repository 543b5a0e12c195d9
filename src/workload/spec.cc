#include "workload/spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <optional>

namespace ll::workload {
namespace {

using nlohmann::json;

// The first refusal: a Status that names the field, and the field and reason apart.
struct Refusal {
  SpecError* out;
  Status Fail(std::string reason, std::string param, std::string message) {
    if (out != nullptr) *out = {std::move(reason), param};
    return Status::Invalid(fmt::format("`{}` {}", param, message));
  }
};

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

Status ParseCommand(const json& j, Spec& spec, Refusal& r) {
  const std::string field = "workload.command";
  if (!j.is_array()) return r.Fail("invalid_type", field, "must be an array of strings (argv)");
  if (j.empty()) return r.Fail("invalid_value", field, "must name a program");
  if (j.size() > kMaxArgs)
    return r.Fail("invalid_value", field, fmt::format("must have at most {} arguments", kMaxArgs));
  size_t total = 0;
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string name = fmt::format("{}[{}]", field, i);
    if (!j[i].is_string()) return r.Fail("invalid_type", name, "must be a string");
    const auto& arg = j[i].get_ref<const std::string&>();
    if (HasNul(arg)) return r.Fail("invalid_value", name, "must not contain a NUL byte");
    if (i == 0 && arg.empty()) return r.Fail("invalid_value", name, "must name a program");
    total += arg.size() + 1;
    if (total > kMaxCommandBytes)
      return r.Fail("invalid_value", name,
                    fmt::format("makes the command longer than {} bytes", kMaxCommandBytes));
    spec.command.push_back(arg);
  }
  return Status::Ok();
}

bool ValidEnvName(std::string_view n) {
  if (n.empty() || n.size() > kMaxEnvNameBytes) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!alpha(n[0])) return false;
  return std::all_of(n.begin(), n.end(),
                     [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); });
}

Status ParseEnv(const json& j, Spec& spec, Refusal& r) {
  const std::string field = "workload.env";
  if (!j.is_object()) return r.Fail("invalid_type", field, "must be an object of NAME: value");
  if (j.size() > kMaxEnv)
    return r.Fail("invalid_value", field, fmt::format("must have at most {} variables", kMaxEnv));
  for (const auto& [name, value] : j.items()) {
    const std::string param = field + "." + name;
    if (!ValidEnvName(name))
      return r.Fail("invalid_value", param,
                    fmt::format("must be a name of [A-Za-z_][A-Za-z0-9_]* of at most {} bytes",
                                kMaxEnvNameBytes));
    if (name.rfind("LANDLORD_", 0) == 0)
      return r.Fail("invalid_value", param, "must not start with `LANDLORD_` (set by Landlord)");
    if (name == "CUDA_VISIBLE_DEVICES")
      return r.Fail("invalid_value", param, "is set by Landlord to the lease's GPUs");
    if (!value.is_string()) return r.Fail("invalid_type", param, "must be a string");
    const auto& v = value.get_ref<const std::string&>();
    if (v.size() > kMaxEnvValueBytes)
      return r.Fail("invalid_value", param,
                    fmt::format("must be at most {} bytes", kMaxEnvValueBytes));
    if (HasNul(v)) return r.Fail("invalid_value", param, "must not contain a NUL byte");
    spec.env.emplace_back(name, v);
  }
  std::sort(spec.env.begin(), spec.env.end());
  return Status::Ok();
}

// An image reference (`registry/name:tag@sha256:…`): the characters of one, and never a
// leading `-` (a container runtime would read it as an option).
Status ParseImage(const json& j, Spec& spec, Refusal& r) {
  const std::string field = "workload.image";
  if (!j.is_string()) return r.Fail("invalid_type", field, "must be a string");
  const auto& s = j.get_ref<const std::string&>();
  if (s.empty() || s.size() > kMaxImageBytes)
    return r.Fail("invalid_value", field, fmt::format("must be 1..{} bytes", kMaxImageBytes));
  const bool charset = std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/' || c == ':' || c == '@';
  });
  if (!charset || s[0] == '-' || s[0] == '.' || s[0] == '/' || s[0] == ':' || s[0] == '@')
    return r.Fail("invalid_value", field, "must be an image reference (name[:tag][@digest])");
  spec.image = s;
  return Status::Ok();
}

Status ParseSshKeys(const json& j, Spec& spec, Refusal& r) {
  const std::string field = "workload.ssh_public_keys";
  if (!j.is_array()) return r.Fail("invalid_type", field, "must be an array of public key lines");
  if (j.size() > kMaxSshKeys)
    return r.Fail("invalid_value", field, fmt::format("must have at most {} keys", kMaxSshKeys));
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string name = fmt::format("{}[{}]", field, i);
    if (!j[i].is_string()) return r.Fail("invalid_type", name, "must be a string");
    const auto& line = j[i].get_ref<const std::string&>();
    Status st = CheckSshPublicKey(line);
    if (!st.ok()) return r.Fail("invalid_value", name, st.message());
    spec.ssh_public_keys.push_back(line);
  }
  return Status::Ok();
}

// Strict base64 (padding required, no whitespace); nullopt when it does not decode.
std::optional<std::string> DecodeBase64(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < in.size(); i += 4) {
    std::array<int, 4> v{};
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        ++pad;
        v[k] = 0;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[k] = value(c);
      if (v[k] < 0) return std::nullopt;
    }
    const uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
  }
  return out;
}

}  // namespace

Status CheckSshPublicKey(std::string_view line) {
  static constexpr std::array<std::string_view, 5> kTypes = {"ssh-ed25519", "ecdsa-sha2-nistp256",
                                                             "ecdsa-sha2-nistp384",
                                                             "ecdsa-sha2-nistp521", "ssh-rsa"};
  if (line.empty() || line.size() > kMaxSshKeyBytes)
    return Status::Invalid(fmt::format("must be 1..{} bytes", kMaxSshKeyBytes));
  if (HasControl(line)) return Status::Invalid("must be one line without control characters");
  const size_t sp = line.find(' ');
  const std::string_view type = line.substr(0, sp);
  if (std::find(kTypes.begin(), kTypes.end(), type) == kTypes.end())
    return Status::Invalid(
        "must be an OpenSSH public key of type ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa "
        "(`TYPE BASE64 [comment]`, no options)");
  if (sp == std::string_view::npos) return Status::Invalid("has no key after its type");
  std::string_view rest = line.substr(sp + 1);
  const std::string_view body = rest.substr(0, rest.find(' '));
  const std::optional<std::string> blob = DecodeBase64(body);
  if (!blob) return Status::Invalid("has a key that is not valid base64");
  // The blob opens with its type as an SSH string: a 4-byte big-endian length, then the bytes.
  if (blob->size() < 4) return Status::Invalid("has a key too short to be one");
  const auto b = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>((*blob)[i]));
  };
  const uint32_t n = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
  if (n != type.size() || blob->size() < 4 + n || blob->compare(4, n, type) != 0)
    return Status::Invalid(fmt::format("has a key whose embedded type is not `{}`", type));
  if (type == "ssh-ed25519" && blob->size() != 4 + n + 4 + 32)
    return Status::Invalid("has an ssh-ed25519 key that is not 32 bytes");
  if (blob->size() == 4 + n) return Status::Invalid("has a key with no key material");
  return Status::Ok();
}

Result<Spec> ParseSpec(const nlohmann::json& workload, SpecError* error) {
  Refusal r{error};
  if (!workload.is_object()) return r.Fail("invalid_type", "workload", "must be an object");
  for (const auto& [k, v] : workload.items()) {
    if (k != "command" && k != "env" && k != "image" && k != "ssh_public_keys")
      return r.Fail("invalid_value", "workload." + k, "is not a field of a workload");
  }
  Spec spec;
  auto it = workload.find("command");
  if (it == workload.end() || it->is_null())
    return r.Fail("missing_field", "workload.command", "is required");
  LL_RETURN_IF_ERROR(ParseCommand(*it, spec, r));
  if (it = workload.find("env"); it != workload.end() && !it->is_null())
    LL_RETURN_IF_ERROR(ParseEnv(*it, spec, r));
  if (it = workload.find("image"); it != workload.end() && !it->is_null())
    LL_RETURN_IF_ERROR(ParseImage(*it, spec, r));
  if (it = workload.find("ssh_public_keys"); it != workload.end() && !it->is_null())
    LL_RETURN_IF_ERROR(ParseSshKeys(*it, spec, r));
  return spec;
}

nlohmann::json Spec::ToJson() const {
  json j = {{"command", command}};
  json e = json::object();
  for (const auto& [k, v] : env) e[k] = v;
  j["env"] = std::move(e);
  if (!image.empty()) j["image"] = image;
  if (!ssh_public_keys.empty()) j["ssh_public_keys"] = ssh_public_keys;
  return j;
}

}  // namespace ll::workload
