// A workload's step on the Slurm fleet, apart from the daemons (tests/slurm runs it on a real
// cluster): the srun command line, the launcher that receives the argv and environment on the
// node (run here as the node would, to show nothing of the tenant's is parsed by a shell), the
// container template, and what the fleet refuses.
#include "fleet/slurm/slurm_workload.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "fleet/slurm/commands.h"

namespace ll::fleet {
namespace {

workload::LeaseContext Lease() {
  return workload::LeaseContext{.name = "lease_1",
                                .lease_id = "lease_1",
                                .nodes = {"n1", "n2"},
                                .cuda_visible_devices = "0",
                                .metadata_url = "http://ctl:8080/metadata/tok/"};
}

workload::Spec Spec(std::vector<std::string> command) {
  workload::Spec s;
  s.command = std::move(command);
  s.env = {{"SECRET", "a,b \"c\" $(touch /nonexistent) `x` 'q'\nline2"}, {"ZED", "1"}};
  return s;
}

// The part of the step's argv that runs on the node (from the launcher on).
std::vector<std::string> OnNode(const StepCommand& c) {
  auto it = std::find(c.argv.begin(), c.argv.end(), "/bin/sh");
  return {it, c.argv.end()};
}

TEST(SlurmWorkloadStep, JoinsTheHolderJobOnEveryNodeAndExportsNamesOnly) {
  const StepCommand c =
      WorkloadStep(SlurmWorkloadOptions{}, 42, Lease(), Spec({"python3", "train.py"}));
  ASSERT_GE(c.argv.size(), 4u);
  EXPECT_EQ(c.argv[0], "srun");
  for (const char* want :
       {"--jobid=42", "--overlap", "--nodes=2", "--ntasks-per-node=1", "--job-name=ll_workload"}) {
    EXPECT_NE(std::find(c.argv.begin(), c.argv.end(), want), c.argv.end()) << want;
  }
  auto exp = std::find_if(c.argv.begin(), c.argv.end(),
                          [](const std::string& a) { return a.rfind("--export=", 0) == 0; });
  ASSERT_NE(exp, c.argv.end());
  // Names only (values may hold commas, which --export splits on), all under LLW_.
  EXPECT_EQ(exp->find('='), std::string("--export").size());
  EXPECT_EQ(exp->find("SECRET="), std::string::npos);
  EXPECT_NE(exp->find("LLW_SECRET"), std::string::npos);
  for (const std::string& kv : c.env)
    EXPECT_EQ(kv.rfind("LLW_", 0), 0u) << kv;  // nothing reaches srun itself
  EXPECT_EQ(c.argv.back(), "train.py");
  EXPECT_EQ(c.argv[c.argv.size() - 2], "python3");
}

TEST(SlurmWorkloadStep, TheLauncherExecsTheArgvAsGivenWithTheEnvironment) {
  // What the node runs, run here: every argument arrives as given, nothing expanded or split.
  const std::vector<std::string> argv = {
      "/bin/sh",
      "-c",
      "printf '<%s>' \"$@\"; printf '[%s]' \"$SECRET\" \"$ZED\" "
      "\"$LANDLORD_NODES\" \"$LANDLORD_METADATA_URL\"; env | grep -c '^LLW_'",
      "x",
      "a b",
      "$(touch /nonexistent)",
      "*",
      "'\"",
      ""};
  const StepCommand c = WorkloadStep(SlurmWorkloadOptions{}, 1, Lease(), Spec(argv));
  auto out = slurm::Run(OnNode(c), Duration::Seconds(10), c.env);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->rc, 1) << out->err;  // grep -c found no LLW_ left: exit 1, count 0
  EXPECT_EQ(out->out,
            "<a b><$(touch /nonexistent)><*><'\"><>"
            "[a,b \"c\" $(touch /nonexistent) `x` "
            "'q'\nline2][1][n1,n2][http://ctl:8080/metadata/tok/]0\n");
}

TEST(SlurmWorkloadStep, AnImageRunsUnderTheContainerTemplate) {
  SlurmWorkloadOptions o;
  o.container = {"podman", "run",     "--rm",     "-v", "{notice_dir}:{notice_dir}:ro",
                 "{env}",  "{image}", "{command}"};
  ASSERT_TRUE(CheckContainerTemplate(o.container).ok());
  workload::Spec s = Spec({"sh", "-c", "echo $SECRET"});
  s.image = "localhost/img:1";
  const std::vector<std::string> node = OnNode(WorkloadStep(o, 7, Lease(), s));
  auto at = std::find(node.begin(), node.end(), "podman");
  ASSERT_NE(at, node.end());
  const std::vector<std::string> runtime(at, node.end());
  const std::vector<std::string> head = {"podman", "run", "--rm", "-v",
                                         "/tmp/landlord-lease_1:/tmp/landlord-lease_1:ro"};
  EXPECT_TRUE(std::equal(head.begin(), head.end(), runtime.begin()));
  const std::vector<std::string> tail = {"localhost/img:1", "sh", "-c", "echo $SECRET"};
  EXPECT_TRUE(std::equal(tail.rbegin(), tail.rend(), runtime.rbegin()));
  // {env}: `--env NAME` pairs, the values from the launcher's environment (never in argv).
  for (const char* name :
       {"SECRET", "ZED", "LANDLORD_LEASE_ID", "LANDLORD_NOTICE_FILE", "CUDA_VISIBLE_DEVICES"}) {
    EXPECT_NE(std::find(runtime.begin(), runtime.end(), name), runtime.end()) << name;
  }
  EXPECT_EQ(std::find(runtime.begin(), runtime.end(), "PATH"), runtime.end())
      << "the image keeps its own PATH";
  for (const std::string& a : runtime) EXPECT_EQ(a.find("$(touch"), std::string::npos) << a;
  // Without an image the template is not used.
  const std::vector<std::string> plain = OnNode(WorkloadStep(o, 7, Lease(), Spec({"true"})));
  EXPECT_EQ(std::find(plain.begin(), plain.end(), "podman"), plain.end());
}

// The container launcher, run here as a node would: the runtime (a shell standing in for
// podman) runs under a keeper outside the launcher's process tree; the launcher's SIGTERM (Slurm's
// at preemption) reaches the container once, by the kill template with the container's name;
// the launcher exits with the runtime's status, and the notice dirs go when it has gone.
TEST(SlurmWorkloadStep, TheContainerLauncherForwardsSigtermByNameAndCleansUp) {
  char tmpl[] = "/tmp/ll-slurm-launcher-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  SlurmWorkloadOptions o;
  o.notice_root = root;
  // The "runtime" says its container's name, then runs the command; the "kill" signals the
  // process whose pid the runtime wrote under that name.
  o.container = {"/bin/sh", "-c", "echo \"name=$1\"; echo $$ >\"$0/$1\"; shift 2; exec \"$@\"", root, "{name}",
                 "{image}", "{command}"};
  {
    std::ofstream k(root + "/kill");
    k << "#!/bin/sh\nkill -s \"$1\" \"$(cat \"${0%/*}/$2\")\"\n";
  }
  ASSERT_EQ(chmod((root + "/kill").c_str(), 0755), 0);
  o.container_kill = {root + "/kill", "{signal}", "{name}"};
  ASSERT_TRUE(CheckContainerTemplate(o.container).ok());
  ASSERT_TRUE(CheckContainerKill(o.container_kill, o.container).ok());
  workload::Spec s = Spec({"/bin/sh", "-c", "trap 'echo TERM; exit 5' TERM; echo up; while :; do sleep 0.05; done", "{name}"});
  s.image = "img";
  const StepCommand c = WorkloadStep(o, 7, Lease(), s);
  auto child = slurm::Start(OnNode(c), c.env, /*capture=*/true);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  std::string out;
  char buf[4096];
  bool termed = false;
  for (ssize_t n; (n = read(child->output_fd, buf, sizeof buf)) > 0;) {
    out.append(buf, static_cast<size_t>(n));
    if (!termed && out.find("up\n") != std::string::npos) termed = kill(child->pid, SIGTERM) == 0;  // as Slurm would
  }
  int st = 0;
  ASSERT_EQ(waitpid(child->pid, &st, 0), child->pid);
  close(child->output_fd);
  close(child->pidfd);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 5) << st << " " << out;
  EXPECT_EQ(out, "name=landlord-lease_1-node\nup\nTERM\n") << "the name in the template, not in the command";
  // The janitor (every second) removes the notice dir and the launcher's own.
  const std::string dir = root + "/landlord-lease_1";
  for (int i = 0; i < 100 && (access(dir.c_str(), F_OK) == 0 || access((dir + ".run").c_str(), F_OK) == 0); ++i)
    usleep(50'000);
  EXPECT_NE(access(dir.c_str(), F_OK), 0);
  EXPECT_NE(access((dir + ".run").c_str(), F_OK), 0);
  std::filesystem::remove_all(root);
}

TEST(SlurmWorkloadStep, ContainerTemplatesAreChecked) {
  EXPECT_TRUE(CheckContainerTemplate({}).ok());
  for (const std::vector<std::string>& bad :
       std::vector<std::vector<std::string>>{{"podman", "run", "{command}"},
                                             {"podman", "run", "{image}"},
                                             {"podman", "run", "{image}", "{image}", "{command}"},
                                             {"{image}", "{command}"},
                                             {"podman", "", "{image}", "{command}"},
                                             {"podman", "run", "img={image}", "{command}"}}) {
    Status st = CheckContainerTemplate(bad);
    EXPECT_FALSE(st.ok()) << bad.size();
    EXPECT_NE(st.message().find("fleet.slurm_container"), std::string::npos) << st.message();
  }
  EXPECT_FALSE(CheckContainerTemplate({"podman", "run", "--name=x-{name}", "{image}", "{command}"}).ok());
  const std::vector<std::string> named = {"podman", "run", "--name", "{name}", "{image}", "{command}"};
  EXPECT_TRUE(CheckContainerKill({"podman", "kill", "--signal", "{signal}", "{name}"}, named).ok());
  for (const auto& [kill, container] : std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>{
           {{"podman", "kill", "{signal}", "{name}"}, {}},
           {{"podman", "kill", "{signal}", "{name}"}, {"podman", "run", "{image}", "{command}"}},
           {{"podman", "kill", "{name}"}, named},
           {{"podman", "kill", "{signal}", "{signal}", "{name}"}, named},
           {{"podman", "kill", "--signal", "{signal}", "a b", "{name}"}, named},
           {{"{name}", "{signal}"}, named}}) {
    Status st = CheckContainerKill(kill, container);
    EXPECT_FALSE(st.ok()) << kill.size();
    EXPECT_NE(st.message().find("fleet.slurm_container_kill"), std::string::npos) << st.message();
  }
}

TEST(SlurmWorkloadStep, TheFleetRefusesSshAndImagesWithoutATemplate) {
  workload::Spec s = Spec({"true"});
  workload::SpecError why;
  EXPECT_TRUE(AcceptsOnSlurm(SlurmWorkloadOptions{}, s, &why).ok());
  s.image = "img";
  EXPECT_FALSE(AcceptsOnSlurm(SlurmWorkloadOptions{}, s, &why).ok());
  EXPECT_EQ(why.param, "workload.image");
  SlurmWorkloadOptions with;
  with.container = {"podman", "run", "{image}", "{command}"};
  EXPECT_TRUE(AcceptsOnSlurm(with, s, &why).ok());
  s.ssh_public_keys = {"ssh-ed25519 AAAA"};
  EXPECT_FALSE(AcceptsOnSlurm(with, s, &why).ok());
  EXPECT_EQ(why.param, "workload.ssh_public_keys");
}

}  // namespace
}  // namespace ll::fleet
