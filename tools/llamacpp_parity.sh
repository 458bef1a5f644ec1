#!/usr/bin/env bash
# Greedy decoding of one GGUF file by llama.cpp and by ecr, prompt by prompt: do the first N
# tokens agree?
#
#   tools/llamacpp_parity.sh MODEL.gguf [PROMPTS] [N]
#
# PROMPTS is a file of prompts, one a line: "ids 1 2 3" (token ids) or "text ..." (text, which
# llama.cpp's tokenizer turns into the ids both then continue; \n in it is a newline). Without
# it, 10 ChatML-wrapped movie-recommendation requests (the template SmolLM2 uses). N is 16 by
# default. Needs a llama.cpp source tree and build (LLAMACPP_SRC, default build/llamacpp-src;
# LLAMACPP_BUILD, default build/llamacpp) to compile tools/llamacpp_greedy.cpp against,
# and ecr's build (ECR_BUILD, default build/). Both decode with 2 threads (THREADS to change it).
# ECR_ARGS adds options to ecr generate (--exact).
# Prints one line per prompt and a summary; exits 1 when any prompt's tokens differ.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: tools/llamacpp_parity.sh MODEL.gguf [PROMPTS] [N]}
prompts=${2:-}
n=${3:-16}
src=${LLAMACPP_SRC:-build/llamacpp-src}
lbuild=${LLAMACPP_BUILD:-build/llamacpp}
ecr=${ECR_BUILD:-build}/src/ecr
threads=${THREADS:-2}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
greedy="$work/llamacpp_greedy"
c++ -std=c++17 -O2 -o "$greedy" tools/llamacpp_greedy.cpp -I"$src/include" -I"$src/ggml/include" \
  -L"$lbuild/bin" -Wl,-rpath,"$lbuild/bin" -lllama -lggml -lggml-base

if [ -z "$prompts" ]; then
  prompts="$work/prompts.txt"
  for q in "Can you recommend a good comedy movie?" "I loved The Matrix. What should I watch next?" \
           "What is a scary movie for Halloween?" "Suggest a movie for a family night with kids." \
           "I want a romantic film from the nineties." "Which science fiction movies are worth seeing?" \
           "My favourite actor is Tom Hanks. Any films you like with him?" \
           "I am in the mood for an action movie with car chases." "What is a good animated movie?" \
           "Recommend a thriller with a twist ending."; do
    printf 'text <|im_start|>user\\n%s<|im_end|>\\n<|im_start|>assistant\\n\n' "$q"
  done > "$prompts"
fi

agree=0 total=0
while IFS= read -r line; do
  [ -z "$line" ] && continue
  kind=${line%% *} rest=${line#* }
  if [ "$kind" = text ]; then
    out=$("$greedy" "$model" "$n" "$threads" text "$(printf '%b' "$rest")")
  else
    # shellcheck disable=SC2086
    out=$("$greedy" "$model" "$n" "$threads" ids $rest)
  fi
  ids=$(sed -n 1p <<<"$out") theirs=$(sed -n 2p <<<"$out")
  ours=$("$ecr" generate --gguf "$model" --prompt-ids "$ids" --max-tokens "$n" --threads "$threads" ${ECR_ARGS:-} --json |
         python3 -c 'import json, sys; print(*json.load(sys.stdin)["generated"])')
  total=$((total + 1))
  if [ "$ours" = "$theirs" ]; then
    agree=$((agree + 1)); verdict=agree
  else
    verdict=DIFFER
  fi
  echo "prompt $total ($(wc -w <<<"$ids") ids): $verdict"
  echo "  llama.cpp: $theirs"
  echo "  ecr:       $ours"
done < "$prompts"
echo "$agree of $total prompts: the first $n greedy tokens agree"
[ "$agree" -eq "$total" ]
