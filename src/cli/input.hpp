// The `ecr` tool's inputs, with limits: a whole file (a dialog) or JSON lines, from a path or
// standard input ("-"). A directory is an error, a pipe or FIFO is read like a file, and no input
// may grow without bound (`--dialog /dev/zero` fails at once): kMaxDialogBytes for a whole file,
// kMaxLineBytes for one line. A path waits at most its timeout for bytes (a FIFO that no writer
// ever writes to is an error, not a hang); standard input waits for its writer, as a terminal
// does for its user. JSON from them is refused past kMaxJsonDepth levels of nesting, and at a
// NUL byte (the parser would take it for the end).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ecr/dialog.hpp"

namespace ecr::cli {

// The most bytes one line of a JSON-lines file may have (a ReDial record is about 10 KiB).
inline constexpr std::size_t kMaxLineBytes = std::size_t{16} << 20;

// How long a read of an input path may wait for its next bytes; nullopt waits for ever.
using Timeout = std::optional<std::chrono::milliseconds>;

// The whole of `path` ("-": standard input), at most `limit` bytes; `what` names it in errors
// ("dialog"). IoError when it cannot be opened or read, is a directory, or a path gives no bytes
// for `timeout` (standard input has none); InputError past the limit.
std::string read_input(const std::string& path, std::size_t limit, std::string_view what, Timeout timeout);

// `text` parsed as JSON; InputError "<where>: not valid JSON: ..." (the parser's message with
// any bytes a terminal would act on escaped) or "nests deeper than ..." otherwise.
nlohmann::json parse_json(std::string_view text, std::string_view where);

// The Dialog JSON in `path` ("-": standard input), at most kMaxDialogBytes; errors as read_input,
// parse_json and Dialog::from_json give them.
Dialog read_dialog(const std::string& path, Timeout timeout);

// Lines of `path` ("-": standard input), each at most kMaxLineBytes; the newline is not part of
// the line. IoError as read_input; InputError naming the file and line past the limit.
class LineReader {
 public:
  LineReader(const std::string& path, std::string_view what, Timeout timeout);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line into `line`; false at the end of the input.
  bool next(std::string& line);
  std::size_t line_number() const { return line_number_; }
  // "<stdin>" or the path.
  const std::string& source() const { return source_; }

 private:
  bool fill();

  int fd_ = -1;
  bool owned_ = false, eof_ = false;
  Timeout timeout_;
  std::string what_, source_, buffer_;
  std::size_t start_ = 0, line_number_ = 0;
};

}  // namespace ecr::cli
