"""The reference side of tools/gpu_check.sh, and the table it writes.

Runs on the lent GPU machine, on the same card as benchmarks/bench_cuda:
  * HuggingFace transformers GPT2LMHeadModel.generate, greedy, batch 1, a random 12 x 768 config
    (vocab 50257, 1024 positions), the same prompt and new-token counts as bench_cuda, fp32 (TF32
    off, as ecr's exact GEMMs) and fp16; new tokens / wall time of generate(), prefill included;
  * torch-geometric RGCNConv(384, 384, num_relations=25, num_bases=8, aggr="mean") on a random
    graph of the same shape as bench_cuda's (31,162 nodes, the same edge count), fp32.
Then it renders bench_cuda's JSON, these numbers and the ctest summary as one markdown table.

transformers and torch_geometric are imported only here, on the GPU machine, for the comparison;
a missing one turns its rows into "not installed". The engine's tools never import them.
"""
import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time


def hf_generate(new_tokens, prompt_tokens, reps, dtype_name):
    import torch
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as e:
        return {"error": f"transformers not installed ({e})"}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024)
    model = GPT2LMHeadModel(config).eval().cuda()
    if dtype_name == "fp16":
        model = model.half()
    ids = torch.randint(0, 50000, (1, prompt_tokens), device="cuda")
    mask = torch.ones_like(ids)
    rates = []
    with torch.inference_mode():
        for rep in range(reps + 1):  # rep 0 warms up
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 do_sample=False, num_beams=1, pad_token_id=0, use_cache=True)
            torch.cuda.synchronize()
            elapsed = time.perf_counter() - t0
            assert out.shape[1] == prompt_tokens + new_tokens, out.shape
            if rep:
                rates.append(new_tokens / elapsed)
    import transformers
    return {"tokens_per_s": statistics.median(rates), "version": transformers.__version__}


def pyg_rgcn(nodes, edges, relations, bases, dim, reps):
    import torch
    try:
        import torch_geometric
        from torch_geometric.nn import RGCNConv
    except ImportError as e:
        return {"error": f"torch_geometric not installed ({e})"}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    conv = RGCNConv(dim, dim, num_relations=relations, num_bases=bases, aggr="mean").cuda().eval()
    x = torch.rand(nodes, dim, device="cuda") * 2 - 1
    edge_index = torch.randint(0, nodes, (2, edges), device="cuda")
    edge_type = torch.randint(0, relations, (edges,), device="cuda")
    times = []
    with torch.inference_mode():
        for rep in range(reps + 1):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            conv(x, edge_index, edge_type)
            torch.cuda.synchronize()
            if rep:
                times.append((time.perf_counter() - t0) * 1e3)
    return {"ms": statistics.median(times), "version": torch_geometric.__version__}


