// Hostile input, as a user out to break `ecr` would give it: crafted bundles (made with the
// Python writer by tests/hostile_bundles.py), dialogs and JSON lines, CLI arguments, outputs that
// cannot be written (/dev/full, a file size limit), a FIFO, and resource limits set with
// setrlimit in a child process. Every case must end in a typed error that names the problem, in
// bounded time and memory, with nothing half-written left behind; long dialogs must cost memory
// linear in their length.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <sstream>
#include <typeinfo>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/core/json_depth.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/output_file.hpp"
#include "ecr/kg/review_store.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"
#include "recommender_fixture.hpp"
#include "responder_fixture.hpp"

using namespace ecr;
using namespace ecr::lm;
using ecr::test::cli_path;
using ecr::test::run_command;
using ecr::test::temp_dir;
namespace fs = std::filesystem;

using ecr::test::check_refused;
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;  // address-space limits and sanitizer runtimes do not mix
#else
constexpr bool kSanitized = false;
#endif

#define SKIP_UNDER_SANITIZERS()                                                   \
  do {                                                                            \
    if (kSanitized) {                                                             \
      MESSAGE("skipped: address-space limits do not apply to sanitizer builds");  \
      return;                                                                     \
    }                                                                             \
  } while (0)

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Run {
  int status = -1;
  std::string out, err;
  double seconds = 0;
};

// `ecr ARGS` with stdout and stderr kept apart, under a time limit (killed when it runs out).
// `setup` runs first in the same subshell (ulimit, trap); `input` is its standard input and
// `output` its standard output (default: DIR/stdout, read back into Run::out).
Run ecr_run(const std::string& args, const fs::path& dir, const std::string& setup = "", int seconds = 60,
            const std::string& input = "/dev/null", const std::string& output = "") {
  Run r;
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  fs::remove(dir / "stdout", ec);
  r.status = run_command(fmt::format("( {} exec timeout -s KILL {} {} {} <{} >{} 2>{}/stderr )", setup, seconds,
                                     cli_path().string(), args, input,
                                     output.empty() ? (dir / "stdout").string() : output, dir.string()));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.out = read_text(dir / "stdout");
  r.err = read_text(dir / "stderr");
  return r;
}

// No byte that a terminal acts on: C0 controls other than newline and tab, DEL, ESC, NUL, C1
// controls, or anything that is not UTF-8.
bool terminal_safe(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const Utf8Step step = decode_utf8(s, i);
    const char32_t c = step.code_point;
    if (!step.valid || (c < 0x20 && c != '\n' && c != '\t') || c == 0x7F || (c >= 0x80 && c < 0xA0)) return false;
    i += step.size;
  }
  return true;
}


// Runs `f` in a child process under `limits` (RLIMIT_* -> bytes); returns the child's exit code
// (f's return value; 100 + signal number when it is killed).
int in_child(const std::vector<std::pair<int, rlim_t>>& limits, const std::function<int()>& f) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (const auto& [resource, value] : limits) {
      const rlimit lim{value, value};
      if (::setrlimit(resource, &lim) != 0) ::_exit(99);
    }
    int code = 98;
    try {
      code = f();
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

// Peak resident memory of this process, bytes.
long peak_rss() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss * 1024L;
}

// The crafted bundles of tests/hostile_bundles.py, made once per build tree.
fs::path hostile_bundles() {
  const auto lm = test::gpt2_fixture(2, 4, 64, 128);
  const auto full = test::responder_fixture();
  const fs::path script = test::source_dir() / "tests" / "hostile_bundles.py";
  const std::string recipe = "hostile " + lm.bundle.string() + " " + full.bundle.string() + test::file_text(script) +
                             test::file_text(test::tools_dir() / "ecr_bundle.py");
  const fs::path dir = test::cached_fixture(recipe, [&](const fs::path& out) {
    std::string log;
    const int rc = run_command(fmt::format("{} {} --gpt2 {} --full {} --out {}", ECR_PYTHON, script.string(),
                                           lm.bundle.string(), full.bundle.string(), out.string()),
                               &log);
    if (rc != 0) MESSAGE("hostile_bundles.py failed: " << log);
    return rc == 0;
  });
  REQUIRE_MESSAGE(!dir.empty(), "could not make the hostile bundles");
  return dir;
}

Gpt2Model load_lm(const fs::path& bundle) { return Gpt2Model::load(Bundle::open(bundle), "lm"); }

}  // namespace

// --- crafted bundles ------------------------------------------------------------------------------

TEST_CASE("hostile bundles: NaN and infinite weights are refused at load, naming the tensor") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path h = hostile_bundles();
  check_refused<FormatError>([&] { load_lm(h / "nan_f32.ecr"); }, {"lm/transformer.wte.weight", "nan"});
  check_refused<FormatError>([&] { load_lm(h / "inf_f32.ecr"); }, {"lm/transformer.h.0.mlp.c_fc.weight", "inf"});
  check_refused<FormatError>([&] { load_lm(h / "nan_zstd.ecr"); }, {"lm/transformer.wte.weight", "nan"});
  check_refused<FormatError>([&] { load_lm(h / "inf_f16.ecr"); }, {"lm/transformer.h.1.ln_2.bias", "inf"});
  // Any floating tensor read as a weight is checked; read as stored, its bytes come back as they are.
  check_refused<FormatError>([&] { Bundle::open(h / "nan_bf16.ecr").finite_tensor("extra/weights.bf16"); },
                             {"extra/weights.bf16", "element 9 is nan"});
  CHECK(std::isnan(static_cast<float>(
      Bundle::open(h / "nan_bf16.ecr").tensor("extra/weights.bf16").span<Eigen::bfloat16>()[9])));
  check_refused<FormatError>([&] { Bundle::open(h / "nan_bf16.ecr").verify(); }, {"extra/weights.bf16"});
  CHECK_NOTHROW(load_lm(h / "nan_bf16.ecr"));  // the model itself is sound
  const std::string prompt = read_text(h / "nan_rec_prompt.name");
  check_refused<FormatError>([&] { Recommender::load(h / "nan_rec_prompt.ecr"); }, {prompt, "nan"});
  // `ecr inspect --verify` decodes and checks every tensor.
  const fs::path dir = temp_dir("hostile_nan");
  const Run r = ecr_run(fmt::format("inspect --verify {}", (h / "nan_zstd.ecr").string()), dir);
  CHECK(r.status == 1);
  CHECK(r.err.find("lm/transformer.wte.weight") != std::string::npos);
}

