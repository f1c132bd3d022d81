"""Weights from outside: safetensors files, torch state dicts, Hugging Face model folders and udlc runs, renamed
to a network's tensors by a mapping of YAML rules (data, not code).

    from udlc.weights import open_source, read_names, load_tensors, Mapping, apply, load_into

    names = read_names("gpt2/")                      # {name: (shape, dtype)} from headers; None for a pickle
    plan = apply(Mapping.load("gpt2.map.yaml"), names)   # which file tensor becomes which network tensor
    report = load_into({"model": module}, "gpt2/", Mapping.load("gpt2.map.yaml"))
    print(report.text)                               # loaded …, new …, unused in the file …

`read_names`, `apply`, `Mapping` and `check_init` import no torch (`udlc check` uses them); `load_tensors`,
`load_into` and `load_init` import it when they run."""

from udlc.weights.check import check_init, find_map, pick_network, resolve, run_names
from udlc.weights.files import Names, Source, load_tensors, open_source, read_names, safetensors_header, sha256
from udlc.weights.load import LoadReport, load_init, load_into
from udlc.weights.mapping import Assignment, Mapping, Plan, Rule, apply, check_targets

__all__ = ["Assignment", "LoadReport", "Mapping", "Names", "Plan", "Rule", "Source", "apply", "check_init",
           "check_targets", "find_map", "load_init", "load_into", "load_tensors", "open_source", "pick_network",
           "read_names", "resolve", "run_names", "safetensors_header", "sha256"]