def fmt(value, spec, unit=""):
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def render(ecr, hf, pyg, ctest, torch_version):
    lines = ["# GPU results", ""]
    dev = ecr.get("device", {}) if ecr else {}
    lines.append(f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    if dev:
        lines.append(f"- device: {dev.get('name')} (compute capability {dev.get('compute_capability')}, "
                     f"{dev.get('multiprocessors')} SMs, {dev.get('memory_gib', 0):.0f} GiB)")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
        lines.append(f"- source: {commit or 'unknown'}{' + uncommitted changes' if dirty else ''}")
    except OSError:
        pass
    lines.append(f"- torch {torch_version}; transformers {hf.get('fp32', {}).get('version', 'n/a')}; "
                 f"torch_geometric {pyg.get('version', 'n/a')}")
    lines += ["", "## Correctness: `ctest -R cuda`", "", "```", (ctest or "not run").strip(), "```", ""]
    lines += ["## Throughput (same GPU, same shapes)", "",
              "| measurement | ecr CUDA backend | reference | ecr / reference |", "|---|---|---|---|"]
    if not ecr:
        lines.append("| bench_cuda | not run | | |")
    else:
        copy = ecr.get("memcpy_d2d_gbps")
        for g in ecr.get("gpt2_decode", []):
            ref = hf.get("fp32" if g["storage"] == "f32" else "fp16", {})
            rate = ref.get("tokens_per_s")
            ratio = f"{g['tokens_per_s'] / rate:.2f}x" if rate else ""
            ref_text = fmt(rate, ".0f", " tok/s") if rate else ref.get("error", "n/a")
            lines.append(f"| GPT-2 12x768 greedy decode, batch 1, {g['storage']} ({g['math']}), "
                         f"{g['prompt']} + {g['new_tokens']} tokens | {g['tokens_per_s']:.0f} tok/s "
                         f"(steady {g['steady_tokens_per_s']:.0f}) | HF generate "
                         f"{'fp32, TF32 off' if g['storage'] == 'f32' else 'fp16'}: {ref_text} | {ratio} |")
        for a in ecr.get("attention_decode", []):
            lines.append(f"| attention decode kernel, {a['dtype']}, batch {a['batch']}, {a['heads']} heads x "
                         f"{a['head_dim']}, {a['keys']} keys | {a['gbps']:.0f} GB/s ({a['us']:.1f} us) | "
                         f"cudaMemcpy D2D {fmt(copy, '.0f', ' GB/s')} | {a['gbps'] / copy:.0%} |")
        for r in ecr.get("rgcn", []):
            ref = ""
            ratio = ""
            if r["storage"] == "f32":
                ref = f"PyG RGCNConv fp32: {fmt(pyg.get('ms'), '.2f', ' ms')}" if "ms" in pyg else pyg.get("error", "n/a")
                if "ms" in pyg:
                    ratio = f"{pyg['ms'] / r['ms']:.2f}x faster" if r["ms"] < pyg["ms"] else f"{r['ms'] / pyg['ms']:.2f}x slower"
            lines.append(f"| R-GCN encode, {r['nodes']} nodes, {r['edges']} edges, R {r['relations']}, "
                         f"B {r['bases']}, d {r['dim']}, {r['storage']} ({r['math']}) | {r['ms']:.2f} ms | {ref} | {ratio} |")
            if "cpu_ms" in r:
                lines.append(f"| R-GCN encode, same graph, ecr CPU EntityEncoder ({r['cpu_threads']} threads) | "
                             f"{r['cpu_ms']:.1f} ms | | |")
    lines += ["", "Produced by tools/gpu_check.sh (see docs/gpu-results.md for how to read it).", ""]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ecr-json", help="bench_cuda --json output")
    p.add_argument("--ctest", help="file with the ctest -R cuda summary")
    p.add_argument("--out", required=True, help="markdown file to write")
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--edges", type=int, default=300000)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()

    ecr = None
    if a.ecr_json:
        try:
            with open(a.ecr_json) as f:
                ecr = json.load(f)
        except (OSError, ValueError) as e:
            print(f"gpu_compare: cannot read {a.ecr_json}: {e}", file=sys.stderr)
    ctest = None
    if a.ctest:
        try:
            with open(a.ctest) as f:
                ctest = f.read()
        except OSError:
            pass
    hf, pyg, torch_version = {}, {}, "not installed"
    try:
        import torch
        torch_version = torch.__version__
        if torch.cuda.is_available():
            for name in ("fp32", "fp16"):
                try:
                    hf[name] = hf_generate(a.new_tokens, a.prompt_tokens, a.reps, name)
                except Exception as e:  # a failed reference is a row, not a lost table
                    hf[name] = {"error": f"failed: {type(e).__name__}: {e}"}
            try:
                pyg = pyg_rgcn(31162, a.edges, 25, 8, 384, 10)
            except Exception as e:
                pyg = {"error": f"failed: {type(e).__name__}: {e}"}
        else:
            hf = {"fp32": {"error": "torch sees no GPU"}, "fp16": {"error": "torch sees no GPU"}}
            pyg = {"error": "torch sees no GPU"}
    except ImportError:
        hf = {"fp32": {"error": "torch not installed"}, "fp16": {"error": "torch not installed"}}
        pyg = {"error": "torch not installed"}
    text = render(ecr, hf, pyg, ctest, torch_version)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