TEST_CASE("hostile bundles: layer_norm_epsilon must be a positive finite number") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path h = hostile_bundles();
  for (const char* name : {"eps_negative.ecr", "eps_zero.ecr", "eps_inf.ecr"}) {
    CAPTURE(name);
    check_refused<ConfigError>([&] { load_lm(h / name); }, {"'lm'", "layer_norm_epsilon"});
  }
}

TEST_CASE("hostile bundles: zstd sizes are checked before anything is allocated") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path h = hostile_bundles();
  // 32 GiB claimed by a 1 MiB frame: refused at open, under a 1 GiB address-space limit too.
  check_refused<FormatError>([&] { Bundle::open(h / "zstd_32gib.ecr"); }, {"extra/blob", "declares"});
  check_refused<FormatError>([&] { Bundle::open(h / "zstd_mismatch.ecr"); }, {"extra/small", "declares 4000 bytes"});
  if (!kSanitized) {
    CHECK(in_child({{RLIMIT_AS, rlim_t{1} << 30}}, [&] {
            try {
              Bundle::open(h / "zstd_32gib.ecr");
            } catch (const FormatError&) {
              return 0;
            }
            return 1;
          }) == 0);
  }
  // An unused 256 MiB tensor (a few KiB of zstd) is never decompressed.
  CHECK(in_child({}, [&] {
          const long before = peak_rss();
          const Bundle b = Bundle::open(h / "unused_zeros.ecr");
          const Gpt2Model m = Gpt2Model::load(b, "lm");
          const long grown = peak_rss() - before;
          if (grown > (long{128} << 20)) return 1;
          return b.tensor("extra/zeros").numel() == (std::int64_t{1} << 26) ? 0 : 2;  // and it decodes when asked
        }) == 0);
}

TEST_CASE("hostile bundles: deeply nested metadata is refused alike by the library and ecr inspect") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path h = hostile_bundles();
  const fs::path dir = temp_dir("hostile_deep");
  for (const char* name : {"deep_100k.ecr", "deep_65.ecr"}) {
    CAPTURE(name);
    check_refused<FormatError>([&] { Bundle::open(h / name); }, {"deeper than 64 levels"});
    const Run r = ecr_run(fmt::format("inspect {} --metadata", (h / name).string()), dir, "", 30);
    CHECK(r.status == 1);
    CHECK(r.err.find("deeper than 64 levels") != std::string::npos);
  }
  CHECK_NOTHROW(load_lm(h / "deep_64.ecr"));
  const Run ok = ecr_run(fmt::format("inspect {}", (h / "deep_64.ecr").string()), dir, "", 30);
  CHECK(ok.status == 0);
  CHECK(ecr::json_depth("[{\"a\": \"[[[[\"}]") == 2);  // brackets in strings do not count
  CHECK(ecr::json_depth("[\"\\\"[\"]") == 1);
}

TEST_CASE("hostile bundles: ecr inspect summarises vocabularies and escapes tensor names") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path h = hostile_bundles();
  const fs::path dir = temp_dir("hostile_inspect");
  const Run r = ecr_run(fmt::format("inspect {}", (h / "escape_name.ecr").string()), dir);
  REQUIRE(r.status == 0);
  CHECK(r.out.size() < 20000);  // the 50,257-entry vocabulary is a line, not a megabyte
  CHECK(r.out.find("<object with 50257 entries>") != std::string::npos);
  CHECK(terminal_safe(r.out));
  CHECK(r.out.find("extra/\\x1b[2J\\x1b]0;owned\\x07") != std::string::npos);
  const Run j = ecr_run(fmt::format("inspect --json {}", (h / "escape_name.ecr").string()), dir);
  REQUIRE(j.status == 0);
  CHECK(terminal_safe(j.out));
  CHECK(nlohmann::json::parse(j.out)["tensors"].size() > 0);
}

TEST_CASE("hostile bundles: untrained, tokenizer ids and review ids are checked at load") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path h = hostile_bundles();
  check_refused<FormatError>([&] { Bundle::open(h / "untrained_yes.ecr"); }, {"'untrained'", "true or false"});
  check_refused<FormatError>([&] { Bundle::open(h / "untrained_one.ecr"); }, {"'untrained'"});
  const fs::path dir = temp_dir("hostile_untrained");
  std::ofstream(dir / "d.json") << R"({"turns": [{"role": "user", "text": "Hi"}]})";  // read before the bundle
  const Run r = ecr_run(fmt::format("respond --generator gpt2 --bundle {} {}/d.json", (h / "full_untrained_yes.ecr").string(), dir.string()),
                        dir);
  CHECK(r.status == 1);
  CHECK(r.err.find("'untrained'") != std::string::npos);

  check_refused<ConfigError>([&] { Recommender::load(h / "tokenizer_beyond_vocab.ecr"); },
                             {"'backbone'", "beyond its vocab_size"});
  check_refused<ConfigError>([&] { Responder::load(h / "tokenizer_beyond_vocab.ecr", ecr::test::gpt2_responder()); }, {"beyond its vocab_size"});
  check_refused<FormatError>([&] { Responder::load(h / "review_movie_out.ecr", ecr::test::gpt2_responder()); },
                             {"review_entities/movie_kg_ids", "100000"});
  check_refused<FormatError>([&] { Responder::load(h / "review_entity_out.ecr", ecr::test::gpt2_responder()); },
                             {"review_entities/entity_kg_ids", "100000"});
}

// --- files that are not what they seem --------------------------------------------------------------

