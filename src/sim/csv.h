// A small reader for the delimited text files the trace readers take (CSV, sacct's `|`).
// No quoting: none of the supported formats quote fields. Every error it produces names the
// file, the line and the field, so that a user can fix a 50,000-line trace by hand.
//
// The whole file is read with one read: trace files are a few MB, and splitting an in-memory
// buffer into string_views costs far less than line-by-line stream I/O.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ll::sim {

// Reads a whole file. Errors name the path.
Result<std::string> ReadWholeFile(const std::string& path);

// `text` quoted for an error message: non-printable bytes as \xNN, at most ~60 characters.
std::string QuoteForError(std::string_view text);

// Splits `line` on `sep` into `out` (cleared first). Views point into `line`.
void SplitFields(std::string_view line, char sep, std::vector<std::string_view>* out);

// Integer and floating-point parsing of a whole field (no surrounding spaces, no trailing
// characters). Return false on any malformed input or overflow.
bool ParseInt64(std::string_view text, int64_t* out);
bool ParseDouble(std::string_view text, double* out);

// Iterates the lines of a file held in memory, tracking the line number. Lines end at '\n';
// a trailing '\r' is stripped (CRLF files); a last line without '\n' is still a line.
class LineReader {
 public:
  // The path is only used in messages.
  LineReader(std::string path, std::string text);

  // Advances to the next line. Returns false at the end of the file.
  bool Next();
  std::string_view line() const { return line_; }
  // 1-based number of the current line (0 before the first Next()).
  int line_number() const { return line_number_; }
  const std::string& path() const { return path_; }
  // The whole file, e.g. for parsers that need the padding after a line (simdjson).
  const std::string& text() const { return *text_; }
  // Byte offset of the current line in text().
  size_t line_offset() const { return line_offset_; }

  // "path:LINE: message".
  Status Error(std::string_view message) const;
  // "path:LINE: field `NAME`: message".
  Status FieldError(std::string_view field, std::string_view message) const;

 private:
  std::string path_;
  // Behind a pointer so that string_views into it survive moves of the reader.
  std::unique_ptr<const std::string> text_;
  size_t pos_ = 0;
  size_t line_offset_ = 0;
  std::string_view line_;
  int line_number_ = 0;
};

// A delimited file read row by row, with typed field accessors whose errors name
// file:line:field. Column names come from a header row (ReadHeader) or are given by the
// caller (SetColumns) for header-less formats.
class DelimitedReader {
 public:
  static Result<DelimitedReader> Open(const std::string& path, char sep);
  DelimitedReader(std::string path, std::string text, char sep);

  // Reads the first line as the header. Errors if the file is empty.
  Status ReadHeader();
  // Names the columns of a header-less format (used in messages and for arity checks).
  void SetColumns(std::vector<std::string> names);
  // Index of the named header column, or an error naming the missing column.
  Result<int> Column(std::string_view name) const;
  // Index of the named column, or -1.
  int FindColumn(std::string_view name) const;

  // Advances to the next line and splits it. Returns false at the end of the file.
  bool Next();
  std::string_view line() const { return lines_.line(); }
  int line_number() const { return lines_.line_number(); }
  const std::string& path() const { return lines_.path(); }
  size_t num_fields() const { return fields_.size(); }
  const std::vector<std::string>& columns() const { return columns_; }

  // Errors unless the row has between `min_fields` and columns().size() fields; a short row
  // names the first missing column. min_fields < 0 means all columns.
  Status CheckArity(int min_fields = -1) const;

  // The field at `index`, named by its column. Fails if the row is too short.
  Result<std::string_view> Field(int index) const;
  Result<int64_t> Int(int index) const;
  Result<double> Double(int index) const;
  // A non-negative integer, as `int` (counts of GPUs, jobs).
  Result<int> Count(int index) const;

  Status Error(std::string_view message) const { return lines_.Error(message); }
  Status FieldError(int index, std::string_view message) const;
  std::string ColumnName(int index) const;

 private:
  LineReader lines_;
  char sep_;
  std::vector<std::string> columns_;
  std::vector<std::string_view> fields_;
};

}  // namespace ll::sim
