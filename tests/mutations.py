"""Mutation check: does the suite catch deliberate breakages of the lab's own code? Run by hand
(not collected by pytest: the name does not start with test_):

    python tests/mutations.py                # every mutation, prints caught / SURVIVED per line
    python tests/mutations.py --list         # the mutations and the tests that should catch them
    python tests/mutations.py -k gradcam     # only mutations whose name contains 'gradcam'

Each mutation replaces one exact snippet of one file in a temporary copy of the project (the snippet
must occur exactly once, so a refactor that moves the code makes the mutation 'stale', not silently
harmless), runs only the test files (or test ids) named for it against the copy, and restores the
file. The exit status is 0 only when every mutation was caught.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Mutation:
    name: str
    file: str  # relative to the project root
    old: str
    new: str
    tests: list[str]  # pytest arguments: files or node ids


O = "tests/test_oracles.py"
M = [
    # -- the four breakages the suite missed before (issue 13)
    Mutation("train: resume reloads neither weights nor optimizer", "lab/training/train.py",
             '        module.load_state_dict(ckpt["state_dict"])\n        optimizer.load_state_dict(ckpt["optimizer"])\n',
             "", [f"{O}::test_resumed_training_equals_an_uninterrupted_run"]),
    Mutation("train: one-directional InfoNCE", "lab/training/train.py",
             "return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2",
             "return F.cross_entropy(logits, target)", [O + "::test_clip_loss_on_random_unpaired_features_equals_the_two_cross_entropies"] ),
    Mutation("gradcam++: no alpha weighting", "lab/studies/attribution.py",
             "weights = (alpha * F.relu(g)).sum((2, 3), keepdim=True)",
             "weights = F.relu(g).sum((2, 3), keepdim=True)", [O + "::test_gradcam_plus_plus_equals_the_papers_formula"]),
    Mutation("text relevance: inverted and reversed", "lab/studies/attribution.py",
             "rel = R[eot, 1:eot].detach().cpu()", "rel = -R[eot, 1:eot].flip(0).detach().cpu()",
             [O + "::test_text_relevance_by_hand_on_a_one_block_text_transformer"]),
    # -- one per oracle
    Mutation("train: resume reloads the weights but not the optimizer", "lab/training/train.py",
             '        optimizer.load_state_dict(ckpt["optimizer"])\n', "",
             [f"{O}::test_resumed_training_equals_an_uninterrupted_run"]),
    Mutation("train: resumed batches restart from the first one", "lab/training/train.py",
             "cfg.batch_size, start * cfg.accum)", "cfg.batch_size, 0)",
             [f"{O}::test_resumed_training_equals_an_uninterrupted_run"]),
    Mutation("train: warm-up off by one step", "lab/training/train.py",
             "return cfg.lr * (step + 1) / cfg.warmup", "return cfg.lr * step / cfg.warmup",
             [O + "::test_lr_schedule_end_points"]),
    Mutation("train: cosine decays to lr/2 instead of 0", "lab/training/train.py",
             "return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))", "return cfg.lr * 0.5 * (1 + math.cos(math.pi * t / 2))",
             [O + "::test_lr_schedule_end_points"]),
    Mutation("text relevance: reversed only", "lab/studies/attribution.py",
             "rel = R[eot, 1:eot].detach().cpu()", "rel = R[eot, 1:eot].flip(0).detach().cpu()",
             [O + "::test_text_relevance_by_hand_on_a_one_block_text_transformer"]),
    Mutation("text relevance: read at the start token's column", "lab/studies/attribution.py",
             "rel = R[eot, 1:eot].detach().cpu()", "rel = R[1:eot, eot].detach().cpu()",
             [O + "::test_text_relevance_by_hand_on_a_one_block_text_transformer"]),
    Mutation("relevance: no clamp of negative grad * A", "lab/studies/attribution.py",
             "cam = (g * A).clamp(min=0).mean(1)", "cam = (g * A).mean(1)",
             [O + "::test_relevance_equals_an_independent_rule_on_the_whole_graph"]),
    Mutation("relevance: only the last captured block counts", "lab/studies/attribution.py",
             "R = relevance_from_attention(attentions, grads, 0)", "R = relevance_from_attention(attentions, grads, -1)",
             [O + "::test_relevance_equals_an_independent_rule_on_the_whole_graph"]),
    Mutation("integrated gradients: n_steps ignored", "lab/studies/attribution.py",
             'n_steps=kw.get("n_steps", 24)', "n_steps=24",
             [O + "::test_integrated_gradients_and_smoothgrad_equal_captum"]),
    Mutation("smoothgrad: squared (smoothgrad_sq)", "lab/studies/attribution.py",
             'nt_type="smoothgrad"', 'nt_type="smoothgrad_sq"',
             [O + "::test_integrated_gradients_and_smoothgrad_equal_captum"]),
    Mutation("smoothgrad: stdevs ignored", "lab/studies/attribution.py",
             'stdevs=kw.get("stdevs", 0.3)', "stdevs=0.3",
             [O + "::test_integrated_gradients_and_smoothgrad_equal_captum"]),
    Mutation("deletion/insertion: least relevant pixels first", "lab/studies/attribution_metrics.py",
             "np.argsort(-maps[s:s + b].reshape(b, -1)", "np.argsort(maps[s:s + b].reshape(b, -1)",
             [O + "::test_deletion_and_insertion_on_hand_worked_cases"]),
    Mutation("deletion/insertion: insertion starts from the original", "lab/studies/attribution_metrics.py",
             "(curves_ins, torch.where(top, pixels, blurred))", "(curves_ins, torch.where(top, blurred, pixels))",
             [O + "::test_deletion_and_insertion_on_hand_worked_cases"]),
    Mutation("deletion/insertion: AUC without the trapezoid's halves", "lab/studies/attribution_metrics.py",
             "return ((curve[:, 1:] + curve[:, :-1]) / 2).mean(1)", "return curve.mean(1)",
             [O + "::test_deletion_and_insertion_on_hand_worked_cases"]),
    # -- loading and precision
    Mutation("precision: fp16 accepted on the CPU", "lab/core/models.py",
             'if precision == "fp16" and kind == "cpu":', "if False:", ["tests/core/test_precision.py"]),
    Mutation("precision: fingerprint ignores the precision", "lab/core/models.py",
             '"tokenizer": identity["tokenizer"], "precision": identity["precision"]}', '"tokenizer": identity["tokenizer"]}',
             ["tests/core/test_precision.py"]),
    Mutation("precision: bf16 silently runs in fp32", "lab/core/_towers.py",
             '"bf16": torch.bfloat16}', '"bf16": None}', ["tests/core/test_precision.py"]),
    Mutation("infer_openai_config: text heads = width / 32", "lab/core/checkpoints.py",
             '"heads": max(1, text_width // 64)', '"heads": max(1, text_width // 32)', ["tests/core/test_architectures.py"]),
    Mutation("infer_openai_config: ResNet input size from a /16 grid", "lab/core/checkpoints.py",
             '"image_size": out_width * 32', '"image_size": out_width * 16', ["tests/core/test_architectures.py"]),
    Mutation("OpenAI files: text tokenized one token short", "lab/core/_build.py",
             "return oc.get_tokenizer(arch, context_length=ctx)", "return oc.get_tokenizer(arch, context_length=ctx - 1)",
             ["tests/core/test_loading.py::test_openai_files_load_as_released"]),
    # -- public functions that had no test
    Mutation("wilson_interval: centre off", "lab/studies/stats.py",
             "centre = (p + z * z / (2 * n))", "centre = (p + z * z / n)",
             ["tests/test_public_functions.py::test_wilson_interval_equals_scipy"]),
    Mutation("linear_probe: class subset taken by position", "lab/studies/robustness.py",
             "return scores[:, [trained.index(c) for c in wanted]]", "return scores[:, :len(wanted)]",
             ["tests/test_public_functions.py::test_linear_probe_equals_scikit_learn_and_restricts_classes_by_name"]),
    Mutation("linear_probe: λ chosen by the worst validation score", "lab/studies/linear_probe.py",
             "return max(scores, key=lambda i: (scores[i], i))", "return min(scores, key=lambda i: (scores[i], i))",
             ["tests/test_public_functions.py::test_linear_probe_equals_scikit_learn_and_restricts_classes_by_name",
              "tests/studies/test_linear_probe.py"]),
    Mutation("per_class_accuracy: failed images count as wrong", "lab/studies/robustness.py",
             'labels = np.where(topk[:, 0] >= 0, dataset.labels["label"].to_numpy(), -1)',
             'labels = dataset.labels["label"].to_numpy()',
             ["tests/test_public_functions.py::test_per_class_accuracy_by_hand"]),
    Mutation("worst_classes: smallest drops first", "lab/studies/robustness.py",
             'sort_values("drop", ascending=False)', 'sort_values("drop", ascending=True)',
             ["tests/test_public_functions.py::test_worst_classes_by_hand"]),
    Mutation("bootstrap_band: one-sided quantile", "lab/studies/stats.py",
             "q = (1 - level) / 2", "q = 1 - level",
             ["tests/test_public_functions.py::test_bootstrap_band_on_scattered_baselines_equals_a_direct_resampling"]),
    Mutation("ImageNetSketch: ignores the sketch/ folder", "lab/data/shifts.py",
             'WnidFolders(_inner(Path(root), "sketch")', "WnidFolders(Path(root)",
             ["tests/test_public_functions.py::test_imagenet_sketch_layout_with_or_without_the_sketch_folder"]),
    Mutation("ImageNetA: ImageNet-R's classes", "lab/data/shifts.py",
             "wnids = imagenet_a_wnids()", "wnids = imagenet_r_wnids()",
             ["tests/test_public_functions.py::test_imagenet_a_layout_uses_its_200_classes"]),
    Mutation("classify_image: per-template scale 100, not the model's", "lab/studies/zeroshot.py",
             'per_t = softmax(model.logit_scale * np.einsum', "per_t = softmax(100 * np.einsum",
             ["tests/test_public_functions.py::test_classify_image_per_template_probabilities_by_hand"]),
    Mutation("classify_image: p(ensemble top) is each template's own top", "lab/studies/zeroshot.py",
             '"p(ensemble top)": per_t[:, top]', '"p(ensemble top)": per_t.max(1)',
             ["tests/test_public_functions.py::test_classify_image_per_template_probabilities_by_hand"]),
    Mutation("report: global parameters override a notebook's own", "lab/report.py",
             "chosen.update(per_notebook.get(nb.stem, {}))", "chosen = {**per_notebook.get(nb.stem, {}), **chosen}",
             ["tests/test_public_functions.py::test_report_parameters_from_the_command_line_and_per_notebook"]),
    Mutation("cli: the config's parameters override -p", "lab/cli.py",
             'parameters = {**(config.get("parameters") or {}), **dict(args.parameter or [])}',
             'parameters = {**dict(args.parameter or []), **(config.get("parameters") or {})}',
             ["tests/test_public_functions.py::test_report_parameters_from_the_command_line_and_per_notebook"]),
    Mutation("cli: .txt paths relative to the working directory", "lab/cli.py",
             "base = p.parent", "base = Path('.')",
             ["tests/test_public_functions.py::test_cli_path_lists_are_relative_to_the_list_and_strict_stops"]),
    Mutation("cli: --strict ignored for image files", "lab/cli.py",
             "emb, failures = model.encode_images(items, batch_size=args.batch_size, strict=args.strict,",
             "emb, failures = model.encode_images(items, batch_size=args.batch_size, strict=False,",
             ["tests/test_public_functions.py::test_cli_path_lists_are_relative_to_the_list_and_strict_stops"]),
    Mutation("cli: models --available ignored", "lab/cli.py",
             "list_models(available=args.available)", "list_models()",
             ["tests/test_public_functions.py::test_cli_models_available_lists_what_loads_offline"]),
    # -- checks that were loose or self-referential
    Mutation("cli: .npy rows out of step with index.csv", "lab/cli.py",
             "np.save(out, emb)", "np.save(out, emb[::-1])",
             ["tests/test_cli.py::test_encode_folder_then_cache_info_and_clear",
              "tests/test_public_functions.py::test_cli_encodes_world_images_row_by_row"]),
    Mutation("cache: file digest never memoized", "lab/core/cache.py",
             "        if path in known:\n            return known[path]\n", "",
             ["tests/core/test_loading.py::test_checkpoint_digest_is_memoized"]),
    Mutation("gradcam: negative evidence kept (no ReLU)", "lab/studies/attribution.py",
             "a = cam.attribute(pixels, target=t, relu_attributions=True)",
             "a = cam.attribute(pixels, target=t, relu_attributions=False)",
             ["tests/studies/test_attribution.py::test_gradcam_agrees_with_an_independent_implementation"]),
    Mutation("prompt engineering: greedy reports validation top-1 as held-out", "lab/studies/prompt_engineering.py",
             "test_top1, test_top5 = _topk(xt, normalize(total), yt)", "test_top1, test_top5 = _topk(xv, normalize(total), yv)",
             ["tests/studies/test_zeroshot.py::test_selection_happens_on_val_and_is_reported_on_test"]),
]


def copy_project(dest: Path):
    skip = shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", ".pytest_cache", "*.pyc", "node_modules")
    shutil.copytree(ROOT, dest, ignore=skip, dirs_exist_ok=True)


def run_one(m: Mutation, copy: Path, timeout: int) -> tuple[str, float, str]:
    target = copy / m.file
    original = target.read_text()
    count = original.count(m.old)
    if count != 1:
        return f"STALE (snippet found {count} times)", 0.0, ""
    target.write_text(original.replace(m.old, m.new))
    env = {**os.environ, "PYTHONPATH": str(copy), "LAB_CACHE_DIR": str(copy / ".mutation-cache"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *m.tests],
                              cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        rc, tail = proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()
    except subprocess.TimeoutExpired:
        rc, tail = -1, ["timeout"]
    finally:
        target.write_text(original)
        shutil.rmtree(copy / ".mutation-cache", ignore_errors=True)
    seconds = time.perf_counter() - start
    if rc == 1:
        failed = [line for line in tail if line.startswith("FAILED")]
        return "caught", seconds, failed[0] if failed else tail[-1]
    if rc == 0:
        return "SURVIVED", seconds, tail[-1] if tail else ""
    return f"ERROR (pytest exit {rc})", seconds, tail[-1] if tail else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", default="", help="only mutations whose name contains one of these (comma-separated)")
    ap.add_argument("--list", action="store_true", help="list the mutations and their tests, run nothing")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per mutation")
    args = ap.parse_args(argv)
    wanted = [k.strip().lower() for k in args.k.split(",")]
    chosen = [m for m in M if any(k in m.name.lower() for k in wanted)]
    if args.list:
        for m in chosen:
            print(f"{m.name}\n    {m.file}: {m.old.strip()[:70]!r} -> {m.new.strip()[:70]!r}\n    tests: {' '.join(m.tests)}")
        return 0
    with tempfile.TemporaryDirectory(prefix="lab-mutations-") as tmp:
        copy = Path(tmp) / "project"
        copy_project(copy)
        where = subprocess.run([sys.executable, "-c", "import lab; print(lab.__file__)"], cwd=copy, text=True,
                               capture_output=True, env={**os.environ, "PYTHONPATH": str(copy)}).stdout.strip()
        if not where.startswith(str(copy)):
            print(f"the copy's lab is not the one imported ({where}); is lab installed non-editable?")
            return 2
        results = []
        for m in chosen:
            verdict, seconds, detail = run_one(m, copy, args.timeout)
            results.append(verdict)
            print(f"{verdict:<10} {seconds:6.1f}s  {m.name}  [{detail[:110]}]", flush=True)
    caught = sum(v == "caught" for v in results)
    print(f"\n{caught} of {len(results)} mutations caught")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