TEST_CASE("hostile files: a FIFO, a directory, /dev/zero and a device end at once with typed errors") {
  const fs::path dir = temp_dir("hostile_files");
  const fs::path fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // No writer ever opens the FIFO: opening it for reading must not wait for one.
  Run r = ecr_run(fmt::format("inspect {}", fifo.string()), dir, "", 20);
  CHECK(r.status == 1);
  CHECK(r.err.find("not a regular file (a pipe)") != std::string::npos);
  CHECK(r.seconds < 10);
  check_refused<IoError>([&] { Bundle::open(fifo); }, {"a pipe"});
  check_refused<IoError>([&] { Bundle::open(dir); }, {"a directory"});
  check_refused<IoError>([&] { Bundle::open("/dev/zero"); }, {"a device"});

  r = ecr_run(fmt::format("inspect {}", dir.string()), dir);
  CHECK(r.status == 1);
  CHECK(r.err.find("io error") != std::string::npos);

  // Unbounded inputs stop at their documented limits.
  r = ecr_run("recommend --bundle /nonexistent --dialog /dev/zero", dir, "", 30);
  CHECK(r.status == 1);
  CHECK(r.err.find("larger than the 64 MiB") != std::string::npos);
  CHECK(r.seconds < 20);
  test::write_tiny_kg(dir / "kg");
  r = ecr_run(fmt::format("link --kg {}/kg --dialogs /dev/zero", dir.string()), dir, "", 30);
  CHECK(r.status == 1);
  CHECK(r.err.find("a line longer than the 16 MiB") != std::string::npos);

  // A directory as input is an error, not an empty success.
  r = ecr_run(fmt::format("recommend --bundle /nonexistent --dialog {}", dir.string()), dir);
  CHECK(r.status == 1);
  CHECK(r.err.find("is a directory") != std::string::npos);
}

TEST_CASE("hostile files: tokenize rejects a directory, endless lines and bad JSON without echoing it") {
  ECR_REQUIRE_SHARED_DATA();
  const fs::path dir = temp_dir("hostile_tokenize");
  const fs::path gpt2 = test::shared_data() / "gpt2";
  const std::string tok =
      fmt::format("tokenize --vocab {0}/encoder.json --merges {0}/vocab.bpe", gpt2.string());
  Run r = ecr_run(fmt::format("{} --input {}", tok, dir.string()), dir);
  CHECK(r.status == 1);
  CHECK(r.err.find("is a directory") != std::string::npos);
  CHECK(r.out.empty());

  r = ecr_run(fmt::format("{} --input /dev/zero", tok), dir, "", 30);
  CHECK(r.status == 1);
  CHECK(r.err.find("a line longer than the 16 MiB") != std::string::npos);
  CHECK(r.seconds < 20);

  // Invalid JSON full of terminal commands and invalid UTF-8: the message quotes none of it raw.
  std::ofstream(dir / "bad.jsonl") << "{\"text\": \"ok\"}\n{\"text\": \"\x1b]0;owned\x07\xff\xfe\0\x1b[2J\n";
  r = ecr_run(fmt::format("{} --input {}/bad.jsonl", tok, dir.string()), dir);
  CHECK(r.status == 1);
  CHECK(r.err.find("line 2") != std::string::npos);
  CHECK(terminal_safe(r.err));
  CHECK(r.out.find("\"ids\"") != std::string::npos);  // line 1 went through

  // A 100,000-deep JSON line is refused before it is parsed.
  std::ofstream(dir / "deep.jsonl") << std::string(100000, '[') << std::string(100000, ']') << "\n";
  r = ecr_run(fmt::format("{} --input {}/deep.jsonl", tok, dir.string()), dir);
  CHECK(r.status == 1);
  CHECK(r.err.find("deeper than 64 levels") != std::string::npos);
}

TEST_CASE("hostile files: dialogs that are too big, too deep, or not JSON") {
  check_refused<InputError>([] { Dialog::parse(std::string(100000, '[') + std::string(100000, ']')); },
                            {"deeper than 64 levels"});
  check_refused<InputError>([] { Dialog::parse(std::string(kMaxDialogBytes + 1, ' ')); }, {"64 MiB"});
  try {
    Dialog::parse("{\"turns\": [\x1b[2J\xff\x01");
    FAIL_CHECK("accepted");
  } catch (const InputError& e) {
    CHECK(terminal_safe(e.what()));
  }
  const fs::path dir = temp_dir("hostile_dialogs");
  std::ofstream(dir / "bad.json") << "\x1b]0;owned\x07{\"turns\": \xff}";
  const Run r = ecr_run(fmt::format("recommend --bundle /nonexistent --dialog {}/bad.json", dir.string()), dir);
  CHECK(r.status == 1);
  CHECK(r.err.find("not valid JSON") != std::string::npos);
  CHECK(terminal_safe(r.err));
}

// --- outputs that cannot be written ----------------------------------------------------------------

