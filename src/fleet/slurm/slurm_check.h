// `landlord slurm check`: whether a Slurm cluster's configuration suits the slurm backend.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/time.h"

namespace ll::fleet {

// `landlord slurm check`: what the cluster's configuration must be for the backend, each
// problem with the exact change to make. Empty when everything is right.
std::vector<std::string> CheckSlurmConfig(const std::string& scontrol_config,
                                          const std::string& partitions,
                                          const std::string& landlord_partition, Duration notice);
// Runs `scontrol show config` and `scontrol show partition --oneliner` and checks them.
Result<std::vector<std::string>> CheckSlurm(const std::string& landlord_partition, Duration notice);

}  // namespace ll::fleet
