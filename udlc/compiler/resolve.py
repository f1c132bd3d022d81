"""resolve: the model section's layer entries → a Graph.

Blocks are expanded with their parameters substituted, repeats unrolled, combinators turned into
plain nodes (a residual is its body plus an `add`), names made unique. Each node's shape, parameter
count and FLOPs are inferred as it is added: a residual's projection is only added when the shapes
around it differ, so shapes cannot wait for a later pass. Errors are collected, not raised one by one:
an entry that fails leaves its successors' shapes unknown, and the rest of the file is still checked.
"""

from __future__ import annotations

import keyword

from typing import Any

from udlc.compiler import memo
from udlc.compiler.blocks import Scope, call_block, merge_uses, substitute, written_key
from udlc.compiler.combinators import COMBINATORS, Combinator
from udlc.compiler.graph import Graph, Node
from udlc.compiler.infer import infer
from udlc.compiler.library import library_blocks
from udlc.errors import SpecError, SpecErrors, did_you_mean, one_of, show
from udlc.layers import REGISTRY, ShapeError
from udlc.layers.registry import NODE_KEYS, fmt
from udlc.spec.loader import Document, Path_, dotted
from udlc.spec.model import INITS, ModelSpec
from udlc.spec.validate import validate_model

# Node ids become torch submodule names, so they may not shadow nn.Module's own attributes.
RESERVED_IDS = frozenset(
    "T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double "
    "dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule "
    "half ipu load_state_dict modules mtia named_buffers named_children named_modules named_parameters "
    "parameters register_backward_hook register_buffer register_forward_hook register_forward_pre_hook "
    "register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook "
    "register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook "
    "register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory smart_apply "
    "state_dict to to_empty to_folder train training type xpu zero_grad code graph graph_module recompile "
    "print_readable delete_submodule delete_all_unused_submodules add_submodule meta self".split()
)


def resolve(model: ModelSpec, doc: Document, name: str = "model", base: Path_ = ("model",)) -> Graph:
    """The network `name`, written at `base` in the spec (`model`, or `models.<name>`), as a Graph."""
    return Resolver(model, doc, name, base).run()


