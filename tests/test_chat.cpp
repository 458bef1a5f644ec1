// `ecr respond` and `ecr chat` on a random bundle: JSON output that the library reproduces turn
// by turn, a chat driven through a pipe, and one driven through a real terminal (tmux).
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"
#include "responder_fixture.hpp"

using namespace ecr;
using ecr::test::cli_path;
using ecr::test::run_command;
using ecr::test::temp_dir;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kDialog = R"J({"turns": [{"role": "user", "text": "Hi! I loved The Matrix (1999). Anything like it?"}]})J";

std::vector<json> json_lines(const std::string& output) {
  std::vector<json> out;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("{")) out.push_back(json::parse(line));
  return out;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The library's turn for `dialog`, as `ecr` computes it with default options (top 5 items).
Responder::Turn library_turn(const fs::path& bundle, const Dialog& dialog) {
  const Bundle b = Bundle::open(bundle);
  RecommendRequest request;
  request.top_k = 5;
  return Responder::converse(Recommender::load(b), Responder::load(b, ecr::test::gpt2_responder()), dialog, request);
}

}  // namespace

TEST_CASE("ecr respond and ecr chat --dialog print the library's turn as JSON") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const fs::path dir = temp_dir("chat_respond");
  std::ofstream(dir / "dialog.json") << kDialog;
  std::string out;
  REQUIRE(run_command(fmt::format("{} respond --generator gpt2 --bundle {} --dialog {}/dialog.json --json 2>&1", cli_path().string(),
                                  f.bundle.string(), dir.string()),
                      &out) == 0);
  const auto lines = json_lines(out);
  REQUIRE(lines.size() == 1);
  const json& j = lines[0];
  const Responder::Turn expected = library_turn(f.bundle, Dialog::parse(kDialog));
  CHECK(j["untrained"] == true);
  CHECK(j["reply"] == expected.response.text);
  CHECK(j["template"] == expected.response.template_text);
  CHECK(j["prompt_text"] == expected.response.prompt_text);
  CHECK(j["reply_ids"].get<std::vector<std::int32_t>>() == expected.response.reply_ids);
  REQUIRE(j["items"].size() == expected.recommendation.items.size());
  CHECK(j["items"][0]["id"] == expected.recommendation.items[0].id);
  CHECK(j["reply_items"][0]["id"] == expected.recommendation.items[0].id);

  std::string chat_out;
  REQUIRE(run_command(fmt::format("{} chat --generator gpt2 --bundle {} --dialog {}/dialog.json 2>&1", cli_path().string(),
                                  f.bundle.string(), dir.string()),
                      &chat_out) == 0);
  REQUIRE(json_lines(chat_out).size() == 1);
  CHECK(json_lines(chat_out)[0] == j);

  // Text mode streams the reply after the items, and says the weights are random.
  std::string text;
  REQUIRE(run_command(fmt::format("{} respond --generator gpt2 --bundle {} --dialog {}/dialog.json 2>&1", cli_path().string(),
                                  f.bundle.string(), dir.string()),
                      &text) == 0);
  CHECK(text.find("untrained") != std::string::npos);
  CHECK(text.find("reply: " + expected.response.text) != std::string::npos);
  CHECK(text.find("1. " + expected.recommendation.items[0].name) != std::string::npos);

  // Bad input is a clear error, not a crash.
  std::ofstream(dir / "bad.json") << R"J({"turns": []})J";
  std::string bad;
  CHECK(run_command(fmt::format("{} respond --generator gpt2 --bundle {} --dialog {}/bad.json 2>&1", cli_path().string(),
                                f.bundle.string(), dir.string()),
                    &bad) == 1);
  CHECK(bad.find("input error") != std::string::npos);
}

