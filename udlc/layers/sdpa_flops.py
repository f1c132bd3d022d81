"""FLOPs of scaled_dot_product_attention on CPU, for torch's FlopCounterMode (what `udlc summary --torch` and
the FLOP tests compare udlc's static counts with)."""


def count_cpu_sdpa() -> None:
    """torch's FlopCounterMode counts SDPA's CUDA kernels but not the CPU one (torch 2.13), so on CPU the
    attention matmuls would vanish from the count; give the CPU kernel the same formula."""
    import torch
    from torch.utils import flop_counter

    aten = torch.ops.aten
    pairs = [("_scaled_dot_product_flash_attention_for_cpu", flop_counter.sdpa_flop),
             ("_scaled_dot_product_flash_attention_for_cpu_backward", flop_counter.sdpa_backward_flop)]
    for name, formula in pairs:
        op = getattr(aten, name, None)
        if op is not None and op not in flop_counter.flop_registry:
            flop_counter.register_flop_formula(op, get_raw=True)(formula)  # the formula already reads shapes