TEST_CASE("hostile outputs: /dev/full and a file size limit are errors naming the file, leaving nothing") {
  const fs::path dir = temp_dir("hostile_outputs");
  // The library's writer: every write, the flush and the close are checked.
  check_refused<IoError>(
      [] {
        OutputFile f("/dev/full");
        f.write(std::string(100000, 'x'));
        f.commit();
      },
      {"'/dev/full'", "No space left on device"});
  check_refused<IoError>([&] { write_file(dir / "missing" / "out.json", "{}"); }, {"missing/out.json", "cannot create"});
  check_refused<IoError>([&] { write_file(dir, "{}"); }, {"directory"});
  // A failed write leaves the old file as it was and no temporary file beside it.
  write_file(dir / "keep.json", "old");
  ::signal(SIGXFSZ, SIG_IGN);
  const int code = in_child({{RLIMIT_FSIZE, 1000}}, [&] {
    try {
      write_file(dir / "keep.json", std::string(5000, 'n'));
    } catch (const IoError& e) {
      return std::string(e.what()).find("keep.json") != std::string::npos ? 0 : 2;
    }
    return 1;
  });
  ::signal(SIGXFSZ, SIG_DFL);
  CHECK(code == 0);
  CHECK(read_text(dir / "keep.json") == "old");
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("hostile outputs: ecr forward, inspect and tokenize fail on a full disk") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto lm = test::gpt2_fixture(2, 4, 64, 128);
  const fs::path dir = temp_dir("hostile_forward");
  const std::string forward = fmt::format("forward --bundle {} --component lm --ids 1,2,3", lm.bundle.string());
  Run r = ecr_run(forward + " --out /dev/full", dir);
  CHECK(r.status == 1);
  CHECK(r.err.find("io error: '/dev/full'") != std::string::npos);
  CHECK(r.err.find("No space left on device") != std::string::npos);

  // A file size limit (the disk filling up mid-write): no partial .npy, no temporary file.
  r = ecr_run(forward + fmt::format(" --logits --out {}/h.npy", dir.string()), dir, "trap '' XFSZ; ulimit -f 10;");
  CHECK(r.status == 1);
  CHECK(r.err.find("h.npy") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "h.npy"));
  for (const auto& e : fs::directory_iterator(dir))
    CHECK_MESSAGE(e.path().filename().string().find("h.npy") == std::string::npos, e.path());
  r = ecr_run(forward + fmt::format(" --out {}/h.npy", dir.string()), dir);
  CHECK(r.status == 0);
  CHECK(test::read_npy(dir / "h.npy").shape() == Shape{3, 64});

  // Standard output on a full disk is a failure too.
  r = ecr_run(fmt::format("inspect {}", lm.bundle.string()), dir, "", 60, "/dev/null", "/dev/full");
  CHECK(r.status == 1);
  CHECK(r.err.find("standard output") != std::string::npos);
  std::ofstream(dir / "in.jsonl") << "{\"text\": \"hello\"}\n";
  r = ecr_run(fmt::format("tokenize --bundle {} --tokenizer gpt2", lm.bundle.string()), dir, "", 60,
              (dir / "in.jsonl").string(), "/dev/full");
  CHECK(r.status == 1);
  CHECK(r.err.find("standard output") != std::string::npos);
}

TEST_CASE("hostile outputs: ecr eval --json to a full disk exits non-zero and leaves no file") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto fx = test::recommender_fixture();
  const fs::path dir = temp_dir("hostile_eval");
  const std::string eval = fmt::format("eval --bundle {} --dialogs {} --limit 3 --threads 1", fx.bundle.string(),
                                       (test::shared_data() / "redial" / "test_dialogs.jsonl").string());
  Run r = ecr_run(eval + " --json /dev/full", dir, "", 300);
  CHECK(r.status == 1);
  CHECK(r.err.find("'/dev/full'") != std::string::npos);
  r = ecr_run(eval + fmt::format(" --json {}/m.json", dir.string()), dir, "trap '' XFSZ; ulimit -f 1;", 300);
  CHECK(r.status == 1);
  CHECK(r.err.find("m.json") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "m.json"));
  std::size_t leftovers = 0;
  for (const auto& e : fs::directory_iterator(dir)) leftovers += e.path().filename().string().starts_with("m.json");
  CHECK(leftovers == 0);
}

// --- arguments ----------------------------------------------------------------------------------------

TEST_CASE("hostile arguments: repeated flags, NaN, out-of-range ids and thread counts") {
  const fs::path dir = temp_dir("hostile_args");
  const auto expect = [&](const std::string& args, std::string_view needle, int status = 1) {
    CAPTURE(args);
    const Run r = ecr_run(args, dir);
    CHECK(r.status == status);
    CHECK_MESSAGE(r.err.find(needle) != std::string::npos, r.err);
    CHECK(terminal_safe(r.err));
  };
  constexpr int kUsage = 2;  // a misused command line
  expect("recommend --top-k 3 --top-k 4", "option '--top-k' is given twice", kUsage);
  expect("recommend --json --json", "option '--json' is given twice", kUsage);
  expect("recommend --top-k=3 --top-k 3", "given twice", kUsage);
  expect("respond --temperature nan", "'nan' is not a number");
  expect("chat --temperature -nan", "is not a number");
  expect("respond --temperature inf", "'inf' is not a finite number");
  expect("respond --top-p 1e999", "expected a number");
  // --lora FILE[:SCALE] is repeatable; its scale is checked before any file is read.
  expect("generate --gguf /nonexistent.gguf --prompt-ids 1 --lora a.gguf:inf", "the scale inf is not a finite number");
  expect("generate --gguf /nonexistent.gguf --prompt-ids 1 --lora a.gguf --lora :2", "no file before the scale");
  expect("respond --lora a.gguf:nan", "the scale nan is not a finite number");
  expect("generate --bundle /nonexistent --component c --ids 1 --lora a.gguf", "--lora goes with a --gguf model");
  expect("tokenize --vocab v --merges m --added '{\"<x>\":4000000000}'", "has id 4000000000");
  expect("tokenize --vocab v --merges m --added '{\"<x>\":-1}'", "has id -1");
  expect("tokenize --vocab v --merges m --added '[1]'", "expected a JSON object");
  expect("tokenize --vocab v --merges m --added '{\"<x>\":'", "not valid JSON");
  expect("recommend --threads 100000", "--threads must be 0 (one per core) to 1024, got 100000");
  expect("eval --threads -1", "--threads must be 0");
  expect("recommend --threads 99999999999999999999", "expected an integer");
  expect("recommend --top-k 0", "--top-k must be at least 1");
  expect("inspect --bogus x", "unknown option '--bogus'", kUsage);
  expect("recommend --dialog \"$(printf '\\033[2J')\"", "io error");  // a file name that is a terminal command
  // The library's own checks say the same.
  GenerateOptions g;
  g.temperature = std::nanf("");
  check_refused<InputError>([&] { check_generate_options(g); }, {"not a finite number"});
  g.temperature = -1;
  check_refused<InputError>([&] { check_generate_options(g); }, {"negative"});
  check_refused<ConfigError>([] { ThreadPool pool(ThreadPool::kMaxThreads + 1); }, {"at most 1024"});
}