TEST_CASE("ecr chat on a pipe keeps the dialog turn after turn") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const fs::path dir = temp_dir("chat_pipe");
  std::ofstream(dir / "input.txt") << "I loved The Matrix (1999)\nWho is in it?\n/bogus\n/json\nthanks\n/reset\n"
                                      "hello again\n/quit\nnever read\n";
  std::string out;
  REQUIRE(run_command(fmt::format("{} chat --generator gpt2 --bundle {} --json < {}/input.txt 2>&1", cli_path().string(),
                                  f.bundle.string(), dir.string()),
                      &out) == 0);
  CHECK(out.find("untrained") != std::string::npos);
  // No prompts without a terminal; in text mode each user line is echoed after "you> " (JSON
  // mode, for the first two lines, echoes nothing).
  CHECK(count_of(out, "you> ") == 2);
  CHECK(out.find("you> thanks\n") != std::string::npos);
  CHECK(out.find("you> hello again\n") != std::string::npos);
  CHECK(out.find("you> I loved") == std::string::npos);
  CHECK(out.find("/reset starts a new dialog") != std::string::npos);
  CHECK(out.find("(JSON output off)") != std::string::npos);
  CHECK(out.find("(new dialog)") != std::string::npos);
  CHECK(count_of(out, "ecr> ") == 2);  // "thanks" and "hello again", after /json turned JSON off
  const auto turns = json_lines(out);
  REQUIRE(turns.size() == 2);

  // The library, given the same turns, says the same.
  Dialog dialog = Dialog::parse(R"J({"turns": [{"role": "user", "text": "I loved The Matrix (1999)"}]})J");
  const auto first = library_turn(f.bundle, dialog);
  CHECK(turns[0]["reply"] == first.response.text);
  Turn reply{Role::system, first.response.text, {}, {}};
  if (first.response.template_text.find("<movie>") != std::string::npos)
    for (const auto& item : first.response.items) reply.entities.push_back(item.id);
  dialog.add_turn(std::move(reply));
  dialog.add_turn({Role::user, "Who is in it?", {}, {}});
  const auto second = library_turn(f.bundle, dialog);
  CHECK(turns[1]["reply"] == second.response.text);
  CHECK(turns[1]["reply_ids"].get<std::vector<std::int32_t>>() == second.response.reply_ids);
  CHECK(out.find("never read") == std::string::npos);
}

TEST_CASE("ecr chat in a terminal (tmux): type a turn, see items and the reply, /quit") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  if (run_command("command -v tmux >/dev/null 2>&1") != 0) {
    MESSAGE("skipped: tmux is not installed (tools/install_deps.sh installs it)");
    return;
  }
  const auto f = test::responder_fixture();
  const std::string session = fmt::format("ecr_chat_test_{}", ::getpid());
  const std::string tmux = fmt::format("tmux -L {}", session);  // a server of its own
  const auto pane = [&] {
    std::string text;
    run_command(fmt::format("{} capture-pane -p -J -t {} -S -200", tmux, session), &text);
    return text;
  };
  const auto wait_for = [&](const std::function<bool(const std::string&)>& ready, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (ready(pane())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  };

  REQUIRE(run_command(fmt::format("{} new-session -d -s {} -x 200 -y 50 '{} chat --generator gpt2 --bundle {}; echo CHAT-EXITED $?; "
                                  "sleep 60'",
                                  tmux, session, cli_path().string(), f.bundle.string())) == 0);
  const bool prompted = wait_for([&](const std::string& s) { return count_of(s, "you> ") >= 1; }, 60);
  CHECK_MESSAGE(prompted, pane());
  if (prompted) {
    run_command(fmt::format("{} send-keys -t {} -l 'I loved The Matrix (1999)'", tmux, session));
    run_command(fmt::format("{} send-keys -t {} Enter", tmux, session));
    const bool answered = wait_for([&](const std::string& s) { return count_of(s, "you> ") >= 2; }, 120);
    const std::string screen = pane();
    CHECK_MESSAGE(answered, screen);
    CHECK(screen.find("untrained") != std::string::npos);
    CHECK(screen.find("emotions: ") != std::string::npos);
    CHECK(screen.find("   1. ") != std::string::npos);
    CHECK(screen.find("ecr> ") != std::string::npos);
    run_command(fmt::format("{} send-keys -t {} -l /quit", tmux, session));
    run_command(fmt::format("{} send-keys -t {} Enter", tmux, session));
    CHECK_MESSAGE(wait_for([](const std::string& s) { return s.find("CHAT-EXITED 0") != std::string::npos; }, 30),
                  pane());
  }
  run_command(fmt::format("{} kill-server", tmux));
}
