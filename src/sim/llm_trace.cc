// LLM request traces for the model-API demand: Azure LLM inference 2023 (CSV) and Mooncake
// FAST'25 (JSON Lines, parsed with simdjson's on-demand API).
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "sim/csv.h"
#include "sim/data_files.h"
#include "sim/trace.h"

namespace ll::sim {
namespace {

struct TimedRequest {
  int64_t ms = 0;  // absolute (Azure) or relative (Mooncake) milliseconds
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  std::vector<uint64_t> blocks;
};

// Offsets from the first request; stable so that equal times keep file (and file-list) order.
LlmTrace Finish(std::string spec, std::vector<TimedRequest> timed) {
  std::stable_sort(timed.begin(), timed.end(),
                   [](const TimedRequest& a, const TimedRequest& b) { return a.ms < b.ms; });
  LlmTrace trace;
  trace.spec = std::move(spec);
  trace.requests.reserve(timed.size());
  const int64_t first = timed.empty() ? 0 : timed.front().ms;
  for (TimedRequest& r : timed) {
    trace.requests.push_back({Duration::Millis(r.ms - first), r.input_tokens, r.output_tokens, std::move(r.blocks)});
  }
  const Duration last = trace.requests.empty() ? Duration{} : trace.requests.back().offset;
  // A span of at least a second keeps request rates finite for a one-instant trace.
  trace.span = std::max(last, Duration::Seconds(1));
  return trace;
}

Status ReadAzureFile(const std::string& path, std::vector<TimedRequest>* out) {
  LL_ASSIGN_OR_RETURN(DelimitedReader in, DelimitedReader::Open(path, ','));
  LL_RETURN_IF_ERROR(in.ReadHeader());
  LL_ASSIGN_OR_RETURN(const int c_time, in.Column("TIMESTAMP"));
  LL_ASSIGN_OR_RETURN(const int c_in, in.Column("ContextTokens"));
  LL_ASSIGN_OR_RETURN(const int c_out, in.Column("GeneratedTokens"));
  size_t before = out->size();
  while (in.Next()) {
    if (in.line().empty()) continue;
    LL_RETURN_IF_ERROR(in.CheckArity());
    LL_ASSIGN_OR_RETURN(std::string_view text, in.Field(c_time));
    Result<Time> t = ParseUtc(text);
    if (!t.ok()) {
      return in.FieldError(c_time, "expected a time like `2023-11-16 18:15:46.6805900`, got `" +
                                       QuoteForError(text) + "`");
    }
    LL_ASSIGN_OR_RETURN(int64_t input, in.Int(c_in));
    LL_ASSIGN_OR_RETURN(int64_t output, in.Int(c_out));
    if (input < 0) return in.FieldError(c_in, "must not be negative");
    if (output < 0) return in.FieldError(c_out, "must not be negative");
    out->push_back({t->ms, input, output, {}});
  }
  if (out->size() == before) {
    return Status::Invalid(path + ":" + std::to_string(in.line_number() + 1) +
                           ": no requests after the header");
  }
  return Status::Ok();
}

// A file, or a directory whose AzureLLMInferenceTrace_*.csv files are merged (in name order,
// so that ties between files are deterministic).
Result<LlmTrace> ReadAzure(const std::string& spec, const std::string& path) {
  std::vector<std::string> files;
  std::error_code ec;
  if (std::filesystem::is_directory(DataPath(path), ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(DataPath(path), ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("AzureLLMInferenceTrace_", 0) == 0 && name.size() > 4 &&
          name.compare(name.size() - 4, 4, ".csv") == 0) {
        files.push_back(entry.path().string());
      }
    }
    if (ec) return Status::Io(path + ": cannot list: " + ec.message());
    if (files.empty()) return Status::NotFound(path + ": no AzureLLMInferenceTrace_*.csv files");
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  std::vector<TimedRequest> timed;
  for (const std::string& f : files) LL_RETURN_IF_ERROR(ReadAzureFile(f, &timed));
  return Finish(spec, std::move(timed));
}

// The fields of one Mooncake line, as far as they have been read.
struct MooncakeLine {
  bool has_time = false, has_in = false, has_out = false;
  double ts = 0;
  int64_t input = 0, output = 0;
  std::vector<uint64_t> blocks;

  // The first required field not read yet, which errors name when no other field is at fault.
  const char* NextMissing() const {
    return !has_time ? "timestamp" : !has_in ? "input_length" : "output_length";
  }
};

// One field of a Mooncake object into *m; fields other than the four known ones are skipped.
Status ReadMooncakeField(const LineReader& lines, std::string_view key,
                         simdjson::ondemand::field& field, MooncakeLine* m) {
  simdjson::error_code error;
  if (key == "timestamp") {
    if ((error = field.value().get_double().get(m->ts))) {
      return lines.FieldError(key, std::string("expected a number of milliseconds (") +
                                       simdjson::error_message(error) + ")");
    }
    if (!std::isfinite(m->ts) || m->ts < 0 || m->ts > 1e15) {
      return lines.FieldError(key, "out of range");
    }
    m->has_time = true;
  } else if (key == "input_length" || key == "output_length") {
    int64_t v;
    if ((error = field.value().get_int64().get(v))) {
      return lines.FieldError(
          key, std::string("expected an integer (") + simdjson::error_message(error) + ")");
    }
    if (v < 0) return lines.FieldError(key, "must not be negative");
    (key == "input_length" ? m->input : m->output) = v;
    (key == "input_length" ? m->has_in : m->has_out) = true;
  } else if (key == "hash_ids") {
    simdjson::ondemand::array ids;
    if ((error = field.value().get_array().get(ids))) {
      return lines.FieldError(key, std::string("expected an array of block ids (") +
                                       simdjson::error_message(error) + ")");
    }
    for (auto id_r : ids) {
      uint64_t id = 0;
      if ((error = std::move(id_r).get_uint64().get(id))) {
        return lines.FieldError(key, std::string("expected block ids ≥ 0 (") +
                                         simdjson::error_message(error) + ")");
      }
      m->blocks.push_back(id);
    }
  }
  return Status::Ok();
}

// The current line of `lines` as one request, parsed in place in `padded` (the whole file).
// Errors name the field being read, or the first required one not read yet. simdjson may
// also throw; the caller turns that into a Status.
Status ReadMooncakeLine(const LineReader& lines, const simdjson::padded_string& padded,
                        simdjson::ondemand::parser& parser, TimedRequest* out) {
  auto json_error = [&](std::string_view field, simdjson::error_code error) {
    return lines.FieldError(field, std::string("invalid JSON: ") + simdjson::error_message(error));
  };
  const size_t offset = lines.line_offset();
  const size_t capacity = padded.size() - offset + simdjson::SIMDJSON_PADDING;
  MooncakeLine m;
  simdjson::ondemand::document doc;
  simdjson::error_code error =
      parser.iterate(padded.data() + offset, lines.line().size(), capacity).get(doc);
  if (error) return json_error(m.NextMissing(), error);
  simdjson::ondemand::object object;
  if ((error = doc.get_object().get(object))) {
    return lines.FieldError(m.NextMissing(), std::string("the line is not a JSON object (") +
                                                 simdjson::error_message(error) + ")");
  }
  for (auto field_result : object) {
    simdjson::ondemand::field field;
    if ((error = std::move(field_result).get(field))) return json_error(m.NextMissing(), error);
    std::string_view key;
    if ((error = field.unescaped_key().get(key))) return json_error(m.NextMissing(), error);
    LL_RETURN_IF_ERROR(ReadMooncakeField(lines, key, field, &m));
    // Other fields are skipped unread by the iteration.
  }
  if (!m.has_time || !m.has_in || !m.has_out) return lines.FieldError(m.NextMissing(), "missing");
  *out = {static_cast<int64_t>(std::llround(m.ts)), m.input, m.output, std::move(m.blocks)};
  return Status::Ok();
}

// Mooncake JSON Lines: {"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [...]}.
Result<LlmTrace> ReadMooncake(const std::string& spec, const std::string& path) {
  LL_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  // simdjson reads up to SIMDJSON_PADDING bytes past a document; one padded copy of the file
  // lets every line be parsed in place.
  const simdjson::padded_string padded(text);
  LineReader lines(path, std::move(text));
  simdjson::ondemand::parser parser;
  std::vector<TimedRequest> timed;
  try {
    while (lines.Next()) {
      if (lines.line().find_first_not_of(" \t") == std::string_view::npos) continue;
      TimedRequest request;
      LL_RETURN_IF_ERROR(ReadMooncakeLine(lines, padded, parser, &request));
      timed.push_back(std::move(request));
    }
  } catch (const simdjson::simdjson_error& e) {
    return lines.Error(std::string("invalid JSON: ") + e.what());
  }
  if (timed.empty()) {
    return Status::Invalid(path + ":" + std::to_string(lines.line_number() + 1) +
                           ": no requests (expected JSON lines with `timestamp`, "
                           "`input_length`, `output_length`)");
  }
  return Finish(spec, std::move(timed));
}

}  // namespace

Result<LlmTrace> ReadLlmTrace(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string kind = colon == std::string::npos ? "" : spec.substr(0, colon);
  const std::string path = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (kind != "azure" && kind != "mooncake") {
    return Status::Invalid("unknown LLM trace `" + spec +
                           "`: expected azure:FILE_OR_DIR or mooncake:FILE");
  }
  if (path.empty()) return Status::Invalid("LLM trace `" + spec + "` names no path");
  return kind == "azure" ? ReadAzure(spec, path) : ReadMooncake(spec, path);
}

}  // namespace ll::sim
