// The slurm backend's settings (the `fleet.slurm_*` keys of the server's configuration).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/time.h"

namespace ll::fleet {

struct SlurmOptions {
  std::string partition = "landlord";  // where holder jobs run (the lowest PriorityTier)
  // The server's URL as the nodes reach it, for the holder's notice (default: the listen
  // address of `landlord serve`).
  std::string notify_url;
  // How a tenant reaches a leased node: `{node}` is replaced by its name.
  std::string access = "ssh {node}";
  // Run on each node of an ended lease before it is sold again (e.g. `nvidia-smi -r && ...`);
  // empty: none. A non-zero exit drains the node.
  std::string sanitize;
  // Model replicas placed on the fleet run this as a Slurm job on their node ({model}, {addr},
  // {port}, {node} are filled in); it must serve the OpenAI API at http://{addr}:{port}.
  // Empty: replicas run beside the fleet, as on no fleet.
  std::string model_command;
  // By model: its own command, in place of `model_command`. A model of `[[gateway.engines]]`
  // gets its engine's server command here (api/config.cc), so one config says how to run it on
  // the sim fleet and on Slurm.
  std::map<std::string, std::string> model_commands;
  int model_port = 18000;                          // replica n listens on model_port + n
  Duration poll = Duration::Seconds(1);            // wall time between squeue/sinfo reads
  Duration start_timeout = Duration::Seconds(60);  // a holder still pending after this is given up
  // Tenants' workloads with an `image` run under this container runtime's argv (`{image}`,
  // `{command}`, `{env}`; see slurm_workload.h); empty: none.
  std::vector<std::string> container;
  // How the launcher signals a container by name (`{name}`, `{signal}`); empty: its runtime's
  // process instead (slurm_workload.h).
  std::vector<std::string> container_kill;
  std::string state_dir;  // the holder script and the notice key (the server's data_dir/slurm)
};

}  // namespace ll::fleet
