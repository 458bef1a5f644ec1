// `ecr forward`: one forward pass of a bundle's GPT-2 or RoBERTa component over given token ids,
// written as .npy, so that any layer of the engine can be compared with numpy or torch.
#include <fmt/format.h>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/models/gpt2.hpp"
#include "ecr/models/roberta.hpp"
#include "engine_io.hpp"

namespace ecr::cli {

int forward(const Argv& argv) {
  Args args("ecr forward --bundle B --component NAME --ids 1,2,3 [--prefix P.npy] --out FILE.npy [--logits]",
            "Runs a GPT-2 or RoBERTa component over token ids and writes the final hidden states (T, D), or with "
            "--logits the LM-head logits (T, V) (classifier components: the scores of the last token (1, labels)).");
  args.option("bundle", "FILE", "the bundle")
      .option("component", "NAME", "a gpt2, gpt2_classifier or roberta component of the bundle")
      .option("ids", "IDS", "comma-separated token ids")
      .option("prefix", "FILE", "GPT-2 prefix prompt: f32 .npy (S, n_layer * 2 * n_embd)")
      .option("out", "FILE", "the .npy file to write")
      .flag("logits", "write logits instead of hidden states (GPT-2)")
      .option("threads", "N", kThreadsHelp, "0");
  if (!args.parse(argv)) return 0;
  const Bundle bundle = Bundle::open(args.get("bundle"));
  const std::string component = args.get("component");
  const std::vector<std::int32_t> ids = parse_ids(args.get("ids"), "ids");
  auto pool = std::make_shared<ThreadPool>(thread_count(args));
  const Component c = read_component(bundle, component);

  Tensor out;
  if (c.type == "roberta") {
    if (args.has("prefix") || args.get_flag("logits"))
      fail<InputError>("component '{}' is a RoBERTa encoder: it takes no --prefix and has no --logits", component);
    out = RobertaModel::load(c, pool).encode(ids);
  } else {
    const Gpt2Model model = Gpt2Model::load(c, pool);
    const Tensor prefix = args.has("prefix") ? read_npy_f32(args.get("prefix")) : Tensor();
    if (model.has_classifier() && args.get_flag("logits")) {
      if (prefix.defined()) fail<InputError>("a classifier takes no --prefix");
      out = model.classify(std::vector<std::vector<std::int32_t>>{ids});
    } else {
      const Gpt2Output result = model.forward(ids, prefix, args.get_flag("logits") ? Logits::all : Logits::none);
      out = args.get_flag("logits") ? result.logits : result.hidden;
    }
  }
  write_npy_f32(args.get("out"), out);
  return 0;
}

}  // namespace ecr::cli