class Resolver:
    def __init__(self, model: ModelSpec, doc: Document, name: str, base: Path_ = ("model",)):
        self.model, self.doc, self.base = model, doc, base
        types = model.input_types()
        self.graph = Graph(name, {k: shape for k, (shape, _) in types.items()},
                           {k: dtype for k, (_, dtype) in types.items()})
        self.errors: list[tuple[SpecError, tuple[str, int] | None]] = []  # each with the block use it came from
        self.taken: set[str] = set(self.graph.inputs)

    def run(self) -> Graph:
        base = self.base
        for name in self.graph.inputs:
            if name in RESERVED_IDS or keyword.iskeyword(name):
                self.error(f"input name '{name}' is reserved", base + ("inputs", name), hint="choose another name")
        for name in self.model.blocks:
            if name in REGISTRY or name in COMBINATORS:
                self.error(f"block '{name}' has the name of a built-in layer", base + ("blocks", name), key=True,
                           hint="rename the block")
        top = Scope("", {n: n for n in self.graph.inputs}, dict(self.model.params))
        before = len(self.errors)
        layers = substitute(self, self.model.layers, base + ("layers",), top)  # model.params' `$name`s
        if len(self.errors) > before:  # an unknown `$name`: checking the layers would only repeat it
            raise SpecErrors(merge_uses(self.errors))
        last = self.sequence(layers, base + ("layers",), next(iter(self.graph.inputs)), top)
        if self.model.outputs:
            for i, out in enumerate(self.model.outputs):
                if out.partition(".")[0] not in top.names:
                    self.error(f"unknown output '{out}'", base + ("outputs", i),
                               hint=did_you_mean(out, top.names) or "give a layer `id: ...` and name it here")
                    continue
                ref = self.ref(out, base + ("outputs", i), top)
                if ref is not None and self.one_value(ref, base + ("outputs", i), top):
                    self.graph.outputs.append(ref)
        elif last is not None:
            self.graph.outputs.append(last)
        if self.model.stochastic_depth == "linear":
            self.linear_depth()
        if self.errors:
            raise SpecErrors(merge_uses(self.errors))
        return self.graph

    def linear_depth(self) -> None:
        """Stochastic depth rising linearly with depth: the k-th of K drop_path nodes drops p·k/(K-1)."""
        nodes = [node for node in self.graph.nodes.values() if node.op == "drop_path"]
        for k, node in enumerate(nodes):
            node.config = node.config.model_copy(update={"p": node.config.p * k / max(len(nodes) - 1, 1)})

    # ---- messages -------------------------------------------------------------------------------

    def doc_of(self, scope: Scope | None) -> Document:
        """The document a scope's entries are written in: the spec, or a library block's file."""
        return scope.doc if scope is not None and scope.doc is not None else self.doc

    def error(self, message: str, path: Path_, *, hint: str | None = None, key: bool = False, scope: Scope | None = None):
        span = self.doc_of(scope).span(path, key=key)
        self.report(SpecError(message, path=dotted(path), span=span, hint=hint), scope)

    def report(self, err: SpecError, scope: Scope | None) -> None:
        self.errors.append((err, scope.use if scope else None))

    # ---- sequences and entries ------------------------------------------------------------------

    def sequence(self, entries: Any, path: Path_, prev: str | None, scope: Scope) -> str | None:
        if not isinstance(entries, list):
            self.error("must be a list of layers", path, scope=scope)
            return None
        for i, entry in enumerate(entries):
            prev = self.entry(entry, path + (i,), prev, scope)
        return prev

    def entry(self, raw: Any, path: Path_, prev: str | None, scope: Scope) -> str | None:
        if isinstance(raw, str):
            name, args = raw, None
        elif isinstance(raw, dict) and len(raw) == 1:
            (name, args), = raw.items()
        else:
            misplaced = isinstance(raw, dict) and set(raw) & set(NODE_KEYS)
            hint = (f"put `{sorted(misplaced)[0]}` inside the layer's arguments, e.g. `conv2d: {{..., id: c1}}`"
                    if misplaced else "write `linear: 10`, `relu`, or `conv2d: {out_channels: 32, kernel_size: 3}`")
            self.error("a layer is a one-key mapping or a bare name", path, hint=hint, scope=scope)
            return None
        path = path + (written_key(raw, name),)  # `$feed_forward` where a parameter named the layer
        meta, args = self.node_keys(args, path, scope)
        if meta is None:
            return None
        if name in COMBINATORS:
            return self.combinator(COMBINATORS[name], args, meta, path, prev, scope)
        if name in REGISTRY:  # before blocks: a block may not take a layer's name (reported in run)
            return self.layer(name, args, meta, path, prev, scope)
        if name in self.model.blocks or name in library_blocks():
            return call_block(self, name, args, meta, path, prev, scope)
        known = [*REGISTRY, *self.model.blocks, *COMBINATORS, *library_blocks()]
        self.error(f"unknown layer '{name}'", path, key=True, scope=scope,
                   hint=did_you_mean(name, known) or "see `udlc schema` for the layer types")
        return None

    def node_keys(self, args: Any, path: Path_, scope: Scope) -> tuple[dict | None, Any]:
        """Split the keys every node accepts (id, from, repeat, init) from the layer's own arguments."""
        if not isinstance(args, dict):
            return {}, args
        meta = {k: args[k] for k in NODE_KEYS if k in args}
        args = {k: v for k, v in args.items() if k not in NODE_KEYS}
        ok = True
        if "id" in meta:
            node_id = meta["id"]
            if not isinstance(node_id, str) or not node_id.isidentifier() or node_id.startswith("_"):
                self.error(f"id must be a name of letters, digits and _ (got {show(node_id)})", path + ("id",),
                           scope=scope)
                ok = False
            elif node_id in RESERVED_IDS or keyword.iskeyword(node_id):
                self.error(f"id '{node_id}' is reserved", path + ("id",), scope=scope,
                           hint="choose another name (ids name torch submodules: no Python keyword, no nn.Module "
                                "attribute)")
                ok = False
            elif node_id in scope.names:
                self.error(f"id '{node_id}' is already used", path + ("id",), hint="ids must be unique", scope=scope)
                ok = False
        if "from" in meta:
            sources = meta["from"] if isinstance(meta["from"], list) else [meta["from"]]
            if not sources:
                self.error("`from` names no node", path + ("from",), scope=scope,
                           hint="give one or more ids, or drop `from` to take the previous layer")
                ok = False
            refs = []
            for i, src in enumerate(sources):
                where = path + ("from",) + ((i,) if isinstance(meta["from"], list) else ())
                if not isinstance(src, str) or src.partition(".")[0] not in scope.names:
                    self.error(f"unknown node '{src}'", where, scope=scope,
                               hint=did_you_mean(src, scope.names) or one_of(scope.names))
                    ok = False
                    continue
                refs.append(self.ref(src, where, scope))
            ok = ok and None not in refs
            meta["from"] = refs
        if "repeat" in meta and (type(meta["repeat"]) is not int or not 1 <= meta["repeat"] <= 1000):
            self.error(f"repeat must be a whole number from 1 to 1000 (got {show(meta['repeat'])})", path + ("repeat",),
                       scope=scope)
            ok = False
        if "init" in meta and meta["init"] not in INITS:
            self.error(f"unknown init '{meta['init']}'", path + ("init",), scope=scope,
                       hint=did_you_mean(meta["init"], INITS) or one_of(INITS))
            ok = False
        return (meta if ok else None), args

    def ref(self, src: str, where: Path_, scope: Scope) -> str | None:
        """The graph reference for `id` or `id.output` as written in `from` or `outputs`."""
        node_id, dot, out = src.partition(".")
        target = scope.names[node_id]
        if not dot:
            return target
        node = self.graph.nodes.get(target)
        if node is not None and not node.shapes:
            return None  # its own error was reported; its outputs are unknown
        names = node.out_names if node is not None else ()
        if out not in names:
            hint = (f"its outputs are {', '.join(names)}" if names else f"it has one output: write `{node_id}`")
            self.error(f"'{node_id}' has no output '{out}'", where, scope=scope,
                       hint=(did_you_mean(out, names) or hint) if names else hint)
            return None
        return f"{target}.{out}"

    def one_value(self, ref: str, where: Path_, scope: Scope, key: bool = False) -> bool:
        """False (and an error) when `ref` names a node with several outputs without picking one."""
        node = self.graph.nodes.get(ref)
        if node is None or not node.out_names:
            return True
        self.error(f"'{ref}' has {len(node.out_names)} outputs ({', '.join(node.out_names)}); pick one", where,
                   scope=scope, key=key, hint=f"e.g. `from: {ref}.{node.out_names[0]}`")
        return False

    def inputs(self, meta: dict, prev: str | None, scope: Scope) -> list[str | None]:
        return list(meta["from"]) if "from" in meta else [prev]

    def single_input(self, meta: dict, prev: str | None, path: Path_, scope: Scope) -> str | None:
        """The one input of a combinator or block call; `from` may name just one node here."""
        inputs = self.inputs(meta, prev, scope)
        if len(inputs) != 1:
            self.error(f"`from` names {len(inputs)} nodes, but '{path[-1]}' takes one input", path + ("from",),
                       scope=scope, hint="merge them first with `add` or `concat`")
            return None
        return inputs[0]

    def named(self, node: str | None, meta: dict, scope: Scope) -> str | None:
        if node is not None and "id" in meta:
            scope.names[meta["id"]] = node
        return node

    def fresh(self, base: str, scope: Scope, meta: dict | None = None) -> str:
        """A unique node name: the id when one is given, else `conv2d`, `conv2d_1`, …"""
        if meta and "id" in meta and scope.prefix + meta["id"] not in self.taken:
            name = scope.prefix + meta["id"]
        else:
            name, n = scope.prefix + base, 0
            while name in self.taken:
                n += 1
                name = f"{scope.prefix}{base}_{n}"
        self.taken.add(name)
        return name

    # ---- layers ---------------------------------------------------------------------------------

    def layer(self, op: str, args: Any, meta: dict, path: Path_, prev: str | None, scope: Scope) -> str | None:
        lt = REGISTRY[op]
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            if lt.main_arg is None:
                self.error(f"'{op}' takes no single value", path, scope=scope,
                           hint=f"write `{op}` alone, or `{op}: {{...}}` with named arguments")
                return None
            args = {lt.main_arg: args}
        cfg = self.config(lt.config, args, path, scope)
        if cfg is None:
            return None
        inputs = self.inputs(meta, prev, scope)
        if "tie" in lt.config.model_fields and cfg.tie is not None:  # (a getattr that misses is slow on pydantic)
            cfg = self.tied(cfg, inputs, path, scope)
            if cfg is None:
                return None
        if lt.arity is None and len(inputs) == 1 and "from" in meta:
            inputs = [prev] + inputs  # `add: {from: skip}` adds the skip to the previous output
        if lt.arity is None and len(inputs) < 2:
            self.error(f"'{op}' merges two or more inputs", path, scope=scope,
                       hint="name them with `from: [a, b]` (ids given with `id: ...`)")
            return None
        if lt.arity is not None and len(inputs) != lt.arity:
            self.error(f"'{op}' takes {lt.arity} input{'s' * (lt.arity != 1)}, `from` names {len(inputs)}", path,
                       scope=scope)
            return None
        node = None
        for _ in range(meta.get("repeat", 1)):
            node = self.add_node(op, cfg, inputs, path, scope, meta.get("init"), meta)
            inputs = [node]
        return self.named(node, meta, scope)

    def tied(self, cfg: Any, inputs: list[str | None], path: Path_, scope: Scope) -> Any:
        """A linear layer that shares an embedding's weights (`tie: emb`): its out_features is the vocabulary,
        and its input must be as wide as the embedding. An embedding that shares another's table takes its sizes.
        Lowering makes the two layers hold one tensor."""
        target = scope.names.get(cfg.tie)
        node = self.graph.nodes.get(target) if target else None
        where = path + ("tie",)
        if node is None or node.op != "embedding":
            self.error(f"tie names '{cfg.tie}', which is not the id of an embedding layer", where, scope=scope,
                       hint=did_you_mean(cfg.tie, scope.names) or "give the embedding `id: ...` and name it here")
            return None
        vocab, width = node.config.num_embeddings, node.config.embedding_dim
        if cfg.type == "embedding":  # a second lookup into the same table
            same = {"num_embeddings": vocab, "embedding_dim": width, "padding_idx": node.config.padding_idx}
            for key, value in same.items():
                if getattr(cfg, key) not in (None, value):
                    self.error(f"{key} {getattr(cfg, key)} differs from the tied embedding '{cfg.tie}' ({value})",
                               where, scope=scope, hint=f"leave {key} out")
                    return None
            return cfg.model_copy(update={**same, "tie": target})
        if cfg.out_features not in (None, vocab):
            self.error(f"out_features {cfg.out_features} differs from the vocabulary of the tied embedding "
                       f"'{cfg.tie}' ({vocab})", where, scope=scope, hint="leave out_features out")
            return None
        x = self.graph.shape_of(inputs[0]) if len(inputs) == 1 and inputs[0] is not None else None
        if x is not None and x and x[-1] != width:
            self.error(f"the input has {x[-1]} features, but the tied embedding '{cfg.tie}' is {width} wide", where,
                       scope=scope, hint=f"project to {width} features first (`linear: {width}`)")
            return None
        return cfg.model_copy(update={"out_features": vocab, "tie": target})

    def config(self, cls: type, args: dict, path: Path_, scope: Scope) -> Any:
        try:
            return memo.config(cls, args, lambda: validate_model(cls, args, self.doc_of(scope), prefix=path))
        except SpecErrors as e:
            for err in e.errors:
                self.report(err, scope)
            return None

    def add_node(self, op: str, cfg: Any, inputs: list[str | None], path: Path_, scope: Scope,
                 init: str | None = None, meta: dict | None = None) -> str:
        name = self.fresh(op, scope, meta)
        node = Node(name, op, cfg, tuple(i for i in inputs if i is not None), dotted(path),
                    self.doc_of(scope).span(path, key=True), init or self.model.init, use=scope.use,
                    groups=scope.groups)
        self.graph.nodes[name] = node
        if None in inputs or not all(self.one_value(i, path, scope, key=True) for i in node.inputs):
            return name
        shapes = [self.graph.shape_of(i) for i in node.inputs]
        dtypes = [self.graph.dtype_of(i) for i in node.inputs]
        if any(s is None for s in shapes):
            return name  # an upstream error: leave this shape unknown rather than report a consequence
        lt = REGISTRY[op]
        try:
            node.shapes, node.dtypes, node.params, node.flops = memo.types(
                op, cfg, shapes, dtypes, lambda: infer(lt, cfg, shapes, dtypes))
        except ShapeError as e:
            self.error(e.message, path, hint=e.hint, scope=scope, key=True)
            return name
        node.out_names = lt.outputs(cfg) if lt.outputs is not None else ()
        sizes = [d for shape in node.shapes for d in shape if isinstance(d, int)]
        if max(sizes, default=1) > 2**31 or node.params > 2**36:
            shown = ", ".join(fmt(s) for s in node.shapes)
            self.error(f"output {shown} with {node.params:,} parameters is too large to build", path,
                       scope=scope, key=True, hint="check the sizes in this layer's arguments")
        return name

    def combinator(self, c: Combinator, args: Any, meta: dict, path: Path_, prev: str | None,
                   scope: Scope) -> str | None:
        """A combinator's argument: a bare list, or a mapping with its list under `c.key` and some options."""
        if isinstance(args, list):
            return c.expand(self, args, path, dict(c.options), meta, path, prev, scope)
        if not isinstance(args, dict) or c.key not in args:
            self.error(f"needs `{c.key}`", path, scope=scope,
                       hint=f"write `{c.name}: [...]` or `{c.name}: {{{c.key}: [...]}}`")
            return None
        unknown = [k for k in args if k != c.key and k not in c.options]
        for k in unknown:
            self.error(f"unknown key '{k}'", path + (k,), key=True, scope=scope,
                       hint=did_you_mean(k, [c.key, *c.options]) or one_of([c.key, *c.options]))
        if unknown:
            return None
        opts = {**c.options, **{k: v for k, v in args.items() if k != c.key}}
        return c.expand(self, args[c.key], path + (c.key,), opts, meta, path, prev, scope)