TEST_CASE("usage errors: an unknown command or option exits 2 and names the near miss") {
  const fs::path dir = temp_dir("hostile_usage");
  const auto expect = [&](const std::string& args, std::string_view needle, bool hinted) {
    CAPTURE(args);
    const Run r = ecr_run(args, dir);
    CHECK(r.status == 2);
    CHECK_MESSAGE(r.err.find(needle) != std::string::npos, r.err);
    const bool has_hint = r.err.find("did you mean") != std::string::npos;
    CHECK(has_hint == hinted);
    CHECK(terminal_safe(r.err));
    CHECK(r.out.empty());
  };
  expect("recomend --dialog d.json", "unknown command 'recomend'; did you mean 'recommend'?", true);
  expect("cheat", "did you mean 'chat'?", true);
  expect("evla", "did you mean 'eval'?", true);  // two letters swapped: one edit
  expect("frobnicate", "unknown command 'frobnicate'", false);
  expect("\"$(printf 'x\\033[2J')\"", "unknown command 'x\\x1b[2J'", false);
  expect("recommend --topk 3", "unknown option '--topk'; did you mean '--top-k'?", true);
  expect("chat --bundel m.ecr", "did you mean '--bundle'?", true);
  expect("inspect m.ecr --verfy", "did you mean '--verify'?", true);
  expect("respond --zzzzzzz", "unknown option '--zzzzzzz' (see --help)", false);
  expect("inspect", "missing argument FILE", false);
  // No command at all: the help, as a usage error.
  const Run bare = ecr_run("", dir);
  CHECK(bare.status == 2);
  CHECK(bare.out.find("usage: ecr <command>") != std::string::npos);
  const Run help = ecr_run("--help", dir);
  CHECK(help.status == 0);
  CHECK(help.out.find("2 for a misused command line") != std::string::npos);
  // The commands that read dialogs list the emotion labels; --bundle is optional where it defaults.
  for (const char* command : {"recommend", "respond", "chat"}) {
    CAPTURE(command);
    const Run r = ecr_run(fmt::format("{} --help", command), dir);
    CHECK(r.status == 0);
    CHECK(r.out.find("like, curious, happy, grateful, negative, neutral, nostalgia, agreement, surprise") !=
          std::string::npos);
    CHECK(r.out.find("(sad, angry, bored) are 'negative'") != std::string::npos);
    CHECK(r.out.find(fmt::format("usage: ecr {} [--bundle BUNDLE]", command)) != std::string::npos);
  }
}

// --- terminal safety ------------------------------------------------------------------------------------

TEST_CASE("hostile text: printable() escapes every byte a terminal would act on") {
  CHECK(printable("plain text, é 中") == "plain text, é 中");
  CHECK(printable("\x1b[2J") == "\\x1b[2J");
  CHECK(printable(std::string("a\0b", 3)) == "a\\x00b");
  CHECK(printable("bell\x07 del\x7f cr\r") == "bell\\x07 del\\x7f cr\\x0d");
  CHECK(printable("\xc2\x9b" "31m") == "\\u009b31m");  // C1 CSI
  CHECK(printable("\xff\xfe") == "\\xff\\xfe");
  CHECK(printable("\xe4\xb8") == "\\xe4\\xb8");  // a cut character
  CHECK(printable("a\nb\tc") == "a\\x0ab\\x09c");
  CHECK(printable("a\nb\tc", true) == "a\nb\tc");
}

TEST_CASE("hostile text: dialog text with escapes and NUL is escaped when ecr recommend echoes it") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const fs::path dir = temp_dir("hostile_echo");
  std::ofstream(dir / "d.json")
      << R"({"turns": [{"role": "user", "text": "I loved The Matrix (1999)\u001b]0;owned\u0007\u0000\u001b[2J\u009b"}]})";
  const Run r = ecr_run(fmt::format("recommend --bundle {} --dialog {}/d.json", f.bundle.string(), dir.string()), dir);
  REQUIRE(r.status == 0);
  CHECK(terminal_safe(r.out));
  CHECK(r.out.find("The Matrix (1999)\\x1b]0;owned\\x07\\x00\\x1b[2J\\u009b") != std::string::npos);
  const Run j = ecr_run(fmt::format("recommend --bundle {} --dialog {}/d.json --json", f.bundle.string(), dir.string()),
                        dir);
  REQUIRE(j.status == 0);
  CHECK(terminal_safe(j.out));  // escaped in JSON's own way: the value is the same
  CHECK(nlohmann::json::parse(j.out)["turns"][0]["text"].get<std::string>().ends_with(
      std::string("\x1b[2J\xc2\x9b")));
}

TEST_CASE("hostile text: ecr chat on a pipe reports a failed turn on stderr and exits 1") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const fs::path dir = temp_dir("hostile_chat");
  // The second line is not UTF-8: the turn fails, and a script must hear of it.
  std::ofstream(dir / "in.txt") << "I loved The Matrix (1999)\x1b[2J\n\xff\xfe broken\nnever reached\n";
  const Run r = ecr_run(fmt::format("chat --generator gpt2 --bundle {} --max-new-tokens 5", f.bundle.string()), dir, "", 120,
                        (dir / "in.txt").string());
  CHECK(r.status == 1);
  CHECK(r.err.find("input error") != std::string::npos);
  CHECK(r.err.find("UTF-8") != std::string::npos);
  CHECK(r.out.find("input error") == std::string::npos);
  CHECK(terminal_safe(r.out));
  CHECK(terminal_safe(r.err));
  CHECK(r.out.find("ecr> ") != std::string::npos);  // the first turn was answered
}

// --- resource limits (setrlimit in a child) --------------------------------------------------------

