#include "sim/csv.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "sim/data_files.h"

namespace ll::sim {

Result<std::string> ReadWholeFile(const std::string& path) {
  // The default traces ("data/…") work from any directory: the installed copy (sim/data_files.h).
  int fd = ::open(DataPath(path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Io(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) st.st_mode = 0;
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status::Io(path + ": cannot read: is a directory");
  }
  // One read of the whole file when its size is known; the loop covers short reads and pipes.
  std::string text;
  // One byte more than the size so that the read that sees the end needs no regrowth.
  text.resize(S_ISREG(st.st_mode) && st.st_size > 0 ? static_cast<size_t>(st.st_size) + 1
                                                    : size_t{1} << 16);
  size_t used = 0;
  while (true) {
    if (used == text.size()) text.resize(text.size() * 2);
    ssize_t got = ::read(fd, text.data() + used, text.size() - used);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      int err = errno;
      ::close(fd);
      return Status::Io(path + ": read error: " + std::strerror(err));
    }
    if (got == 0) break;
    used += static_cast<size_t>(got);
  }
  ::close(fd);
  text.resize(used);
  return text;
}

std::string QuoteForError(std::string_view text) {
  constexpr size_t kMax = 60;
  std::string out;
  for (size_t i = 0; i < text.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (text.size() > kMax) out += "...";
  return out;
}

void SplitFields(std::string_view line, char sep, std::vector<std::string_view>* out) {
  out->clear();
  size_t start = 0;
  while (true) {
    size_t end = line.find(sep, start);
    if (end == std::string_view::npos) {
      out->push_back(line.substr(start));
      return;
    }
    out->push_back(line.substr(start, end - start));
    start = end + 1;
  }
}

bool ParseInt64(std::string_view text, int64_t* out) {
  if (text.empty()) return false;
  const char* begin = text.data();
  // from_chars rejects a leading '+'; accept it since some tools write it.
  if (*begin == '+' && text.size() > 1 && begin[1] != '-') ++begin;
  auto [p, ec] = std::from_chars(begin, text.data() + text.size(), *out);
  return ec == std::errc() && p == text.data() + text.size();
}

bool ParseDouble(std::string_view text, double* out) {
  if (text.empty()) return false;
  const char* begin = text.data();
  if (*begin == '+' && text.size() > 1 && begin[1] != '-') ++begin;
  auto [p, ec] = std::from_chars(begin, text.data() + text.size(), *out);
  return ec == std::errc() && p == text.data() + text.size() && std::isfinite(*out);
}

LineReader::LineReader(std::string path, std::string text)
    : path_(std::move(path)), text_(std::make_unique<const std::string>(std::move(text))) {}

bool LineReader::Next() {
  const std::string& t = *text_;
  if (pos_ >= t.size()) return false;
  size_t end = t.find('\n', pos_);
  size_t next = end == std::string::npos ? t.size() : end + 1;
  if (end == std::string::npos) end = t.size();
  line_offset_ = pos_;
  line_ = std::string_view(t).substr(pos_, end - pos_);
  if (!line_.empty() && line_.back() == '\r') line_.remove_suffix(1);
  pos_ = next;
  ++line_number_;
  return true;
}

Status LineReader::Error(std::string_view message) const {
  return Status::Invalid(path_ + ":" + std::to_string(line_number_ == 0 ? 1 : line_number_) + ": " +
                         std::string(message));
}

Status LineReader::FieldError(std::string_view field, std::string_view message) const {
  return Error("field `" + std::string(field) + "`: " + std::string(message));
}

Result<DelimitedReader> DelimitedReader::Open(const std::string& path, char sep) {
  LL_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  return DelimitedReader(path, std::move(text), sep);
}

DelimitedReader::DelimitedReader(std::string path, std::string text, char sep)
    : lines_(std::move(path), std::move(text)), sep_(sep) {}

Status DelimitedReader::ReadHeader() {
  if (!lines_.Next()) return lines_.Error("empty file, expected a header line");
  std::vector<std::string_view> names;
  SplitFields(lines_.line(), sep_, &names);
  columns_.assign(names.begin(), names.end());
  for (std::string& c : columns_) {
    // Tolerate spaces around names and a UTF-8 byte-order mark on the first one.
    if (c.rfind("\xEF\xBB\xBF", 0) == 0) c.erase(0, 3);
    while (!c.empty() && c.back() == ' ') c.pop_back();
    while (!c.empty() && c.front() == ' ') c.erase(0, 1);
  }
  return Status::Ok();
}

void DelimitedReader::SetColumns(std::vector<std::string> names) { columns_ = std::move(names); }

int DelimitedReader::FindColumn(std::string_view name) const {
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (columns_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

Result<int> DelimitedReader::Column(std::string_view name) const {
  int i = FindColumn(name);
  if (i < 0) {
    return Status::Invalid(lines_.path() + ":1: missing column `" + std::string(name) +
                           "` in the header");
  }
  return i;
}

bool DelimitedReader::Next() {
  if (!lines_.Next()) return false;
  SplitFields(lines_.line(), sep_, &fields_);
  // Hand-written files put spaces after commas; no supported field has meaningful ones.
  for (std::string_view& f : fields_) {
    while (!f.empty() && (f.front() == ' ' || f.front() == '\t')) f.remove_prefix(1);
    while (!f.empty() && (f.back() == ' ' || f.back() == '\t')) f.remove_suffix(1);
  }
  return true;
}

std::string DelimitedReader::ColumnName(int index) const {
  if (index >= 0 && static_cast<size_t>(index) < columns_.size()) return columns_[index];
  return "#" + std::to_string(index + 1);
}

Status DelimitedReader::FieldError(int index, std::string_view message) const {
  return lines_.FieldError(ColumnName(index), message);
}

Status DelimitedReader::CheckArity(int min_fields) const {
  size_t min = min_fields < 0 ? columns_.size() : static_cast<size_t>(min_fields);
  if (fields_.size() < min) {
    return FieldError(static_cast<int>(fields_.size()),
                      "missing: the line has " + std::to_string(fields_.size()) + " fields, " +
                          "expected " + std::to_string(min) + " (truncated line?)");
  }
  if (fields_.size() > columns_.size()) {
    return lines_.Error("the line has " + std::to_string(fields_.size()) + " fields, expected " +
                        (min == columns_.size() ? "" : "at most ") +
                        std::to_string(columns_.size()));
  }
  return Status::Ok();
}

Result<std::string_view> DelimitedReader::Field(int index) const {
  if (index < 0 || static_cast<size_t>(index) >= fields_.size()) {
    return FieldError(index, "missing: the line has " + std::to_string(fields_.size()) +
                                 " fields (truncated line?)");
  }
  return fields_[index];
}

Result<int64_t> DelimitedReader::Int(int index) const {
  LL_ASSIGN_OR_RETURN(std::string_view text, Field(index));
  int64_t v;
  if (!ParseInt64(text, &v)) {
    return FieldError(index, "expected an integer, got `" + QuoteForError(text) + "`");
  }
  return v;
}

Result<double> DelimitedReader::Double(int index) const {
  LL_ASSIGN_OR_RETURN(std::string_view text, Field(index));
  double v;
  if (!ParseDouble(text, &v)) {
    return FieldError(index, "expected a number, got `" + QuoteForError(text) + "`");
  }
  return v;
}

Result<int> DelimitedReader::Count(int index) const {
  LL_ASSIGN_OR_RETURN(int64_t v, Int(index));
  if (v < 0 || v > std::numeric_limits<int>::max()) {
    return FieldError(index, "expected a non-negative count, got `" + std::to_string(v) + "`");
  }
  return static_cast<int>(v);
}

}  // namespace ll::sim
