// workload::ParseSpec: what a tenant may ask for, and a refusal that names each bad field.
#include <gtest/gtest.h>

#include <string>

#include "workload/spec.h"

namespace ll::workload {
namespace {

using nlohmann::json;

constexpr const char* kEd25519 =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIVJvrtQe2JfiW3hfKjQXUmgP2sPTrqsjysKjsKTteBV t@ed25519";
constexpr const char* kEcdsa256 =
    "ecdsa-sha2-nistp256 "
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDPVvIqxl5ptLOvoo7JK+zy9oe"
    "jjU1QHd/24w3HYVFUMhlVIL39qd7NnrCy8hV2LshszNUNm1H0TQaYwyjFgukE=";
constexpr const char* kEcdsa521 =
    "ecdsa-sha2-nistp521 "
    "AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAFAnIHeZbVZFoIqWjvEih1Lg1"
    "GyGhXl2tlrxFg+"
    "dSlpJ7sz13iIwJIlphTc4jIf6wtI3hSmzIA69wOFBFAD28m3kgB9ulYQlWeuP7WYYZc57STEvGLkCLBZmj8y"
    "G8M0wxg5gDwuOWvZQHn/RkqFdTUF1YWluMOwAckN6/27Dn8bJl6hlg== x";
constexpr const char* kRsa =
    "ssh-rsa "
    "AAAAB3NzaC1yc2EAAAADAQABAAABgQDzAkQky9mUXJy+"
    "5zTyPbJUKfaLqI4RWDVSSroCzNhIiUekwpfZ6TQNlnTnRbuK44fyhmK4FBSILvsjI1egDzNrFo0AC1+"
    "Jn9ruJXpeqVPmAIepZaY7W+2vlOChBi0ZOz2e9i6rBP4vT5Kd3/"
    "yyRI8fEpqLQaxOGTrmg6Y1V9UFXtyvyWAxk1lUTYYKQ/"
    "NyNo8SA5RuaGQXFaDnFwGjNu6PAxVpNhlwWYvAJsWYiMlMNdrx7HVJ1pXBzIZ72OEf0X9YIm5BvdpR2Yt2zQrKyquzNuTA"
    "yYYVQYbfhXKHg1Bi+8m+"
    "WDuCKlPozOc5CzH7BoOn8rb4bJsoQVqjSfk41tp7VrrsVdfeQvKeI7h33H9zqMJPlMdrvmFiCqTQ85GzDqu48bRTNTEfS8"
    "N0Ina5Ghkwo3iYISw4e4/"
    "bYhFmaJ5qBkZGckQNmvhPgROD1UakfP6ZLTpDHTqOTDjnoVXMibyFlov8ekPAyelJG8z61U75Xz87ymlXTCu8r4peBAUxB"
    "qM= t@rsa";

TEST(WorkloadSpec, ParsesAFullSpec) {
  SpecError err;
  auto spec = ParseSpec(json{{"command", {"python", "train.py", "--epochs", "3"}},
                             {"env", {{"B", "2"}, {"A_1", ""}}},
                             {"image", "registry.example/team/train:1.2@sha256:abc"},
                             {"ssh_public_keys", {kEd25519, kEcdsa256, kEcdsa521, kRsa}}},
                        &err);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->command.size(), 4u);
  ASSERT_EQ(spec->env.size(), 2u);
  EXPECT_EQ(spec->env[0].first, "A_1");  // sorted
  EXPECT_EQ(spec->image, "registry.example/team/train:1.2@sha256:abc");
  EXPECT_EQ(spec->ssh_public_keys.size(), 4u);
  EXPECT_EQ(ParseSpec(spec->ToJson())->command, spec->command);
}

TEST(WorkloadSpec, OnlyCommandIsRequired) {
  auto spec = ParseSpec(json{{"command", {"true"}}, {"env", nullptr}});
  ASSERT_TRUE(spec.ok());
  EXPECT_TRUE(spec->env.empty());
  EXPECT_TRUE(spec->image.empty());
}

// A key whose base64 body embeds another type than it claims.
std::string Mislabelled() {
  std::string k = kEcdsa256;
  return "ssh-ed25519" + k.substr(k.find(' '));
}

TEST(WorkloadSpec, RefusesEachBadFieldByName) {
  const std::string big_arg(kMaxCommandBytes, 'x');
  json many_args = json::array();
  for (size_t i = 0; i <= kMaxArgs; ++i) many_args.push_back("a");
  json many_env = json::object();
  for (size_t i = 0; i <= kMaxEnv; ++i) many_env["V" + std::to_string(i)] = "";
  json many_keys = json::array();
  for (size_t i = 0; i <= kMaxSshKeys; ++i) many_keys.push_back(kEd25519);
  const std::string ed = kEd25519;
  struct Case {
    json body;
    std::string reason, param;
  };
  const Case cases[] = {
      {json::array(), "invalid_type", "workload"},
      {json{{"env", json::object()}}, "missing_field", "workload.command"},
      {json{{"command", "python train.py"}}, "invalid_type", "workload.command"},
      {json{{"command", json::array()}}, "invalid_value", "workload.command"},
      {json{{"command", many_args}}, "invalid_value", "workload.command"},
      {json{{"command", {""}}}, "invalid_value", "workload.command[0]"},
      {json{{"command", {"a", "b", 3}}}, "invalid_type", "workload.command[2]"},
      {json{{"command", {"a", std::string("b\0c", 3)}}}, "invalid_value", "workload.command[1]"},
      {json{{"command", {"a", big_arg}}}, "invalid_value", "workload.command[1]"},
      {json{{"command", {"a"}}, {"shell", true}}, "invalid_value", "workload.shell"},
      {json{{"command", {"a"}}, {"env", {"A=1"}}}, "invalid_type", "workload.env"},
      {json{{"command", {"a"}}, {"env", many_env}}, "invalid_value", "workload.env"},
      {json{{"command", {"a"}}, {"env", {{"1A", "x"}}}}, "invalid_value", "workload.env.1A"},
      {json{{"command", {"a"}}, {"env", {{"A-B", "x"}}}}, "invalid_value", "workload.env.A-B"},
      {json{{"command", {"a"}}, {"env", {{"", "x"}}}}, "invalid_value", "workload.env."},
      {json{{"command", {"a"}}, {"env", {{"LANDLORD_LEASE_ID", "x"}}}}, "invalid_value",
       "workload.env.LANDLORD_LEASE_ID"},
      {json{{"command", {"a"}}, {"env", {{"CUDA_VISIBLE_DEVICES", "0,1,2,3"}}}}, "invalid_value",
       "workload.env.CUDA_VISIBLE_DEVICES"},
      {json{{"command", {"a"}}, {"env", {{"FOO", 1}}}}, "invalid_type", "workload.env.FOO"},
      {json{{"command", {"a"}}, {"env", {{"FOO", std::string(kMaxEnvValueBytes + 1, 'x')}}}},
       "invalid_value", "workload.env.FOO"},
      {json{{"command", {"a"}}, {"env", {{"FOO", std::string("a\0b", 3)}}}}, "invalid_value",
       "workload.env.FOO"},
      {json{{"command", {"a"}}, {"image", 5}}, "invalid_type", "workload.image"},
      {json{{"command", {"a"}}, {"image", ""}}, "invalid_value", "workload.image"},
      {json{{"command", {"a"}}, {"image", "--privileged"}}, "invalid_value", "workload.image"},
      {json{{"command", {"a"}}, {"image", "ubuntu; rm -rf /"}}, "invalid_value", "workload.image"},
      {json{{"command", {"a"}}, {"image", std::string(kMaxImageBytes + 1, 'a')}}, "invalid_value",
       "workload.image"},
      {json{{"command", {"a"}}, {"ssh_public_keys", kEd25519}}, "invalid_type",
       "workload.ssh_public_keys"},
      {json{{"command", {"a"}}, {"ssh_public_keys", many_keys}}, "invalid_value",
       "workload.ssh_public_keys"},
      {json{{"command", {"a"}}, {"ssh_public_keys", {kEd25519, 7}}}, "invalid_type",
       "workload.ssh_public_keys[1]"},
      {json{{"command", {"a"}}, {"ssh_public_keys", {"ssh-dss AAAAB3NzaC1kc3M="}}}, "invalid_value",
       "workload.ssh_public_keys[0]"},
      {json{{"command", {"a"}}, {"ssh_public_keys", {"ssh-ed25519"}}}, "invalid_value",
       "workload.ssh_public_keys[0]"},
      {json{{"command", {"a"}}, {"ssh_public_keys", {"ssh-ed25519 not*base64"}}}, "invalid_value",
       "workload.ssh_public_keys[0]"},
      {json{{"command", {"a"}}, {"ssh_public_keys", {ed.substr(0, ed.size() - 12)}}},
       "invalid_value", "workload.ssh_public_keys[0]"},
      {json{{"command", {"a"}}, {"ssh_public_keys", {Mislabelled()}}}, "invalid_value",
       "workload.ssh_public_keys[0]"},
      {json{{"command", {"a"}}, {"ssh_public_keys", {ed + "\ncommand=\"sh\" " + ed}}},
       "invalid_value", "workload.ssh_public_keys[0]"},
      {json{{"command", {"a"}}, {"ssh_public_keys", {"command=\"x\" " + ed}}}, "invalid_value",
       "workload.ssh_public_keys[0]"},
  };
  for (const Case& c : cases) {
    SpecError err;
    auto spec = ParseSpec(c.body, &err);
    ASSERT_FALSE(spec.ok()) << c.body.dump().substr(0, 200);
    EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(err.param, c.param) << c.body.dump().substr(0, 200);
    EXPECT_EQ(err.reason, c.reason) << c.body.dump().substr(0, 200);
    EXPECT_NE(spec.status().message().find("`" + c.param + "`"), std::string::npos)
        << spec.status().message();
  }
}

}  // namespace
}  // namespace ll::workload
