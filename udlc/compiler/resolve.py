"""resolve: the model section's layer entries → a Graph.

Blocks are expanded with their parameters substituted, repeats unrolled, combinators turned into
plain nodes (a residual is its body plus an `add`), names made unique. Each node's shape, parameter
count and FLOPs are inferred as it is added: a residual's projection is only added when the shapes
around it differ, so shapes cannot wait for a later pass. Errors are collected, not raised one by one:
an entry that fails leaves its successors' shapes unknown, and the rest of the file is still checked.
"""

from __future__ import annotations

from typing import Any, Callable

from udlc.compiler.blocks import Scope, call_block
from udlc.compiler.graph import Graph, Node
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
    "print_readable delete_submodule delete_all_unused_submodules add_submodule meta".split()
)


def resolve(model: ModelSpec, doc: Document, name: str = "model") -> Graph:
    return _Resolver(model, doc, name).run()


class _Resolver:
    def __init__(self, model: ModelSpec, doc: Document, name: str):
        self.model, self.doc = model, doc
        self.graph = Graph(name, model.input_shapes())
        self.errors: list[SpecError] = []
        self.taken: set[str] = set(self.graph.inputs)
        self.combinators: dict[str, Callable[..., str | None]] = {
            "residual": self.residual,
            "parallel": self.parallel,
            "repeat": self.repeat,
        }

    def run(self) -> Graph:
        base = ("model",)
        for name in self.graph.inputs:
            if name in RESERVED_IDS:
                self.error(f"input name '{name}' is reserved", base + ("inputs", name), hint="choose another name")
        for name in self.model.blocks:
            if name in REGISTRY or name in self.combinators:
                self.error(f"block '{name}' has the name of a built-in layer", base + ("blocks", name), key=True,
                           hint="rename the block")
        top = Scope("", {n: n for n in self.graph.inputs}, {})
        last = self.sequence(self.model.layers, base + ("layers",), next(iter(self.graph.inputs)), top)
        if self.model.outputs:
            for i, out in enumerate(self.model.outputs):
                if out not in top.names:
                    self.error(f"unknown output '{out}'", base + ("outputs", i),
                               hint=did_you_mean(out, top.names) or "give a layer `id: ...` and name it here")
                else:
                    self.graph.outputs.append(top.names[out])
        elif last is not None:
            self.graph.outputs.append(last)
        if self.errors:
            unique = {(e.span, e.message): e for e in self.errors}  # a block used twice reports once
            raise SpecErrors(unique.values())
        return self.graph

    # ---- messages -------------------------------------------------------------------------------

    def error(self, message: str, path: Path_, *, hint: str | None = None, key: bool = False, scope: Scope | None = None):
        context = scope.context if scope else ""
        self.errors.append(SpecError(message + context, path=dotted(path), span=self.doc.span(path, key=key), hint=hint))

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
        path = path + (name,)
        meta, args = self.node_keys(args, path, scope)
        if meta is None:
            return None
        if name in self.combinators:
            return self.combinators[name](args, meta, path, prev, scope)
        if name in REGISTRY:  # before blocks: a block may not take a layer's name (reported in run)
            return self.layer(name, args, meta, path, prev, scope)
        if name in self.model.blocks:
            return call_block(self, name, args, meta, path, prev, scope)
        known = [*REGISTRY, *self.model.blocks, *self.combinators]
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
            elif node_id in RESERVED_IDS:
                self.error(f"id '{node_id}' is reserved", path + ("id",), hint="choose another name", scope=scope)
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
            for i, src in enumerate(sources):
                where = path + ("from",) + ((i,) if isinstance(meta["from"], list) else ())
                if not isinstance(src, str) or src not in scope.names:
                    self.error(f"unknown node '{src}'", where, scope=scope,
                               hint=did_you_mean(src, scope.names) or one_of(scope.names))
                    ok = False
            meta["from"] = sources
        if "repeat" in meta and (type(meta["repeat"]) is not int or not 1 <= meta["repeat"] <= 1000):
            self.error(f"repeat must be a whole number from 1 to 1000 (got {show(meta['repeat'])})", path + ("repeat",),
                       scope=scope)
            ok = False
        if "init" in meta and meta["init"] not in INITS:
            self.error(f"unknown init '{meta['init']}'", path + ("init",), scope=scope,
                       hint=did_you_mean(meta["init"], INITS) or one_of(INITS))
            ok = False
        return (meta if ok else None), args

    def inputs(self, meta: dict, prev: str | None, scope: Scope) -> list[str | None]:
        return [scope.names[s] for s in meta["from"]] if "from" in meta else [prev]

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

    def config(self, cls: type, args: dict, path: Path_, scope: Scope) -> Any:
        try:
            return validate_model(cls, args, self.doc, prefix=path)
        except SpecErrors as e:
            for err in e.errors:
                err.message += scope.context
            self.errors.extend(e.errors)
            return None

    def add_node(self, op: str, cfg: Any, inputs: list[str | None], path: Path_, scope: Scope,
                 init: str | None = None, meta: dict | None = None) -> str:
        name = self.fresh(op, scope, meta)
        node = Node(name, op, cfg, tuple(i for i in inputs if i is not None), dotted(path),
                    self.doc.span(path, key=True), init or self.model.init)
        self.graph.nodes[name] = node
        shapes = [self.graph.shape_of(i) for i in inputs] if None not in inputs else [None]
        if any(s is None for s in shapes):
            return name  # an upstream error: leave this shape unknown rather than report a consequence
        lt = REGISTRY[op]
        try:
            node.shape = tuple(lt.shape(cfg, *shapes))
            node.params = lt.params(cfg, *shapes)
            node.flops = lt.flops(cfg, *shapes)
        except ShapeError as e:
            self.error(e.message, path, hint=e.hint, scope=scope, key=True)
            return name
        if max(node.shape, default=1) > 2**31 or node.params > 2**36:
            self.error(f"output {fmt(node.shape)} with {node.params:,} parameters is too large to build", path,
                       scope=scope, key=True, hint="check the sizes in this layer's arguments")
        return name

    # ---- combinators ----------------------------------------------------------------------------

    def body(self, args: Any, path: Path_, key: str, options: dict, scope: Scope) -> tuple[Any, Path_, dict] | None:
        """A combinator's argument: a bare list of layers, or a mapping with `key` and some options."""
        if isinstance(args, list):
            return args, path, dict(options)
        if not isinstance(args, dict) or key not in args:
            self.error(f"needs `{key}`", path, scope=scope, hint=f"write `{path[-1]}: [...]` or `{path[-1]}: {{{key}: [...]}}`")
            return None
        unknown = [k for k in args if k != key and k not in options]
        for k in unknown:
            self.error(f"unknown key '{k}'", path + (k,), key=True, scope=scope,
                       hint=did_you_mean(k, [key, *options]) or one_of([key, *options]))
        if unknown:
            return None
        return args[key], path + (key,), {**options, **{k: v for k, v in args.items() if k != key}}

    def residual(self, args: Any, meta: dict, path: Path_, prev: str | None, scope: Scope) -> str | None:
        parsed = self.body(args, path, "layers", {"projection": False}, scope)
        if parsed is None:
            return None
        layers, body_path, opts = parsed
        if not layers:
            self.error("a residual needs at least one layer", path, scope=scope, key=True)
            return None
        x = self.single_input(meta, prev, path, scope)
        out = None
        for _ in range(meta.get("repeat", 1)):
            y = self.sequence(layers, body_path, x, scope)
            if x is None or y is None:
                return None
            skip = x
            xs, ys = self.graph.shape_of(x), self.graph.shape_of(y)
            if xs is not None and ys is not None and xs != ys:
                if opts["projection"] is not True:
                    self.error(f"the residual body turns {fmt(xs)} into {fmt(ys)}; x + f(x) needs them equal", path,
                               scope=scope, key=True, hint="add `projection: true` to project x with a 1x1 convolution")
                    return None
                skip = self.projection(x, xs, ys, path, scope)
            out = x = self.add_node("add", REGISTRY["add"].config(), [skip, y], path, scope)
        return self.named(out, meta, scope)

    def projection(self, x: str, xs: tuple, ys: tuple, path: Path_, scope: Scope) -> str | None:
        """1x1 convolution (or linear layer) that maps shape xs to ys, striding over shrunk spatial axes."""
        if len(xs) != len(ys) or not 1 <= len(xs) <= 3:
            self.error(f"cannot project {fmt(xs)} to {fmt(ys)}", path, scope=scope, key=True)
            return None
        if len(xs) == 1:
            return self.add_node("linear", REGISTRY["linear"].config(out_features=ys[0]), [x], path, scope)
        strides = [a // b if b and a % b == 0 else 0 for a, b in zip(xs[1:], ys[1:])]
        if 0 in strides or len(set(strides)) != 1:
            self.error(f"cannot project {fmt(xs)} to {fmt(ys)} with a strided 1x1 convolution", path, scope=scope,
                       key=True)
            return None
        op = "conv1d" if len(xs) == 2 else "conv2d"
        cfg = REGISTRY[op].config(out_channels=ys[0], kernel_size=1, stride=strides[0])
        return self.add_node(op, cfg, [x], path, scope)

    def parallel(self, args: Any, meta: dict, path: Path_, prev: str | None, scope: Scope) -> str | None:
        parsed = self.body(args, path, "branches", {"merge": "concat", "dim": 0}, scope)
        if parsed is None:
            return None
        branches, branches_path, opts = parsed
        if not isinstance(branches, list) or len(branches) < 2:
            self.error("a parallel needs two or more branches (lists of layers)", path, scope=scope, key=True)
            return None
        if opts["merge"] not in ("concat", "add"):
            self.error(f"unknown merge '{opts['merge']}'", path + ("merge",), scope=scope, hint="expected concat or add")
            return None
        x = self.single_input(meta, prev, path, scope)
        if x is None:
            return None
        outs = [self.sequence(b, branches_path + (i,), x, scope) if b else x for i, b in enumerate(branches)]
        if None in outs:
            return None
        if opts["merge"] == "add":
            cfg = REGISTRY["add"].config()
        else:
            cfg = self.config(REGISTRY["concat"].config, {"dim": opts["dim"]}, path, scope)
            if cfg is None:
                return None
        return self.named(self.add_node(opts["merge"], cfg, outs, path, scope), meta, scope)

    def repeat(self, args: Any, meta: dict, path: Path_, prev: str | None, scope: Scope) -> str | None:
        parsed = self.body(args, path, "layers", {"times": 1}, scope)
        if parsed is None:
            return None
        layers, layers_path, opts = parsed
        times = opts["times"]
        if type(times) is not int or not 1 <= times <= 1000:
            self.error(f"times must be a whole number from 1 to 1000 (got {show(times)})", path + ("times",),
                       scope=scope)
            return None
        x = self.single_input(meta, prev, path, scope)
        for _ in range(times * meta.get("repeat", 1)):
            x = self.sequence(layers, layers_path, x, scope)
        return self.named(x, meta, scope)
