#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/model/adamw_check.h"
#include "nanogpt/base/device.h"

namespace nanogpt::cli {

void add_check_adamw_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "check-adamw", "The optimizer's update on a device against LibTorch's AdamW: nanogpt check-adamw [--device cuda]");
  auto device_name = std::make_shared<std::string>("cpu");
  auto steps = std::make_shared<int>(6);
  auto json_path = std::make_shared<std::string>();
  cmd->add_option("--device", *device_name, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--steps", *steps, "optimizer steps")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--json", *json_path, "also write the results to this JSON file");
  cmd->footer("Runs the optimizer train uses (FusedAdamW: LibTorch's fused kernel, at::_fused_adamw_) and\n"
              "LibTorch's AdamW step side by side on the same parameters and gradients. Exits 1 when the\n"
              "weights or moments differ by more than the tolerance.");
  cmd->callback([device_name, steps, json_path] {
    const at::Device device = parse_device(*device_name);
    const AdamwCheckResult r = check_adamw(device, *steps);
    std::cout << fmt::format("AdamW on {}: {}; {} steps over {} parameter elements\n", r.device, r.path, r.steps,
                             r.elements)
              << fmt::format("  weights: max difference {:.3e} of the largest ({:.3e} of the largest update); moments: "
                             "{:.3e} of the largest\n",
                             r.weight_error, r.update_error, r.moment_error)
              << fmt::format("  step counts {}; tolerance {:.0e}: {}", r.same_step_counts ? "equal" : "DIFFER",
                             r.tolerance, r.passed ? "pass" : "FAIL")
              << std::endl;
    if (!json_path->empty()) {
      const nlohmann::json j = {{"device", r.device},           {"path", r.path},
                                {"steps", r.steps},             {"elements", r.elements},
                                {"update_error", r.update_error}, {"weight_error", r.weight_error},
                                {"moment_error", r.moment_error},
                                {"same_step_counts", r.same_step_counts}, {"tolerance", r.tolerance},
                                {"passed", r.passed}};
      write_file_atomically(*json_path, [&](std::ostream& out) { out << j.dump(1) << "\n"; });
    }
    if (!r.passed) {
      throw std::runtime_error(fmt::format("FusedAdamW on {} differs from LibTorch's AdamW beyond {:.0e}", r.device,
                                           r.tolerance));
    }
  });
}

}  // namespace nanogpt::cli