TEST_CASE("hostile limits: threads the system refuses end in a typed error, not a hang") {
  SKIP_UNDER_SANITIZERS();
  // 1,024 threads of 8 MiB stacks do not fit in 1 GiB of address space.
  const int code = in_child({{RLIMIT_AS, rlim_t{1} << 30}}, [] {
    try {
      ThreadPool pool(1024);
    } catch (const IoError& e) {
      return std::string(e.what()).find("ask for fewer threads") != std::string::npos ? 0 : 2;
    }
    return 1;
  });
  CHECK(code == 0);
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const fs::path dir = temp_dir("hostile_threads");
  std::ofstream(dir / "d.json") << R"({"turns": [{"role": "user", "text": "Hi"}]})";
  const Run r = ecr_run(fmt::format("recommend --bundle {} --dialog {}/d.json --threads 1024", f.bundle.string(),
                                    dir.string()),
                        dir, "ulimit -v 1500000;", 60);
  CHECK(r.status == 1);
  CHECK(r.err.find("io error: thread pool") != std::string::npos);
}

TEST_CASE("hostile limits: /dev/zero as a dialog stays within 1 GiB of address space") {
  SKIP_UNDER_SANITIZERS();
  const fs::path dir = temp_dir("hostile_zero");
  const Run r = ecr_run("recommend --bundle /nonexistent --dialog /dev/zero", dir, "ulimit -v 1048576;", 30);
  CHECK(r.status == 1);
  CHECK(r.err.find("input error") != std::string::npos);
}

// --- long dialogs ----------------------------------------------------------------------------------------

TEST_CASE("hostile long dialogs: the classifier's memory grows linearly, not with the square") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto fx = test::recommender_fixture();
  // In a child, so that the peak belongs to this dialog alone.
  const auto peak_growth = [&](int user_turns) {
    long grown = -1;
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    const int code = in_child({}, [&] {
      const Recommender rec = Recommender::load(fx.bundle);
      Dialog warm;
      warm.add_turn({Role::user, "Hello there, any horror movies?", {}, {}});
      rec.recommend(warm);
      const long before = peak_rss();
      Dialog d;
      for (int t = 0; t < user_turns; ++t) {
        d.add_turn({Role::user, fmt::format("I liked The Shining (1980) and Alien (1979), turn {}", t), {}, {}});
        d.add_turn({Role::system, "Have you seen Halloween (1978)?", {}, {}});
      }
      const Recommendation r = rec.recommend(d);
      const long growth = peak_rss() - before;
      const bool ok = r.turns.size() == d.turns.size() && r.turns[0].emotions_from_classifier;
      return ::write(pipe_fds[1], &growth, sizeof growth) == sizeof growth && ok ? 0 : 1;
    });
    REQUIRE(code == 0);
    REQUIRE(::read(pipe_fds[0], &grown, sizeof grown) == sizeof grown);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return grown;
  };
  const long small = peak_growth(200), large = peak_growth(2000);
  MESSAGE("peak growth: 200 user turns " << small / 1024 << " KiB, 2,000 user turns " << large / 1024 << " KiB");
  // Quadratic growth made 800 turns cost 1.9 GB; linear growth keeps 2,000 well under 100 MB
  // (sanitizers keep freed memory in quarantine: more room there).
  CHECK(large < (kSanitized ? long{600} << 20 : long{100} << 20));
}

TEST_CASE("hostile long dialogs: batched classification equals one sequence at a time") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::gpt2_fixture(2, 4, 64, 128, /*classifier=*/9);
  const Gpt2Model m = Gpt2Model::load(Bundle::open(f.bundle), "emotion");
  std::vector<std::vector<std::int32_t>> batch;
  for (unsigned s = 0; s < 300; ++s) batch.push_back(test::random_ids(1 + s % 40, s, 0, 50256));
  batch.push_back(test::random_ids(300, 999, 0, 50256));  // longer than the 128 positions: its newest 128
  const Tensor all = m.classify(batch);  // some 6,000 tokens: two chunks
  for (std::size_t i = 0; i < batch.size(); i += 37) {
    const Tensor one = m.classify(std::span(&batch[i], 1));
    for (std::int64_t l = 0; l < 9; ++l)
      CHECK(std::fabs(all.data<float>()[i * 9 + l] - one.data<float>()[l]) < 1e-4f);
  }
}

TEST_CASE("hostile long dialogs: the recent turns give the whole dialog's recommendation and reply") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto fx = test::recommender_fixture();
  const Bundle b = Bundle::open(fx.bundle);
  const Recommender rec = Recommender::load(b);
  ResponderOptions ro = ecr::test::gpt2_responder();
  ro.generation.max_new_tokens = 8;
  const Responder resp = Responder::load(b, ro);
  const KnowledgeGraph& kg = rec.graph();
  const auto id = [&](const char* name) { return *kg.entity_id(name); };
  // 300 user turns with the emotions and entity ids a chat keeps, some turns without text.
  Dialog d;
  EmotionProbs like{};
  like[0] = 0.8f;
  for (int t = 0; t < 300; ++t) {
    d.add_turn({Role::user, t % 50 == 7 ? "" : fmt::format("turn {}: more like this please", t),
                t % 3 ? std::vector<std::int64_t>{} : std::vector<std::int64_t>{id("horror")}, like});
    d.add_turn({Role::system, "How about The Shining?", {id("The Shining (1980)")}, {}});
  }
  d.add_turn({Role::user, "Something scary", {}, like});
  const Dialog recent = Responder::recent_turns(rec, resp, d);
  CHECK(recent.turns.size() > 20);    // 200 tokens and 32 entities take a few dozen turns,
  CHECK(recent.turns.size() < 100);   // not the 601 of the dialog
  CHECK(recent_turns(d, 200, 32).turns.size() >= 200);  // counting one token a turn: 200 turns with text
  RecommendRequest request;
  request.all_scores = true;
  const Recommendation whole = rec.recommend(d, request), part = rec.recommend(recent, request);
  CHECK(part.context_ids == whole.context_ids);
  CHECK(part.prompt_ids == whole.prompt_ids);
  CHECK(*part.all_scores == *whole.all_scores);
  REQUIRE(part.prompt_entities.size() == whole.prompt_entities.size());
  for (std::size_t i = 0; i < part.prompt_entities.size(); ++i) {
    CHECK(part.prompt_entities[i].id == whole.prompt_entities[i].id);
    CHECK(part.prompt_entities[i].emotions == whole.prompt_entities[i].emotions);
  }
  CHECK(resp.respond(recent, part).reply_ids == resp.respond(d, whole).reply_ids);

  // Emotions on an old turn only: the window reaches back to it, and never splits a run of turns.
  Dialog old;
  old.turns.push_back({Role::user, "first", {}, like});
  for (int t = 0; t < 500; ++t) old.turns.push_back({t % 2 ? Role::user : Role::system, "x", {}, {}});
  old.turns.push_back({Role::user, "again", {}, {}});
  old.turns.push_back({Role::user, "and again", {}, {}});
  CHECK(recent_turns(old, 10, 0).turns.size() == old.turns.size());
  old.turns[0].emotions.reset();
  const Dialog tail = recent_turns(old, 10, 0);
  CHECK(tail.turns.size() == 12);  // the last run of two user turns counts once
}

