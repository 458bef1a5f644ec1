#!/usr/bin/env bash
# The main job, end to end on a fresh machine from this repository alone: install what the demo
# needs, build the `ecr` tool (build/src/ecr), check the shipped model (models/, trained on
# ReDial by tools/train), fetch the LLM that writes the replies (tools/fetch_llm.sh; without it,
# or without network, ECR's GPT-2 generator writes them) and hold a short scripted chat: each
# user line is shown, then the emotions read from it, the movies ranked and the reply.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh --runtime
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DECR_WITH_CUDA=OFF >/dev/null
cmake --build build -j"$(nproc)" --target ecr_cli

bundle=models/ecr-redial-small.ecr
echo "== the LLM for the replies (SmolLM2-135M-Instruct, tools/fetch_llm.sh)"
tools/fetch_llm.sh || echo "   (not fetched: the replies come from ECR's GPT-2 generator)"
echo "== the shipped model ($bundle, see models/README.md): ecr inspect --verify"
build/src/ecr inspect "$bundle" --verify | tail -n 1
echo "== ecr chat: a scripted dialog"
echo "   (each turn: the user's line, the emotions read from it, the top 5 movies with their scores"
echo "   -- the dot product of the dialog's state with the movie's embedding, higher is better,"
echo "   comparable only within one list, docs/math.md section 5 -- and the streamed reply)"
questions=(
  "Hi! I love horror movies like The Shining. Any suggestions?"
  "Scary! I also liked Halloween (1978). Something more recent?"
  "Thanks! Could you also suggest a funny comedy for the weekend?"
)
# One chat for the whole dialog; on a pipe it echoes each line after "you> " before its answer.
printf '%s\n' "${questions[@]}" | build/src/ecr chat --top-k 5 | grep -v '^ecr chat: '  # the greeting lists slash commands
