// What report.cc (table, JSON, HTML) and svg_chart.cc (the SVG chart) share. Private to
// src/sim.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace ll::sim {

// `v` with `decimals` decimals ("%.*f"), thousands grouped when `group`; never "-0.00".
std::string FormatFixed(double v, int decimals, bool group);

// Writes through a temporary file in the same directory and renames it over `path`, so a
// reader (or a crash) never sees half a report.
Status WriteFileAtomically(const std::string& path, std::string_view contents);

}  // namespace ll::sim