// --- crafted bundles that claim more than they hold ------------------------------------------------

TEST_CASE("hostile bundles: inspect --verify streams a 4 GiB zstd tensor through a bounded buffer") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path h = hostile_bundles();
  REQUIRE(fs::file_size(h / "zeros_4gib.ecr") < (std::uintmax_t{1} << 20) + fs::file_size(h / "unused_zeros.ecr"));
  // Every byte is decoded and checked; resident memory grows by the buffer, not the tensor.
  CHECK(in_child({}, [&] {
          const long before = peak_rss();
          Bundle::open(h / "zeros_4gib.ecr").verify();
          return peak_rss() - before < (long{64} << 20) ? 0 : 1;
        }) == 0);
  const fs::path dir = temp_dir("hostile_verify_4gib");
  const Run r = ecr_run(fmt::format("inspect --verify {}", (h / "zeros_4gib.ecr").string()), dir,
                        kSanitized ? "" : "ulimit -v 1048576;", 300);
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK(r.out.find("verified: every checksum matches") != std::string::npos);
  // A frame cut short, and a NaN in a frame, are still found.
  check_refused<FormatError>([&] { Bundle::open(h / "zeros_short.ecr").verify(); }, {"extra/zeros", "short frame"});
  check_refused<FormatError>([&] { Bundle::open(h / "nan_zstd.ecr").verify(); },
                             {"lm/transformer.wte.weight", fmt::format("element {} is nan", 7 * 64 + 1)});
}

TEST_CASE("hostile bundles: n_layer past the tensors a bundle holds is refused at once") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const fs::path h = hostile_bundles();
  check_refused<FormatError>([&] { load_lm(h / "n_layer_3.ecr"); },
                             {"'lm'", "config.n_layer is 3", "no tensor 'lm/transformer.h.2.ln_1.weight'"});
  for (const std::int64_t layers : {std::int64_t{1} << 20, std::int64_t{1} << 24, std::int64_t{1} << 30}) {
    CAPTURE(layers);
    const fs::path bundle = h / fmt::format("n_layer_{}.ecr", layers);
    const auto t0 = std::chrono::steady_clock::now();
    check_refused<ConfigError>([&] { load_lm(bundle); }, {fmt::format("config.n_layer is {}, but the bundle holds", layers)});
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 1.0);
    // Through the tool, within 1 GiB: a typed error, not "unexpected failure: std::bad_alloc".
    const fs::path dir = temp_dir("hostile_n_layer");
    const Run r = ecr_run(fmt::format("generate --bundle {} --component lm --ids 1,2", bundle.string()), dir,
                          kSanitized ? "" : "ulimit -v 1048576;", 30);
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.err.find("config error") != std::string::npos, r.err);
    CHECK(r.seconds < 10);
  }
}

// --- inputs that never come, and what follows a document ---------------------------------------------

namespace {

// `ecr ARGS` with a terminal as its standard input, `typed` already waiting there.
Run ecr_on_terminal(const std::string& args, const fs::path& dir, const std::string& typed = "", int seconds = 30) {
  const int terminal = ::posix_openpt(O_RDWR | O_NOCTTY);
  REQUIRE(terminal >= 0);
  REQUIRE(::grantpt(terminal) == 0);
  REQUIRE(::unlockpt(terminal) == 0);
  const std::string device = ::ptsname(terminal);
  REQUIRE(::write(terminal, typed.data(), typed.size()) == static_cast<ssize_t>(typed.size()));
  Run r = ecr_run(args, dir, "", seconds, device);
  ::close(terminal);
  return r;
}

}  // namespace

TEST_CASE("hostile files: a FIFO that nothing writes to ends every reading command after --timeout") {
  const fs::path dir = temp_dir("hostile_fifo_wait");
  const fs::path fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const auto expect_timeout = [&](const std::string& args, std::string_view seconds) {
    CAPTURE(args);
    const Run r = ecr_run(args, dir, "", 60);
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.err.find(fmt::format("'{}': no data within {} s", fifo.string(), seconds)) != std::string::npos,
                  r.err);
    CHECK(r.seconds < 20);
  };
  // The dialog is read before the bundle is opened, so none is needed to show the wait ends.
  for (const char* command : {"recommend --dialog", "respond --dialog", "chat --dialog", "recommend", "respond"})
    expect_timeout(fmt::format("{} {} --bundle /nonexistent --timeout 0.5", command, fifo.string()), "0.5");
  test::write_tiny_kg(dir / "kg");
  expect_timeout(fmt::format("link --kg {}/kg --dialogs {} --timeout 1", dir.string(), fifo.string()), "1");
  expect_timeout(fmt::format("recommend --bundle /nonexistent --dialog {}", fifo.string()), "10");  // the default

  // A writer that comes within the timeout is read; so is a pipe such as <(cat d.json). The
  // missing bundle is the error: the dialog was read.
  std::ofstream(dir / "d.json") << R"({"turns": [{"role": "user", "text": "Hi"}]})";
  Run r = ecr_run(fmt::format("recommend --bundle /nonexistent --dialog {} --timeout 20", fifo.string()), dir,
                  fmt::format("(sleep 1; cat {0}/d.json > {1}) &", dir.string(), fifo.string()), 60);
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.err.find("'/nonexistent'") != std::string::npos, r.err);
  std::string output;
  CHECK(run_command(fmt::format("bash -c '{} recommend --bundle /nonexistent <(cat {}/d.json)' </dev/null",
                                cli_path().string(), dir.string()),
                    &output) == 1);
  CHECK_MESSAGE(output.find("'/nonexistent'") != std::string::npos, output);
  CHECK(ecr_run("recommend --timeout -1", dir).err.find("--timeout must be 0") != std::string::npos);
}

