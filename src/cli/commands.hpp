// The subcommands of the `ecr` tool. Each lives in its own file and takes the arguments after
// its name; it returns the process exit code and throws ecr::Error for anything the user got
// wrong (main prints it and exits 1).
#pragma once

#include <string>
#include <vector>

namespace ecr::cli {

using Argv = std::vector<std::string>;

int inspect(const Argv& args);
int link(const Argv& args);
int tokenize(const Argv& args);
int forward(const Argv& args);
int generate(const Argv& args);
int recommend(const Argv& args);
int eval(const Argv& args);
int perplexity(const Argv& args);
int respond(const Argv& args);
int chat(const Argv& args);
int serve(const Argv& args);
int judge(const Argv& args);

}  // namespace ecr::cli