TEST_CASE("hostile files: eval, perplexity and tokenize end on a silent FIFO too") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const fs::path dir = temp_dir("hostile_fifo_lines");
  const fs::path fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const fs::path gpt2 = test::shared_data() / "gpt2";
  for (const std::string& args :
       {fmt::format("eval --bundle {} --dialogs {}", f.bundle.string(), fifo.string()),
        fmt::format("perplexity --bundle {} --dialogs {}", f.bundle.string(), fifo.string()),
        fmt::format("tokenize --vocab {0}/encoder.json --merges {0}/vocab.bpe --input {1}", gpt2.string(),
                    fifo.string())}) {
    CAPTURE(args);
    const Run r = ecr_run(args + " --timeout 1", dir, "", 60);
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.err.find("no data within 1 s") != std::string::npos, r.err);
  }
}

TEST_CASE("hostile files: bytes after a NUL end a dialog with an error naming the offset") {
  const std::string dialog = R"({"turns": [{"role": "user", "text": "hi"}]})";
  CHECK(Dialog::parse(dialog).turns.size() == 1);
  const std::string offset = fmt::format("NUL byte at byte offset {}", dialog.size());
  check_refused<InputError>([&] { Dialog::parse(dialog + std::string("\0\0garbage", 9)); }, {offset});
  check_refused<InputError>([&] { Dialog::parse(dialog + std::string("\0", 1)); }, {offset});
  check_refused<InputError>([&] { Dialog::parse(dialog + " xyz"); }, {"not valid JSON"});
  const fs::path dir = temp_dir("hostile_nul");
  std::ofstream(dir / "nul.json", std::ios::binary) << dialog << std::string("\0\0garbage", 9);
  for (const char* command : {"recommend --dialog", "respond --dialog", "chat --dialog", "recommend"}) {
    CAPTURE(command);
    const Run r = ecr_run(fmt::format("{} {}/nul.json --bundle /nonexistent", command, dir.string()), dir);
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.err.find("nul.json: not valid JSON: a " + offset) != std::string::npos, r.err);
  }
}

TEST_CASE("hostile arguments: the dialog as an argument, given twice, or not given on a terminal") {
  const fs::path dir = temp_dir("hostile_dialog_arg");
  std::ofstream(dir / "d.json") << R"({"turns": [{"role": "user", "text": "Hi"}]})";
  const std::string d = (dir / "d.json").string();
  // Named as an argument, the file is read (the missing bundle is the error).
  Run r = ecr_run(fmt::format("recommend {} --bundle /nonexistent", d), dir);
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.err.find("'/nonexistent'") != std::string::npos, r.err);
  r = ecr_run(fmt::format("respond {0} --dialog {0}", d), dir);
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.err.find("the dialog is given twice") != std::string::npos, r.err);
  r = ecr_run(fmt::format("recommend {0} {0}", d), dir);
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.err.find("unexpected argument") != std::string::npos, r.err);
  // With no dialog named and a terminal on standard input, say how to name one instead of waiting.
  for (const char* command : {"recommend", "respond"}) {
    CAPTURE(command);
    r = ecr_on_terminal(fmt::format("{} --bundle /nonexistent", command), dir);
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.err.find("no dialog given") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("--dialog") != std::string::npos, r.err);
    CHECK(r.seconds < 20);
  }
  // "-" still reads a terminal when asked to.
  r = ecr_on_terminal("recommend - --bundle /nonexistent", dir, "{\"turns\": [{\"role\": \"user\", \"text\": \"Hi\"}]}\n\x04");
  CHECK(r.status == 1);
  CHECK_MESSAGE(r.err.find("'/nonexistent'") != std::string::npos, r.err);
}

TEST_CASE("hostile arguments: ecr chat on a terminal stays interactive") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const fs::path dir = temp_dir("hostile_chat_terminal");
  const Run r = ecr_on_terminal(fmt::format("chat --generator gpt2 --bundle {}", f.bundle.string()), dir, "/quit\n", 120);
  CHECK(r.status == 0);
  CHECK_MESSAGE(r.out.find("you> ") != std::string::npos, r.out);
}

TEST_CASE("hostile arguments: a thread count past the bound is refused naming it, before the bundle is read") {
  EngineOptions options;
  options.threads = 1000000;
  check_refused<ConfigError>([&] { Engine::load("/nonexistent.ecr", options); }, {"1000000 threads asked for"});
}

// --- outputs and footprint of the commands that load nothing ------------------------------------------------

TEST_CASE("hostile outputs: ecr --help and --version to a full disk exit non-zero") {
  const fs::path dir = temp_dir("hostile_full_info");
  for (const char* args : {"--help", "--version", "inspect --help", ""}) {
    CAPTURE(args);
    const Run r = ecr_run(args, dir, "", 30, "/dev/null", "/dev/full");
    CHECK(r.status != 0);
    CHECK_MESSAGE(r.err.find("cannot write standard output") != std::string::npos, r.err);
  }
}

TEST_CASE("hostile limits: ecr --version and --help take a few MB of memory") {
  SKIP_UNDER_SANITIZERS();  // the sanitizer runtimes take more than that themselves
  for (const char* option : {"--version", "--help"}) {
    CAPTURE(option);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, STDOUT_FILENO);
      ::execl(cli_path().c_str(), "ecr", option, static_cast<char*>(nullptr));
      ::_exit(127);
    }
    int status = 0;
    rusage usage{};
    REQUIRE(::wait4(pid, &status, 0, &usage) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(usage.ru_maxrss < 16 * 1024);  // KiB
  }
}
